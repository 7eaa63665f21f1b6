/*
 * Finding the replica's position at start-up, from what the backend
 * already holds in the database's current generation:
 *
 *   - segments in generations/GEN/wal: the position is the end of the last
 *     one: its start from its name, its end from the local record of the
 *     segments this host encrypted (segment_ends.h) when the name and size
 *     match one, else by decompressing it on the threadpool, as no listing
 *     tells the uncompressed size. An encrypted segment this host cannot
 *     open (recipients only, and no record: the metadata directory was
 *     restored from elsewhere, or the record was lost in a crash) is
 *     shipped again from its start instead: the shadow WAL still holds
 *     those bytes, and the new object, under the same name, holds all the
 *     old one did and more;
 *   - else snapshots in generations/GEN/snapshots: the start of the index
 *     of the newest one;
 *   - else nothing: the first step ships a snapshot.
 *
 * So a restart uploads nothing twice and skips nothing. A failure goes
 * through replica_failed(); the retry starts locating again.
 */
#include "replica/replica_internal.h"
#include "util/fsutil.h"

#include "util/log.h"
#include "core/object_codec.h"
#include "replica/segment_ends.h"
#include "core/names.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void located(struct replica *r)
{
	r->located = true;
	replica_set_task(r, REPLICA_TASK_NONE);
	if (r->pos.generation[0] != '\0') {
		char pos[DB_POS_STR_MAX];

		db_pos_format(&r->pos, pos, sizeof(pos));
		LOG_INFO_POS(db_path(r->db), r->name, pos, "resuming at %s", pos);
	}
	replica_step(r);
}

/* Decompresses a downloaded segment only to learn its size (threadpool). */
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
	job->rc = out < 0 ? -errno : object_decode(in, out, job->age, &job->in_bytes, why, sizeof(why));
	if (job->rc != 0)
		snprintf(job->err, sizeof(job->err), "%s: %s", job->key, why[0] ? why : strerror(-job->rc));
	if (out >= 0)
		close(out);
	close(in);
}

static void on_measure_work(uv_work_t *req)
{
	measure_job(req->data);
}

static void on_measured(uv_work_t *req, int status)
{
	struct replica_job *job = req->data;
	struct replica *r = job->r;

	unlink(job->src);
	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (job->rc == -ENOKEY) {
		/* Encrypted, and this host holds no identity that opens it. */
		LOG_WARN(db_path(r->db), r->name, "%s: cannot find where it ends (no local record, no "
			 "age identity that opens it); shipping it again from its start", job->key);
		r->pos = job->from;
		free(job);
		located(r);
		return;
	}
	if (job->rc != 0) {
		replica_failed(r, "read last segment", job->rc, job->err);
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
		replica_failed(r, job->key, rc, err);
		free(job);
		return;
	}
	replica_job_queue(r, job, on_measure_work, on_measured);
}

static void on_snapshots_listed(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct replica *r = arg;
	bool found = false;
	uint32_t best = 0, idx;
	struct db_pos d;

	r->stats.list_count++;
	if (rc != 0) {
		replica_failed(r, "list snapshots", rc, err);
		return;
	}
	for (size_t i = 0; i < list->n; i++) {
		if (snapshot_name_parse(list->v[i].name, &idx) == 0 && (!found || idx > best)) {
			best = idx;
			found = true;
		}
	}
	if (found) {
		db_position(r->db, &d);
		snprintf(r->pos.generation, sizeof(r->pos.generation), "%s", d.generation);
		r->pos.index = best;
		r->pos.offset = 0;
	}
	located(r);
}

/* Downloads the last segment (last) to measure it. */
static void fetch_last(struct replica *r, const struct backend_entry *last, uint32_t index,
		       uint64_t offset, enum segment_form form)
{
	struct replica_job *job = replica_job_new(r, JOB_MEASURE);
	struct db_pos d;

	if (job == NULL) {
		replica_failed(r, "locate", -ENOMEM, NULL);
		return;
	}
	db_position(r->db, &d);
	snprintf(job->from.generation, sizeof(job->from.generation), "%s", d.generation);
	job->from.index = index;
	job->from.offset = offset;
	job->raw = form == SEGMENT_WHOLE_RAW;
	snprintf(job->key, sizeof(job->key), "generations/%s/wal/%s", job->from.generation, last->name);
	snprintf(job->src, sizeof(job->src), "%s/%s-locate.tmp", db_tmp_dir(r->db), r->name);
	if (fs_mkdir_parent(job->src, 0755) != 0) {
		replica_failed(r, "locate: mkdir", -errno, NULL);
		free(job);
		return;
	}
	r->backend->ops->get(r->backend, job->key, job->src, on_last_segment, job);
}

/* The last segment's end from the local record, if it has it (the position is then known). */
static bool found_recorded(struct replica *r, const struct backend_entry *last, uint32_t index,
			   uint64_t offset)
{
	struct db_pos d;
	char *dir, *path;
	uint64_t end = 0;
	int rc;

	db_position(r->db, &d);
	dir = db_generation_dir(r->db, d.generation);
	path = dir != NULL ? str_printf("%s/%s.segment-ends", dir, r->name) : NULL;
	rc = path != NULL ? segment_ends_lookup(path, last->name, last->size, &end) : -ENOMEM;
	free(dir);
	free(path);
	if (rc != 0 || end <= offset)
		return false;
	snprintf(r->pos.generation, sizeof(r->pos.generation), "%s", d.generation);
	r->pos.index = index;
	r->pos.offset = end;
	LOG_DEBUG(db_path(r->db), r->name, "generations/%s/wal/%s ends at %llu (local record)",
		  d.generation, last->name, (unsigned long long)end);
	located(r);
	return true;
}

static void on_wal_listed(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct replica *r = arg;
	const struct backend_entry *last = NULL;
	uint32_t best_idx = 0, idx;
	uint64_t best_off = 0, off;
	enum segment_form form, best_form = SEGMENT_OFFSET;
	char dir[128];
	struct db_pos d;

	r->stats.list_count++;
	if (rc != 0) {
		replica_failed(r, "list wal segments", rc, err);
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
		db_position(r->db, &d);
		snprintf(dir, sizeof(dir), "generations/%s/snapshots", d.generation);
		r->backend->ops->list(r->backend, dir, on_snapshots_listed, r);
		return;
	}
	if (best_form == SEGMENT_OFFSET && found_recorded(r, last, best_idx, best_off))
		return;
	fetch_last(r, last, best_idx, best_off, best_form);
}

void replica_locate(struct replica *r)
{
	char dir[128];
	struct db_pos d;

	r->state = REPLICA_LOCATING;
	db_position(r->db, &d);
	snprintf(dir, sizeof(dir), "generations/%s/wal", d.generation);
	r->backend->ops->list(r->backend, dir, on_wal_listed, r);
}
