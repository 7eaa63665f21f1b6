/*
 * SIGHUP: `litestream replicate` reads its configuration file again and
 * moves the running set to it without interrupting what did not change.
 *
 * - A file that does not load is refused: the error goes to the log and
 *   everything keeps running as it was.
 * - [db] sections, matched by path: one whose configuration (name, keys,
 *   replicas) is the same is not touched: no new generation, no upload.
 *   A new one starts; one gone finishes its last shipment and closes; a
 *   changed one does both, the new one starting once the old one closed
 *   (they share the shadow WAL), and picks up where the replicas are.
 * - [dir] sections, matched by name: the same, as a whole; a changed
 *   one's databases leave and its directory is scanned again, so that each
 *   database restarts with the new settings.
 * - [litestream]: log-level applies at once; the other keys (socket,
 *   metrics-addr, exec, ...) need a restart, which the log says.
 *
 * Databases added through the control socket are not in the file and stay.
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static const struct db_config *find_db(const struct config *c, const char *path)
{
	for (size_t i = 0; i < c->n_dbs; i++)
		if (strcmp(c->dbs[i].path, path) == 0)
			return &c->dbs[i];
	return NULL;
}

static const struct dir_config *find_dir(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_dirs; i++)
		if (strcmp(c->dirs[i].name, name) == 0)
			return &c->dirs[i];
	return NULL;
}

/* The [db] sections: gone ones leave, changed and new ones (re)start. */
static void reload_dbs(struct app *app, const struct config *next, size_t *kept)
{
	for (size_t i = 0; i < app->n_dbs; i++) {
		struct watched *w = app->dbs[i];
		const struct db_config *dc;

		if (w->retiring || strcmp(w->origin, "config") != 0)
			continue;
		dc = find_db(next, w->cfg.path);
		if (dc == NULL)
			replicate_db_remove(app, w);
	}
	for (size_t i = 0; i < next->n_dbs; i++) {
		const struct db_config *dc = &next->dbs[i];
		struct watched *w = replicate_db_find(app, dc->path);

		if (w != NULL && !w->retiring && strcmp(w->origin, "config") == 0 &&
		    str_eq(w->cfg.name, dc->name) && config_db_equal(&w->cfg, dc)) {
			(*kept)++;
			continue;
		}
		if (w != NULL && !w->retiring)
			LOG_INFO(dc->path, NULL, "configuration changed: restarting");
		replicate_db_replace(app, (struct db_config *)dc);
	}
}

/* The [dir] sections, each as a whole. */
static void reload_dirs(struct app *app, const struct config *next)
{
	for (size_t i = 0; i < app->cfg.n_dirs; i++) {
		const struct dir_config *old = &app->cfg.dirs[i];
		const struct dir_config *d = find_dir(next, old->name);

		if (d == NULL || !config_dir_equal(old, d)) {
			LOG_INFO(old->path, NULL, "[dir %s] %s: its databases stop", old->name,
				 d == NULL ? "removed" : "changed");
			replicate_dir_close(app, old->name);
		}
	}
	for (size_t i = 0; i < next->n_dirs; i++) {
		const struct dir_config *d = &next->dirs[i];
		const struct dir_config *old = find_dir(&app->cfg, d->name);

		if (old == NULL || !config_dir_equal(old, d))
			(void)replicate_dir_open(app, d);
	}
}

static void note_restart_keys(const struct config *a, const struct config *b)
{
	if (!str_eq(a->socket, b->socket) || a->socket_mode != b->socket_mode ||
	    !str_eq(a->metrics_addr, b->metrics_addr) || !str_eq(a->exec, b->exec) ||
	    a->log_format != b->log_format)
		LOG_WARN(NULL, NULL, "reload: changes to [litestream] socket, socket-mode, metrics-addr, "
				     "exec or log-format take effect at the next start");
}

void replicate_reload(struct app *app)
{
	struct config next;
	char err[1024];
	size_t kept = 0;

	if (app->stopping)
		return;
	if (app->cfg.path == NULL) {
		LOG_WARN(NULL, NULL, "SIGHUP: no configuration file to reload (databases given on the "
				     "command line)");
		return;
	}
	if (config_load(app->cfg.path, &next, err, sizeof(err)) != 0) {
		LOG_ERROR(NULL, NULL, "SIGHUP: configuration refused, the running one stays: %s", err);
		return;
	}
	LOG_INFO(NULL, NULL, "SIGHUP: reloading %s", app->cfg.path);
	note_restart_keys(&app->cfg, &next);
	log_threshold = next.log_level;
	reload_dirs(app, &next);
	reload_dbs(app, &next, &kept);
	LOG_INFO(NULL, NULL, "reloaded: %zu database%s unchanged", kept, kept == 1 ? "" : "s");
	/* The running set holds copies; the new file's values serve from now on. */
	config_free(&app->cfg);
	app->cfg = next;
}
