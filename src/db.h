/*
 * One watched database on the loop.
 *
 * The loop thread schedules; a threadpool job does the work. At most one
 * job per database runs at a time, and it alone touches the SQLite
 * connections and the shadow WAL (struct shadow); it reports back in its
 * after-work callback, which publishes the new position and wakes the
 * replicas. So the loop never waits on SQLite locks or on disk.
 *
 * A sync job: opens the database if it exists yet (db_conn.h: WAL mode,
 * automatic checkpoints off on our connections, a read transaction that is
 * never let go, so that no other connection can restart the WAL behind our
 * back), moves that read transaction up while it brings the shadow WAL
 * level with the real WAL (shadow.h), checkpoints when the WAL is large or
 * the database has not been checkpointed for a while, and removes shadow
 * files every replica has shipped. It never writes to the database.
 *
 * Checkpoints (Litestream 0.3's thresholds): PASSIVE at
 * min-checkpoint-page-count pages or after checkpoint-interval without a
 * checkpoint, after which the application's next write restarts the WAL;
 * at max-checkpoint-page-count a forced one that holds the write lock
 * while it copies and backfills the last frames, so that even a writer
 * that never pauses cannot keep the WAL from restarting (db.c). Lock
 * waits are bounded; a busy database is retried on the next tick. Nothing
 * checkpoints on exit.
 */
#ifndef LITESTREAM_DB_H
#define LITESTREAM_DB_H

#include "config.h"
#include "db_conn.h"
#include "names.h"
#include "shadow.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct replica;

/* A place in the shadow WAL: generation, index and byte offset. */
struct db_pos {
	char generation[GENERATION_LEN + 1];
	uint32_t index;
	uint64_t offset;
};

/* Orders two positions of the same generation (index, then offset). */
int db_pos_cmp(const struct db_pos *a, const struct db_pos *b);

enum db_checkpoint_mode {
	CHECKPOINT_NONE = -1,
	CHECKPOINT_PASSIVE = 0,
	CHECKPOINT_FULL,
	CHECKPOINT_RESTART,
	CHECKPOINT_TRUNCATE,
};
#define CHECKPOINT_MODES 4

const char *db_checkpoint_mode_name(enum db_checkpoint_mode mode);

/* Counters for status and metrics (loop thread). */
struct db_stats {
	uint64_t sync_count;
	uint64_t sync_error_count;
	double sync_seconds;
	uint64_t checkpoint_count[CHECKPOINT_MODES];
	uint64_t checkpoint_error_count[CHECKPOINT_MODES];
	double checkpoint_seconds[CHECKPOINT_MODES];
	uint64_t total_wal_bytes;
	uint64_t db_size;
	uint64_t wal_size;
	uint64_t generations_started;
	int64_t last_sync_ms;    /* wall clock of the last successful sync */
	char last_error[256];
};

/* Answer to db_request_image(). */
typedef void (*db_image_cb)(void *arg, int rc, const struct db_pos *pos);

enum db_state { DB_RUNNING, DB_STOPPING, DB_STOPPED, DB_CLOSING, DB_CLOSED };

struct db_job;

struct db {
	uv_loop_t *loop;
	const struct db_config *cfg; /* borrowed; outlives the db */
	const char *path;            /* cfg->path */

	/* Job-owned: touched only by the running job (or before start). */
	struct shadow shadow;
	struct db_conn conn;      /* our connections and read transaction */
	/*
	 * Checkpoint pacing: after a checkpoint in shadow index
	 * checkpoint_index, until the WAL restarts, the next is tried at
	 * checkpoint_retry_ms, a pause that doubles from 10 ms to 1 s (db.c).
	 */
	bool checkpoint_pending;
	bool checkpoint_complete;  /* the last round left the WAL fully backfilled */
	uint32_t checkpoint_index;
	int64_t checkpoint_backoff_ms;
	int64_t checkpoint_retry_ms;
	int64_t forced_retry_ms;   /* no forced checkpoint before (one left a reader behind) */

	/* Loop-owned. */
	enum db_state state;
	bool open;                 /* the database exists and is open */
	struct db_pos pos;         /* end of the committed shadow WAL */
	bool pos_valid;
	uint32_t page_size;
	struct replica **replicas; /* owned array of borrowed replicas */
	size_t n_replicas;
	struct db_job *job;        /* running job, or NULL */
	bool sync_wanted;          /* run another sync when the job ends */
	enum db_checkpoint_mode checkpoint_wanted;
	char new_generation_reason[128]; /* asked by a replica; "" if none */
	int snapshot_readers;      /* snapshot jobs reading the file: no checkpoint */
	int snapshot_waiters;      /* snapshots waiting for a checkpointing job to end */
	char *image_path;          /* db_request_image(), pending */
	db_image_cb image_cb;
	void *image_arg;
	int64_t last_checkpoint_ms;
	int64_t retry_at_ms;       /* after a failed sync, not before this */
	struct db_stats stats;
	uv_fs_event_t dir_watch;
	uv_timer_t monitor_timer;
	uv_timer_t turn_timer;     /* the next sync: at the next loop turn, or a checkpoint retry */
	int64_t turn_due_ms;       /* when turn_timer fires, while active (monotonic) */
	int64_t last_start_ms;     /* when the last sync job started (monotonic) */
	int open_handles;
	void (*stop_cb)(struct db *db);
	void (*close_cb)(struct db *db);
	/*
	 * Observer (e.g. the control socket): called on the loop after each
	 * sync that published a position (r == NULL) and each time one of the
	 * replicas acknowledged an upload (r set). NULL when unused.
	 */
	void (*progress_cb)(struct db *db, struct replica *r, void *arg);
	void *progress_arg;
};

/* Prepares a database; starts nothing. 0 or -errno. */
int db_init(struct db *db, uv_loop_t *loop, const struct db_config *cfg);

/* Registers a replica to wake after each sync (the db does not own it). */
int db_add_replica(struct db *db, struct replica *r);

/* Starts watching: fs events on the directory, the monitor timer, a first sync. */
int db_start(struct db *db);

/* Asks for a sync now (coalesced with one already running). */
void db_request_sync(struct db *db);

/* Asks for a checkpoint in the given mode at the next sync. */
void db_request_checkpoint(struct db *db, enum db_checkpoint_mode mode);

/*
 * A consistent copy of the database for validation: at the next sync the
 * job copies the database file to path (through file_fd, with no
 * checkpoint running) and reports the position pos it was taken at. The
 * copy holds every page up to pos and possibly parts of pages committed
 * before it (SQLite's own checkpoints), never anything after: applying the
 * current shadow index's frames up to pos.offset over it gives the
 * database exactly at pos. cb runs on the loop; rc 0 or -errno.
 */
int db_request_image(struct db *db, const char *path, db_image_cb cb, void *arg);

/* Asks for a new generation at the next sync (a replica lost its place). */
void db_request_new_generation(struct db *db, const char *reason);

/*
 * A snapshot job starts or ends reading the database file; while any does,
 * no checkpoint runs. A snapshot may begin only when db_snapshot_allowed()
 * (no job that may checkpoint is running).
 */
void db_snapshot_begin(struct db *db);
void db_snapshot_end(struct db *db);
bool db_snapshot_allowed(const struct db *db);

/*
 * A snapshot is waiting for db_snapshot_allowed(): jobs started meanwhile
 * do not checkpoint, so a database checkpointing at every sync cannot
 * starve it. Balanced by db_snapshot_unwait().
 */
void db_snapshot_wait(struct db *db);
void db_snapshot_unwait(struct db *db);

/*
 * Stops watching, waits for the running job, runs one last sync (never a
 * checkpoint) and then calls cb. The db stays open for replicas to flush.
 */
void db_stop(struct db *db, void (*cb)(struct db *db));

/*
 * Releases the read transaction and closes the connections (without a
 * checkpoint) and every handle; cb runs when all is closed. After
 * db_stop().
 */
void db_close(struct db *db, void (*cb)(struct db *db));

/* Frees what db_init allocated; after the close callback. */
void db_free(struct db *db);

#endif
