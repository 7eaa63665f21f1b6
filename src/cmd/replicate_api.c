/*
 * The control socket's POST /v1/dbs and DELETE /v1/dbs/NAME, on the
 * replicate side (control.h's struct control_hooks): a database added
 * this way is one more member of the set (origin "api"), made as URL mode
 * makes one (config_from_args(): the replicas named by their type), and
 * lasts until the process exits: the configuration file stays the source
 * of truth, and SIGHUP leaves these alone. One removed this way (of any
 * origin) ships what is left and closes, as one gone from a [dir] does.
 */
#include "cmd/replicate.h"
#include "db/db_probe.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool name_taken(const struct app *app, const char *name)
{
	for (size_t i = 0; i < app->n_dbs; i++)
		if (!app->dbs[i]->retiring && app->dbs[i]->cfg.name != NULL &&
		    strcmp(app->dbs[i]->cfg.name, name) == 0)
			return true;
	return false;
}

/* The file at path is a database in WAL mode: 0, or an HTTP status with err. */
static int check_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char why[256];
	int rc;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path,
			 errno == ENOENT ? "no such file (create the database first)" : strerror(errno));
		return errno == ENOENT ? 404 : 422;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return 422;
	}
	rc = db_probe(path, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, rc == -EAGAIN ? "not a database yet (empty)" : why);
		return 422;
	}
	return 0;
}

static int api_add(void *arg, const char *path, const char *name, const char *const *urls,
		   size_t n_urls, struct db **out, char *err, size_t errlen)
{
	struct app *app = arg;
	struct config cfg;
	struct db_config dc;
	struct watched *w;
	int status;

	if (app->stopping) {
		snprintf(err, errlen, "shutting down");
		return 503;
	}
	if ((w = replicate_db_find(app, path)) != NULL) {
		snprintf(err, errlen, "%s is replicated already (as %s, added by %s)%s", path,
			 w->cfg.name ? w->cfg.name : path, w->origin, w->retiring ? "; it is closing" : "");
		return 409;
	}
	if ((status = check_file(path, err, errlen)) != 0)
		return status;
	if (config_from_args(path, (char *const *)urls, n_urls, &cfg, err, errlen) != 0)
		return 400;
	dc = cfg.dbs[0];
	memset(&cfg.dbs[0], 0, sizeof(cfg.dbs[0]));
	config_free(&cfg);
	if (name != NULL) {
		char *copy = strdup(name);

		if (copy == NULL) {
			config_db_free(&dc);
			snprintf(err, errlen, "out of memory");
			return 500;
		}
		free(dc.name);
		dc.name = copy;
	}
	if (name_taken(app, dc.name)) {
		snprintf(err, errlen, "a database called \"%s\" is replicated already%s", dc.name,
			 name == NULL ? " (give another \"name\")" : "");
		config_db_free(&dc);
		return 409;
	}
	if ((w = replicate_db_new(app, &dc, "api", err, errlen)) == NULL)
		return 400;
	LOG_INFO(w->db.path, NULL, "added through the control socket as %s", w->cfg.name);
	replicate_db_start(app, w);
	*out = &w->db;
	return 201;
}

static int api_remove(void *arg, struct db *db, char *err, size_t errlen)
{
	struct app *app = arg;
	struct watched *w = (struct watched *)db;

	if (app->stopping) {
		snprintf(err, errlen, "shutting down");
		return 503;
	}
	if (w->retiring) {
		snprintf(err, errlen, "%s is closing already", db->path);
		return 409;
	}
	LOG_INFO(db->path, NULL, "removal asked through the control socket");
	replicate_db_remove(app, w);
	return 202;
}

static int api_verify(void *arg, struct db *db, char *err, size_t errlen)
{
	(void)arg;
	return replicate_verify_start((struct watched *)db, err, errlen);
}

static const char *api_origin(void *arg, const struct db *db)
{
	(void)arg;
	return ((const struct watched *)db)->origin;
}

void replicate_api_hooks(struct app *app, struct control_hooks *h)
{
	h->add = api_add;
	h->remove = api_remove;
	h->origin = api_origin;
	h->verify = api_verify;
	h->arg = app;
}
