/*
 * The control socket of `restore -f` (follower.h): the same HTTP server
 * and JSON and Prometheus plumbing as replicate's (control.h), with the
 * follower's routes:
 *
 *   GET /v1/status   {"path", "replica", "state", "position":
 *                    {"generation", "index", "offset"} or null,
 *                    "lag_seconds", "last_apply" (RFC 3339 or null),
 *                    "applies", "segments", "generation_switches",
 *                    "poll_errors", "last_error" (or null)}
 *   GET /metrics     litestream_follow_* and the process metrics:
 *     litestream_follow_wal_index, litestream_follow_wal_offset (gauges)
 *     litestream_follow_lag_seconds (gauge) the replica's newest object
 *       minus the newest one applied, 0 when caught up
 *     litestream_follow_applies_total, litestream_follow_segments_total,
 *     litestream_follow_pages_total, litestream_follow_polls_total,
 *     litestream_follow_poll_errors_total,
 *     litestream_follow_generation_switches_total,
 *     litestream_follow_apply_seconds_total (counters)
 *     all with label db (PATH).
 *
 * Loop thread only; the follower is borrowed and must outlive the server.
 */
#ifndef LITESTREAM_CONTROL_FOLLOW_H
#define LITESTREAM_CONTROL_FOLLOW_H

#include <stddef.h>
#include <uv.h>

struct follower;
struct control_follow;

/* Listens on socket_path (mode 0600). 0 or -errno with err; *out is then NULL. */
int control_follow_start(uv_loop_t *loop, const struct follower *f, const char *socket_path,
			 struct control_follow **out, char *err, size_t errlen);

/* Stops listening and removes the socket; freed once the loop has closed its handles. NULL is fine. */
void control_follow_close(struct control_follow *c);

#endif
