/*
 * The control server of `litestream replicate`: HTTP/1.1 with JSON bodies
 * on a Unix socket, and optionally Prometheus metrics on TCP
 * (http_server.h does the HTTP, metrics.h the exposition).
 *
 * On the Unix socket:
 *
 *   GET  /v1/status                 the process and every database
 *   GET  /v1/dbs/NAME               one database
 *   POST /v1/dbs                    {"path", "replicas": [URL...], "name"}: starts one
 *                                   (control_dbs.c has the errors); until the next start
 *   DELETE /v1/dbs/NAME             stops one after its last shipment (202)
 *   POST /v1/dbs/NAME/sync          ?wait=1&timeout=10s
 *   POST /v1/dbs/NAME/checkpoint    ?mode=PASSIVE|FULL|RESTART|TRUNCATE&timeout=
 *   POST /v1/dbs/NAME/snapshot      ?wait=1&timeout=
 *   GET  /metrics                   Prometheus text format 0.0.4
 *   GET  /healthz                   ?max-lag=10s&db=NAME: 200 when every
 *                                   replica is healthy (health.h), else 503
 *
 * and on metrics-addr only GET /metrics and GET /healthz. NAME is a
 * database's name or path as control_route.h reads it. Parameters come in the query or
 * as a JSON object body ({"wait": true, "timeout": "10s", "mode": "FULL"});
 * an unknown parameter is an error. Errors are {"error": "..."} with 400
 * (bad parameter, invalid JSON), 404 (unknown path or database), 405
 * (method), 413/414 (too large), 408 (slow client), 500, 503 (the database
 * is not open or is stopping, or too many requests wait), 504 (timeout),
 * 505 (not HTTP/1.x).
 *
 * sync: runs a sync of the database that starts after the request arrived,
 * so the position it publishes holds every transaction committed before
 * the request. Without wait, answers with that position. With wait,
 * answers only when every replica holds that position too (it reached it
 * in the same generation, or moved to the database's newer generation,
 * which starts with a snapshot taken later). A replica already there
 * costs nothing: no upload is forced. 504 at the timeout (default 30s, at
 * most 10m). checkpoint: runs one in the mode asked (default PASSIVE) at
 * that next sync and answers with its outcome. snapshot: asks every
 * replica for a snapshot of the current state; with wait, answers when
 * each has written one.
 *
 * While a request waits, a 50 ms timer and the server's subscriptions to
 * the databases and replicas (db_subscribe, replica_subscribe) check it;
 * nothing else is polled. A waiting request holds one connection and no
 * other resource; at most half the connections may wait at once (503
 * beyond), and a client that goes away stops its wait within 50 ms.
 */
#ifndef LITESTREAM_CONTROL_H
#define LITESTREAM_CONTROL_H

#include "net/http_server.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct db;
struct control;

/* The tags of the two listeners (http_server_request.listener). */
enum { CONTROL_LISTENER_SOCKET = 0, CONTROL_LISTENER_METRICS = 1 };

/*
 * What the owner of the databases does for POST /v1/dbs and DELETE
 * /v1/dbs/NAME (control_dbs.c). add: start replicating the database at
 * path (absolute) to the replica URLs, called name (NULL: the file's name);
 * returns 201 with *out the new database (served from then on), else an
 * HTTP status (404, 409, 422, 400, 500) with the message in err. remove:
 * stop db after its last shipment; 202, else a status and err. verify
 * (POST /v1/dbs/NAME/verify): start checking db's replicas in the
 * background, the outcome in each replica's stats; 202, else a status
 * (409: one runs already) and err. origin: how
 * a database was added ("config", "dir NAME", "api"), for status; NULL
 * hooks: those requests are refused.
 */
struct control_hooks {
	int (*add)(void *arg, const char *path, const char *name, const char *const *urls,
		   size_t n_urls, struct db **out, char *err, size_t errlen);
	int (*remove)(void *arg, struct db *db, char *err, size_t errlen);
	int (*verify)(void *arg, struct db *db, char *err, size_t errlen);
	const char *(*origin)(void *arg, const struct db *db);
	void *arg;
};

struct control_options {
	const char *socket_path;  /* NULL: no Unix socket */
	int socket_mode;          /* e.g. 0600 */
	bool socket_optional;     /* a socket that cannot be created is a warning, not an error */
	const char *metrics_addr; /* "host:port" or NULL */
	const struct http_server_limits *limits; /* NULL: http_server_default_limits */
	struct control_hooks hooks;
};

/*
 * Starts serving the given databases (borrowed; they must outlive the
 * server) and subscribes to them and their replicas. On success *out is the server.
 * On failure returns -errno with a message in err and *out is NULL; the
 * loop must still run for a moment to close what was opened (the memory
 * is freed then).
 */
int control_start(uv_loop_t *loop, struct db *const *dbs, size_t n_dbs,
		  const struct control_options *opt, struct control **out, char *err, size_t errlen);

/*
 * Databases that come and go while the server runs (a [dir]'s, SIGHUP,
 * POST /v1/dbs): add serves db (borrowed, with its replicas listed) from
 * now on, 0 or -ENOMEM; remove stops serving it, answering its waiting
 * requests with 503, before it closes. A NULL server is fine.
 */
int control_add_db(struct control *c, struct db *db);
void control_remove_db(struct control *c, struct db *db);

/*
 * Stops listening, removes the socket file, drops waiting requests and
 * closes every connection; ends the subscriptions. The memory is
 * freed once the last handle is closed. NULL is fine.
 */
void control_close(struct control *c);

#endif
