/*
 * The control server: routes requests, builds the JSON answers, runs the
 * waiting requests (sync?wait, checkpoint, snapshot?wait) and serves the
 * metrics. See control.h for the API as clients see it.
 *
 * A waiting request is a struct waiter. It is settled by check(), which
 * runs from the databases' progress hook (right after a sync published a
 * position or a replica had an upload acknowledged) and from a 50 ms timer
 * that also enforces each waiter's deadline. check() reads only loop-owned
 * state, so it is cheap and never blocks.
 *
 * Which sync counts: a sync job that was already running when the request
 * came may have read the WAL before the application's last commit. So the
 * waiter notes db->stats.sync_count (bumped as each job ends, failed or
 * not) and waits for the job after the running one, if any: its publish
 * (the progress hook with r == NULL, called in the same turn as the bump)
 * gives the target position. If that job ends without publishing, it
 * failed, and so does the request (500 with the database's last error).
 */
#include "control.h"

#include "db.h"
#include "duration.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "pct.h"
#include "replica.h"
#include "shadow.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 50
#define DEFAULT_TIMEOUT_MS 30000
#define MAX_TIMEOUT_MS (10 * 60 * 1000)
#define LAG_SCAN_MAX 4096 /* shadow indexes summed for lag_bytes; beyond, a lower bound */

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

struct observed {
	const struct replica *r;
	struct db_pos seen;
	bool seen_valid;
};

struct control {
	uv_loop_t *loop;
	struct http_server http;
	struct db **dbs;
	size_t n_dbs;
	struct observed *obs;
	size_t n_obs;
	struct waiter *waiters;
	size_t n_waiters;
	size_t max_waiters;
	uv_timer_t poll;
	double start_time;  /* process start, seconds since the epoch */
	int open_handles;
	bool closing;
};

/* ---- small helpers --------------------------------------------------------- */

static double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RFC 3339 in UTC with milliseconds, or JSON null when ms is 0. */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
	char buf[64];
	struct tm tm;
	time_t t;
	size_t n;

	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	cJSON_AddStringToObject(o, key, buf);
}

static void add_string_or_null(cJSON *o, const char *key, const char *s)
{
	if (s == NULL || s[0] == '\0')
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddStringToObject(o, key, s);
}

static cJSON *pos_json(const struct db_pos *p, bool valid)
{
	cJSON *o;

	if (!valid || p->generation[0] == '\0')
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "generation", p->generation);
	cJSON_AddNumberToObject(o, "index", p->index);
	cJSON_AddNumberToObject(o, "offset", (double)p->offset);
	return o;
}

static void respond_json(struct http_server_request *req, int status, cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	size_t n;

	cJSON_Delete(o);
	if (s == NULL) {
		http_server_respond_error(req, 500, "out of memory");
		return;
	}
	/* A trailing newline, for people reading curl's output. */
	n = strlen(s);
	char *t = realloc(s, n + 2);
	if (t != NULL) {
		s = t;
		s[n++] = '\n';
		s[n] = '\0';
	}
	http_server_respond(req, status, "application/json", NULL, s, n);
	free(s);
}

static void respond_errorf(struct http_server_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void respond_errorf(struct http_server_request *req, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_server_respond_error(req, status, msg);
}

static const char *replica_type_name(const struct replica *r)
{
	if (r->backend != NULL && r->backend->ops != NULL && r->backend->ops->type != NULL)
		return r->backend->ops->type;
	return r->cfg->type == REPLICA_S3 ? "s3" : "file";
}

static const char *replica_state_name(enum replica_state s)
{
	switch (s) {
	case REPLICA_WAITING: return "waiting";
	case REPLICA_LOCATING: return "locating";
	case REPLICA_IDLE: return "idle";
	case REPLICA_BUSY: return "busy";
	case REPLICA_CLOSED: return "closed";
	}
	return "unknown";
}

static const char *db_name_of(const struct db *db)
{
	return db->cfg->name ? db->cfg->name : db->path;
}

/* ---- WAL bytes shipped ---------------------------------------------------- */

static struct observed *observed_of(struct control *c, const struct replica *r)
{
	for (size_t i = 0; i < c->n_obs; i++)
		if (c->obs[i].r == r)
			return &c->obs[i];
	return NULL;
}

/* Remembers where the replica is. */
static void observe(struct observed *o)
{
	struct db_pos p;

	if (!replica_position(o->r, &p) || p.generation[0] == '\0')
		return;
	o->seen = p;
	o->seen_valid = true;
}

static uint64_t wal_bytes_of(const struct replica *r, void *arg)
{
	return r->stats.wal_bytes;
}

/* ---- status ---------------------------------------------------------------- */

/*
 * WAL bytes committed locally and not yet in the replica: summed over the
 * shadow indexes between them when both are in one generation; when the
 * replica is elsewhere (it needs a snapshot), the current index's bytes.
 * -1 when the replica does not know its position yet.
 */
static int64_t lag_bytes(const struct db *db, const struct replica *r)
{
	const struct db_pos *d = &db->pos;
	struct db_pos p;
	uint64_t sum = 0;

	if (!db->pos_valid)
		return 0;
	if (!replica_position(r, &p))
		return -1;
	if (strcmp(p.generation, d->generation) != 0)
		return (int64_t)d->offset;
	if (p.index > d->index || (p.index == d->index && p.offset >= d->offset))
		return 0;
	if (p.index == d->index)
		return (int64_t)(d->offset - p.offset);
	for (uint32_t i = p.index; i < d->index && i - p.index < LAG_SCAN_MAX; i++) {
		char *path = shadow_file_path(&db->shadow, d->generation, i);
		int64_t size = path ? fs_file_size(path) : -1;
		uint64_t from = i == p.index ? p.offset : 0;
		free(path);
		if (size > 0 && (uint64_t)size > from)
			sum += (uint64_t)size - from;
	}
	return (int64_t)(sum + d->offset);
}

static cJSON *replica_json(struct control *c, const struct db *db, const struct replica *r)
{
	cJSON *o = cJSON_CreateObject();
	struct db_pos p;
	bool known = replica_position(r, &p);
	int64_t lb = lag_bytes(db, r);
	cJSON *ops;

	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddStringToObject(o, "type", replica_type_name(r));
	cJSON_AddStringToObject(o, "state", replica_state_name(r->state));
	cJSON_AddItemToObject(o, "position", pos_json(&p, known));
	cJSON_AddNumberToObject(o, "lag_seconds", replica_lag_seconds(r));
	if (lb < 0)
		cJSON_AddNullToObject(o, "lag_bytes");
	else
		cJSON_AddNumberToObject(o, "lag_bytes", (double)lb);
	cJSON_AddNumberToObject(o, "pending_bytes", (double)replica_pending_bytes(r));
	add_time(o, "last_sync", r->stats.last_sync_ms);
	add_string_or_null(o, "last_error", r->stats.last_error);
	cJSON_AddNumberToObject(o, "error_count", (double)r->stats.error_count);
	cJSON_AddNumberToObject(o, "wal_bytes", (double)r->stats.wal_bytes);
	cJSON_AddNumberToObject(o, "segments", (double)r->stats.segments);
	cJSON_AddNumberToObject(o, "snapshots", (double)r->stats.snapshots);
	cJSON_AddNumberToObject(o, "validations_ok", (double)r->stats.validations_ok);
	cJSON_AddNumberToObject(o, "validations_failed", (double)r->stats.validations_failed);
	ops = cJSON_AddObjectToObject(o, "operations");
	cJSON_AddNumberToObject(ops, "put_count", (double)r->stats.put_count);
	cJSON_AddNumberToObject(ops, "put_bytes", (double)r->stats.put_bytes);
	cJSON_AddNumberToObject(ops, "get_count", (double)r->stats.get_count);
	cJSON_AddNumberToObject(ops, "get_bytes", (double)r->stats.get_bytes);
	cJSON_AddNumberToObject(ops, "list_count", (double)r->stats.list_count);
	cJSON_AddNumberToObject(ops, "delete_count", (double)r->stats.delete_count);
	return o;
}

static const char *db_state_name(const struct db *db)
{
	switch (db->state) {
	case DB_RUNNING: return db->open ? "open" : "waiting";
	case DB_STOPPING: return "stopping";
	case DB_STOPPED: return "stopped";
	case DB_CLOSING: return "closing";
	case DB_CLOSED: return "closed";
	}
	return "unknown";
}

static cJSON *db_json(struct control *c, const struct db *db)
{
	cJSON *o = cJSON_CreateObject(), *ck, *reps;
	const struct db_stats *st = &db->stats;

	cJSON_AddStringToObject(o, "name", db_name_of(db));
	cJSON_AddStringToObject(o, "path", db->path);
	cJSON_AddStringToObject(o, "state", db_state_name(db));
	cJSON_AddNumberToObject(o, "page_size", db->page_size);
	cJSON_AddItemToObject(o, "position", pos_json(&db->pos, db->pos_valid));
	cJSON_AddNumberToObject(o, "db_size", (double)st->db_size);
	cJSON_AddNumberToObject(o, "wal_size", (double)st->wal_size);
	cJSON_AddNumberToObject(o, "total_wal_bytes", (double)st->total_wal_bytes);
	add_time(o, "last_sync", st->last_sync_ms);
	add_string_or_null(o, "last_error", st->last_error);
	cJSON_AddNumberToObject(o, "sync_count", (double)st->sync_count);
	cJSON_AddNumberToObject(o, "sync_error_count", (double)st->sync_error_count);
	cJSON_AddNumberToObject(o, "sync_seconds", st->sync_seconds);
	cJSON_AddNumberToObject(o, "generations_started", (double)st->generations_started);
	ck = cJSON_AddObjectToObject(o, "checkpoints");
	for (int m = 0; m < CHECKPOINT_MODES; m++) {
		cJSON *one = cJSON_AddObjectToObject(ck, db_checkpoint_mode_name((enum db_checkpoint_mode)m));
		cJSON_AddNumberToObject(one, "count", (double)st->checkpoint_count[m]);
		cJSON_AddNumberToObject(one, "error_count", (double)st->checkpoint_error_count[m]);
		cJSON_AddNumberToObject(one, "seconds", st->checkpoint_seconds[m]);
	}
	reps = cJSON_AddArrayToObject(o, "replicas");
	for (size_t i = 0; i < db->n_replicas; i++)
		cJSON_AddItemToArray(reps, replica_json(c, db, db->replicas[i]));
	return o;
}

static cJSON *status_json(struct control *c)
{
	cJSON *o = cJSON_CreateObject(), *dbs;

	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "uptime_seconds", floor((wall_seconds() - c->start_time) * 1000) / 1000);
	add_time(o, "started_at", (int64_t)(c->start_time * 1000));
	cJSON_AddNumberToObject(o, "connections", c->http.n_conns);
	cJSON_AddNumberToObject(o, "waiting_requests", (double)c->n_waiters);
	dbs = cJSON_AddArrayToObject(o, "dbs");
	for (size_t i = 0; i < c->n_dbs; i++)
		cJSON_AddItemToArray(dbs, db_json(c, c->dbs[i]));
	return o;
}

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

static cJSON *replica_positions(const struct db *db)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; i < db->n_replicas; i++) {
		const struct replica *r = db->replicas[i];
		cJSON *o = cJSON_CreateObject();
		struct db_pos p;
		bool known = replica_position(r, &p);
		cJSON_AddStringToObject(o, "name", r->name);
		cJSON_AddItemToObject(o, "position", pos_json(&p, known));
		add_string_or_null(o, "last_error", r->stats.last_error);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static void settle(struct waiter *w, int status, cJSON *o)
{
	respond_json(w->req, status, o);
	waiter_remove(w);
}

static void settle_error(struct waiter *w, int status, const char *msg)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", msg);
	cJSON_AddStringToObject(o, "name", db_name_of(w->db));
	if (w->have_target)
		cJSON_AddItemToObject(o, "position", pos_json(&w->target, true));
	if (w->kind != WAIT_CHECKPOINT)
		cJSON_AddItemToObject(o, "replicas", replica_positions(w->db));
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
	cJSON_AddStringToObject(o, "name", db_name_of(db));
	cJSON_AddItemToObject(o, "position", pos_json(&w->target, true));
	cJSON_AddBoolToObject(o, "replicated", w->wait_replicas);
	cJSON_AddItemToObject(o, "replicas", replica_positions(db));
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
		cJSON_AddStringToObject(o, "name", db_name_of(db));
		cJSON_AddStringToObject(o, "mode", mode);
		cJSON_AddItemToObject(o, "position", pos_json(&db->pos, db->pos_valid));
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
	cJSON_AddStringToObject(o, "name", db_name_of(db));
	cJSON_AddItemToObject(o, "replicas", replica_positions(db));
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
			http_server_drop(w->req); /* on_abort removes w */
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

static void on_progress(struct db *db, struct replica *r, void *arg)
{
	struct control *c = arg;

	if (r != NULL) {
		struct observed *o = observed_of(c, r);
		if (o != NULL)
			observe(o);
	} else {
		for (size_t i = 0; i < db->n_replicas; i++) {
			struct observed *o = observed_of(c, db->replicas[i]);
			if (o != NULL && !o->seen_valid)
				observe(o);
		}
		/* This publish may be the one a waiter waits for. */
		for (struct waiter *w = c->waiters; w != NULL; w = w->next)
			if (w->db == db && w->kind == WAIT_SYNC && !w->have_target &&
			    db->stats.sync_count >= w->jobs_needed && db->pos_valid) {
				w->have_target = true;
				w->target = db->pos;
			}
	}
	check_all(c, db);
}

static void on_abort(struct http_server_request *req, void *arg)
{
	struct control *c = arg;

	for (struct waiter *w = c->waiters; w != NULL; w = w->next)
		if (w->req == req) {
			waiter_remove(w);
			return;
		}
}

/* ---- parameters ------------------------------------------------------------ */

enum { P_WAIT = 1, P_TIMEOUT = 2, P_MODE = 4 };

struct params {
	bool wait;
	int64_t timeout_ms;
	enum db_checkpoint_mode mode;
};

static int set_wait(const char *v, struct params *p, char *err, size_t errlen)
{
	if (v[0] == '\0' || strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0) {
		p->wait = true;
		return 0;
	}
	if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0) {
		p->wait = false;
		return 0;
	}
	snprintf(err, errlen, "invalid value \"%s\" for wait (1 or 0)", v);
	return -EINVAL;
}

static int set_timeout_ms(int64_t ms, const char *as_written, struct params *p, char *err, size_t errlen)
{
	if (ms <= 0 || ms > MAX_TIMEOUT_MS) {
		snprintf(err, errlen, "invalid timeout \"%s\" (more than 0, at most 10m)", as_written);
		return -EINVAL;
	}
	p->timeout_ms = ms;
	return 0;
}

static int set_timeout(const char *v, struct params *p, char *err, size_t errlen)
{
	int64_t ms;

	if (duration_parse(v, &ms) != 0) {
		snprintf(err, errlen, "invalid timeout \"%s\" (a duration such as 10s)", v);
		return -EINVAL;
	}
	return set_timeout_ms(ms, v, p, err, errlen);
}

static int set_mode(const char *v, struct params *p, char *err, size_t errlen)
{
	for (int m = 0; m < CHECKPOINT_MODES; m++)
		if (strcasecmp(v, db_checkpoint_mode_name((enum db_checkpoint_mode)m)) == 0) {
			p->mode = (enum db_checkpoint_mode)m;
			return 0;
		}
	snprintf(err, errlen, "invalid checkpoint mode \"%s\" (PASSIVE, FULL, RESTART or TRUNCATE)", v);
	return -EINVAL;
}

static int set_param(const char *k, const char *v, unsigned allowed, struct params *p, char *err,
		     size_t errlen)
{
	if ((allowed & P_WAIT) && strcmp(k, "wait") == 0)
		return set_wait(v, p, err, errlen);
	if ((allowed & P_TIMEOUT) && strcmp(k, "timeout") == 0)
		return set_timeout(v, p, err, errlen);
	if ((allowed & P_MODE) && strcmp(k, "mode") == 0)
		return set_mode(v, p, err, errlen);
	snprintf(err, errlen, "unknown parameter \"%s\"", k);
	return -EINVAL;
}

static int parse_query(const char *q, unsigned allowed, struct params *p, char *err, size_t errlen)
{
	size_t n = strlen(q);
	char *buf = malloc(2 * n + 2), *k, *v;
	int rc = 0;

	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	k = buf;
	v = buf + n + 1;
	while (*q != '\0' && rc == 0) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
		const char *eq = memchr(q, '=', (size_t)(end - q));
		const char *kend = eq ? eq : end;

		if (end > q) {
			if (pct_decode(q, (size_t)(kend - q), PCT_PLUS_SPACE, k) != 0 ||
			    pct_decode(eq ? eq + 1 : end, eq ? (size_t)(end - eq - 1) : 0, PCT_PLUS_SPACE,
				       v) != 0) {
				snprintf(err, errlen, "malformed query string");
				rc = -EINVAL;
				break;
			}
			rc = set_param(k, v, allowed, p, err, errlen);
		}
		q = amp ? amp + 1 : end;
	}
	free(buf);
	return rc;
}

static int parse_body(const char *body, size_t len, unsigned allowed, struct params *p, char *err,
		      size_t errlen)
{
	cJSON *root, *it;
	int rc = 0;
	size_t i;

	for (i = 0; i < len && strchr(" \t\r\n", body[i]) != NULL; i++)
		;
	if (i == len)
		return 0; /* empty */
	root = cJSON_ParseWithLength(body, len);
	if (root == NULL) {
		snprintf(err, errlen, "invalid JSON body");
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "the JSON body must be an object");
		cJSON_Delete(root);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, root)
	{
		const char *k = it->string ? it->string : "";
		bool known = ((allowed & P_WAIT) && strcmp(k, "wait") == 0) ||
			     ((allowed & P_TIMEOUT) && strcmp(k, "timeout") == 0) ||
			     ((allowed & P_MODE) && strcmp(k, "mode") == 0);
		if (!known) {
			snprintf(err, errlen, "unknown parameter \"%s\"", k);
			rc = -EINVAL;
		} else if (strcmp(k, "wait") == 0 && cJSON_IsBool(it)) {
			p->wait = cJSON_IsTrue(it);
		} else if (strcmp(k, "wait") == 0 && cJSON_IsNumber(it)) {
			p->wait = it->valuedouble != 0;
		} else if (strcmp(k, "timeout") == 0 && cJSON_IsNumber(it)) {
			double s = it->valuedouble;
			rc = set_timeout_ms(s > 0 && s <= MAX_TIMEOUT_MS ? (int64_t)(s * 1000) : -1, "(number)", p,
					    err, errlen);
		} else if (cJSON_IsString(it)) {
			rc = set_param(k, it->valuestring, allowed, p, err, errlen);
		} else {
			snprintf(err, errlen, "invalid value for \"%s\"", k);
			rc = -EINVAL;
		}
		if (rc != 0)
			break;
	}
	cJSON_Delete(root);
	return rc;
}

static int parse_params(struct http_server_request *req, unsigned allowed, struct params *p)
{
	char err[512];

	p->wait = false;
	p->timeout_ms = DEFAULT_TIMEOUT_MS;
	p->mode = CHECKPOINT_PASSIVE;
	if (parse_query(req->query, allowed, p, err, sizeof(err)) != 0 ||
	    (req->body != NULL && parse_body(req->body, req->body_len, allowed, p, err, sizeof(err)) != 0)) {
		http_server_respond_error(req, 400, err);
		return -EINVAL;
	}
	return 0;
}

/* ---- endpoints -------------------------------------------------------------- */

static struct waiter *waiter_new(struct control *c, struct http_server_request *req, struct db *db,
				 enum waiter_kind kind, const struct params *p)
{
	struct waiter *w;

	/* Waiting requests may hold at most half the connections: the rest stay for status. */
	if (c->n_waiters >= c->max_waiters) {
		respond_errorf(req, 503, "too many requests waiting (%zu); try again later", c->n_waiters);
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

static bool db_usable(struct http_server_request *req, const struct db *db)
{
	if (db->state != DB_RUNNING) {
		respond_errorf(req, 503, "database %s is stopping", db_name_of(db));
		return false;
	}
	if (!db->open && db->job == NULL) {
		respond_errorf(req, 503, "database %s is not open (does %s exist?)", db_name_of(db), db->path);
		return false;
	}
	return true;
}

static void handle_sync(struct control *c, struct http_server_request *req, struct db *db)
{
	struct params p;
	struct waiter *w;

	if (parse_params(req, P_WAIT | P_TIMEOUT, &p) != 0 || !db_usable(req, db))
		return;
	if ((w = waiter_new(c, req, db, WAIT_SYNC, &p)) == NULL)
		return;
	start_fresh_sync(db, w, CHECKPOINT_NONE);
	waiter_add(c, w);
}

static void handle_checkpoint(struct control *c, struct http_server_request *req, struct db *db)
{
	struct params p;
	struct waiter *w;

	if (parse_params(req, P_MODE | P_TIMEOUT, &p) != 0 || !db_usable(req, db))
		return;
	if ((w = waiter_new(c, req, db, WAIT_CHECKPOINT, &p)) == NULL)
		return;
	w->ckpt_count0 = db->stats.checkpoint_count[p.mode];
	w->ckpt_errors0 = db->stats.checkpoint_error_count[p.mode];
	start_fresh_sync(db, w, p.mode);
	waiter_add(c, w);
}

static void handle_snapshot(struct control *c, struct http_server_request *req, struct db *db)
{
	struct params p;
	struct waiter *w;
	cJSON *o;

	if (parse_params(req, P_WAIT | P_TIMEOUT, &p) != 0 || !db_usable(req, db))
		return;
	if ((w = waiter_new(c, req, db, WAIT_SNAPSHOT, &p)) == NULL)
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
	cJSON_AddStringToObject(o, "name", db_name_of(db));
	cJSON_AddItemToObject(o, "replicas", replica_positions(db));
	respond_json(req, 202, o);
}

static void handle_metrics(struct control *c, struct http_server_request *req)
{
	struct metrics_buf b;
	struct metrics_process proc;

	for (size_t i = 0; i < c->n_obs; i++)
		if (!c->obs[i].seen_valid)
			observe(&c->obs[i]);
	metrics_buf_init(&b);
	metrics_process_read(&proc);
	metrics_write(&b, c->dbs, c->n_dbs, wal_bytes_of, c, &proc);
	if (b.failed)
		http_server_respond_error(req, 500, "out of memory");
	else
		http_server_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
	metrics_buf_free(&b);
}

static struct db *find_db(struct control *c, const char *name)
{
	for (size_t i = 0; i < c->n_dbs; i++)
		if (strcmp(db_name_of(c->dbs[i]), name) == 0)
			return c->dbs[i];
	for (size_t i = 0; i < c->n_dbs; i++)
		if (strcmp(c->dbs[i]->path, name) == 0)
			return c->dbs[i];
	return NULL;
}

static bool method_is(struct http_server_request *req, const char *allowed)
{
	bool get = strcmp(allowed, "GET") == 0;
	char hdr[64];

	if ((get && (req->method == HTTP_GET || req->method == HTTP_HEAD)) ||
	    (!get && req->method == HTTP_POST))
		return true;
	snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", get ? "GET, HEAD" : "POST");
	{
		char msg[128];
		size_t len;
		cJSON *o = cJSON_CreateObject();
		char *s;
		snprintf(msg, sizeof(msg), "method %s not allowed (use %s)",
			 http_method_str(req->method), allowed);
		cJSON_AddStringToObject(o, "error", msg);
		s = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		len = s ? strlen(s) : 0;
		http_server_respond(req, 405, "application/json", hdr, s, len);
		free(s);
	}
	return false;
}

/* Splits path into at most max decoded segments. -EINVAL on a bad escape or too many. */
static int split_path(const char *path, char **seg, size_t max, size_t *n, char *buf)
{
	const char *p = path + 1;

	*n = 0;
	if (path[0] != '/')
		return -EINVAL;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (*n == max || pct_decode(p, len, 0, buf) != 0)
			return -EINVAL;
		seg[(*n)++] = buf;
		buf += strlen(buf) + 1;
		if (slash == NULL)
			return 0;
		p = slash + 1;
	}
}

static void on_request(struct http_server_request *req, void *arg)
{
	struct control *c = arg;
	char *seg[5], *buf;
	size_t n;
	struct db *db;

	if (c->closing) {
		http_server_respond_error(req, 503, "shutting down");
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		if (method_is(req, "GET"))
			handle_metrics(c, req);
		return;
	}
	if (req->listener == CONTROL_LISTENER_METRICS) {
		respond_errorf(req, 404, "not found: %s (only /metrics is served here)", req->path);
		return;
	}
	buf = malloc(strlen(req->path) + 8);
	if (buf == NULL) {
		http_server_respond_error(req, 500, "out of memory");
		return;
	}
	if (split_path(req->path, seg, 5, &n, buf) != 0 || n < 2 || strcmp(seg[0], "v1") != 0) {
		respond_errorf(req, 404, "not found: %s", req->path);
		goto out;
	}
	if (n == 2 && strcmp(seg[1], "status") == 0) {
		if (method_is(req, "GET"))
			respond_json(req, 200, status_json(c));
		goto out;
	}
	if (strcmp(seg[1], "dbs") != 0 || n < 3 || n > 4) {
		respond_errorf(req, 404, "not found: %s", req->path);
		goto out;
	}
	if ((db = find_db(c, seg[2])) == NULL) {
		respond_errorf(req, 404, "no database named \"%s\"", seg[2]);
		goto out;
	}
	if (n == 3) {
		if (method_is(req, "GET"))
			respond_json(req, 200, db_json(c, db));
	} else if (strcmp(seg[3], "sync") == 0) {
		if (method_is(req, "POST"))
			handle_sync(c, req, db);
	} else if (strcmp(seg[3], "checkpoint") == 0) {
		if (method_is(req, "POST"))
			handle_checkpoint(c, req, db);
	} else if (strcmp(seg[3], "snapshot") == 0) {
		if (method_is(req, "POST"))
			handle_snapshot(c, req, db);
	} else {
		respond_errorf(req, 404, "not found: %s", req->path);
	}
out:
	free(buf);
}

/* ---- lifecycle --------------------------------------------------------------- */

static void control_free(struct control *c)
{
	free(c->dbs);
	free(c->obs);
	free(c);
}

static void on_handle_closed(struct control *c)
{
	if (--c->open_handles == 0)
		control_free(c);
}

static void on_http_closed(struct http_server *s)
{
	on_handle_closed(s->arg);
}

static void on_poll_closed(uv_handle_t *h)
{
	on_handle_closed(h->data);
}

int control_start(uv_loop_t *loop, struct db *const *dbs, size_t n_dbs,
		  const struct control_options *opt, struct control **out, char *err, size_t errlen)
{
	struct control *c = calloc(1, sizeof(*c));
	struct metrics_process proc;
	size_t n_obs = 0;
	int rc;

	*out = NULL;
	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	for (size_t i = 0; i < n_dbs; i++)
		n_obs += dbs[i]->n_replicas;
	c->dbs = calloc(n_dbs ? n_dbs : 1, sizeof(*c->dbs));
	c->obs = calloc(n_obs ? n_obs : 1, sizeof(*c->obs));
	if (c->dbs == NULL || c->obs == NULL) {
		control_free(c);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(c->dbs, dbs, n_dbs * sizeof(*dbs));
	c->n_dbs = n_dbs;
	for (size_t i = 0; i < n_dbs; i++)
		for (size_t j = 0; j < dbs[i]->n_replicas; j++) {
			c->obs[c->n_obs].r = dbs[i]->replicas[j];
			observe(&c->obs[c->n_obs++]);
		}
	metrics_process_read(&proc);
	c->start_time = proc.start_time > 0 ? proc.start_time : wall_seconds();
	uv_timer_init(loop, &c->poll);
	c->poll.data = c;
	http_server_init(&c->http, loop, opt->limits, on_request, on_abort, c);
	c->max_waiters = c->http.limits.max_conns / 2 > 0 ? c->http.limits.max_conns / 2 : 1;
	c->open_handles = 2;
	if (opt->socket_path != NULL) {
		rc = http_server_listen_unix(&c->http, opt->socket_path, opt->socket_mode,
					     CONTROL_LISTENER_SOCKET, err, errlen);
		if (rc != 0 && !opt->socket_optional)
			goto fail;
		if (rc != 0)
			LOG_WARN(NULL, NULL, "control socket disabled: %s", err);
		else
			LOG_INFO(NULL, NULL, "control socket listening on %s", opt->socket_path);
	}
	if (opt->metrics_addr != NULL) {
		rc = http_server_listen_tcp(&c->http, opt->metrics_addr, CONTROL_LISTENER_METRICS, err, errlen);
		if (rc != 0)
			goto fail;
		LOG_INFO(NULL, NULL, "metrics listening on %s (port %d)", opt->metrics_addr,
			 http_server_local_port(&c->http, CONTROL_LISTENER_METRICS));
	}
	for (size_t i = 0; i < n_dbs; i++) {
		dbs[i]->progress_cb = on_progress;
		dbs[i]->progress_arg = c;
	}
	*out = c;
	return 0;
fail:
	control_close(c);
	return rc;
}

void control_close(struct control *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = true;
	for (size_t i = 0; i < c->n_dbs; i++)
		if (c->dbs[i]->progress_arg == c) {
			c->dbs[i]->progress_cb = NULL;
			c->dbs[i]->progress_arg = NULL;
		}
	/* Requests still waiting are dropped with their connections. */
	while (c->waiters != NULL) {
		struct waiter *w = c->waiters;
		c->waiters = w->next;
		free(w);
	}
	c->n_waiters = 0;
	uv_close((uv_handle_t *)&c->poll, on_poll_closed);
	http_server_close(&c->http, on_http_closed);
}
