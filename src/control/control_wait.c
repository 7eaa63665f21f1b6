/*
 * The requests that act on a database: POST /v1/dbs/NAME/sync,
 * .../checkpoint and .../snapshot (control.h has what each promises).
 *
 * A waiting request is a struct waiter. It is settled by check(), which
 * runs from the subscriptions to the databases and their replicas (right
 * after a sync published a position or a replica had an upload
 * acknowledged) and from a 50 ms timer
 * that also enforces each waiter's deadline. check() reads only loop-owned
 * state, so it is cheap and never blocks.
 *
 * Which sync counts: a sync job that was already running when the request
 * came may have read the WAL before the application's last commit. So the
 * waiter notes db->stats.sync_count (bumped as each job ends, failed or
 * not) and waits for the job after the running one, if any: its publish
 * (DB_EVENT_POSITION, sent in the same turn as the bump)
 * gives the target position. If that job ends without publishing, it
 * failed, and so does the request (500 with the database's last error).
 */
#include "control/control_internal.h"

#include "control/control_params.h"
#include "util/duration.h"
#include "replica/replica.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 50

enum waiter_kind { WAIT_SYNC, WAIT_CHECKPOINT, WAIT_SNAPSHOT };

struct waiter {
	struct waiter *prev, *next;
	struct control *ctl;
	struct http_server_request *req;
	struct db *db;
	enum waiter_kind kind;
	bool wait_replicas;
	uint64_t jobs_needed;   /* db->stats.sync_count to reach */
	bool have_target;
	struct db_pos target;
	enum db_checkpoint_mode mode;
	uint64_t ckpt_count0, ckpt_errors0;
	uint64_t deadline;      /* uv_now() */
	uint64_t started;
	int64_t timeout_ms;
	uint64_t snapshots0[];  /* per replica of db */
};

/* ---- waiting requests ---------------------------------------------------- */

static void poll_update(struct control *c);

static void waiter_remove(struct waiter *w)
{
	struct control *c = w->ctl;

	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		c->waiters = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	c->n_waiters--;
	free(w);
	poll_update(c);
}

static void waiter_add(struct control *c, struct waiter *w)
{
	w->next = c->waiters;
	if (c->waiters != NULL)
		c->waiters->prev = w;
	c->waiters = w;
	c->n_waiters++;
	poll_update(c);
}

/* Has replica r everything up to target? */
static bool replica_holds(const struct db *db, const struct replica *r, const struct db_pos *target)
{
	struct db_pos p;

	if (!replica_position(r, &p) || p.generation[0] == '\0')
		return false;
	if (strcmp(p.generation, target->generation) == 0)
		return db_pos_cmp(&p, target) >= 0;
	/* A newer generation (the database's current one) starts with a later snapshot. */
	return db->pos_valid && strcmp(p.generation, db->pos.generation) == 0 &&
	       strcmp(target->generation, db->pos.generation) != 0;
}


static double waited(const struct waiter *w)
{
	return (double)(uv_now(w->ctl->loop) - w->started) / 1000.0;
}

static void settle(struct waiter *w, int status, cJSON *o)
{
	control_respond_json(w->req, status, o);
	waiter_remove(w);
}

static void settle_error(struct waiter *w, int status, const char *msg)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", msg);
	cJSON_AddStringToObject(o, "name", control_db_name(w->db));
	if (w->have_target)
		cJSON_AddItemToObject(o, "position", control_pos_json(&w->target, true));
	if (w->kind != WAIT_CHECKPOINT)
		cJSON_AddItemToObject(o, "replicas", control_replica_positions(w->db));
	settle(w, status, o);
}

/* Each check_* settles w (freeing it) and returns true, or returns false. */
static bool check_sync(struct waiter *w)
{
	struct db *db = w->db;
	cJSON *o;

	if (!w->have_target) {
		if (db->stats.sync_count < w->jobs_needed)
			return false;
		char msg[512];
		snprintf(msg, sizeof(msg), "sync failed: %s",
			 db->stats.last_error[0] ? db->stats.last_error : "the database did not sync");
		settle_error(w, 500, msg);
		return true;
	}
	if (w->wait_replicas)
		for (size_t i = 0; i < db->n_replicas; i++)
			if (!replica_holds(db, db->replicas[i], &w->target))
				return false;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", control_db_name(db));
	cJSON_AddItemToObject(o, "position", control_pos_json(&w->target, true));
	cJSON_AddBoolToObject(o, "replicated", w->wait_replicas);
	cJSON_AddItemToObject(o, "replicas", control_replica_positions(db));
	cJSON_AddNumberToObject(o, "elapsed_seconds", waited(w));
	settle(w, 200, o);
	return true;
}

static bool check_checkpoint(struct waiter *w)
{
	struct db *db = w->db;
	const struct db_stats *st = &db->stats;
	const char *mode = db_checkpoint_mode_name(w->mode);
	char msg[512];
	cJSON *o;

	if (st->checkpoint_count[w->mode] > w->ckpt_count0) {
		if (st->checkpoint_error_count[w->mode] > w->ckpt_errors0) {
			snprintf(msg, sizeof(msg),
				 "checkpoint %s did not complete (the database was busy, or see the log)", mode);
			settle_error(w, 500, msg);
			return true;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", control_db_name(db));
		cJSON_AddStringToObject(o, "mode", mode);
		cJSON_AddItemToObject(o, "position", control_pos_json(&db->pos, db->pos_valid));
		cJSON_AddNumberToObject(o, "wal_size", (double)st->wal_size);
		cJSON_AddNumberToObject(o, "elapsed_seconds", waited(w));
		settle(w, 200, o);
		return true;
	}
	if (st->sync_count < w->jobs_needed || db->job != NULL)
		return false;
	if (db->checkpoint_wanted != CHECKPOINT_NONE) {
		/* Put off (a snapshot was reading the file): the next sync runs it. */
		w->jobs_needed = st->sync_count + 1;
		return false;
	}
	snprintf(msg, sizeof(msg), "checkpoint %s did not run: %s", mode,
		 st->last_error[0] ? st->last_error : "the database did not sync");
	settle_error(w, 500, msg);
	return true;
}

static bool check_snapshot(struct waiter *w)
{
	struct db *db = w->db;
	cJSON *o;

	for (size_t i = 0; i < db->n_replicas; i++)
		if (db->replicas[i]->stats.snapshots <= w->snapshots0[i])
			return false;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", control_db_name(db));
	cJSON_AddItemToObject(o, "replicas", control_replica_positions(db));
	cJSON_AddNumberToObject(o, "elapsed_seconds", waited(w));
	settle(w, 200, o);
	return true;
}

/* Settles w if it can be, or with 504 past its deadline; w may be freed. */
static void check(struct waiter *w)
{
	bool settled = false;
	char msg[256], d[32];

	switch (w->kind) {
	case WAIT_SYNC: settled = check_sync(w); break;
	case WAIT_CHECKPOINT: settled = check_checkpoint(w); break;
	case WAIT_SNAPSHOT: settled = check_snapshot(w); break;
	}
	if (settled || uv_now(w->ctl->loop) < w->deadline)
		return;
	duration_format(w->timeout_ms, d, sizeof(d));
	snprintf(msg, sizeof(msg), "timed out after %s waiting for %s", d,
		 w->kind == WAIT_CHECKPOINT ? "the checkpoint"
		 : w->kind == WAIT_SNAPSHOT ? "the snapshots"
		 : !w->have_target	    ? "the sync"
					    : "the replicas");
	settle_error(w, 504, msg);
}

static void check_all(struct control *c, const struct db *db)
{
	struct waiter *w = c->waiters, *next;

	for (; w != NULL; w = next) {
		next = w->next;
		if (db == NULL || w->db == db)
			check(w);
	}
}

static void on_poll(uv_timer_t *t)
{
	struct control *c = t->data;
	struct waiter *w, *next;

	/* A client that went away stops waiting (and frees its slot) now. */
	for (w = c->waiters; w != NULL; w = next) {
		next = w->next;
		if (http_server_request_gone(w->req))
			http_server_drop(w->req); /* control_wait_on_abort() removes w */
	}
	check_all(c, NULL);
}

static void poll_update(struct control *c)
{
	if (c->closing)
		return;
	if (c->waiters != NULL && !uv_is_active((uv_handle_t *)&c->poll))
		uv_timer_start(&c->poll, on_poll, POLL_MS, POLL_MS);
	else if (c->waiters == NULL)
		uv_timer_stop(&c->poll);
}

void control_wait_progress(struct control *c, struct db *db, bool published)
{
	/* This publish may be the one a waiter waits for. */
	if (published)
		for (struct waiter *w = c->waiters; w != NULL; w = w->next)
			if (w->db == db && w->kind == WAIT_SYNC && !w->have_target &&
			    db->stats.sync_count >= w->jobs_needed && db->pos_valid) {
				w->have_target = true;
				w->target = db->pos;
			}
	check_all(c, db);
}

void control_wait_on_abort(struct http_server_request *req, void *arg)
{
	struct control *c = arg;

	for (struct waiter *w = c->waiters; w != NULL; w = w->next)
		if (w->req == req) {
			waiter_remove(w);
			return;
		}
}

/* ---- endpoints -------------------------------------------------------------- */

/* The parameters of req, or a 400 answer and -EINVAL. */
static int read_params(struct http_server_request *req, unsigned allowed, struct control_params *p)
{
	char err[512];

	if (control_params_parse(req->query, req->body, req->body_len, allowed, p, err,
				 sizeof(err)) != 0) {
		http_server_respond_error(req, 400, err);
		return -EINVAL;
	}
	return 0;
}

static bool db_usable(struct http_server_request *req, const struct db *db)
{
	if (db->state != DB_RUNNING) {
		control_respond_errorf(req, 503, "database %s is stopping", control_db_name(db));
		return false;
	}
	if (!db->open && db->job == NULL) {
		control_respond_errorf(req, 503, "database %s is not open (does %s exist?)",
				       control_db_name(db), db->path);
		return false;
	}
	return true;
}

/*
 * A new waiter for a request of kind on db, taking the parameters allowed
 * (*p gets them), not yet in the list; or NULL with req answered: 400 for
 * a bad parameter, 503 when db cannot sync or too many requests wait, 500.
 */
static struct waiter *waiter_new(struct control *c, struct http_server_request *req, struct db *db,
				 enum waiter_kind kind, unsigned allowed, struct control_params *p)
{
	struct waiter *w;

	if (read_params(req, allowed, p) != 0 || !db_usable(req, db))
		return NULL;
	/* Waiting requests may hold at most half the connections: the rest stay for status. */
	if (c->n_waiters >= c->max_waiters) {
		control_respond_errorf(req, 503, "too many requests waiting (%zu); try again later",
				       c->n_waiters);
		return NULL;
	}
	w = calloc(1, sizeof(*w) + db->n_replicas * sizeof(w->snapshots0[0]));
	if (w == NULL) {
		http_server_respond_error(req, 500, "out of memory");
		return NULL;
	}
	w->ctl = c;
	w->req = req;
	w->db = db;
	w->kind = kind;
	w->wait_replicas = p->wait;
	w->mode = p->mode;
	w->timeout_ms = p->timeout_ms;
	w->started = uv_now(c->loop);
	w->deadline = w->started + (uint64_t)p->timeout_ms;
	return w;
}

/*
 * Asks for a sync that starts from now on: the job after the running one,
 * if any, else the next one (the database may start it now or a moment
 * later, as it paces its syncs).
 */
static void start_fresh_sync(struct db *db, struct waiter *w, enum db_checkpoint_mode mode)
{
	w->jobs_needed = db->stats.sync_count + (db->job != NULL ? 2 : 1);
	if (mode != CHECKPOINT_NONE)
		db_request_checkpoint(db, mode);
	else
		db_request_sync(db);
}

void control_wait_sync(struct control *c, struct http_server_request *req, struct db *db)
{
	struct control_params p;
	struct waiter *w = waiter_new(c, req, db, WAIT_SYNC,
				      CONTROL_PARAM_WAIT | CONTROL_PARAM_TIMEOUT, &p);

	if (w == NULL)
		return;
	start_fresh_sync(db, w, CHECKPOINT_NONE);
	waiter_add(c, w);
}

void control_wait_checkpoint(struct control *c, struct http_server_request *req, struct db *db)
{
	struct control_params p;
	struct waiter *w = waiter_new(c, req, db, WAIT_CHECKPOINT,
				      CONTROL_PARAM_MODE | CONTROL_PARAM_TIMEOUT, &p);

	if (w == NULL)
		return;
	w->ckpt_count0 = db->stats.checkpoint_count[p.mode];
	w->ckpt_errors0 = db->stats.checkpoint_error_count[p.mode];
	start_fresh_sync(db, w, p.mode);
	waiter_add(c, w);
}

void control_wait_snapshot(struct control *c, struct http_server_request *req, struct db *db)
{
	struct control_params p;
	struct waiter *w = waiter_new(c, req, db, WAIT_SNAPSHOT,
				      CONTROL_PARAM_WAIT | CONTROL_PARAM_TIMEOUT, &p);
	cJSON *o;

	if (w == NULL)
		return;
	for (size_t i = 0; i < db->n_replicas; i++) {
		w->snapshots0[i] = db->replicas[i]->stats.snapshots;
		replica_request_snapshot(db->replicas[i]);
	}
	if (p.wait) {
		waiter_add(c, w);
		check(w);
		return;
	}
	free(w);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", control_db_name(db));
	cJSON_AddItemToObject(o, "replicas", control_replica_positions(db));
	control_respond_json(req, 202, o);
}

void control_wait_drop_db(struct control *c, const struct db *db)
{
	struct waiter *w = c->waiters, *next;

	for (; w != NULL; w = next) {
		next = w->next;
		if (w->db == db)
			settle_error(w, 503, "the database was removed");
	}
}

void control_wait_drop_all(struct control *c)
{
	while (c->waiters != NULL) {
		struct waiter *w = c->waiters;
		c->waiters = w->next;
		free(w);
	}
	c->n_waiters = 0;
}
