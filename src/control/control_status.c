/*
 * The JSON bodies that describe the server's state: GET /v1/status (the
 * process and every database), GET /v1/dbs/NAME (one database and its
 * replicas), and the pieces the other answers reuse (positions, the
 * replicas' positions). They read loop-owned state only and never block;
 * the one file system access is lag_bytes()'s, which sizes shadow WAL
 * files (at most LAG_SCAN_MAX of them).
 */
#include "control/control_internal.h"
#include "util/clock.h"

#include "util/fsutil.h"
#include "replica/replica.h"
#include "db/shadow.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAG_SCAN_MAX 4096 /* shadow indexes summed for lag_bytes; beyond, a lower bound */

double control_wall_seconds(void)
{
	return (double)clock_wall_ns() / 1e9;
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

void control_add_string_or_null(cJSON *o, const char *key, const char *s)
{
	if (s == NULL || s[0] == '\0')
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddStringToObject(o, key, s);
}

cJSON *control_pos_json(const struct db_pos *p, bool valid)
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

static const char *replica_type_name(const struct replica *r)
{
	if (r->backend != NULL && r->backend->ops != NULL && r->backend->ops->type != NULL)
		return r->backend->ops->type;
	return r->cfg->type == REPLICA_S3     ? "s3"
	       : r->cfg->type == REPLICA_ABS  ? "abs"
	       : r->cfg->type == REPLICA_SFTP ? "sftp"
					      : "file";
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

const char *control_db_name(const struct db *db)
{
	return db->cfg->name ? db->cfg->name : db->path;
}

cJSON *control_replica_positions(const struct db *db)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; i < db->n_replicas; i++) {
		const struct replica *r = db->replicas[i];
		cJSON *o = cJSON_CreateObject();
		struct db_pos p;
		bool known = replica_position(r, &p);
		cJSON_AddStringToObject(o, "name", r->name);
		cJSON_AddItemToObject(o, "position", control_pos_json(&p, known));
		control_add_string_or_null(o, "last_error", r->stats.last_error);
		cJSON_AddItemToArray(a, o);
	}
	return a;
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

/* "verify": POST /v1/dbs/NAME/verify's runs of this replica. */
static void add_verify(cJSON *o, const struct replica *r)
{
	cJSON *v = cJSON_AddObjectToObject(o, "verify");

	cJSON_AddBoolToObject(v, "running", r->stats.verifying);
	add_time(v, "last", r->stats.last_verify_ms);
	add_time(v, "last_ok", r->stats.last_verify_ok_ms);
	cJSON_AddNumberToObject(v, "ok", (double)r->stats.verifies_ok);
	cJSON_AddNumberToObject(v, "failed", (double)r->stats.verifies_failed);
	control_add_string_or_null(v, "last_problem", r->stats.last_verify_problem);
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
	/* Where an S3 replica's credentials come from (a name, never a secret). */
	if (r->backend != NULL && r->backend->ops->credentials_source != NULL) {
		const char *src = r->backend->ops->credentials_source(r->backend);

		control_add_string_or_null(o, "credentials", src[0] ? src : NULL);
	}
	cJSON_AddStringToObject(o, "state", replica_state_name(r->state));
	cJSON_AddItemToObject(o, "position", control_pos_json(&p, known));
	cJSON_AddNumberToObject(o, "lag_seconds", replica_lag_seconds(r));
	if (lb < 0)
		cJSON_AddNullToObject(o, "lag_bytes");
	else
		cJSON_AddNumberToObject(o, "lag_bytes", (double)lb);
	cJSON_AddNumberToObject(o, "pending_bytes", (double)replica_pending_bytes(r));
	add_time(o, "last_sync", r->stats.last_sync_ms);
	control_add_string_or_null(o, "last_error", r->stats.last_error);
	cJSON_AddNumberToObject(o, "error_count", (double)r->stats.error_count);
	cJSON_AddNumberToObject(o, "wal_bytes", (double)r->stats.wal_bytes);
	cJSON_AddNumberToObject(o, "segments", (double)r->stats.segments);
	cJSON_AddNumberToObject(o, "snapshots", (double)r->stats.snapshots);
	cJSON_AddNumberToObject(o, "validations_ok", (double)r->stats.validations_ok);
	cJSON_AddNumberToObject(o, "validations_failed", (double)r->stats.validations_failed);
	add_verify(o, r);
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

cJSON *control_db_json(struct control *c, const struct db *db)
{
	cJSON *o = cJSON_CreateObject(), *ck, *reps;
	const struct db_stats *st = &db->stats;

	cJSON_AddStringToObject(o, "name", control_db_name(db));
	cJSON_AddStringToObject(o, "path", db->path);
	if (c->hooks.origin != NULL)
		control_add_string_or_null(o, "added", c->hooks.origin(c->hooks.arg, db));
	cJSON_AddStringToObject(o, "state", db_state_name(db));
	cJSON_AddNumberToObject(o, "page_size", db->page_size);
	cJSON_AddItemToObject(o, "position", control_pos_json(&db->pos, db->pos_valid));
	cJSON_AddNumberToObject(o, "db_size", (double)st->db_size);
	cJSON_AddNumberToObject(o, "wal_size", (double)st->wal_size);
	cJSON_AddNumberToObject(o, "total_wal_bytes", (double)st->total_wal_bytes);
	add_time(o, "last_sync", st->last_sync_ms);
	control_add_string_or_null(o, "last_error", st->last_error);
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

cJSON *control_status_json(struct control *c)
{
	cJSON *o = cJSON_CreateObject(), *dbs;

	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "uptime_seconds",
				floor((control_wall_seconds() - c->start_time) * 1000) / 1000);
	add_time(o, "started_at", (int64_t)(c->start_time * 1000));
	cJSON_AddNumberToObject(o, "connections", c->http.n_conns);
	cJSON_AddNumberToObject(o, "waiting_requests", (double)c->n_waiters);
	dbs = cJSON_AddArrayToObject(o, "dbs");
	for (size_t i = 0; i < c->n_dbs; i++)
		cJSON_AddItemToArray(dbs, control_db_json(c, c->dbs[i]));
	return o;
}
