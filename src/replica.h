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
 */
#ifndef LITESTREAM_REPLICA_H
#define LITESTREAM_REPLICA_H

#include "backend.h"
#include "config.h"
#include "db.h"
#include "retention.h"

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
};

enum replica_state {
	REPLICA_WAITING,  /* for the database's first position */
	REPLICA_LOCATING, /* listing the backend to find its position */
	REPLICA_IDLE,
	REPLICA_BUSY,     /* one upload (or its compression) in flight */
	REPLICA_CLOSED,
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
	bool located;
	struct db_pos pos;     /* shipped up to here; generation "" = nothing yet */
	bool wanted;           /* the database moved while busy */
	bool snapshot_wanted;  /* replica_request_snapshot() */
	bool snapshot_shipping; /* a snapshot job is in flight, taken at snapshot_from */
	struct db_pos snapshot_from;
	struct db_pos last_snapshot; /* the last one this process stored; generation "" = none */
	bool snapshot_waiting; /* counted in db->snapshot_waiters */
	bool closing;
	int failures;          /* consecutive */
	int64_t last_ship_ms;  /* monotonic: when the last segment upload began */
	bool tick;             /* sync-interval > 0: the timer fired since the last segment */
	bool retention_wanted; /* the retention check is due */
	struct retention_plan *retention; /* keys being removed */
	bool validation_wanted;
	struct validation *validation; /* in progress, or NULL */
	uv_timer_t sync_timer;
	uv_timer_t retry_timer;
	uv_timer_t retention_timer;
	uv_timer_t snapshot_timer;
	uv_timer_t validation_timer;
	int open_handles;
	void (*flush_cb)(struct replica *r, int rc);
	void (*close_cb)(struct replica *r);
	struct replica_stats stats;
};

/* Creates the backend and timers. 0 or -errno with a message in err. */
int replica_init(struct replica *r, uv_loop_t *loop, struct db *db, const struct replica_config *cfg,
		 char *err, size_t errlen);

/* Starts shipping once the database has a position. */
void replica_start(struct replica *r);

/* The database's position moved. */
void replica_notify(struct replica *r);

/*
 * The replica's position (what it has shipped), if it knows it; false
 * while it is still locating.
 */
bool replica_position(const struct replica *r, struct db_pos *out);

/*
 * The oldest shadow WAL position the replica still needs: its position,
 * moved back to a snapshot's index while that snapshot is on its way (the
 * replica goes on from there once it is stored) and to a validation's.
 * False while the replica is still locating: the database then keeps
 * every shadow file.
 */
bool replica_shadow_floor(const struct replica *r, struct db_pos *out);

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

/* Stops timers and closes handles; cb when closed. Nothing may be in flight. */
void replica_close(struct replica *r, void (*cb)(struct replica *r));

void replica_free(struct replica *r);

#endif
