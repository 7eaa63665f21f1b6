/*
 * Resolving DB_PATH|REPLICA_URL into replica configurations; see target.h.
 *
 * Written so that cmd_restore.c can drop its own pick_replica() for it:
 * restore takes replicas[0] (or the -replica one), the listing commands
 * take them all.
 */
#include "restore/target.h"

#include "config/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *target_config_path(const char *config_path)
{
	const char *env;

	if (config_path != NULL && config_path[0] != '\0')
		return config_path;
	env = getenv("LITESTREAM_CONFIG");
	return env != NULL && env[0] != '\0' ? env : CONFIG_DEFAULT_PATH;
}

static int resolve_url(struct target *t, const char *url, char *err, size_t errlen)
{
	int rc = config_replica_from_url(url, &t->url_rc, err, errlen);

	if (rc != 0)
		return rc;
	t->replicas = malloc(sizeof(*t->replicas));
	if (t->replicas == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->replicas[0] = &t->url_rc;
	t->n_replicas = 1;
	return 0;
}

static int resolve_db(struct target *t, const char *path, const char *config_path,
		      const char *replica_name, char *err, size_t errlen)
{
	const struct db_config *dc;
	char *abs = NULL;
	int rc;

	rc = config_load(target_config_path(config_path), &t->cfg, err, errlen);
	if (rc != 0)
		return rc;
	dc = config_find_db(&t->cfg, path);
	if (dc == NULL) {
		/* Name the path as it was looked up, so a relative one is clear. */
		if (replica_url_abs_path(path, &abs) != 0)
			abs = NULL;
		snprintf(err, errlen, "database not found in config: %s", abs ? abs : path);
		free(abs);
		return -ESRCH;
	}
	t->db_path = dc->path;
	t->replicas = calloc(dc->n_replicas ? dc->n_replicas : 1, sizeof(*t->replicas));
	if (t->replicas == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < dc->n_replicas; i++)
		if (replica_name == NULL || strcmp(dc->replicas[i].name, replica_name) == 0)
			t->replicas[t->n_replicas++] = &dc->replicas[i];
	if (replica_name != NULL && t->n_replicas == 0) {
		snprintf(err, errlen, "replica \"%s\" not found for database \"%s\"", replica_name,
			 dc->path);
		return -ENXIO;
	}
	return 0;
}

int target_resolve(struct target *t, const char *arg, const char *config_path,
		   const char *replica_name, char *err, size_t errlen)
{
	int rc;

	memset(t, 0, sizeof(*t));
	if (replica_url_is_url(arg))
		rc = resolve_url(t, arg, err, errlen);
	else
		rc = resolve_db(t, arg, config_path, replica_name, err, errlen);
	if (rc != 0)
		target_free(t);
	return rc;
}

void target_free(struct target *t)
{
	free(t->replicas);
	config_free(&t->cfg);
	replica_config_free(&t->url_rc);
	memset(t, 0, sizeof(*t));
}
