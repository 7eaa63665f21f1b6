/*
 * The set of databases `replicate` watches (replicate.h): at start the
 * [db] sections and the files of the [dir] sections, then whatever a
 * [dir]'s watcher finds or loses while the process runs. Each database is
 * its own allocation (struct watched) owning a copy of its configuration,
 * so that one can join or leave without the others moving; app->by_path
 * finds one by its path at the same cost with a thousand as with one.
 *
 * Leaving is the same way out as at exit (replicate_stop.c): the last
 * sync, the last shipment of every replica, the close; only then is the
 * database dropped from the set and freed, so that a file that comes back
 * under the same path meanwhile waits for it (its shadow WAL is the
 * same) and is looked at again after (w->recheck).
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frees what w holds (its db closed or never started) and w. */
static void watched_free(struct watched *w)
{
	replicate_verify_cancel(w);
	if (w->next != NULL) {
		config_db_free(w->next);
		free(w->next);
	}
	for (size_t j = 0; j < w->n_replicas; j++)
		replica_free(&w->replicas[j]);
	free(w->replicas);
	free(w->finished);
	db_free(&w->db);
	config_db_free(&w->cfg);
	free(w);
}

static int set_add(struct app *app, struct watched *w)
{
	if (app->n_dbs == app->cap_dbs) {
		size_t cap = app->cap_dbs ? app->cap_dbs * 2 : 16;
		struct watched **grown = realloc(app->dbs, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		app->dbs = grown;
		app->cap_dbs = cap;
	}
	if (strmap_put(&app->by_path, w->cfg.path, w) != 0)
		return -ENOMEM;
	app->dbs[app->n_dbs++] = w;
	return 0;
}

static void set_drop(struct app *app, struct watched *w)
{
	for (size_t i = 0; i < app->n_dbs; i++) {
		if (app->dbs[i] == w) {
			memmove(&app->dbs[i], &app->dbs[i + 1], (app->n_dbs - i - 1) * sizeof(*app->dbs));
			app->n_dbs--;
			break;
		}
	}
	if (strmap_get(&app->by_path, w->cfg.path) == w)
		strmap_del(&app->by_path, w->cfg.path);
}

struct watched *replicate_db_new(struct app *app, struct db_config *dc, const char *origin,
				 char *err, size_t errlen)
{
	struct watched *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL) {
		config_db_free(dc);
		snprintf(err, errlen, "%s: out of memory", dc->path);
		return NULL;
	}
	w->cfg = *dc;
	memset(dc, 0, sizeof(*dc));
	w->app = app;
	snprintf(w->origin, sizeof(w->origin), "%s", origin);
	if ((rc = db_init(&w->db, &app->loop, &w->cfg)) != 0) {
		snprintf(err, errlen, "%s: %s", w->cfg.path, strerror(-rc));
		config_db_free(&w->cfg);
		free(w);
		return NULL;
	}
	w->replicas = calloc(w->cfg.n_replicas ? w->cfg.n_replicas : 1, sizeof(*w->replicas));
	w->finished = calloc(w->cfg.n_replicas + 1, sizeof(*w->finished));
	if (w->replicas == NULL || w->finished == NULL) {
		snprintf(err, errlen, "%s: out of memory", w->cfg.path);
		goto fail;
	}
	for (size_t j = 0; j < w->cfg.n_replicas; j++) {
		rc = replica_init(&w->replicas[j], &app->loop, &w->db, &w->cfg.replicas[j], err, errlen);
		if (rc != 0)
			goto fail;
		w->n_replicas++;
		if (db_add_replica(&w->db, &w->replicas[j]) != 0) {
			snprintf(err, errlen, "%s: out of memory", w->cfg.path);
			goto fail;
		}
	}
	if (set_add(app, w) != 0) {
		snprintf(err, errlen, "%s: out of memory", w->cfg.path);
		goto fail;
	}
	return w;
fail:
	watched_free(w);
	return NULL;
}

void replicate_db_start(struct app *app, struct watched *w)
{
	if (control_add_db(app->control, &w->db) != 0)
		LOG_WARN(w->db.path, NULL, "out of memory: the control socket does not show this database");
	for (size_t j = 0; j < w->n_replicas; j++) {
		LOG_INFO(w->db.path, w->replicas[j].name, "replicating to %s",
			 w->replicas[j].backend->describe);
		replica_start(&w->replicas[j]);
	}
	w->started = true;
	db_start(&w->db);
}

void replicate_db_remove(struct app *app, struct watched *w)
{
	if (w->retiring || app->stopping)
		return;
	w->retiring = true;
	control_remove_db(app->control, &w->db);
	LOG_INFO(w->db.path, NULL, "removed (%s): shipping what is left, then closing", w->origin);
	replicate_db_stop(w);
}

struct watched *replicate_db_find(struct app *app, const char *path)
{
	return strmap_get(&app->by_path, path);
}

void replicate_db_closed(struct watched *w)
{
	struct app *app = w->app;
	struct db_config *next = w->next;
	char *path = w->recheck && !app->stopping ? strdup(w->cfg.path) : NULL;

	if (w->retiring)
		LOG_INFO(w->db.path, NULL, "closed");
	else
		control_remove_db(app->control, &w->db); /* at exit: the server outlives the set */
	w->next = NULL;
	set_drop(app, w);
	watched_free(w);
	if (next != NULL && !app->stopping)
		replicate_db_replace(app, next);
	else if (path != NULL)
		replicate_dir_recheck(app, path);
	if (next != NULL) {
		config_db_free(next);
		free(next);
	}
	free(path);
}

void replicate_db_replace(struct app *app, struct db_config *dc)
{
	struct db_config copy;
	struct watched *w = replicate_db_find(app, dc->path);
	char err[1024];

	if (w != NULL) {
		/* Still there (leaving, or another's): it takes dc's place when it closed. */
		struct db_config *next = malloc(sizeof(*next));

		if (next == NULL || config_db_copy(dc, next) != 0) {
			free(next);
			LOG_ERROR(dc->path, NULL, "out of memory: not replicated");
			return;
		}
		if (w->next != NULL) {
			config_db_free(w->next);
			free(w->next);
		}
		w->next = next;
		w->recheck = false;
		replicate_db_remove(app, w);
		return;
	}
	snprintf(err, sizeof(err), "out of memory");
	if (config_db_copy(dc, &copy) != 0 ||
	    (w = replicate_db_new(app, &copy, "config", err, sizeof(err))) == NULL) {
		LOG_ERROR(dc->path, NULL, "cannot replicate: %s", err);
		return;
	}
	LOG_INFO(dc->path, NULL, "added as %s", w->cfg.name);
	replicate_db_start(app, w);
}

void replicate_set_free(struct app *app)
{
	for (size_t i = 0; i < app->n_dbs; i++)
		watched_free(app->dbs[i]);
	free(app->dbs);
	app->dbs = NULL;
	app->n_dbs = app->cap_dbs = 0;
	strmap_free(&app->by_path);
}
