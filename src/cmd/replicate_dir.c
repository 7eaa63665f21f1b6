/*
 * The [dir NAME] sections at run time (config.h has the rules): each
 * directory is scanned at start, and with `watch` followed by one fs-event
 * watcher per directory (inotify is not recursive: with `recursive`, one
 * per subdirectory too), never one per database, so that a thousand
 * databases cost a handful of inotify watches and one callback per event.
 *
 * Every name an event reports is looked at again (consider()), whatever
 * the event said, since inotify coalesces and renames come in halves:
 *
 * - NAME-wal of a database in the set asks that database for a sync (its
 *   own watcher is off: db_config.dir_events);
 * - a file the [dir] takes that is not in the set is probed (db_probe.h):
 *   a SQLite database in WAL mode joins the set and starts; one too short
 *   to tell waits for its next event; anything else is skipped with one
 *   log line (once per name, until it is removed);
 * - a database of this [dir] whose file is gone leaves the set (its last
 *   shipment, then it closes): a rename is a removal and an addition;
 * - a new subdirectory, with `recursive`, gets its watcher and its scan.
 *
 * An event without a name (the kernel's queue overflowed) rescans the
 * directory. The probe reads 100 bytes on the loop: cheap for local files.
 * The events come from replicate_inotify.c (why not libuv's: there).
 */
#include "cmd/replicate.h"
#include "db/db_probe.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One [dir] section's configuration, shared by its watchers (its directory and subdirectories). */
struct dir_section {
	struct dir_config cfg;        /* a copy: it outlives a reloaded configuration */
	int refs;                     /* watchers holding it */
};

struct dirwatch {
	struct app *app;
	struct dir_section *sec;
	const struct dir_config *cfg; /* &sec->cfg */
	char *path;                   /* this directory, absolute */
	int wd;                       /* its inotify watch (replicate_inotify.c), -1 none */
	bool started;
	struct strmap skipped;        /* names logged as skipped */
};

static int dirwatch_open(struct app *app, struct dir_section *sec, const char *path);

static bool ends_with(const char *s, size_t n, const char *tail)
{
	size_t t = strlen(tail);

	return n > t && strcmp(s + n - t, tail) == 0;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	char *s = malloc(n + strlen(name) + 2);

	if (s != NULL)
		sprintf(s, "%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", name);
	return s;
}

static bool watching(const struct app *app, const char *path)
{
	for (size_t i = 0; i < app->n_dirs; i++)
		if (strcmp(app->dirs[i]->path, path) == 0)
			return true;
	return false;
}

/* A file of the [dir] not in the set: probed, and started when it is a WAL database. */
static void add_file(struct dirwatch *dw, const char *name, const char *full, const char *rel)
{
	struct app *app = dw->app;
	struct db_config dc;
	struct watched *w;
	char why[256] = "", origin[96];
	int rc = db_probe(full, why, sizeof(why));

	if (rc == -EAGAIN || rc == -ENOENT) {
		LOG_DEBUG(full, NULL, "[dir %s]: not a database yet: %s", dw->cfg->name, why);
		return;
	}
	if (rc != 0) {
		if (strmap_get(&dw->skipped, name) == NULL) {
			LOG_INFO(full, NULL, "[dir %s]: skipped: %s", dw->cfg->name,
				 rc == -EINVAL || rc == -EPROTO ? why : strerror(-rc));
			(void)strmap_put(&dw->skipped, name, dw);
		}
		return;
	}
	strmap_del(&dw->skipped, name);
	if (config_dir_db(dw->cfg, rel, &dc) != 0) {
		LOG_ERROR(full, NULL, "[dir %s]: out of memory", dw->cfg->name);
		return;
	}
	dc.dir_events = dw->cfg->watch;
	snprintf(origin, sizeof(origin), "dir %s", dw->cfg->name);
	w = replicate_db_new(app, &dc, origin, why, sizeof(why));
	if (w == NULL) {
		LOG_ERROR(full, NULL, "[dir %s]: cannot replicate: %s", dw->cfg->name, why);
		return;
	}
	w->dir = dw;
	LOG_INFO(full, NULL, "[dir %s]: added as %s", dw->cfg->name, w->cfg.name);
	if (dw->started)
		replicate_db_start(app, w);
}

/* The database of the set whose file or WAL name (in dw's directory) is, or NULL. */
static struct watched *db_of(struct dirwatch *dw, const char *name)
{
	size_t n = strlen(name);
	char *full = join(dw->path, name);
	struct watched *w;

	if (full == NULL)
		return NULL;
	if (ends_with(name, n, "-wal"))
		full[strlen(full) - 4] = '\0';
	w = replicate_db_find(dw->app, full);
	free(full);
	return w;
}

/* What name in dw's directory is now (see the top of the file). */
static void consider(struct dirwatch *dw, const char *name)
{
	struct app *app = dw->app;
	size_t n = strlen(name);
	struct watched *w;
	const char *rel;
	struct stat st;
	char *full;
	bool exists;

	if (name[0] == '.' || name[0] == '\0' || app->stopping)
		return;
	if (ends_with(name, n, "-wal") || ends_with(name, n, "-shm") || ends_with(name, n, "-journal")) {
		if (ends_with(name, n, "-wal") && (w = db_of(dw, name)) != NULL && !w->retiring && w->started)
			db_request_sync(&w->db);
		return;
	}
	if ((full = join(dw->path, name)) == NULL)
		return;
	exists = stat(full, &st) == 0;
	if (exists && S_ISDIR(st.st_mode)) {
		if (dw->cfg->recursive && !watching(app, full))
			(void)dirwatch_open(app, dw->sec, full);
		free(full);
		return;
	}
	exists = exists && S_ISREG(st.st_mode);
	if (!config_dir_match(dw->cfg, full, &rel)) {
		free(full);
		return;
	}
	w = replicate_db_find(app, full);
	if (w != NULL) {
		if (w->retiring)
			w->recheck = w->recheck || exists; /* looked at again once it closed */
		else if (w->dir != dw)
			; /* a [db] section's own, or another [dir]'s */
		else if (!exists)
			replicate_db_remove(app, w);
		else if (w->started)
			db_request_sync(&w->db);
	} else if (exists) {
		add_file(dw, name, full, rel);
	} else {
		strmap_del(&dw->skipped, name);
	}
	free(full);
}

/* Every name in the directory, then (recursive) what went away under it. */
static void scan(struct dirwatch *dw)
{
	DIR *d = opendir(dw->path);
	struct dirent *e;

	if (d == NULL) {
		LOG_WARN(dw->path, NULL, "[dir %s]: cannot read the directory: %s", dw->cfg->name,
			 strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL)
		consider(dw, e->d_name);
	closedir(d);
}

/*
 * A write (a change, no rename) to a database of this [dir] or to its
 * WAL asks it for a sync with no stat: under a bulk load these are most
 * of the events, our own checkpoint's writes to the file among them.
 */
static bool written(struct dirwatch *dw, const char *name)
{
	struct watched *w = db_of(dw, name);

	if (w == NULL || w->retiring || !w->started || w->dir != dw)
		return false;
	db_request_sync(&w->db);
	return true;
}

int replicate_dir_wd(const struct dirwatch *dw)
{
	return dw->wd;
}

void replicate_dir_event(struct dirwatch *dw, const char *filename, int events, int status)
{
	struct app *app = dw->app;

	if (status == 0 && filename != NULL && events == UV_CHANGE && !app->stopping && written(dw, filename))
		return;
	if (status < 0)
		LOG_WARN(dw->path, NULL, "[dir %s]: watch: %s; rescanning", dw->cfg->name,
			 uv_strerror(status));
	if (status < 0 || filename == NULL) {
		scan(dw);
		/* Databases gone while events were lost. */
		for (size_t i = 0; i < app->n_dbs; i++) {
			struct watched *w = app->dbs[i];
			struct stat st;

			if (w->dir == dw && !w->retiring && stat(w->cfg.path, &st) != 0 && errno == ENOENT)
				replicate_db_remove(app, w);
		}
		return;
	}
	consider(dw, filename);
}

static int dirwatch_open(struct app *app, struct dir_section *sec, const char *path)
{
	const struct dir_config *cfg = &sec->cfg;
	struct dirwatch *dw = calloc(1, sizeof(*dw)), **grown;
	int rc;

	if (dw == NULL || (dw->path = strdup(path)) == NULL ||
	    (grown = realloc(app->dirs, (app->n_dirs + 1) * sizeof(*grown))) == NULL) {
		if (dw != NULL)
			free(dw->path);
		free(dw);
		LOG_ERROR(path, NULL, "[dir %s]: out of memory", cfg->name);
		return -ENOMEM;
	}
	app->dirs = grown;
	app->dirs[app->n_dirs++] = dw;
	dw->app = app;
	dw->sec = sec;
	dw->cfg = cfg;
	sec->refs++;
	dw->wd = -1;
	app->open_dirs++;
	if (cfg->watch) {
		rc = replicate_inotify_add(app, path);
		if (rc < 0)
			LOG_WARN(path, NULL, "[dir %s]: cannot watch the directory (%s): databases added "
					     "later are not seen until a restart", cfg->name, strerror(-rc));
		else
			dw->wd = rc;
	}
	/* Scanned after the watch starts: nothing created in between is missed. */
	dw->started = app->started;
	scan(dw);
	return 0;
}

int replicate_dir_open(struct app *app, const struct dir_config *d)
{
	struct dir_section *sec = calloc(1, sizeof(*sec));
	struct stat st;
	int rc;

	if (sec == NULL || config_dir_copy(d, &sec->cfg) != 0) {
		free(sec);
		LOG_ERROR(d->path, NULL, "[dir %s]: out of memory", d->name);
		return -ENOMEM;
	}
	if (stat(d->path, &st) != 0)
		LOG_WARN(d->path, NULL, "[dir %s]: %s", d->name, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		LOG_WARN(d->path, NULL, "[dir %s]: not a directory", d->name);
	rc = dirwatch_open(app, sec, d->path);
	if (sec->refs == 0) {
		config_dir_free(&sec->cfg);
		free(sec);
	}
	return rc;
}

int replicate_dirs_start(struct app *app)
{
	for (size_t i = 0; i < app->cfg.n_dirs; i++)
		if (replicate_dir_open(app, &app->cfg.dirs[i]) != 0)
			return -ENOMEM;
	return 0;
}

void replicate_dirs_started(struct app *app)
{
	for (size_t i = 0; i < app->n_dirs; i++)
		app->dirs[i]->started = true;
}

/* dw is out of app->dirs: its watch goes (unless another [dir] shares it), then dw. */
static void dirwatch_free(struct dirwatch *dw)
{
	replicate_inotify_rm(dw->app, dw->wd);
	dw->app->open_dirs--;
	if (--dw->sec->refs == 0) {
		config_dir_free(&dw->sec->cfg);
		free(dw->sec);
	}
	strmap_free(&dw->skipped);
	free(dw->path);
	free(dw);
}

void replicate_dir_close(struct app *app, const char *name)
{
	/* No database keeps a pointer to a watcher that closes (w->dir goes NULL). */
	for (size_t i = 0; i < app->n_dbs; i++) {
		struct watched *w = app->dbs[i];

		if (w->dir != NULL && strcmp(w->dir->cfg->name, name) == 0) {
			replicate_db_remove(app, w);
			w->dir = NULL;
		}
	}
	/* Each leaves the array before it is freed: a watch it shares with
	 * another [dir]'s directory is then seen as shared (replicate_inotify_rm). */
	for (size_t i = 0; i < app->n_dirs;) {
		struct dirwatch *dw = app->dirs[i];

		if (strcmp(dw->cfg->name, name) != 0) {
			i++;
			continue;
		}
		memmove(&app->dirs[i], &app->dirs[i + 1], (app->n_dirs - i - 1) * sizeof(*app->dirs));
		app->n_dirs--;
		dirwatch_free(dw);
	}
}

void replicate_dirs_close(struct app *app)
{
	for (size_t i = 0; i < app->n_dbs; i++)
		app->dbs[i]->dir = NULL;
	struct dirwatch **dirs = app->dirs;
	size_t n = app->n_dirs;

	app->dirs = NULL;
	app->n_dirs = 0;
	for (size_t i = 0; i < n; i++)
		dirwatch_free(dirs[i]);
	free(dirs);
	replicate_inotify_close(app);
}

void replicate_dir_recheck(struct app *app, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash != NULL ? (size_t)(slash - path) : 0;

	for (size_t i = 0; i < app->n_dirs && slash != NULL; i++) {
		struct dirwatch *dw = app->dirs[i];

		if (strlen(dw->path) == n && strncmp(dw->path, path, n) == 0) {
			consider(dw, slash + 1);
			return;
		}
	}
}
