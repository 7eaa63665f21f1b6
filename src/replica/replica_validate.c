/*
 * Validation compares two images of the database at one position P:
 * the primary's (a copy of the database file taken by a db job, plus the
 * current shadow index's frames up to P) and the replica's (a restore of
 * the replica up to P). Shipping goes on while the replica catches up
 * with P; only the download and the comparison hold it.
 *
 * Phases: V_IMAGE (the database copies its file at its next sync and says
 * at which position P), V_WAIT (until the replica reached P), V_FETCH
 * (the objects that make up the replica at P, listed then downloaded:
 * the replica's task is then REPLICA_TASK_VALIDATION), V_BUILD (restore
 * and checksums on the threadpool). Every validation-interval; a mismatch
 * is logged loudly and counted, as is any error (nothing retries before
 * the next interval). The scratch files live in the database's tmp
 * directory and go at the end.
 */
#include "replica/replica_internal.h"

#include "backend/catalog.h"
#include "core/crc64.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "restore/restore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	const struct age_keys *age;    /* the backend's, read-only */
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

/*
 * Ends the validation, whichever its phase: the replica goes back to idle
 * only if the validation was its task (an image that failed while a
 * segment was on its way leaves that upload alone).
 */
static void validation_end(struct replica *r)
{
	struct validation *v = r->validation;

	r->validation = NULL;
	validation_free(v);
	if (r->task == REPLICA_TASK_VALIDATION)
		replica_set_task(r, REPLICA_TASK_NONE);
	replica_step(r);
}

/* at: the position validated, or NULL. */
static void validation_failed(struct replica *r, const char *at, int rc, const char *err)
{
	r->stats.validations_failed++;
	r->stats.error_count++;
	if (err == NULL)
		err = strerror(-rc);
	snprintf(r->stats.last_error, sizeof(r->stats.last_error), "validation: %s: %s", at, err);
	LOG_FIELDS_AT(LOG_LEVEL_ERROR, db_path(r->db), r->name, at, err, "validation: %s", at);
	validation_end(r);
}

bool replica_validation_ready(const struct replica *r)
{
	const struct validation *v = r->validation;

	return v != NULL && v->phase == V_WAIT && strcmp(r->pos.generation, v->at.generation) == 0 &&
	       db_pos_cmp(&r->pos, &v->at) >= 0;
}

static void on_validated(uv_work_t *req, int status)
{
	struct validation *v = req->data;
	struct replica *r = v->r;
	char at[DB_POS_STR_MAX];

	db_pos_format(&v->at, at, sizeof(at));
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
		LOG_ERROR_POS(db_path(r->db), r->name, at, "VALIDATION FAILED: %s",
			      r->stats.last_error);
	} else {
		r->stats.validations_ok++;
		LOG_INFO_POS(db_path(r->db), r->name, at, "validation ok at %s (crc64 %016llx)", at,
			     (unsigned long long)v->crc_primary);
	}
	validation_end(r);
}

/* Threadpool: build both images and checksum them. */
static void validate_work(uv_work_t *req)
{
	struct validation *v = req->data;
	struct restore_segment seg = {v->shadow, "shadow wal", v->at.index, 0, v->at.offset};

	v->rc = restore_build_local(v->objs, v->n_objs, v->age, v->restored, v->dir, v->err,
				    sizeof(v->err));
	/* Offset 0: a generation on an empty WAL, with no shadow file yet. */
	if (v->rc == 0 && v->at.offset > 0)
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

void replica_validation_continue(struct replica *r)
{
	struct validation *v = r->validation;

	replica_set_task(r, REPLICA_TASK_VALIDATION);
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
	shadow = db_shadow_path(r->db, pos->generation, pos->index);
	snprintf(v->shadow, sizeof(v->shadow), "%s", shadow ? shadow : "");
	free(shadow);
	v->phase = V_WAIT;
	if (r->state == REPLICA_IDLE)
		replica_step(r);
}

/* Shipping goes on while the database copies its image and the replica catches up. */
void replica_validation_start(struct replica *r)
{
	struct validation *v;
	struct db_pos d;
	int rc;

	r->validation_wanted = false;
	db_position(r->db, &d);
	if (r->validation != NULL || strcmp(r->pos.generation, d.generation) != 0)
		return;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return;
	v->r = r;
	v->age = r->backend->age;
	snprintf(v->dir, sizeof(v->dir), "%s/validate-%s", db_tmp_dir(r->db), r->name);
	snprintf(v->primary, sizeof(v->primary), "%s/primary.db", v->dir);
	snprintf(v->restored, sizeof(v->restored), "%s/replica.db", v->dir);
	fs_remove_tree(v->dir);
	if ((rc = fs_mkdir_p(v->dir, 0700)) != 0) {
		v->dir[0] = '\0';
		free(v);
		LOG_ERROR_ERR(db_path(r->db), r->name, strerror(-rc), "validation: mkdir");
		return;
	}
	r->validation = v;
	v->phase = V_IMAGE;
	if ((rc = db_request_image(r->db, v->primary, on_image, r)) != 0) {
		r->validation = NULL;
		validation_free(v);
	}
}

void replica_on_validation_timer(uv_timer_t *t)
{
	struct replica *r = t->data;

	r->validation_wanted = true;
	if (r->state == REPLICA_IDLE)
		replica_step(r);
}

void replica_validation_floor(const struct replica *r, struct db_pos *floor)
{
	const struct validation *v = r->validation;

	/* A validation still needs the shadow index it compares against. */
	if (v != NULL && v->phase != V_IMAGE && strcmp(v->at.generation, floor->generation) == 0 &&
	    v->at.index < floor->index)
		floor->index = v->at.index;
}

void replica_validation_free(struct replica *r)
{
	validation_free(r->validation);
	r->validation = NULL;
}

