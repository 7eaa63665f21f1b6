/*
 * What the control server's files share; not for use outside them.
 *
 *   control.c         lifecycle, routing, the metrics endpoint and the
 *                     replica positions it observes, the JSON responses
 *   control_status.c  the JSON bodies that describe state (status, a db,
 *                     positions)
 *   control_wait.c    the sync, checkpoint and snapshot requests and the
 *                     waiting ones among them
 *   control_params.c  their query and body parameters (control_params.h)
 *   control_route.c   which database a /v1/dbs/ path names (control_route.h)
 *   control_health.c  GET /healthz, by health.h's rule
 *   control_dbs.c     POST /v1/dbs and DELETE /v1/dbs/NAME
 *
 * Everything runs on the loop thread. The struct control owns its arrays,
 * its waiters and its handles; the databases and replicas are borrowed.
 */
#ifndef LITESTREAM_CONTROL_INTERNAL_H
#define LITESTREAM_CONTROL_INTERNAL_H

#include "control/control.h"
#include "db/db.h"
#include "net/http_server.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct replica;
struct waiter; /* control_wait.c's */

/* The last position a replica was seen at, for the WAL bytes it has shipped. */
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
	struct waiter *waiters; /* a list, control_wait.c's to change */
	size_t n_waiters;
	size_t max_waiters;
	uv_timer_t poll;        /* runs while a request waits */
	double start_time;      /* process start, seconds since the epoch */
	struct control_hooks hooks;
	int open_handles;
	bool closing;
};

/* ---- control.c ---- */

/* The database called name (its name, else its path), or NULL. */
struct db *control_find_db(struct control *c, const char *name);

/* Answers with o as JSON (and frees it); NULL o, or no memory, is a 500. */
void control_respond_json(struct http_server_request *req, int status, cJSON *o);
void control_respond_errorf(struct http_server_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- control_status.c ---- */

double control_wall_seconds(void);
/* The name requests use for db: its section name, else its path. */
const char *control_db_name(const struct db *db);
/* JSON null for NULL or "". */
void control_add_string_or_null(cJSON *o, const char *key, const char *s);
/* {"generation", "index", "offset"}, or null when not valid or in no generation. */
cJSON *control_pos_json(const struct db_pos *p, bool valid);
/* [{"name", "position", "last_error"}] for each replica of db. */
cJSON *control_replica_positions(const struct db *db);
cJSON *control_db_json(struct control *c, const struct db *db);
cJSON *control_status_json(struct control *c);

/* ---- control_dbs.c ---- */

/* POST /v1/dbs, DELETE /v1/dbs/NAME and POST /v1/dbs/NAME/verify (through c->hooks). */
void control_dbs_add(struct control *c, struct http_server_request *req);
void control_dbs_remove(struct control *c, struct http_server_request *req, struct db *db);
void control_dbs_verify(struct control *c, struct http_server_request *req, struct db *db);

/* ---- control_health.c ---- */

/* GET /healthz (either listener): health.h's rule over the replicas. */
void control_health(struct control *c, struct http_server_request *req);

/* ---- control_wait.c ---- */

/* POST /v1/dbs/NAME/sync, .../checkpoint, .../snapshot: each answers req, now or later. */
void control_wait_sync(struct control *c, struct http_server_request *req, struct db *db);
void control_wait_checkpoint(struct control *c, struct http_server_request *req, struct db *db);
void control_wait_snapshot(struct control *c, struct http_server_request *req, struct db *db);

/*
 * The databases' progress hook, after control.c has noted the replicas'
 * positions: published is true when a sync has just published db->pos.
 * Settles every waiter of db that can be.
 */
void control_wait_progress(struct control *c, struct db *db, bool published);

/* http_server's abort callback (arg: the struct control): forgets req's waiter. */
void control_wait_on_abort(struct http_server_request *req, void *arg);

/* Answers every waiter of db with a 503 (the database is going away). */
void control_wait_drop_db(struct control *c, const struct db *db);

/* Frees every waiter without answering (their connections are being closed). */
void control_wait_drop_all(struct control *c);

#endif
