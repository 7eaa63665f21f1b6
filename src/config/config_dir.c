/*
 * The databases of a [dir NAME] section (config.h has the rules): which
 * paths it takes (config_dir_match()), and the configuration of one of
 * them (config_dir_db()), built from the section's per-database keys and
 * replicas with the database's path relative to the directory appended
 * to each replica's path. Also the copy, comparison and freeing of one
 * database's configuration that `replicate` needs for databases that come
 * and go while it runs.
 *
 * No I/O: a path is matched by its text, so a restore finds a database
 * that does not exist yet.
 */
#include "config/config.h"
#include "config/config_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool config_dir_match(const struct dir_config *d, const char *abs, const char **rel)
{
	size_t n = strlen(d->path);
	const char *r, *base, *c;

	if (strncmp(abs, d->path, n) != 0)
		return false;
	r = abs + n;
	if (n > 1 || d->path[0] != '/') {
		if (*r != '/')
			return false;
		r++;
	} else if (*r == '/') {
		r++; /* the directory is "/" */
	}
	if (*r == '\0')
		return false;
	/* No empty, hidden, "." or ".." component (the shadow WALs are hidden). */
	for (c = r; c != NULL; c = strchr(c, '/')) {
		if (*c == '/')
			c++;
		if (*c == '\0' || *c == '/' || *c == '.')
			return false;
	}
	base = strrchr(r, '/');
	if (base != NULL && !d->recursive)
		return false;
	base = base != NULL ? base + 1 : r;
	if (fnmatch(d->pattern, base, FNM_PERIOD) != 0)
		return false;
	*rel = r;
	return true;
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a);
	char *s = malloc(n + strlen(b) + 2);

	if (s == NULL)
		return NULL;
	if (n == 0)
		strcpy(s, b);
	else
		sprintf(s, "%s%s%s", a, a[n - 1] == '/' ? "" : "/", b);
	return s;
}

int config_db_copy(const struct db_config *from, struct db_config *out)
{
	struct db_config db = *from;

	db.name = NULL;
	db.path = NULL;
	db.replicas = NULL;
	db.n_replicas = 0;
	if ((from->name != NULL && (db.name = strdup(from->name)) == NULL) ||
	    (from->path != NULL && (db.path = strdup(from->path)) == NULL))
		goto oom;
	if (from->n_replicas > 0 &&
	    (db.replicas = calloc(from->n_replicas, sizeof(*db.replicas))) == NULL)
		goto oom;
	for (size_t i = 0; i < from->n_replicas; i++) {
		if (replica_config_copy(&from->replicas[i], &db.replicas[i]) != 0)
			goto oom;
		db.n_replicas++;
	}
	*out = db;
	return 0;
oom:
	config_db_free(&db);
	memset(out, 0, sizeof(*out));
	return -ENOMEM;
}

int config_dir_db(const struct dir_config *d, const char *rel, struct db_config *out)
{
	struct db_config db;

	if (config_db_copy(&d->db, &db) != 0)
		goto oom;
	free(db.name);
	db.name = join(d->name, rel);
	db.path = join(d->path, rel);
	db.dir_events = true;
	if (db.name == NULL || db.path == NULL)
		goto oom_db;
	for (size_t i = 0; i < db.n_replicas; i++) {
		struct replica_config *r = &db.replicas[i];
		char *p = join(r->path != NULL ? r->path : "", rel);

		if (p == NULL)
			goto oom_db;
		free(r->path);
		r->path = p;
		free(r->url); /* the url names the directory's place, not the database's */
		r->url = NULL;
	}
	*out = db;
	return 0;
oom_db:
	config_db_free(&db);
oom:
	memset(out, 0, sizeof(*out));
	return -ENOMEM;
}

bool config_db_equal(const struct db_config *a, const struct db_config *b)
{
	if (!config_str_eq(a->path, b->path) || a->monitor_interval_ms != b->monitor_interval_ms ||
	    a->checkpoint_interval_ms != b->checkpoint_interval_ms ||
	    a->min_checkpoint_page_count != b->min_checkpoint_page_count ||
	    a->max_checkpoint_page_count != b->max_checkpoint_page_count ||
	    a->dir_events != b->dir_events || a->n_replicas != b->n_replicas)
		return false;
	for (size_t i = 0; i < a->n_replicas; i++)
		if (!replica_config_equal(&a->replicas[i], &b->replicas[i]))
			return false;
	return true;
}

void config_db_free(struct db_config *db)
{
	free(db->name);
	free(db->path);
	for (size_t j = 0; j < db->n_replicas; j++)
		replica_config_free(&db->replicas[j]);
	free(db->replicas);
	memset(db, 0, sizeof(*db));
}

int config_dir_copy(const struct dir_config *from, struct dir_config *out)
{
	struct dir_config d = *from;

	d.name = strdup(from->name);
	d.path = strdup(from->path);
	d.pattern = strdup(from->pattern);
	if (d.name == NULL || d.path == NULL || d.pattern == NULL ||
	    config_db_copy(&from->db, &d.db) != 0) {
		free(d.name);
		free(d.path);
		free(d.pattern);
		memset(out, 0, sizeof(*out));
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

bool config_dir_equal(const struct dir_config *a, const struct dir_config *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->path, b->path) == 0 &&
	       strcmp(a->pattern, b->pattern) == 0 && a->recursive == b->recursive &&
	       a->watch == b->watch && config_db_equal(&a->db, &b->db);
}

void config_dir_free(struct dir_config *d)
{
	free(d->name);
	free(d->path);
	free(d->pattern);
	config_db_free(&d->db);
	memset(d, 0, sizeof(*d));
}
