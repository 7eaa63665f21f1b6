/*
 * Watching the application's commits through the WAL-index (the -shm
 * file), read-only, so that the forced checkpoint can ask for the write
 * lock at the moment a writer lets go of it.
 *
 * A writer that never pauses holds SQLite's WAL write lock nearly all the
 * time: it lets go at the end of one transaction and takes it again a few
 * microseconds later at the beginning of the next, while each transaction
 * holds it for its whole commit, fsync included (milliseconds). A waiter
 * that tries at moments of its own choosing almost never lands in that
 * gap; on a busy machine the forced checkpoint then waited hundreds of
 * milliseconds while the WAL grew past its bound. Every commit updates
 * the WAL-index header (its change counter: iChange in SQLite's WAL
 * file format document) just before the
 * lock is let go, so trying right after a change lands in the gap.
 *
 * The mapping is read-only and nothing here takes a lock. The descriptor
 * stays open until SQLite's connections are closed: closing any
 * descriptor of the -shm file would drop the POSIX locks SQLite holds on
 * it for our read transaction (see file_fd in db_conn.h).
 */
#ifndef LITESTREAM_COMMIT_WATCH_H
#define LITESTREAM_COMMIT_WATCH_H

#include <stdbool.h>
#include <stdint.h>

struct commit_watch {
	int fd;                         /* the -shm file, -1 when not open */
	const volatile uint32_t *hdr;   /* its first header copy, NULL if not mapped */
	uint32_t seen;                  /* the change counter last seen */
	int64_t burst_until_us;         /* retry at once until then */
	bool quiet;                     /* a whole spin saw no commit: look, do not spin */
};

void commit_watch_init(struct commit_watch *w);

/* Maps the -shm file of db_path. Without it (no file yet) waits just sleep. */
void commit_watch_open(struct commit_watch *w, const char *db_path);

/* After SQLite's connections to the database are closed (see above). */
void commit_watch_close(struct commit_watch *w);

/* Before a new wait for the lock. */
void commit_watch_reset(struct commit_watch *w);

/*
 * Called from a busy handler between two attempts at a lock a writer
 * holds: returns at once for a short burst after a commit, otherwise
 * spins until the next commit, at most max_spin_us, and returns false
 * (the caller then pauses). Once a whole spin saw no commit, the holder
 * is one long transaction, not a writer that never pauses: from then on
 * each call only looks (no spin) until commits come again, so that a
 * wait behind a bulk load costs no CPU. True when a commit was seen.
 */
bool commit_watch_wait(struct commit_watch *w, int64_t max_spin_us);

#endif
