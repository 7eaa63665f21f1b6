/*
 * Shipping: segments and snapshots.
 *
 * An object travels in two steps: a threadpool job compresses the bytes
 * (a range of a shadow WAL index, or the whole database file read through
 * the database's own descriptor) into a staged file, encrypting the frame
 * as it is made when the replica has age recipients (object_codec.h),
 * then the backend stores it. Only the backend's acknowledgement (on_put) moves the
 * replica's position; on any error nothing moves and replica_failed()
 * schedules the retry, so the same range ships again.
 *
 * A snapshot may not read the database file while a checkpoint rewrites
 * it: it asks db_snapshot_acquire() first and holds the database's
 * snapshot slot until the compression is done (db.h).
 */
#include "replica/replica_internal.h"
#include "util/clock.h"

#include "util/fsutil.h"
#include "util/log.h"
#include "core/age.h"
#include "core/object_codec.h"
#include "core/names.h"
#include "replica/segment_ends.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- threadpool jobs ----------------------------------------------------- */

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
		if ((rc = fs_mkdir_parent(job->stage, 0755)) != 0) {
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
	rc = object_encode(in, off, len, out, job->age, &job->out_bytes);
	/* Before the upload: a restart that finds it must know where it ends. */
	if (rc == 0 && job->ends_path[0] != '\0')
		(void)segment_ends_record(job->ends_path, strrchr(job->key, '/') + 1, job->out_bytes,
					  job->end);
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

static void on_compress_work(uv_work_t *req)
{
	compress_job(req->data);
}

/*
 * The age header of the next object is made while this one is compressed
 * (age.h: about 0.1 ms of key exchange out of the commit-to-replica path).
 * The job counts as one of the replica's open handles, so that a close
 * waits for it before the keys go.
 */
struct header_job {
	uv_work_t req;
	struct replica *r;
};

static void on_header_work(uv_work_t *req)
{
	struct header_job *hj = req->data;

	(void)age_keys_prepare(hj->r->backend->age); /* failing, the writer makes its own */
}

static void on_header_done(uv_work_t *req, int status)
{
	struct header_job *hj = req->data;
	struct replica *r = hj->r;

	(void)status;
	free(hj);
	if (--r->open_handles == 0 && r->close_cb)
		r->close_cb(r);
}

static void prepare_next_header(struct replica *r)
{
	struct header_job *hj;

	if (r->state == REPLICA_CLOSED || !age_keys_want_prepare(r->backend->age))
		return;
	if ((hj = malloc(sizeof(*hj))) == NULL)
		return;
	hj->req.data = hj;
	hj->r = r;
	if (uv_queue_work(r->loop, &hj->req, on_header_work, on_header_done) != 0) {
		free(hj);
		return;
	}
	r->open_handles++;
}

struct replica_job *replica_job_new(struct replica *r, enum replica_job_kind kind)
{
	struct replica_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->req.data = job;
	job->r = r;
	job->kind = kind;
	job->age = r->backend->age;
	return job;
}

int replica_job_queue(struct replica *r, struct replica_job *job, uv_work_cb work,
		      uv_after_work_cb after)
{
	int rc = uv_queue_work(r->loop, &job->req, work, after);

	if (rc != 0) {
		free(job);
		replica_failed(r, "queue job", rc, uv_strerror(rc));
	}
	return rc;
}

/*
 * Where to write the compressed file for key before put(): true when that
 * is the backend's own place for it (put() then only renames it), false
 * for a temporary file in the database's scratch directory.
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
	snprintf(buf, n, "%s/%s-%u-%ld.lz4", db_tmp_dir(r->db), r->name, counter++, (long)getpid());
	return false;
}

/* ---- the upload acknowledgement ------------------------------------------ */

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
	if (rc != 0) {
		replica_failed(r, job->key, rc, err);
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
		if (LOG_LEVEL_DEBUG >= log_threshold) {
			char pos[DB_POS_STR_MAX];

			LOG_DEBUG_POS(db_path(r->db), r->name, db_pos_format(&r->pos, pos, sizeof(pos)),
				      "wrote %s (%llu bytes of wal)", job->key,
				      (unsigned long long)job->in_bytes);
		}
	} else {
		if (strcmp(r->pos.generation, job->from.generation) != 0) {
			r->pos = job->from;
			r->pos.offset = 0;
		}
		r->stats.snapshots++;
		r->snapshot_wanted = false;
		r->last_snapshot = job->from;
		char pos[DB_POS_STR_MAX];

		LOG_INFO_POS(db_path(r->db), r->name, db_pos_format(&job->from, pos, sizeof(pos)),
			     "snapshot written: %s (%llu bytes)", job->key,
			     (unsigned long long)job->in_bytes);
	}
	replica_succeeded(r);
	replica_set_task(r, REPLICA_TASK_NONE);
	replica_progressed(r);
	replica_step(r);
	free(job);
}

/* ---- segments ------------------------------------------------------------ */

static void on_segment_compressed(uv_work_t *req, int status)
{
	struct replica_job *job = req->data;
	struct replica *r = job->r;

	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (job->rc != 0) {
		replica_failed(r, job->key, job->rc, job->err);
		free(job);
		return;
	}
	r->backend->ops->put(r->backend, job->key, job->stage, on_put, job);
}

void replica_ship_segment(struct replica *r, uint64_t end)
{
	r->last_ship_ms = clock_mono_ms();
	r->tick = false;
	struct replica_job *job = replica_job_new(r, JOB_SEGMENT);
	char name[NAME_MAX_LEN], *src;

	if (job == NULL) {
		replica_failed(r, "segment", -ENOMEM, NULL);
		return;
	}
	job->from = r->pos;
	job->end = end;
	src = db_shadow_path(r->db, r->pos.generation, r->pos.index);
	snprintf(job->src, sizeof(job->src), "%s", src ? src : "");
	free(src);
	segment_name(name, sizeof(name), r->pos.index, r->pos.offset);
	snprintf(job->key, sizeof(job->key), "generations/%s/wal/%s", r->pos.generation, name);
	if (object_codec_encrypts(job->age)) {
		char *dir = db_generation_dir(r->db, r->pos.generation);

		if (dir != NULL)
			snprintf(job->ends_path, sizeof(job->ends_path), "%s/%s.segment-ends", dir, r->name);
		free(dir);
	}
	job->stage_is_object = stage_for(r, job->key, job->stage, sizeof(job->stage));
	replica_set_task(r, REPLICA_TASK_SEGMENT);
	if (replica_job_queue(r, job, on_compress_work, on_segment_compressed) == 0)
		prepare_next_header(r);
}

/* ---- snapshots ----------------------------------------------------------- */

static void on_snapshot_compressed(uv_work_t *req, int status)
{
	struct replica_job *job = req->data;
	struct replica *r = job->r;

	db_snapshot_release(r->db);
	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (job->rc != 0) {
		replica_failed(r, job->key, job->rc, job->err);
		free(job);
		return;
	}
	r->backend->ops->put(r->backend, job->key, job->stage, on_put, job);
}

/*
 * The checkpoint the snapshot waited for is over and the slot is ours:
 * decide again (the database may have moved on meanwhile, retention may
 * be due), and give the slot back if that decision is not the snapshot.
 */
static void on_snapshot_granted(void *arg)
{
	struct replica *r = arg;

	if (r->task != REPLICA_TASK_SNAPSHOT_WAIT) {
		db_snapshot_release(r->db);
		return;
	}
	r->snapshot_granted = true;
	replica_set_task(r, REPLICA_TASK_NONE);
	replica_step(r);
	if (r->snapshot_granted) {
		r->snapshot_granted = false;
		db_snapshot_release(r->db);
	}
}

void replica_snapshot_cancel(struct replica *r)
{
	db_snapshot_cancel(r->db, on_snapshot_granted, r);
}

void replica_ship_snapshot(struct replica *r)
{
	struct replica_job *job;
	char name[NAME_MAX_LEN];
	int rc;

	/* A checkpoint must not rewrite the file while it is read. */
	if (r->snapshot_granted) {
		r->snapshot_granted = false; /* ours from here */
	} else if ((rc = db_snapshot_acquire(r->db, on_snapshot_granted, r)) == 0) {
		replica_set_task(r, REPLICA_TASK_SNAPSHOT_WAIT);
		return;
	} else if (rc < 0) {
		replica_failed(r, "snapshot", rc, NULL);
		return;
	}
	job = replica_job_new(r, JOB_SNAPSHOT);
	if (job == NULL) {
		db_snapshot_release(r->db);
		replica_failed(r, "snapshot", -ENOMEM, NULL);
		return;
	}
	db_position(r->db, &job->from);
	job->src_fd = db_file_fd(r->db);
	snprintf(job->src, sizeof(job->src), "%s", db_path(r->db));
	snapshot_name(name, sizeof(name), job->from.index);
	snprintf(job->key, sizeof(job->key), "generations/%s/snapshots/%s", job->from.generation, name);
	job->stage_is_object = stage_for(r, job->key, job->stage, sizeof(job->stage));
	replica_set_task(r, REPLICA_TASK_SNAPSHOT);
	r->snapshot_from = job->from;
	if (replica_job_queue(r, job, on_compress_work, on_snapshot_compressed) != 0)
		db_snapshot_release(r->db);
	else
		prepare_next_header(r);
}

void replica_on_snapshot_timer(uv_timer_t *t)
{
	struct replica *r = t->data;
	struct db_pos d;

	/* A second snapshot of the same index restores to nothing the first
	 * one does not (an idle database above all): it would only cost a
	 * whole upload, and move that snapshot's time past points in time it
	 * serves. */
	if (db_position(r->db, &d) && strcmp(r->last_snapshot.generation, d.generation) == 0 &&
	    r->last_snapshot.index == d.index) {
		LOG_DEBUG(db_path(r->db), r->name, "snapshot-interval: index %08x already has a snapshot",
			  d.index);
		return;
	}
	replica_request_snapshot(r);
}
