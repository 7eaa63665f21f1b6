/*
 * GET /healthz, on the control socket and on metrics-addr: every replica
 * (of every database, or of the one db=NAME names) judged by health.h's
 * rule with the query's limits. 200 {"status": "ok", "replicas": N} when
 * all are healthy; 503 {"status": "unhealthy", "replicas": N, "error":
 * "DB(REPLICA): REASON; ...", "unhealthy": [{"db", "path", "replica",
 * "reason", "lag_seconds", "last_error"}]} otherwise; 400 for a bad
 * parameter, 404 for an unknown db. Reads loop-owned state only.
 */
#include "control/control_internal.h"

#include "control/health.h"
#include "replica/replica.h"
#include "util/strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Adds db's unhealthy replicas to bad (and to the summary); counts them all in *n. */
static void check_db(const struct health_limits *l, const struct db *db, cJSON *bad,
		     struct strbuf *summary, size_t *n)
{
	for (size_t i = 0; i < db->n_replicas; i++) {
		const struct replica *r = db->replicas[i];
		double lag = replica_lag_seconds(r);
		char why[640];
		cJSON *o;

		(*n)++;
		if (health_replica_ok(l, r->stats.last_error, lag, why, sizeof(why)))
			continue;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "db", control_db_name(db));
		cJSON_AddStringToObject(o, "path", db->path);
		cJSON_AddStringToObject(o, "replica", r->name);
		cJSON_AddStringToObject(o, "reason", why);
		cJSON_AddNumberToObject(o, "lag_seconds", lag);
		control_add_string_or_null(o, "last_error", r->stats.last_error);
		cJSON_AddItemToArray(bad, o);
		if (summary->len > 0)
			strbuf_puts(summary, "; ");
		strbuf_puts(summary, control_db_name(db));
		strbuf_putc(summary, '(');
		strbuf_puts(summary, r->name);
		strbuf_puts(summary, "): ");
		strbuf_puts(summary, why);
	}
}

void control_health(struct control *c, struct http_server_request *req)
{
	struct health_limits l;
	struct strbuf summary = {0};
	struct db *only = NULL;
	cJSON *o, *bad;
	char err[512];
	size_t n = 0;
	int rc;

	health_limits_init(&l);
	if ((rc = health_limits_parse(req->query, &l, err, sizeof(err))) != 0) {
		control_respond_errorf(req, rc == -ENOMEM ? 500 : 400, "%s", err);
		goto out;
	}
	if (l.db != NULL && (only = control_find_db(c, l.db)) == NULL) {
		control_respond_errorf(req, 404, "no database named \"%s\"", l.db);
		goto out;
	}
	o = cJSON_CreateObject();
	bad = cJSON_CreateArray();
	for (size_t i = 0; i < c->n_dbs; i++)
		if (only == NULL || c->dbs[i] == only)
			check_db(&l, c->dbs[i], bad, &summary, &n);
	cJSON_AddStringToObject(o, "status", cJSON_GetArraySize(bad) ? "unhealthy" : "ok");
	cJSON_AddNumberToObject(o, "replicas", (double)n);
	if (cJSON_GetArraySize(bad) > 0) {
		cJSON_AddStringToObject(o, "error", summary.p != NULL && !summary.oom ? summary.p : "unhealthy");
		cJSON_AddItemToObject(o, "unhealthy", bad);
		control_respond_json(req, 503, o);
	} else {
		cJSON_Delete(bad);
		control_respond_json(req, 200, o);
	}
	strbuf_free(&summary);
out:
	health_limits_free(&l);
}
