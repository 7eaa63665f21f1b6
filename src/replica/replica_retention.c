/*
 * The retention runs of a replica: every retention-check-interval, between
 * uploads, the replica lists what the backend holds (catalog.h), asks the
 * planner (retention.h) which objects are past `retention`, and removes
 * them in one request. The plan may also ask for a snapshot (the newest
 * one is itself older than the window), which the next step ships.
 *
 * A failure is counted and logged but does not back off: shipping goes on
 * and the next check tries again.
 */
#include "replica/replica_internal.h"
#include "util/clock.h"

#include "backend/catalog.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void retention_done(struct replica *r)
{
	if (r->retention != NULL) {
		retention_plan_free(r->retention);
		free(r->retention);
		r->retention = NULL;
	}
	replica_set_task(r, REPLICA_TASK_NONE);
	if (r->retention_cb != NULL) {
		void (*cb)(struct replica *, int) = r->retention_cb;
		r->retention_cb = NULL;
		cb(r, r->retention_rc);
		return;
	}
	replica_step(r);
}

static void on_retention_removed(void *arg, int rc, const char *err)
{
	struct replica *r = arg;

	if (rc != 0) {
		r->retention_rc = rc;
		r->stats.error_count++;
		if (err == NULL)
			err = strerror(-rc);
		snprintf(r->stats.last_error, sizeof(r->stats.last_error), "retention: %s", err);
		LOG_ERROR_ERR(db_path(r->db), r->name, err, "retention");
	} else {
		r->stats.delete_count += r->retention->n_keys;
		LOG_INFO(db_path(r->db), r->name, "retention: removed %zu objects (%zu whole generations)",
			 r->retention->n_keys, r->retention->n_generations);
	}
	retention_done(r);
}

static void on_retention_catalog(void *arg, int rc, const char *err, struct catalog *c)
{
	struct replica *r = arg;
	struct retention_plan *p;
	struct db_pos d;

	r->stats.list_count++;
	if (rc != 0) {
		r->retention_rc = rc;
		r->stats.error_count++;
		snprintf(r->stats.last_error, sizeof(r->stats.last_error), "retention: %s", err);
		LOG_ERROR_ERR(db_path(r->db), r->name, err, "retention");
		retention_done(r);
		return;
	}
	/* The current generation as the database last published it. */
	db_position(r->db, &d);
	p = calloc(1, sizeof(*p));
	if (p == NULL ||
	    retention_plan(c, d.generation, clock_wall_ms(), r->cfg->retention_ms, p) != 0) {
		free(p);
		LOG_ERROR(db_path(r->db), r->name, "retention: out of memory");
		r->retention_rc = -ENOMEM;
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

void replica_retention_start(struct replica *r)
{
	r->retention_wanted = false;
	r->retention_rc = 0;
	replica_set_task(r, REPLICA_TASK_RETENTION);
	catalog_load_async(r->backend, NULL, on_retention_catalog, r);
}

void replica_on_retention_timer(uv_timer_t *t)
{
	struct replica *r = t->data;

	r->retention_wanted = true;
	if (r->state == REPLICA_IDLE)
		replica_step(r);
}

void replica_enforce_retention(struct replica *r, void (*cb)(struct replica *r, int rc))
{
	if (r->cfg->retention_ms <= 0 || r->state != REPLICA_IDLE) {
		cb(r, 0);
		return;
	}
	r->retention_cb = cb;
	replica_retention_start(r);
}

void replica_request_retention(struct replica *r)
{
	if (r->cfg->retention_ms <= 0)
		return;
	r->retention_wanted = true;
	if (r->state == REPLICA_IDLE)
		replica_step(r);
}
