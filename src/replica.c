/*
 * Replica logic common to every backend; see replica.h.
 */
#include "replica.h"

#include "fsutil.h"
#include "log.h"
#include "lz4io.h"
#include "names.h"
#include "catalog.h"
#include "crc64.h"
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETRY_BASE_MS 500
#define RETRY_MAX_MS 10000
#define SNAPSHOT_WAIT_MS 20
/*
 * Group shipping. One segment is in preparation or in flight at a time,
 * and the commits that arrive meanwhile travel together in the next one.
 * With sync-interval 0 a segment starts as soon as the database moves,
 * but not sooner than this after the previous one started: a lone commit
 * still ships at once, while a writer committing thousands of times a
 * second costs at most 1000/SHIP_MIN_GAP_MS objects (a file created,
 * fsynced and renamed each, for a file replica) a second instead of one
 * per commit, which is what kept the writer's slowdown and the sidecar's
 * CPU down in bench/replicate.py (1,968 segments for 5,000 commits
 * without it).
 */
#define SHIP_MIN_GAP_MS 10

enum job_kind { JOB_SEGMENT, JOB_SNAPSHOT, JOB_MEASURE };

struct replica_job {
	uv_work_t req;
	struct replica *r;
	enum job_kind kind;
	char src[PATH_MAX];   /* shadow WAL, database, or downloaded segment */
	int src_fd;           /* snapshot: the database's own descriptor (never closed here) */
	char stage[PATH_MAX]; /* compressed file to upload */
	bool stage_is_object; /* stage is where the backend keeps the object: fsync it */
	char key[256];
	struct db_pos from;   /* segment: where it starts; snapshot: gen and index */
	uint64_t end;         /* segment: offset where it ends */
	bool raw;             /* measure: the object is not compressed */
	uint64_t in_bytes;    /* uncompressed bytes */
	uint64_t out_bytes;   /* compressed bytes */
	int rc;
	char err[512];
};

static void step(struct replica *r);

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_sync_timer(uv_timer_t *t);

static const char *db_name(const struct replica *r)
{
	return r->db->path;
}

/* ---- errors and retries ------------------------------------------------ */

static void on_retry(uv_timer_t *t)
{
	struct replica *r = t->data;

	if (r->state == REPLICA_BUSY) {
		r->state = r->located ? REPLICA_IDLE : REPLICA_WAITING;
		if (r->located)
			step(r);
		else
			replica_notify(r);
	}
}

/* Records a failure; the position does not move and the bytes stay local. */
static void failed(struct replica *r, const char *what, int rc, const char *err)
{
	uint64_t delay;

	r->stats.error_count++;
	snprintf(r->stats.last_error, sizeof(r->stats.last_error), "%s: %s", what,
		 err ? err : strerror(-rc));
	LOG_ERROR(db_name(r), r->name, "%s", r->stats.last_error);
	if (r->flush_cb != NULL) {
		void (*cb)(struct replica *, int) = r->flush_cb;
		r->flush_cb = NULL;
		r->state = r->located ? REPLICA_IDLE : REPLICA_WAITING;
		cb(r, rc ? rc : -EIO);
		return;
	}
	r->failures++;
	delay = (uint64_t)RETRY_BASE_MS << (r->failures < 6 ? r->failures - 1 : 5);
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	r->state = REPLICA_BUSY; /* backing off: notifications wait for the timer */
	uv_timer_start(&r->retry_timer, on_retry, delay, 0);
}

static void succeeded(struct replica *r)
{
	if (r->failures > 0)
		LOG_INFO(db_name(r), r->name, "replica healthy again");
	r->failures = 0;
	r->stats.last_error[0] = '\0';
	r->stats.last_sync_ms = wall_ms();
}

/* The position moved: tell the database's observer, if any. */
static void progressed(struct replica *r)
{
	if (r->db->progress_cb != NULL)
		r->db->progress_cb(r->db, r, r->db->progress_arg);
}

/* ---- threadpool jobs ----------------------------------------------------- */

static int parent_mkdir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
		return -EINVAL;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return fs_mkdir_p(dir, 0755);
}

/* Compresses [from.offset, end) of the shadow file, or the whole database. */
static void compress_job(struct replica_job *job)
{
	struct stat st;
	int in, out, rc;

	/* The database is read through its long-lived descriptor; see db.h. */
	in = job->kind == JOB_SNAPSHOT ? job->src_fd : open(job->src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		job->rc = -errno;
		snprintf(job->err, sizeof(job->err), "open %s: %s", job->src, strerror(errno));
		return;
	}
	if (fstat(in, &st) != 0) {
		job->rc = -errno;
		snprintf(job->err, sizeof(job->err), "stat %s: %s", job->src, strerror(errno));
		goto done;
	}
	uint64_t off = job->kind == JOB_SEGMENT ? job->from.offset : 0;
	uint64_t len = job->kind == JOB_SEGMENT ? job->end - job->from.offset : (uint64_t)st.st_size;
	out = open(job->stage, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 && errno == ENOENT) {
		/* First object in this directory. */
		if ((rc = parent_mkdir(job->stage)) != 0) {
			job->rc = rc;
			snprintf(job->err, sizeof(job->err), "mkdir for %s: %s", job->stage, strerror(-rc));
			goto done;
		}
		out = open(job->stage, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	}
	if (out < 0) {
		job->rc = -errno;
		snprintf(job->err, sizeof(job->err), "create %s: %s", job->stage, strerror(errno));
		goto done;
	}
	rc = lz4io_compress(in, off, len, out, &job->out_bytes);
	/* A temporary copy for an upload need not survive a crash: the shadow
	 * WAL it came from does, and the upload is made again from it. */
	if (rc == 0 && job->stage_is_object && fsync(out) != 0)
		rc = -errno;
	if (close(out) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0) {
		job->rc = rc;
		snprintf(job->err, sizeof(job->err), "compress %s into %s: %s", job->src, job->stage,
			 strerror(-rc));
		unlink(job->stage);
		goto done;
	}
	job->in_bytes = len;
done:
	if (job->kind != JOB_SNAPSHOT)
		close(in);
}

/* Decompresses a downloaded segment only to learn its size. */
static void measure_job(struct replica_job *job)
{
	int in = open(job->src, O_RDONLY | O_CLOEXEC), out;
	char why[256] = "";
	struct stat st;

	if (in < 0) {
		job->rc = -errno;
		snprintf(job->err, sizeof(job->err), "open %s: %s", job->src, strerror(errno));
		return;
	}
	if (job->raw) {
		job->rc = fstat(in, &st) == 0 ? 0 : -errno;
		job->in_bytes = (uint64_t)st.st_size;
		close(in);
		return;
	}
	out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	job->rc = out < 0 ? -errno : lz4io_decompress(in, out, &job->in_bytes, why, sizeof(why));
	if (job->rc != 0)
		snprintf(job->err, sizeof(job->err), "%s: %s", job->key, why[0] ? why : strerror(-job->rc));
	if (out >= 0)
		close(out);
	close(in);
}

static void on_job_work(uv_work_t *req)
{
	struct replica_job *job = req->data;

	if (job->kind == JOB_MEASURE)
		measure_job(job);
	else
		compress_job(job);
}

static struct replica_job *job_new(struct replica *r, enum job_kind kind)
{
	struct replica_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->req.data = job;
	job->r = r;
	job->kind = kind;
	return job;
}

/*
 * Where to write the compressed file for key before put(): true when that
 * is the backend's own place for it (put() then only renames it), false
 * for a temporary file under the shadow directory.
 */
static bool stage_for(struct replica *r, const char *key, char *buf, size_t n)
{
	char *p = r->backend->ops->stage_path ? r->backend->ops->stage_path(r->backend, key) : NULL;

	if (p != NULL) {
		snprintf(buf, n, "%s", p);
		free(p);
		return true;
	}
	static unsigned counter;
	snprintf(buf, n, "%s/tmp/%s-%u-%ld.lz4", r->db->shadow.meta_dir, r->name, counter++,
		 (long)getpid());
	return false;
}

static int queue(struct replica *r, struct replica_job *job, uv_after_work_cb after)
{
	int rc = uv_queue_work(r->loop, &job->req, on_job_work, after);

	if (rc != 0) {
		free(job);
		failed(r, "queue job", rc, uv_strerror(rc));
	}
	return rc;
}

/* ---- segments ------------------------------------------------------------ */

/*
 * The backend answered an upload (segment or snapshot). Only an
 * acknowledged object moves the position; the staged copy goes either way
 * (the file backend renamed it already; S3 uploaded it).
 */
static void on_put(void *arg, int rc, const char *err)
{
	struct replica_job *job = arg;
	struct replica *r = job->r;

	unlink(job->stage);
	if (job->kind == JOB_SNAPSHOT)
		r->snapshot_shipping = false;
	if (rc != 0) {
		failed(r, job->key, rc, err);
		free(job);
		return;
	}
	r->stats.put_count++;
	r->stats.put_bytes += job->out_bytes;
	if (job->kind == JOB_SEGMENT) {
		r->pos = job->from;
		r->pos.offset = job->end;
		r->stats.segments++;
		r->stats.wal_bytes += job->in_bytes;
		LOG_DEBUG(db_name(r), r->name, "wrote %s (%llu bytes of wal)", job->key,
			  (unsigned long long)job->in_bytes);
	} else {
		if (strcmp(r->pos.generation, job->from.generation) != 0) {
			r->pos = job->from;
			r->pos.offset = 0;
		}
		r->stats.snapshots++;
		r->snapshot_wanted = false;
		r->last_snapshot = job->from;
		LOG_INFO(db_name(r), r->name, "snapshot written: %s (%llu bytes)", job->key,
			 (unsigned long long)job->in_bytes);
	}
	succeeded(r);
	r->state = REPLICA_IDLE;
	progressed(r);
	step(r);
	free(job);
}

static void on_segment_compressed(uv_work_t *req, int status)
{
	struct replica_job *job = req->data;
	struct replica *r = job->r;

	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (job->rc != 0) {
		failed(r, job->key, job->rc, job->err);
		free(job);
		return;
	}
	r->backend->ops->put(r->backend, job->key, job->stage, on_put, job);
}

static void ship_segment(struct replica *r, uint64_t end)
{
	r->last_ship_ms = mono_ms();
	r->tick = false;
	struct replica_job *job = job_new(r, JOB_SEGMENT);
	char name[NAME_MAX_LEN], *src;

	if (job == NULL) {
		failed(r, "segment", -ENOMEM, NULL);
		return;
	}
	job->from = r->pos;
	job->end = end;
	src = shadow_file_path(&r->db->shadow, r->pos.generation, r->pos.index);
	snprintf(job->src, sizeof(job->src), "%s", src ? src : "");
	free(src);
	segment_name(name, sizeof(name), r->pos.index, r->pos.offset);
	snprintf(job->key, sizeof(job->key), "generations/%s/wal/%s", r->pos.generation, name);
	job->stage_is_object = stage_for(r, job->key, job->stage, sizeof(job->stage));
	r->state = REPLICA_BUSY;
	queue(r, job, on_segment_compressed);
}

/* ---- snapshots ----------------------------------------------------------- */

static void on_snapshot_compressed(uv_work_t *req, int status)
{
	struct replica_job *job = req->data;
	struct replica *r = job->r;

	db_snapshot_end(r->db);
	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (job->rc != 0) {
		r->snapshot_shipping = false;
		failed(r, job->key, job->rc, job->err);
		free(job);
		return;
	}
	r->backend->ops->put(r->backend, job->key, job->stage, on_put, job);
}

static void on_snapshot_wait(uv_timer_t *t)
{
	struct replica *r = t->data;

	/* ship_snapshot() waits again if it still has to; step() may not go there. */
	if (r->snapshot_waiting) {
		r->snapshot_waiting = false;
		db_snapshot_unwait(r->db);
	}
	if (r->state == REPLICA_BUSY) {
		r->state = REPLICA_IDLE;
		step(r);
	}
}

static void ship_snapshot(struct replica *r)
{
	struct replica_job *job;
	char name[NAME_MAX_LEN];

	/* A checkpoint must not rewrite the file while it is read. */
	if (!db_snapshot_allowed(r->db)) {
		if (!r->snapshot_waiting) {
			r->snapshot_waiting = true;
			db_snapshot_wait(r->db);
		}
		r->state = REPLICA_BUSY;
		uv_timer_start(&r->retry_timer, on_snapshot_wait, SNAPSHOT_WAIT_MS, 0);
		return;
	}
	if (r->snapshot_waiting) {
		r->snapshot_waiting = false;
		db_snapshot_unwait(r->db);
	}
	job = job_new(r, JOB_SNAPSHOT);
	if (job == NULL) {
		failed(r, "snapshot", -ENOMEM, NULL);
		return;
	}
	job->from = r->db->pos;
	job->src_fd = r->db->conn.file_fd;
	snprintf(job->src, sizeof(job->src), "%s", r->db->path);
	snapshot_name(name, sizeof(name), job->from.index);
	snprintf(job->key, sizeof(job->key), "generations/%s/snapshots/%s", job->from.generation, name);
	job->stage_is_object = stage_for(r, job->key, job->stage, sizeof(job->stage));
	r->state = REPLICA_BUSY;
	r->snapshot_shipping = true;
	r->snapshot_from = job->from;
	db_snapshot_begin(r->db);
	if (queue(r, job, on_snapshot_compressed) != 0) {
		r->snapshot_shipping = false;
		db_snapshot_end(r->db);
	}
}

/* ---- deciding what to ship next ---------------------------------------- */

/* Size of a local shadow file, or -1 if it is gone. */
static int64_t shadow_size(struct replica *r, const char *gen, uint32_t index)
{
	char *p = shadow_file_path(&r->db->shadow, gen, index);
	int64_t n = p ? fs_file_size(p) : -1;

	free(p);
	return n < 0 ? -1 : n;
}

static void caught_up(struct replica *r)
{
	r->stats.behind_since_ms = 0;
	if (r->flush_cb != NULL) {
		void (*cb)(struct replica *, int) = r->flush_cb;
		r->flush_cb = NULL;
		cb(r, 0);
	}
}

/* The replica holds more than the local shadow WAL: start over. */
static void ahead(struct replica *r, const char *where)
{
	LOG_ERROR(db_name(r), r->name,
		  "replica is ahead of the local shadow wal at %s/%08x:%llu (%s); starting a new generation",
		  r->pos.generation, r->pos.index, (unsigned long long)r->pos.offset, where);
	r->pos.generation[0] = '\0';
	db_request_new_generation(r->db, "replica ahead of the local shadow wal");
}

static void start_retention(struct replica *r);
static bool start_validation(struct replica *r);
static bool validation_ready(const struct replica *r);
static void continue_validation(struct replica *r);

static void step(struct replica *r)
{
	const struct db_pos *d = &r->db->pos;

	if (r->state != REPLICA_IDLE || r->closing || !r->db->pos_valid)
		return;
	if (r->retention_wanted && r->flush_cb == NULL) {
		start_retention(r);
		return;
	}
	if (r->validation_wanted && r->flush_cb == NULL && start_validation(r))
		return;
	if (validation_ready(r)) {
		continue_validation(r);
		return;
	}
	r->wanted = false;
	/*
	 * An asked-for snapshot of the current generation. It need not wait
	 * until the replica has caught up (under steady writes with a
	 * sync-interval it never quite has): the segments of its index and
	 * after still follow from the replica's position.
	 */
	if (r->snapshot_wanted && strcmp(r->pos.generation, d->generation) == 0) {
		ship_snapshot(r);
		return;
	}
	for (;;) {
		bool same_gen = strcmp(r->pos.generation, d->generation) == 0;
		int64_t end;

		if (r->pos.generation[0] == '\0') {
			ship_snapshot(r);
			return;
		}
		if (same_gen && r->pos.index >= d->index) {
			if (r->pos.index > d->index || r->pos.offset > d->offset) {
				ahead(r, "current index");
				return;
			}
			if (r->pos.offset >= d->offset) {
				caught_up(r);
				return;
			}
			/* A positive sync-interval ships the current index only on its tick. */
			if (r->cfg->sync_interval_ms > 0 && r->flush_cb == NULL && !r->tick)
				return;
			if (r->cfg->sync_interval_ms == 0 && r->flush_cb == NULL) {
				int64_t since = mono_ms() - r->last_ship_ms;
				if (since < SHIP_MIN_GAP_MS) {
					if (!uv_is_active((uv_handle_t *)&r->sync_timer))
						uv_timer_start(&r->sync_timer, on_sync_timer,
							       (uint64_t)(SHIP_MIN_GAP_MS - since), 0);
					return;
				}
			}
			ship_segment(r, d->offset);
			return;
		}
		/* An earlier, sealed index of this generation, or another generation. */
		end = shadow_size(r, r->pos.generation, r->pos.index);
		if (end < 0) {
			LOG_WARN(db_name(r), r->name, "shadow wal %s/%08x is gone; taking a snapshot",
				 r->pos.generation, r->pos.index);
			r->pos.generation[0] = '\0';
			continue;
		}
		if ((uint64_t)end > r->pos.offset) {
			ship_segment(r, (uint64_t)end);
			return;
		}
		if ((uint64_t)end < r->pos.offset) {
			if (same_gen) {
				ahead(r, "sealed index");
				return;
			}
			r->pos.generation[0] = '\0';
			continue;
		}
		if (same_gen || shadow_size(r, r->pos.generation, r->pos.index + 1) >= 0) {
			r->pos.index++;
			r->pos.offset = 0;
			continue;
		}
		/* The old generation is fully shipped: move to the current one. */
		r->pos.generation[0] = '\0';
	}
}

/* ---- retention -------------------------------------------------------------- */

static void retention_done(struct replica *r)
{
	if (r->retention != NULL) {
		retention_plan_free(r->retention);
		free(r->retention);
		r->retention = NULL;
	}
	r->state = REPLICA_IDLE;
	step(r);
}

static void on_retention_removed(void *arg, int rc, const char *err)
{
	struct replica *r = arg;

	if (rc != 0) {
		r->stats.error_count++;
		snprintf(r->stats.last_error, sizeof(r->stats.last_error), "retention: %s",
			 err ? err : strerror(-rc));
		LOG_ERROR(db_name(r), r->name, "%s", r->stats.last_error);
	} else {
		r->stats.delete_count += r->retention->n_keys;
		LOG_INFO(db_name(r), r->name, "retention: removed %zu objects (%zu whole generations)",
			 r->retention->n_keys, r->retention->n_generations);
	}
	retention_done(r);
}

static void on_retention_catalog(void *arg, int rc, const char *err, struct catalog *c)
{
	struct replica *r = arg;
	struct retention_plan *p;

	r->stats.list_count++;
	if (rc != 0) {
		r->stats.error_count++;
		snprintf(r->stats.last_error, sizeof(r->stats.last_error), "retention: %s", err);
		LOG_ERROR(db_name(r), r->name, "%s", r->stats.last_error);
		retention_done(r);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL || retention_plan(c, r->db->pos.generation, wall_ms(), r->cfg->retention_ms, p) != 0) {
		free(p);
		LOG_ERROR(db_name(r), r->name, "retention: out of memory");
		retention_done(r);
		return;
	}
	r->retention = p;
	if (p->need_snapshot)
		r->snapshot_wanted = true;
	if (p->n_keys == 0) {
		retention_done(r);
		return;
	}
	r->backend->ops->remove(r->backend, p->keys, p->n_keys, on_retention_removed, r);
}

static void start_retention(struct replica *r)
{
	r->retention_wanted = false;
	r->state = REPLICA_BUSY;
	catalog_load_async(r->backend, NULL, on_retention_catalog, r);
}

static void on_retention_timer(uv_timer_t *t)
{
	struct replica *r = t->data;

	r->retention_wanted = true;
	if (r->state == REPLICA_IDLE)
		step(r);
}

static void on_snapshot_timer(uv_timer_t *t)
{
	struct replica *r = t->data;
	const struct db_pos *d = &r->db->pos;

	/* A second snapshot of the same index restores to nothing the first
	 * one does not (an idle database above all): it would only cost a
	 * whole upload, and move that snapshot's time past points in time it
	 * serves. */
	if (r->db->pos_valid && strcmp(r->last_snapshot.generation, d->generation) == 0 &&
	    r->last_snapshot.index == d->index) {
		LOG_DEBUG(db_name(r), r->name, "snapshot-interval: index %08x already has a snapshot",
			  d->index);
		return;
	}
	replica_request_snapshot(r);
}

/* ---- validation -------------------------------------------------------------- */

/*
 * Validation compares two images of the database at one position P:
 * the primary's (a copy of the database file taken by a db job, plus the
 * current shadow index's frames up to P) and the replica's (a restore of
 * the replica up to P). Shipping goes on while the replica catches up
 * with P; only the download and the comparison hold it.
 */
enum validation_phase { V_IMAGE, V_WAIT, V_FETCH, V_BUILD };

struct validation {
	uv_work_t work;
	struct replica *r;
	enum validation_phase phase;
	struct db_pos at;              /* P */
	char dir[PATH_MAX];            /* scratch directory */
	char primary[PATH_MAX + 16];
	char restored[PATH_MAX + 16];
	char shadow[PATH_MAX];         /* shadow index P.index */
	struct restore_object *objs;
	size_t n_objs, next;
	uint64_t crc_primary, crc_replica;
	int rc;
	char err[512];
};

static void validation_free(struct validation *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n_objs; i++)
		free((char *)v->objs[i].local);
	free(v->objs);
	if (v->dir[0] != '\0')
		fs_remove_tree(v->dir);
	free(v);
}

static void validation_end(struct replica *r)
{
	struct validation *v = r->validation;

	r->validation = NULL;
	validation_free(v);
	if (r->state == REPLICA_BUSY)
		r->state = REPLICA_IDLE;
	step(r);
}

static void validation_failed(struct replica *r, const char *what, int rc, const char *err)
{
	r->stats.validations_failed++;
	r->stats.error_count++;
	snprintf(r->stats.last_error, sizeof(r->stats.last_error), "validation: %s: %s", what,
		 err ? err : strerror(-rc));
	LOG_ERROR(db_name(r), r->name, "%s", r->stats.last_error);
	validation_end(r);
}

static bool validation_ready(const struct replica *r)
{
	const struct validation *v = r->validation;

	return v != NULL && v->phase == V_WAIT && strcmp(r->pos.generation, v->at.generation) == 0 &&
	       db_pos_cmp(&r->pos, &v->at) >= 0;
}

static void on_validated(uv_work_t *req, int status)
{
	struct validation *v = req->data;
	struct replica *r = v->r;
	char at[64];

	snprintf(at, sizeof(at), "%s/%08x:%llu", v->at.generation, v->at.index,
		 (unsigned long long)v->at.offset);
	if (status == UV_ECANCELED)
		v->rc = -ECANCELED;
	if (v->rc != 0) {
		validation_failed(r, at, v->rc, v->err);
		return;
	}
	if (v->crc_primary != v->crc_replica) {
		r->stats.validations_failed++;
		snprintf(r->stats.last_error, sizeof(r->stats.last_error),
			 "validation failed at %s: replica crc64 %016llx != primary crc64 %016llx", at,
			 (unsigned long long)v->crc_replica, (unsigned long long)v->crc_primary);
		LOG_ERROR(db_name(r), r->name, "VALIDATION FAILED: %s", r->stats.last_error);
	} else {
		r->stats.validations_ok++;
		LOG_INFO(db_name(r), r->name, "validation ok at %s (crc64 %016llx)", at,
			 (unsigned long long)v->crc_primary);
	}
	validation_end(r);
}

/* Threadpool: build both images and checksum them. */
static void validate_work(uv_work_t *req)
{
	struct validation *v = req->data;
	struct restore_segment seg = {v->shadow, "shadow wal", v->at.index, 0, v->at.offset};

	v->rc = restore_build_local(v->objs, v->n_objs, v->restored, v->dir, v->err, sizeof(v->err));
	if (v->rc == 0)
		v->rc = restore_apply(v->primary, &seg, 1, false, v->err, sizeof(v->err));
	if (v->rc == 0 && (v->rc = crc64_file(v->restored, &v->crc_replica)) != 0)
		snprintf(v->err, sizeof(v->err), "checksum %s: %s", v->restored, strerror(-v->rc));
	if (v->rc == 0 && (v->rc = crc64_file(v->primary, &v->crc_primary)) != 0)
		snprintf(v->err, sizeof(v->err), "checksum %s: %s", v->primary, strerror(-v->rc));
}

static void fetch_next(struct validation *v);

static void on_fetched(void *arg, int rc, const char *err)
{
	struct validation *v = arg;

	v->r->stats.get_count++;
	if (rc != 0) {
		validation_failed(v->r, v->objs[v->next].key, rc, err);
		return;
	}
	v->next++;
	fetch_next(v);
}

static void fetch_next(struct validation *v)
{
	struct replica *r = v->r;
	struct restore_object *o;
	int rc;

	if (v->next == v->n_objs) {
		v->phase = V_BUILD;
		v->work.data = v;
		rc = uv_queue_work(r->loop, &v->work, validate_work, on_validated);
		if (rc != 0)
			validation_failed(r, "queue", rc, uv_strerror(rc));
		return;
	}
	o = &v->objs[v->next];
	if (r->backend->ops->local_path != NULL &&
	    (o->local = r->backend->ops->local_path(r->backend, o->key)) != NULL) {
		v->next++;
		fetch_next(v);
		return;
	}
	o->local = str_printf("%s/%zu.fetch", v->dir, v->next);
	if (o->local == NULL) {
		validation_failed(r, "fetch", -ENOMEM, NULL);
		return;
	}
	r->backend->ops->get(r->backend, o->key, o->local, on_fetched, v);
}

/* Picks the snapshot and segments that make up the replica at P. */
static void on_validation_catalog(void *arg, int rc, const char *err, struct catalog *c)
{
	struct validation *v = arg;
	struct replica *r = v->r;
	const struct catalog_generation *g = c ? catalog_find(c, v->at.generation) : NULL;
	const struct catalog_snapshot *snap = NULL;

	r->stats.list_count++;
	if (rc != 0) {
		validation_failed(r, "list", rc, err);
		return;
	}
	for (size_t i = 0; g != NULL && i < g->n_snapshots; i++)
		if (g->snapshots[i].index <= v->at.index)
			snap = &g->snapshots[i];
	if (snap == NULL) {
		validation_failed(r, "replica", -ENOENT, "no snapshot at or before the position");
		return;
	}
	v->objs = calloc(1 + g->n_segments, sizeof(*v->objs));
	if (v->objs == NULL) {
		validation_failed(r, "list", -ENOMEM, NULL);
		return;
	}
	v->objs[0].snapshot = true;
	v->objs[0].index = snap->index;
	catalog_snapshot_key(v->objs[0].key, sizeof(v->objs[0].key), g->name, snap->index);
	v->n_objs = 1;
	for (size_t i = 0; i < g->n_segments; i++) {
		const struct catalog_segment *s = &g->segments[i];
		if (s->index < snap->index || s->index > v->at.index ||
		    (s->index == v->at.index && s->offset >= v->at.offset))
			continue;
		struct restore_object *o = &v->objs[v->n_objs++];
		catalog_segment_key(o->key, sizeof(o->key), g->name, s);
		o->index = s->index;
		o->offset = s->offset;
		o->raw = s->form == SEGMENT_WHOLE_RAW;
		/* A segment may run past P: use only the bytes before it. */
		if (s->index == v->at.index)
			o->limit = v->at.offset - s->offset;
	}
	v->phase = V_FETCH;
	fetch_next(v);
}

static void continue_validation(struct replica *r)
{
	struct validation *v = r->validation;

	r->state = REPLICA_BUSY;
	v->phase = V_FETCH;
	catalog_load_async(r->backend, v->at.generation, on_validation_catalog, v);
}

static void on_image(void *arg, int rc, const struct db_pos *pos)
{
	struct replica *r = arg;
	struct validation *v = r->validation;
	char *shadow;

	if (v == NULL)
		return;
	if (rc != 0) {
		validation_failed(r, "copy the database", rc, NULL);
		return;
	}
	v->at = *pos;
	shadow = shadow_file_path(&r->db->shadow, pos->generation, pos->index);
	snprintf(v->shadow, sizeof(v->shadow), "%s", shadow ? shadow : "");
	free(shadow);
	v->phase = V_WAIT;
	if (r->state == REPLICA_IDLE)
		step(r);
}

/* Starts a validation if the replica is in the database's generation. */
static bool start_validation(struct replica *r)
{
	struct validation *v;
	int rc;

	r->validation_wanted = false;
	if (r->validation != NULL || strcmp(r->pos.generation, r->db->pos.generation) != 0)
		return false;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return false;
	v->r = r;
	snprintf(v->dir, sizeof(v->dir), "%s/tmp/validate-%s", r->db->shadow.meta_dir, r->name);
	snprintf(v->primary, sizeof(v->primary), "%s/primary.db", v->dir);
	snprintf(v->restored, sizeof(v->restored), "%s/replica.db", v->dir);
	fs_remove_tree(v->dir);
	if ((rc = fs_mkdir_p(v->dir, 0700)) != 0) {
		v->dir[0] = '\0';
		free(v);
		LOG_ERROR(db_name(r), r->name, "validation: mkdir: %s", strerror(-rc));
		return false;
	}
	r->validation = v;
	v->phase = V_IMAGE;
	if ((rc = db_request_image(r->db, v->primary, on_image, r)) != 0) {
		r->validation = NULL;
		validation_free(v);
		return false;
	}
	return false; /* shipping goes on meanwhile */
}

static void on_validation_timer(uv_timer_t *t)
{
	struct replica *r = t->data;

	r->validation_wanted = true;
	if (r->state == REPLICA_IDLE)
		step(r);
}

/* ---- finding the position at start-up ------------------------------------ */

static void located(struct replica *r)
{
	r->located = true;
	r->state = REPLICA_IDLE;
	if (r->pos.generation[0] != '\0')
		LOG_INFO(db_name(r), r->name, "resuming at %s/%08x:%llu", r->pos.generation, r->pos.index,
			 (unsigned long long)r->pos.offset);
	step(r);
}

static void on_measured(uv_work_t *req, int status)
{
	struct replica_job *job = req->data;
	struct replica *r = job->r;

	unlink(job->src);
	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (job->rc != 0) {
		failed(r, "read last segment", job->rc, job->err);
		free(job);
		return;
	}
	r->pos = job->from;
	r->pos.offset = job->from.offset + job->in_bytes;
	free(job);
	located(r);
}

static void on_last_segment(void *arg, int rc, const char *err)
{
	struct replica_job *job = arg;
	struct replica *r = job->r;

	r->stats.get_count++;
	if (rc != 0) {
		unlink(job->src);
		failed(r, job->key, rc, err);
		free(job);
		return;
	}
	queue(r, job, on_measured);
}

static void on_snapshots_listed(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct replica *r = arg;
	bool found = false;
	uint32_t best = 0, idx;

	r->stats.list_count++;
	if (rc != 0) {
		failed(r, "list snapshots", rc, err);
		return;
	}
	for (size_t i = 0; i < list->n; i++) {
		if (snapshot_name_parse(list->v[i].name, &idx) == 0 && (!found || idx > best)) {
			best = idx;
			found = true;
		}
	}
	if (found) {
		snprintf(r->pos.generation, sizeof(r->pos.generation), "%s", r->db->pos.generation);
		r->pos.index = best;
		r->pos.offset = 0;
	}
	located(r);
}

static void on_wal_listed(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct replica *r = arg;
	const struct backend_entry *last = NULL;
	uint32_t best_idx = 0, idx;
	uint64_t best_off = 0, off;
	enum segment_form form, best_form = SEGMENT_OFFSET;
	char dir[128];

	r->stats.list_count++;
	if (rc != 0) {
		failed(r, "list wal segments", rc, err);
		return;
	}
	for (size_t i = 0; i < list->n; i++) {
		if (segment_name_parse(list->v[i].name, &idx, &off, &form) != 0)
			continue;
		if (last == NULL || idx > best_idx || (idx == best_idx && off > best_off)) {
			last = &list->v[i];
			best_idx = idx;
			best_off = off;
			best_form = form;
		}
	}
	if (last == NULL) {
		snprintf(dir, sizeof(dir), "generations/%s/snapshots", r->db->pos.generation);
		r->backend->ops->list(r->backend, dir, on_snapshots_listed, r);
		return;
	}
	struct replica_job *job = job_new(r, JOB_MEASURE);
	if (job == NULL) {
		failed(r, "locate", -ENOMEM, NULL);
		return;
	}
	snprintf(job->from.generation, sizeof(job->from.generation), "%s", r->db->pos.generation);
	job->from.index = best_idx;
	job->from.offset = best_off;
	job->raw = best_form == SEGMENT_WHOLE_RAW;
	snprintf(job->key, sizeof(job->key), "generations/%s/wal/%s", job->from.generation, last->name);
	snprintf(job->src, sizeof(job->src), "%s/tmp/%s-locate.tmp", r->db->shadow.meta_dir, r->name);
	if (parent_mkdir(job->src) != 0) {
		failed(r, "locate: mkdir", -errno, NULL);
		free(job);
		return;
	}
	r->backend->ops->get(r->backend, job->key, job->src, on_last_segment, job);
}

static void locate(struct replica *r)
{
	char dir[128];

	r->state = REPLICA_LOCATING;
	snprintf(dir, sizeof(dir), "generations/%s/wal", r->db->pos.generation);
	r->backend->ops->list(r->backend, dir, on_wal_listed, r);
}

/* ---- public ---------------------------------------------------------------- */

static void on_sync_timer(uv_timer_t *t)
{
	struct replica *r = t->data;

	if (r->cfg->sync_interval_ms > 0)
		r->tick = true; /* kept until a segment goes, even if busy now */
	if (r->state == REPLICA_IDLE)
		step(r);
}

int replica_init(struct replica *r, uv_loop_t *loop, struct db *db, const struct replica_config *cfg,
		 char *err, size_t errlen)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->db = db;
	r->cfg = cfg;
	r->name = cfg->name;
	r->state = REPLICA_WAITING;
	if ((rc = backend_new(loop, cfg, &r->backend, err, errlen)) != 0)
		return rc;
	uv_timer_init(loop, &r->sync_timer);
	uv_timer_init(loop, &r->retry_timer);
	uv_timer_init(loop, &r->retention_timer);
	uv_timer_init(loop, &r->snapshot_timer);
	uv_timer_init(loop, &r->validation_timer);
	r->sync_timer.data = r->retry_timer.data = r;
	r->retention_timer.data = r->snapshot_timer.data = r->validation_timer.data = r;
	r->open_handles = 5;
	return 0;
}

void replica_start(struct replica *r)
{
	const struct replica_config *c = r->cfg;

	if (c->sync_interval_ms > 0)
		uv_timer_start(&r->sync_timer, on_sync_timer, (uint64_t)c->sync_interval_ms,
			       (uint64_t)c->sync_interval_ms);
	if (c->retention_ms > 0 && c->retention_check_interval_ms > 0)
		uv_timer_start(&r->retention_timer, on_retention_timer,
			       (uint64_t)c->retention_check_interval_ms,
			       (uint64_t)c->retention_check_interval_ms);
	if (c->snapshot_interval_ms > 0)
		uv_timer_start(&r->snapshot_timer, on_snapshot_timer, (uint64_t)c->snapshot_interval_ms,
			       (uint64_t)c->snapshot_interval_ms);
	if (c->validation_interval_ms > 0)
		uv_timer_start(&r->validation_timer, on_validation_timer,
			       (uint64_t)c->validation_interval_ms, (uint64_t)c->validation_interval_ms);
	replica_notify(r);
}

void replica_notify(struct replica *r)
{
	if (r->closing)
		return;
	if (r->stats.behind_since_ms == 0)
		r->stats.behind_since_ms = wall_ms();
	switch (r->state) {
	case REPLICA_WAITING:
		if (r->db->pos_valid && !uv_is_active((uv_handle_t *)&r->retry_timer))
			locate(r);
		break;
	case REPLICA_IDLE:
		if (r->cfg->sync_interval_ms == 0 || r->flush_cb != NULL)
			step(r);
		else
			r->wanted = true;
		break;
	default:
		r->wanted = true;
		break;
	}
}

bool replica_position(const struct replica *r, struct db_pos *out)
{
	if (!r->located)
		return false;
	*out = r->pos;
	return true;
}

bool replica_shadow_floor(const struct replica *r, struct db_pos *out)
{
	const struct validation *v = r->validation;

	if (!r->located)
		return false;
	*out = r->pos;
	/* A snapshot into another generation (or the first one) moves the
	 * position to its index once stored: that index must still be here. */
	if (r->snapshot_shipping && strcmp(r->snapshot_from.generation, out->generation) != 0) {
		*out = r->snapshot_from;
		out->offset = 0;
	}
	/* A validation still needs the shadow index it compares against. */
	if (v != NULL && v->phase != V_IMAGE && strcmp(v->at.generation, out->generation) == 0 &&
	    v->at.index < out->index)
		out->index = v->at.index;
	return true;
}

double replica_lag_seconds(const struct replica *r)
{
	if (r->stats.behind_since_ms == 0)
		return 0;
	return (double)(wall_ms() - r->stats.behind_since_ms) / 1000.0;
}

void replica_request_snapshot(struct replica *r)
{
	r->snapshot_wanted = true;
	if (r->state == REPLICA_IDLE)
		step(r);
}

uint64_t replica_pending_bytes(const struct replica *r)
{
	const struct db_pos *d = &r->db->pos;

	if (!r->db->pos_valid)
		return 0;
	if (strcmp(r->pos.generation, d->generation) != 0 || r->pos.index != d->index)
		return d->offset;
	return d->offset > r->pos.offset ? d->offset - r->pos.offset : 0;
}

void replica_flush(struct replica *r, void (*cb)(struct replica *r, int rc))
{
	r->flush_cb = cb;
	if (r->state == REPLICA_BUSY && uv_is_active((uv_handle_t *)&r->retry_timer)) {
		/* Backing off after an error: one more try now. */
		uv_timer_stop(&r->retry_timer);
		r->state = r->located ? REPLICA_IDLE : REPLICA_WAITING;
	}
	switch (r->state) {
	case REPLICA_WAITING:
		if (!r->db->pos_valid) {
			r->flush_cb = NULL;
			cb(r, 0); /* nothing to ship: the database never opened */
			return;
		}
		locate(r);
		break;
	case REPLICA_IDLE:
		step(r);
		break;
	default:
		break; /* the upload in flight continues into step() */
	}
}

static void on_replica_handle_closed(uv_handle_t *h)
{
	struct replica *r = h->data;

	if (--r->open_handles == 0 && r->close_cb)
		r->close_cb(r);
}

void replica_close(struct replica *r, void (*cb)(struct replica *r))
{
	if (r->snapshot_waiting) {
		r->snapshot_waiting = false;
		db_snapshot_unwait(r->db);
	}
	r->closing = true;
	r->close_cb = cb;
	r->state = REPLICA_CLOSED;
	uv_close((uv_handle_t *)&r->sync_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->retry_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->retention_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->snapshot_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->validation_timer, on_replica_handle_closed);
}

void replica_free(struct replica *r)
{
	validation_free(r->validation);
	r->validation = NULL;
	if (r->backend != NULL)
		r->backend->ops->free(r->backend);
	r->backend = NULL;
}
