/*
 * POST /v1/dbs and DELETE /v1/dbs/NAME: databases started and stopped
 * through the socket (control.h). The request is read and checked here;
 * making or stopping the database is the owner's (the hooks of struct
 * control_options: `replicate`'s set), which answers with an HTTP status
 * and a message when it refuses.
 *
 * The body of POST: {"path": "/abs/app.db", "replicas": ["s3://b/p", ...],
 * "name": "app"} (name optional: the file's name). Errors: 400 for a body
 * that is not JSON or has the wrong shape, a relative path, no replica or
 * a replica URL that does not parse; 404 for a path where no file is; 409
 * for a path or name already replicated; 422 for a file that is not a
 * SQLite database in WAL mode. 201 with the database's JSON on success.
 */
#include "control/control_internal.h"
#include "replica/replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_URLS 16

/* The body's fields; 0, or -1 with the 400's message in err. */
static int read_body(const struct http_server_request *req, cJSON **root, const char **path,
		     const char **name, const char **urls, size_t *n, char *err, size_t errlen)
{
	cJSON *o, *p, *nm, *rs, *u;

	if (req->body == NULL || req->body_len == 0) {
		snprintf(err, errlen, "a JSON body is required: {\"path\": ..., \"replicas\": [URL, ...]}");
		return -1;
	}
	*root = o = cJSON_ParseWithLength(req->body, req->body_len);
	if (o == NULL) {
		snprintf(err, errlen, "invalid JSON body");
		return -1;
	}
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "the JSON body must be an object");
		return -1;
	}
	for (cJSON *k = o->child; k != NULL; k = k->next)
		if (strcmp(k->string, "path") != 0 && strcmp(k->string, "replicas") != 0 &&
		    strcmp(k->string, "name") != 0) {
			snprintf(err, errlen, "unknown field \"%.64s\" (want path, replicas, name)", k->string);
			return -1;
		}
	p = cJSON_GetObjectItemCaseSensitive(o, "path");
	nm = cJSON_GetObjectItemCaseSensitive(o, "name");
	rs = cJSON_GetObjectItemCaseSensitive(o, "replicas");
	if (!cJSON_IsString(p) || p->valuestring[0] != '/') {
		snprintf(err, errlen, "\"path\" must be the database's absolute path");
		return -1;
	}
	if (nm != NULL && (!cJSON_IsString(nm) || nm->valuestring[0] == '\0')) {
		snprintf(err, errlen, "\"name\" must be a non-empty string");
		return -1;
	}
	if (!cJSON_IsArray(rs) || cJSON_GetArraySize(rs) == 0 || cJSON_GetArraySize(rs) > MAX_URLS) {
		snprintf(err, errlen, "\"replicas\" must be an array of 1 to %d replica URLs", MAX_URLS);
		return -1;
	}
	*n = 0;
	cJSON_ArrayForEach(u, rs) {
		if (!cJSON_IsString(u)) {
			snprintf(err, errlen, "\"replicas\" must hold URL strings");
			return -1;
		}
		urls[(*n)++] = u->valuestring;
	}
	*path = p->valuestring;
	*name = nm != NULL ? nm->valuestring : NULL;
	return 0;
}

void control_dbs_add(struct control *c, struct http_server_request *req)
{
	const char *path = NULL, *name = NULL, *urls[MAX_URLS];
	cJSON *root = NULL;
	struct db *db = NULL;
	char err[1024];
	size_t n = 0;
	int status;

	if (c->hooks.add == NULL) {
		control_respond_errorf(req, 405, "databases cannot be added here");
		return;
	}
	if (read_body(req, &root, &path, &name, urls, &n, err, sizeof(err)) != 0) {
		cJSON_Delete(root);
		control_respond_errorf(req, 400, "%s", err);
		return;
	}
	status = c->hooks.add(c->hooks.arg, path, name, urls, n, &db, err, sizeof(err));
	cJSON_Delete(root);
	if (status != 201 || db == NULL) {
		control_respond_errorf(req, status != 201 ? status : 500, "%s", err);
		return;
	}
	control_respond_json(req, 201, control_db_json(c, db));
}

void control_dbs_verify(struct control *c, struct http_server_request *req, struct db *db)
{
	cJSON *o, *names;
	char err[512];
	int status;

	if (c->hooks.verify == NULL) {
		control_respond_errorf(req, 405, "databases cannot be verified here");
		return;
	}
	status = c->hooks.verify(c->hooks.arg, db, err, sizeof(err));
	if (status != 202) {
		control_respond_errorf(req, status, "%s", err);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", control_db_name(db));
	cJSON_AddStringToObject(o, "path", db->path);
	cJSON_AddStringToObject(o, "verify", "running");
	names = cJSON_AddArrayToObject(o, "replicas");
	for (size_t i = 0; i < db->n_replicas; i++)
		cJSON_AddItemToArray(names, cJSON_CreateString(db->replicas[i]->name));
	control_respond_json(req, 202, o);
}

void control_dbs_remove(struct control *c, struct http_server_request *req, struct db *db)
{
	cJSON *o;
	char err[512];
	int status;

	if (c->hooks.remove == NULL) {
		control_respond_errorf(req, 405, "databases cannot be removed here");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", control_db_name(db));
	cJSON_AddStringToObject(o, "path", db->path);
	status = c->hooks.remove(c->hooks.arg, db, err, sizeof(err));
	if (status != 202) {
		cJSON_Delete(o);
		control_respond_errorf(req, status, "%s", err);
		return;
	}
	cJSON_AddStringToObject(o, "state", "closing");
	control_respond_json(req, 202, o);
}
