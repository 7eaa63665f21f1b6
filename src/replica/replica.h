/*
 * One replica of one database: the logic common to every backend.
 *
 * A replica remembers how far it has shipped (a position: generation,
 * index, offset into that shadow WAL index) and moves it forward by
 * uploading, strictly in order:
 *
 *   - a snapshot generations/GEN/snapshots/IIIIIIII.snapshot.lz4 when it
 *     has nothing in the database's generation yet;
 *   - segments generations/GEN/wal/IIIIIIII_OOOOOOOO.wal.lz4, one per newly
 *     committed range of a shadow WAL index, after finishing the
 *     generation it was shipping if that one is still on disk.
 *
 * Compression runs on the threadpool; the backend answers on the loop. The
 * position moves only once the backend has acknowledged the object, so a
 * crash at any moment re-ships at most one object, and at start-up the
 * replica finds its position by listing what it already holds (nothing is
 * uploaded twice or skipped). On an error nothing moves: the shadow WAL
 * keeps the bytes (the database removes only what every replica has
 * shipped) and the replica retries with a capped backoff.
 *
 * sync-interval 0 ships as soon as the database's position moves; a
 * positive interval ships everything new at that pace, in one segment.
 * snapshot-interval adds a snapshot at that pace; every
 * retention-check-interval, objects past `retention` are removed
 * (retention.h), between uploads. Every validation-interval the replica
 * is restored into a scratch file and compared (CRC-64) with the database
 * at the same position; a mismatch is logged loudly and counted.
 *
 * The replica hears of the database only through its subscription
 * (db_subscribe(): positions, and the floor question of which shadow files
 * it still needs) and reads it only through db.h's functions. Files:
 * replica.c the lifecycle, the scheduler (step) and errors; replica_ship.c
 * segments and snapshots; replica_locate.c the position at start-up;
 * replica_retention.c the retention runs; replica_validate.c validation.
 * Everything runs on the loop thread but the compression and checksum
 * jobs, which touch only their own struct.
 */
#ifndef LITESTREAM_REPLICA_H
#define LITESTREAM_REPLICA_H

#include "backend/backend.h"
#include "config/config.h"
#include "db/db.h"
#include "replica/retention.h"
#include "util/log_throttle.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct replica_stats {
	uint64_t put_count;
	uint64_t put_bytes;
	uint64_t get_count;
	uint64_t get_bytes;
	uint64_t list_count;
	uint64_t delete_count;
	uint64_t error_count;
	uint64_t segments;
	uint64_t wal_bytes;     /* uncompressed WAL bytes shipped in segments */
	uint64_t snapshots;
	int64_t last_sync_ms;   /* wall clock of the last acknowledged upload */
	int64_t behind_since_ms; /* wall clock since which it lags the database; 0 = caught up */
	uint64_t validations_ok;
	uint64_t validations_failed; /* mismatches and errors */
	char last_error[512];
	/* POST /v1/dbs/NAME/verify (cmd/replicate_verify.c): runs and their outcome. */
	bool verifying;
	uint64_t verifies_ok, verifies_failed;
	int64_t last_verify_ms;       /* wall clock at the end of the last one; 0: never */
	int64_t last_verify_ok_ms;    /* ... of the last one that passed; 0: never */
	char last_verify_problem[512]; /* the last failure's first problem; "" after a pass */
};

enum replica_state {
	REPLICA_WAITING,  /* for the database's first position */
	REPLICA_LOCATING, /* listing the backend to find its position */
	REPLICA_IDLE,
	REPLICA_BUSY,     /* doing a task (below) */
	REPLICA_CLOSED,
};

/* What a busy replica does: REPLICA_TASK_NONE unless the state is REPLICA_BUSY. */
enum replica_task {
	REPLICA_TASK_NONE,
	REPLICA_TASK_SEGMENT,       /* compressing or uploading a segment */
	REPLICA_TASK_SNAPSHOT_WAIT, /* a snapshot waits for a checkpoint to end (db_snapshot_acquire) */
	REPLICA_TASK_SNAPSHOT,      /* compressing or uploading a snapshot, taken at snapshot_from */
	REPLICA_TASK_BACKOFF,       /* after a failure, until the retry timer fires */
	REPLICA_TASK_RETENTION,     /* listing and removing objects past retention */
	REPLICA_TASK_VALIDATION,    /* fetching the replica and comparing */
};

struct replica;

/* An upload was acknowledged: the replica's position moved (replica_subscribe()). */
typedef void (*replica_progress_cb)(void *arg, struct replica *r);

struct replica_subscriber {
	replica_progress_cb cb; /* NULL once unsubscribed during a dispatch */
	void *arg;
};

struct replica_job;
struct validation;

struct replica {
	uv_loop_t *loop;
	struct db *db;                      /* borrowed */
	const struct replica_config *cfg;   /* borrowed */
	const char *name;
	struct backend *backend;            /* owned */
	enum replica_state state;
	enum replica_task task;
	bool located;          /* pos is known: the backend's listing was read */
	struct db_pos pos;     /* shipped up to here; generation "" = nothing yet */
	/* Asked for and not done yet: the next step() takes them in this order. */
	bool retention_wanted; /* the retention check is due */
	bool validation_wanted;
	bool snapshot_wanted;  /* replica_request_snapshot() */
	bool tick;             /* sync-interval > 0: the timer fired since the last segment */
	uint64_t tick_origin;  /* uv_now() at start: the ticks fall on multiples of sync-interval after */
	/* Only during the step() that db_snapshot_acquire()'s callback runs: the snapshot may begin. */
	bool snapshot_granted;
	struct db_pos snapshot_from;
	struct db_pos last_snapshot; /* the last one this process stored; generation "" = none */
	int failures;          /* consecutive */
	struct log_throttle failure_log; /* one ERROR line a minute while failing */
	int64_t last_ship_ms;  /* monotonic: when the last segment upload began */
	struct retention_plan *retention; /* keys being removed */
	struct validation *validation; /* in progress, or NULL */
	uv_timer_t sync_timer;
	uv_timer_t retry_timer;
	uv_timer_t retention_timer;
	uv_timer_t snapshot_timer;
	uv_timer_t validation_timer;
	int open_handles;
	void (*flush_cb)(struct replica *r, int rc);
	void (*retention_cb)(struct replica *r, int rc); /* replica_enforce_retention() */
	int retention_rc;
	void (*close_cb)(struct replica *r);
	struct replica_subscriber *subs; /* owned */
	size_t n_subs;
	int dispatching;
	struct replica_stats stats;
};

/*
 * Creates the backend and timers and subscribes to the database. 0 or
 * -errno with a message in err.
 */
int replica_init(struct replica *r, uv_loop_t *loop, struct db *db, const struct replica_config *cfg,
		 char *err, size_t errlen);

/* replica_init() with a backend made by the caller (the replica owns it, even on failure). */
int replica_init_backend(struct replica *r, uv_loop_t *loop, struct db *db,
			 const struct replica_config *cfg, struct backend *backend);

/* Starts shipping once the database has a position. */
void replica_start(struct replica *r);

/*
 * Calls cb(arg, r) on the loop after each upload the backend acknowledged
 * (the position moved), in the order of subscription. 0 or -ENOMEM.
 * Unsubscribing (cb, arg) is safe from within the callback; unknown ones
 * are fine.
 */
int replica_subscribe(struct replica *r, replica_progress_cb cb, void *arg);
void replica_unsubscribe(struct replica *r, replica_progress_cb cb, void *arg);

/*
 * The replica's position (what it has shipped), if it knows it; false
 * while it is still locating.
 */
bool replica_position(const struct replica *r, struct db_pos *out);

/* Ships a snapshot of the database's current state at the next step. */
void replica_request_snapshot(struct replica *r);

/* Seconds the replica has lagged the database (0 when caught up). */
double replica_lag_seconds(const struct replica *r);

/* Bytes of the database's current index not yet shipped (0 if another generation). */
uint64_t replica_pending_bytes(const struct replica *r);

/*
 * Ships everything up to the database's position now, then calls cb with
 * 0, or with an error when an upload failed (the bytes stay in the shadow
 * WAL and ship at the next start).
 */
void replica_flush(struct replica *r, void (*cb)(struct replica *r, int rc));

/*
 * One retention run now (retention.h), then cb with 0, or with -errno
 * when listing or removing failed (logged). For a replica with nothing in
 * flight (after replica_flush()); with retention 0 it only calls cb.
 */
void replica_enforce_retention(struct replica *r, void (*cb)(struct replica *r, int rc));

/* Asks for one retention run at the next step (-enforce-retention at start). */
void replica_request_retention(struct replica *r);

/*
 * Stops timers, ends the subscriptions and closes handles; cb when closed.
 * Nothing may be in flight but a snapshot waiting for a checkpoint (its
 * wait is dropped).
 */
void replica_close(struct replica *r, void (*cb)(struct replica *r));

void replica_free(struct replica *r);

#endif
