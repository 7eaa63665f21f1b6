/*
 * A read replica: `restore -f` restores a database from a replica and
 * then keeps it following the replica, applying each new segment as it
 * appears, while other processes read it with SQLite.
 *
 * - Consistency: each apply is one rollback-journal transaction under
 *   SQLite's locks (livedb.h), holding whole transactions of the primary
 *   only (a batch ends at a segment that ends with a commit frame), so a
 *   reader sees a prefix of the primary's commit history, in order.
 * - Generations: when the replica's newest generation is another one, it
 *   is restored beside PATH (PATH.follow-new) and only then copied into
 *   PATH, page by page in one such transaction: a reader sees the old
 *   generation's last state, then the new one's first, never a mix.
 * - Resume: after every change the position (generation, index, offset,
 *   checksum chain) is saved in PATH.follow together with the change
 *   counter and page 1's CRC-64 that PATH has then; the entry for the
 *   change in flight is written before its pages, so after a crash PATH
 *   (rolled back or not) matches one entry. A PATH that matches none, or
 *   has no position file, is refused unless force starts over.
 * - Errors: a corrupt or missing object stops the follower with restore's
 *   message, PATH left at the last transaction applied. A listing that
 *   fails (the network) is retried at the next poll.
 *
 * Polling: every interval; for a file replica also as soon as its
 * generations directory or the current generation's wal directory changes
 * (fs events), the interval then only bounding how late a missed event
 * is noticed.
 *
 * One struct follower per process, on the loop thread; the applies run on
 * libuv's threadpool while the loop serves the control socket.
 */
#ifndef LITESTREAM_FOLLOWER_H
#define LITESTREAM_FOLLOWER_H

#include "core/names.h"
#include "restore/restore.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct follower_opts {
	const char *output;     /* PATH */
	int64_t interval_ms;    /* between polls of the replica */
	bool force;             /* start over when PATH cannot be resumed */
	bool verbose;
	int parallelism;
	int lock_timeout_ms;    /* for readers to let an apply in */
};

enum follower_state {
	FOLLOWER_STARTING,
	FOLLOWER_RESTORING,
	FOLLOWER_FOLLOWING,
	FOLLOWER_STOPPED,
	FOLLOWER_FAILED,
};

/* Where PATH is, and how PATH looks there (livedb_state). */
struct follow_pos {
	char generation[GENERATION_LEN + 1];
	uint32_t index;
	uint64_t offset;        /* bytes of index applied */
	bool have_chain;
	struct wal_header hdr;
	uint32_t cksum[2];
	int64_t applied_ms;     /* time of the newest object applied */
	uint32_t counter;
	uint64_t page1_crc;
};

struct follower_stats {
	uint64_t polls, poll_errors, applies, segments, pages, switches;
	double apply_seconds;
	double lag_seconds;     /* newest object of the replica minus the newest applied */
	int64_t last_apply_ms;  /* wall clock, 0 before the first */
};

struct livedb;

struct follower {
	uv_loop_t *loop;
	struct restore_source src;
	struct follower_opts o;
	char *pos_path, *scratch, *new_path;
	struct livedb *live;
	struct follow_pos pos;
	bool have_pos;
	enum follower_state state;
	bool stopping;
	uv_timer_t timer;
	bool timer_fired;
	/* A file replica: its directories watched, so a poll follows each change. */
	uv_fs_event_t watch_wal, watch_gens;
	char watched[GENERATION_LEN + 1];
	bool woken;             /* a watched directory changed since the last poll */
	struct follower_stats stats;
	char last_error[1024];
	/*
	 * What a threadpool job (follower_blocking) produced, the job's alone
	 * while it runs; the loop takes it over when it ends, so that the
	 * control socket never reads what a job is writing.
	 */
	struct {
		struct follow_pos pos;
		bool moved;
		uint64_t pages;
		double seconds;
		char err[1024];
	} job;
};

/* Borrows src and o's strings until follower_free(). 0 or -ENOMEM. */
int follower_init(struct follower *f, uv_loop_t *loop, const struct restore_source *src,
		  const struct follower_opts *o);

/*
 * Restores or resumes PATH, then follows until follower_stop(). Drives the
 * loop itself (never call it from a loop callback). 0 when stopped, or
 * -errno with err set (also kept in last_error).
 */
int follower_run(struct follower *f, char *err, size_t errlen);

/* From a loop callback (a signal): follower_run() returns after the current step. */
void follower_stop(struct follower *f);

/* Closes the timer (the loop must run once more) and frees what f owns. */
void follower_free(struct follower *f);

const char *follower_state_name(enum follower_state s);

#endif
