/*
 * One watched database on the loop.
 *
 * The loop thread schedules; a threadpool job does the work. At most one
 * job per database runs at a time, and it alone touches the SQLite
 * connections and the shadow WAL (struct shadow); it reports back in its
 * after-work callback, which publishes the new position to the
 * subscribers (db_subscribe()). So the loop never waits on SQLite locks or
 * on disk.
 *
 * Calls go one way: replicas and the control server call the functions
 * below and are called back only through what they subscribed; the
 * database knows no replica. Files: db.c the job (SQLite side, threadpool),
 * db_loop.c scheduling and lifecycle, db_subscribers.c the subscribers and
 * what they still need of the shadow WAL, db_snapshot.c snapshots versus
 * checkpoints.
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

#include "config/config.h"
#include "db/db_conn.h"
#include "core/names.h"
#include "db/shadow.h"
#include "util/log_throttle.h"

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

/* Enough for "GENERATION/IIIIIIII:OFFSET" and its NUL. */
#define DB_POS_STR_MAX (GENERATION_LEN + 32)

/* Writes p as "GENERATION/IIIIIIII:OFFSET" (the logs' form) into buf; returns buf. */
const char *db_pos_format(const struct db_pos *p, char *buf, size_t n);

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
	uint64_t idle_ticks;     /* monitor ticks that found nothing changed (no job) */
	char last_error[256];
};

/* Answer to db_request_image(). */
typedef void (*db_image_cb)(void *arg, int rc, const struct db_pos *pos);

/* ---- what the database publishes ------------------------------------------ */

enum db_event_kind {
	/*
	 * A sync published a position (each successful sync does): pos is
	 * it, moved whether it differs from the one published before.
	 */
	DB_EVENT_POSITION,
	/* That sync started a new generation (sent just before its DB_EVENT_POSITION). */
	DB_EVENT_GENERATION,
	/* The database file was removed: no position until it comes back. */
	DB_EVENT_REMOVED,
};

struct db_event {
	enum db_event_kind kind;
	struct db *db;
	const struct db_pos *pos; /* POSITION, GENERATION; NULL otherwise */
	bool moved;               /* POSITION */
};

/* Called on the loop for each event, in the order of subscription. */
typedef void (*db_event_cb)(void *arg, const struct db_event *ev);

/*
 * Asked on the loop before each sync that may remove shadow files: the
 * oldest shadow WAL position the subscriber still needs, in whatever
 * generation it is (generation "" = none). False means it does not know
 * yet, and then every shadow file is kept.
 */
typedef bool (*db_floor_cb)(void *arg, struct db_pos *out);

/* A snapshot may begin (db_snapshot_acquire()). */
typedef void (*db_snapshot_cb)(void *arg);

/* The files as a monitor tick last saw them (db_loop.c). */
/* One file as a monitor tick sees it (stat(); all zero when it is missing). */
struct db_file_id {
	uint64_t ino;
	int64_t size, mtime_ns;
};

struct db_files_stat {
	struct db_file_id db, wal;
};

struct db_subscriber;
struct db_snapshot_waiter;
struct db_job;

enum db_state { DB_RUNNING, DB_STOPPING, DB_STOPPED, DB_CLOSING, DB_CLOSED };

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
	 * checkpoint_retry_ms, a pause that doubles from 10 ms to 100 ms
	 * while the writer writes, to 1 s once it stopped (db.c).
	 */
	bool checkpoint_pending;
	bool checkpoint_complete;  /* the last round left the WAL fully backfilled */
	uint32_t checkpoint_index;
	int64_t checkpoint_backoff_ms;
	int64_t checkpoint_retry_ms;
	int64_t forced_retry_ms;   /* no forced checkpoint before (one left a reader behind) */
	bool wal_growing;          /* the last job copied new frames */

	/* Loop-owned. */
	enum db_state state;
	bool open;                 /* the database exists and is open */
	struct db_pos pos;         /* end of the committed shadow WAL */
	bool pos_valid;
	uint32_t page_size;
	char *tmp_dir;             /* scratch files of the replicas (owned) */
	/*
	 * The replicas, listed for status readers (control, metrics): the
	 * database itself never calls them. Owned array of borrowed pointers.
	 */
	struct replica **replicas;
	size_t n_replicas;
	struct db_subscriber *subs; /* owned */
	size_t n_subs;
	int dispatching;           /* events being sent: unsubscribe only marks */
	struct db_job *job;        /* running job, or NULL */
	bool sync_wanted;          /* run another sync when the job ends */
	enum db_checkpoint_mode checkpoint_wanted;
	char new_generation_reason[128]; /* asked by a replica; "" if none */
	int snapshot_readers;      /* snapshots reading the file: no checkpoint */
	/* snapshots waiting for a checkpointing job to end, then being let in */
	struct db_snapshot_waiter *snapshot_waiters, *snapshot_granting;
	char *image_path;          /* db_request_image(), pending */
	db_image_cb image_cb;
	void *image_arg;
	int64_t last_checkpoint_ms;
	int64_t retry_at_ms;       /* after a failed sync, not before this */
	struct log_throttle sync_failure_log; /* one line a minute while syncs fail */
	struct db_stats stats;
	uv_fs_event_t dir_watch;
	char *watch_dir;           /* what dir_watch watches (NULL: a [dir]'s watcher tells us) */
	bool watch_paused;         /* stopped while a job runs (db_loop.c: "paused watcher") */
	uv_timer_t monitor_timer;
	struct db_files_stat monitor_seen; /* at the last tick that asked for a sync */
	bool monitor_seen_valid;
	int monitor_file_skips;    /* ticks since the database file's own stat (db_loop.c) */
	bool wal_backfilled;       /* the last job saw the WAL fully backfilled, all of it shadowed */
	bool spare_open;           /* the spare read connection is open (db_conn.h) */
	bool rest_wanted;          /* the next job puts the database at rest (db_loop.c) */
	bool rested;               /* the last job did, and copied nothing */
	int64_t last_active_ms;    /* the last job that copied frames (monotonic) */
	uv_timer_t turn_timer;     /* the next sync: at the next loop turn, or a checkpoint retry */
	int64_t turn_due_ms;       /* when turn_timer fires, while active (monotonic) */
	int64_t last_start_ms;     /* when the last sync job started (monotonic) */
	int open_handles;
	void (*stop_cb)(struct db *db);
	void (*close_cb)(struct db *db);
};

/* Prepares a database; starts nothing. 0 or -errno. */
int db_init(struct db *db, uv_loop_t *loop, const struct db_config *cfg);

/*
 * Lists a replica for status readers (db->replicas); the database does
 * not call it (the replica subscribes itself). 0 or -ENOMEM.
 */
int db_add_replica(struct db *db, struct replica *r);

/*
 * Subscribes to the database's events (on_event, required) and, when
 * floor is not NULL, to the housekeeping question (db_floor_cb). arg
 * identifies the subscription. 0 or -ENOMEM. Safe from within an event.
 */
int db_subscribe(struct db *db, db_event_cb on_event, db_floor_cb floor, void *arg);

/* Ends the subscription (on_event, arg); unknown ones are fine. Safe from within an event. */
void db_unsubscribe(struct db *db, db_event_cb on_event, void *arg);

/*
 * The last position published. True when it is current; false before the
 * first sync published one (*out is then zeroes) and after the database
 * file was removed (*out is then the last one known), until a sync
 * publishes again.
 */
bool db_position(const struct db *db, struct db_pos *out);

/* The database's path, as configured. */
const char *db_path(const struct db *db);

/*
 * The shadow WAL as readers on the loop see it (shadow.h): the path of
 * shadow index index of generation (malloc'd, NULL without memory), and
 * its size (-errno when it is gone). Safe while a job runs: a shadow file
 * only ever grows by whole transactions, and is removed only when no
 * subscriber's floor needs it.
 */
char *db_shadow_path(const struct db *db, const char *generation, uint32_t index);

/*
 * The local directory of a generation (META/generations/GEN, malloc'd, NULL
 * without memory), where replicas may keep small files of their own about
 * it: it goes when the generation's shadow files do.
 */
char *db_generation_dir(const struct db *db, const char *generation);
int64_t db_shadow_size(const struct db *db, const char *generation, uint32_t index);

/* A directory for the replicas' scratch files (may not exist yet; create it). */
const char *db_tmp_dir(const struct db *db);

/*
 * The database file's own descriptor (file_fd in db_conn.h: why it must
 * never be closed by a reader), -1 while the database
 * is not open. Read it only while holding a snapshot (db_snapshot_acquire()).
 */
int db_file_fd(const struct db *db);

/*
 * Starts watching: fs events on the directory (unless cfg->dir_events:
 * then whoever watches the directory calls db_request_sync()), the
 * monitor timer, a first sync.
 */
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
 * Snapshots versus checkpoints (db_snapshot.c decides both): a snapshot
 * reads the database file, which a checkpoint rewrites, so the two never
 * overlap. db_snapshot_acquire() returns 1 when the snapshot may begin at
 * once (no job that may checkpoint is running), or 0 and calls cb(arg) on
 * the loop as soon as the checkpointing job ends; -ENOMEM. While a
 * snapshot waits, jobs started meanwhile do not checkpoint, so a database
 * checkpointing at every sync cannot starve it. From the start granted
 * until db_snapshot_release(), no job checkpoints; a checkpoint put off
 * so runs at the first sync after the last release.
 * db_snapshot_cancel() drops a wait not answered yet (cb, arg); unknown
 * ones are fine.
 */
int db_snapshot_acquire(struct db *db, db_snapshot_cb cb, void *arg);
void db_snapshot_release(struct db *db);
void db_snapshot_cancel(struct db *db, db_snapshot_cb cb, void *arg);

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
