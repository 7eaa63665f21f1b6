/*
 * When a replica counts as healthy: the one rule `litestream status`
 * (its exit status) and GET /healthz (200 or 503) share. A replica is
 * unhealthy when it reports an error (its last attempt failed and none
 * has succeeded since), or, given a max-lag, when it has lagged its
 * database for longer than that (replica_lag_seconds(): since the
 * database first moved past what the replica holds). Without max-lag,
 * lag alone is never unhealthy.
 *
 * GET /healthz takes the limits in its query: max-lag=DURATION (as
 * duration.h writes them, e.g. 10s, 1m30s; 0 allowed) and db=NAME (only
 * that database, a name or path as the control socket takes it; default
 * every database). No I/O, no state.
 */
#ifndef LITESTREAM_HEALTH_H
#define LITESTREAM_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct health_limits {
	int64_t max_lag_ms; /* -1: no limit */
	char *db;           /* db=NAME, decoded and owned; NULL: every database */
};

/* No limits: only errors count. */
void health_limits_init(struct health_limits *l);
void health_limits_free(struct health_limits *l);

/*
 * Parses GET /healthz's query (after the '?', "" for none) into l, which
 * health_limits_init() has set up. Returns 0, or -EINVAL with a message
 * naming the parameter in err ("invalid max-lag \"abc\" (a duration such
 * as 10s)", "unknown parameter \"x\" (want max-lag or db)"), or -ENOMEM. l may be
 * partly set on failure; free it either way.
 */
int health_limits_parse(const char *query, struct health_limits *l, char *err, size_t errlen);

/*
 * The verdict on one replica with last_error (NULL or "" for none) that
 * has lagged for lag_seconds. true when healthy; otherwise false with the
 * reason in reason ("error: ..." or "lags by 12.5s").
 */
bool health_replica_ok(const struct health_limits *l, const char *last_error, double lag_seconds,
		       char *reason, size_t n);

#endif
