/*
 * What the files of one watched database share (db.c, db_loop.c,
 * db_subscribers.c, db_snapshot.c); nothing outside them includes this.
 *
 * A struct db_job carries one sync from the loop to the threadpool and
 * back: the loop fills the inputs (start_job in db_loop.c), the worker
 * thread runs it (db_job_work() in db.c) touching only the job, the
 * job-owned fields of struct db and the shadow WAL, and the after-work
 * callback on the loop reads the outputs.
 */
#ifndef LITESTREAM_DB_INTERNAL_H
#define LITESTREAM_DB_INTERNAL_H

#include "db/db.h"

#include <time.h>

/*
 * What the WAL looked like as a job began: enough to tell, after the job,
 * that the application wrote while the directory watcher was paused (see
 * "paused watcher" in db_loop.c). Taken before the job reads the WAL, so
 * that a write the job did not see shows as a difference. A commit
 * changes the size, the time, the header (a restart) or the frame header
 * where the shadow ended; one within a single timestamp tick over a WAL
 * that did not grow may be missed until the monitor tick. The -shm file
 * is never opened for it: closing a descriptor of it would drop SQLite's
 * POSIX locks there.
 */
struct wal_print {
	bool exists;
	uint64_t ino, size;
	int64_t mtime_ns;
	uint8_t head[32];            /* the WAL header: salts change at a restart */
	uint64_t end;                /* where the shadow ended */
	uint8_t at_end[24];          /* the frame header there */
};

struct db_job {
	uv_work_t req;
	struct db *db;
	/* inputs */
	bool final;                  /* last sync before exit: no checkpoint */
	bool close;                  /* release and close the connections */
	bool may_checkpoint;
	enum db_checkpoint_mode requested;
	char new_generation_reason[128];
	bool housekeeping;
	char *image_path;            /* copy the database file here (owned) */
	db_image_cb image_cb;
	void *image_arg;
	int image_rc;
	uint32_t min_index;          /* lowest index a replica still reads (current generation) */
	char keep[8][GENERATION_LEN + 1]; /* other generations replicas still read */
	size_t n_keep;
	int64_t last_checkpoint_ms;
	/* outputs */
	int rc;
	char err[256];
	bool waiting;                /* the database file does not exist yet */
	bool removed;                /* ... any more: it was removed */
	bool opened;
	struct shadow_sync_result sync;
	uint64_t copied;
	bool generation_started;
	enum db_checkpoint_mode checkpointed;
	int checkpoint_rc;
	double checkpoint_seconds;
	struct db_pos pos;
	uint32_t page_size;
	uint64_t db_size, wal_size;
	bool wal_backfilled;         /* nothing for a checkpoint to do (shadow.h: complete) */
	bool rest;                   /* in: idle, close the spare read connection, drop the -shm pages */
	bool spare_open;             /* out: whether it is open */
	bool writer_paused;          /* no commit since the last job, which copied some */
	int64_t retry_in_ms;         /* > 0: a checkpoint to try again this much later */
	double seconds;
	struct wal_print wal_print;  /* out: the WAL as the job found it */
};

struct db_subscriber {
	db_event_cb on_event; /* NULL once unsubscribed during a dispatch */
	db_floor_cb floor;    /* NULL: needs no shadow file */
	void *arg;
};

/* db.c: the threadpool side. */

/* uv_work_cb of every job: runs it (worker thread). */
void db_job_work(uv_work_t *req);

/* Closes the connections and the file from the loop, when no job can run. */
void db_job_close_now(struct db *db);

/* Reads the print of db's real WAL, with the frame header at offset end (any thread). */
void db_wal_print(const struct db *db, uint64_t end, struct wal_print *out);

/* db_subscribers.c */

/* Sends ev to every subscriber, in the order they subscribed. */
void db_dispatch(struct db *db, const struct db_event *ev);

/*
 * Fills the job's housekeeping plan (min_index, keep) from the
 * subscribers' floors; false when one does not know its floor yet (keep
 * everything).
 */
bool db_plan_housekeeping(struct db *db, struct db_job *job);

/* db_snapshot.c */

/* Whether a job started now may checkpoint (no snapshot reads or waits). */
bool db_checkpoint_allowed(const struct db *db);

/* A job ended: lets in the snapshots that waited for it. */
void db_snapshot_job_done(struct db *db);

/* db_free(): drops waits nobody cancelled. */
void db_snapshot_forget(struct db *db);

#endif
