/*
 * What the files of the replica share (replica.c, replica_ship.c,
 * replica_locate.c, replica_retention.c, replica_validate.c); nothing
 * outside them includes this. All on the loop thread, except the work
 * functions of struct replica_job, which run on the threadpool and touch
 * only their job.
 */
#ifndef LITESTREAM_REPLICA_INTERNAL_H
#define LITESTREAM_REPLICA_INTERNAL_H

#include "replica/replica.h"

#include <limits.h>

enum replica_job_kind { JOB_SEGMENT, JOB_SNAPSHOT, JOB_MEASURE };

/* One threadpool job of a replica: compression, or measuring a download. */
struct replica_job {
	uv_work_t req;
	struct replica *r;
	enum replica_job_kind kind;
	char src[PATH_MAX];   /* shadow WAL, database, or downloaded segment */
	int src_fd;           /* snapshot: the database's own descriptor (never closed here) */
	char stage[PATH_MAX]; /* compressed file to upload */
	bool stage_is_object; /* stage is where the backend keeps the object: fsync it */
	char key[256];
	struct db_pos from;   /* segment: where it starts; snapshot: gen and index */
	uint64_t end;         /* segment: offset where it ends */
	bool raw;             /* measure: the object is not compressed */
	const struct age_keys *age; /* the backend's, read-only: encrypt to / decrypt with */
	char ends_path[PATH_MAX]; /* segment: where to record its end (segment_ends.h), or "" */
	uint64_t in_bytes;    /* uncompressed bytes */
	uint64_t out_bytes;   /* compressed bytes */
	int rc;
	char err[512];
};

/* ---- replica.c: the scheduler, errors and retries ---- */

/* Decides what to do next and starts it; only when the replica is idle. */
void replica_step(struct replica *r);

/* Sets the task; the state follows (busy, or idle/waiting for TASK_NONE) unless closed. */
void replica_set_task(struct replica *r, enum replica_task task);

/*
 * Records a failure: the position does not move, the bytes stay local, a
 * retry follows after a capped backoff (or a flush in progress ends with
 * the error).
 */
void replica_failed(struct replica *r, const char *what, int rc, const char *err);

/* An upload was acknowledged: clears the error state, tells the subscribers. */
void replica_succeeded(struct replica *r);
void replica_progressed(struct replica *r);

/* ---- replica_ship.c: segments and snapshots ---- */

struct replica_job *replica_job_new(struct replica *r, enum replica_job_kind kind);

/* Queues job; on failure frees it, records the failure and returns it. */
int replica_job_queue(struct replica *r, struct replica_job *job, uv_work_cb work,
		      uv_after_work_cb after);


/* Ships [pos.offset, end) of the shadow index at the replica's position. */
void replica_ship_segment(struct replica *r, uint64_t end);

/* Ships a snapshot of the database at its current position (waiting for a checkpoint first). */
void replica_ship_snapshot(struct replica *r);

/* Drops a snapshot's wait for a checkpoint (closing). */
void replica_snapshot_cancel(struct replica *r);

void replica_on_snapshot_timer(uv_timer_t *t);

/* ---- replica_locate.c ---- */

/* Lists the backend to find where the replica is in the database's generation. */
void replica_locate(struct replica *r);

/* ---- replica_retention.c ---- */

void replica_retention_start(struct replica *r);
void replica_on_retention_timer(uv_timer_t *t);

/* ---- replica_validate.c ---- */

/* Starts a validation if none runs and the replica is in the database's generation. */
void replica_validation_start(struct replica *r);

/* The replica reached the position the validation waits for. */
bool replica_validation_ready(const struct replica *r);

/* Fetches the replica and compares (the replica is busy until it ends). */
void replica_validation_continue(struct replica *r);

/* Lowers *floor to the shadow index a validation still reads, if any. */
void replica_validation_floor(const struct replica *r, struct db_pos *floor);

void replica_validation_free(struct replica *r);
void replica_on_validation_timer(uv_timer_t *t);

#endif
