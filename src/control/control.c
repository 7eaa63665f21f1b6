/*
 * The control server: its lifecycle, the routing of requests, the
 * metrics endpoint, and the JSON answers' plumbing. control.h has the API
 * as clients see it; control_internal.h how the work is divided (status
 * bodies, waiting requests, parameters).
 *
 * Routing: /v1/dbs/... goes by control_route.h (a database name or path
 * as written, slashes and all, or percent-encoded; any byte but NUL);
 * other paths are split at '/' and each segment percent-decoded. The
 * metrics listener serves /metrics and /healthz alone. A database is found by its name,
 * then by its path.
 *
 * The server watches where each replica is (struct observed) through its
 * subscriptions to the databases and their replicas, and hands the same
 * events on to the waiting requests.
 */
#include "control/control_internal.h"

#include "control/control_route.h"
#include "util/log.h"
#include "control/metrics.h"
#include "util/pct.h"
#include "replica/replica.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- answers ----------------------------------------------------------------- */

void control_respond_json(struct http_server_request *req, int status, cJSON *o)
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

void control_respond_errorf(struct http_server_request *req, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_server_respond_error(req, status, msg);
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

/*
 * Progress, from the subscriptions to the databases and their replicas: r
 * had an upload acknowledged, or (r NULL) a sync of db published its
 * position. Then the waiting requests look.
 */
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
	}
	control_wait_progress(c, db, r == NULL);
}

/* Every sync that published (r == NULL above) and every upload acknowledged. */
static void on_db_event(void *arg, const struct db_event *ev)
{
	if (ev->kind == DB_EVENT_POSITION)
		on_progress(ev->db, NULL, arg);
}

static void on_replica_progress(void *arg, struct replica *r)
{
	on_progress(r->db, r, arg);
}

/* ---- routes ------------------------------------------------------------------ */

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

struct db *control_find_db(struct control *c, const char *name)
{
	for (size_t i = 0; i < c->n_dbs; i++)
		if (strcmp(control_db_name(c->dbs[i]), name) == 0)
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

static void *lookup_db(void *arg, const char *name)
{
	return control_find_db(arg, name);
}

/* /v1/dbs/REST: control_route.h says which database and what for. */
static void handle_db(struct control *c, struct http_server_request *req, const char *rest)
{
	enum control_db_action action;
	char *name = malloc(strlen(rest) + 1);
	void *found;
	struct db *db;
	int rc;

	if (name == NULL) {
		http_server_respond_error(req, 500, "out of memory");
		return;
	}
	rc = control_route_db(rest, lookup_db, c, name, &found, &action);
	db = found;
	if (rc == -ENOENT)
		control_respond_errorf(req, 404, "no database named \"%s\"", name);
	else if (rc == -EOPNOTSUPP)
		control_respond_errorf(req, 404, "not found: %s (a database takes sync, checkpoint, snapshot or verify)",
				       req->path);
	else if (rc != 0)
		control_respond_errorf(req, 404, "not found: %s", req->path);
	else if (action == CONTROL_DB_GET && req->method == HTTP_DELETE)
		control_dbs_remove(c, req, db);
	else if (action == CONTROL_DB_GET && method_is(req, "GET"))
		control_respond_json(req, 200, control_db_json(c, db));
	else if (action == CONTROL_DB_SYNC && method_is(req, "POST"))
		control_wait_sync(c, req, db);
	else if (action == CONTROL_DB_CHECKPOINT && method_is(req, "POST"))
		control_wait_checkpoint(c, req, db);
	else if (action == CONTROL_DB_SNAPSHOT && method_is(req, "POST"))
		control_wait_snapshot(c, req, db);
	else if (action == CONTROL_DB_VERIFY && method_is(req, "POST"))
		control_dbs_verify(c, req, db);
	free(name);
}

static void on_request(struct http_server_request *req, void *arg)
{
	struct control *c = arg;
	char *seg[3], *buf;
	size_t n;

	if (c->closing) {
		http_server_respond_error(req, 503, "shutting down");
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		if (method_is(req, "GET"))
			handle_metrics(c, req);
		return;
	}
	if (strcmp(req->path, "/healthz") == 0) {
		if (method_is(req, "GET"))
			control_health(c, req);
		return;
	}
	if (req->listener == CONTROL_LISTENER_METRICS) {
		control_respond_errorf(req, 404, "not found: %s (only /metrics and /healthz are served here)",
				       req->path);
		return;
	}
	if (strcmp(req->path, "/v1/dbs") == 0 || strcmp(req->path, "/v1/dbs/") == 0) {
		if (method_is(req, "POST"))
			control_dbs_add(c, req);
		return;
	}
	if (strncmp(req->path, "/v1/dbs/", 8) == 0) {
		handle_db(c, req, req->path + 8);
		return;
	}
	buf = malloc(strlen(req->path) + 8);
	if (buf == NULL) {
		http_server_respond_error(req, 500, "out of memory");
		return;
	}
	if (split_path(req->path, seg, 3, &n, buf) == 0 && n == 2 && strcmp(seg[0], "v1") == 0 &&
	    strcmp(seg[1], "status") == 0) {
		if (method_is(req, "GET"))
			control_respond_json(req, 200, control_status_json(c));
	} else {
		control_respond_errorf(req, 404, "not found: %s", req->path);
	}
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
	c->hooks = opt->hooks;
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
	c->start_time = proc.start_time > 0 ? proc.start_time : control_wall_seconds();
	uv_timer_init(loop, &c->poll);
	c->poll.data = c;
	http_server_init(&c->http, loop, opt->limits, on_request, control_wait_on_abort, c);
	c->max_waiters = c->http.limits.max_conns / 2 > 0 ? c->http.limits.max_conns / 2 : 1;
	c->open_handles = 2;
	if (opt->socket_path != NULL) {
		rc = http_server_listen_unix(&c->http, opt->socket_path, opt->socket_mode,
					     CONTROL_LISTENER_SOCKET, err, errlen);
		if (rc != 0 && !opt->socket_optional)
			goto fail;
		if (rc != 0)
			LOG_WARN_ERR(NULL, NULL, err, "control socket disabled");
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
	rc = 0;
	for (size_t i = 0; i < n_dbs && rc == 0; i++) {
		rc = db_subscribe(dbs[i], on_db_event, NULL, c);
		for (size_t j = 0; j < dbs[i]->n_replicas && rc == 0; j++)
			rc = replica_subscribe(dbs[i]->replicas[j], on_replica_progress, c);
	}
	if (rc != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	control_close(c);
	return rc;
}

int control_add_db(struct control *c, struct db *db)
{
	struct db **dbs;
	struct observed *obs;
	int rc = 0;

	if (c == NULL)
		return 0;
	dbs = realloc(c->dbs, (c->n_dbs + 1) * sizeof(*dbs));
	if (dbs == NULL)
		return -ENOMEM;
	c->dbs = dbs;
	obs = realloc(c->obs, (c->n_obs + db->n_replicas + 1) * sizeof(*obs));
	if (obs == NULL)
		return -ENOMEM;
	c->obs = obs;
	rc = db_subscribe(db, on_db_event, NULL, c);
	for (size_t j = 0; j < db->n_replicas && rc == 0; j++)
		rc = replica_subscribe(db->replicas[j], on_replica_progress, c);
	if (rc != 0) {
		db_unsubscribe(db, on_db_event, c);
		for (size_t j = 0; j < db->n_replicas; j++)
			replica_unsubscribe(db->replicas[j], on_replica_progress, c);
		return rc;
	}
	c->dbs[c->n_dbs++] = db;
	for (size_t j = 0; j < db->n_replicas; j++) {
		memset(&c->obs[c->n_obs], 0, sizeof(c->obs[c->n_obs]));
		c->obs[c->n_obs].r = db->replicas[j];
		observe(&c->obs[c->n_obs++]);
	}
	return 0;
}

void control_remove_db(struct control *c, struct db *db)
{
	size_t k = 0;

	if (c == NULL)
		return;
	control_wait_drop_db(c, db);
	db_unsubscribe(db, on_db_event, c);
	for (size_t j = 0; j < db->n_replicas; j++)
		replica_unsubscribe(db->replicas[j], on_replica_progress, c);
	for (size_t i = 0; i < c->n_dbs; i++)
		if (c->dbs[i] != db)
			c->dbs[k++] = c->dbs[i];
	c->n_dbs = k;
	k = 0;
	for (size_t i = 0; i < c->n_obs; i++)
		if (c->obs[i].r->db != db)
			c->obs[k++] = c->obs[i];
	c->n_obs = k;
}

void control_close(struct control *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = true;
	for (size_t i = 0; i < c->n_dbs; i++) {
		db_unsubscribe(c->dbs[i], on_db_event, c);
		for (size_t j = 0; j < c->dbs[i]->n_replicas; j++)
			replica_unsubscribe(c->dbs[i]->replicas[j], on_replica_progress, c);
	}
	/* Requests still waiting are dropped with their connections. */
	control_wait_drop_all(c);
	uv_close((uv_handle_t *)&c->poll, on_poll_closed);
	http_server_close(&c->http, on_http_closed);
}

