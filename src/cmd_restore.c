/*
 * `litestream restore`: rebuilds a database from a replica (restore.h).
 * The target is a replica URL, or a database path from the configuration
 * file (its first replica, or the one named by -replica).
 */
#include "backend.h"
#include "commands.h"
#include "config.h"
#include "flags.h"
#include "log.h"
#include "restore.h"
#include "url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static const char *output, *config_path, *replica_name, *generation;
static bool verbose, if_db_not_exists, if_replica_exists;

static const struct flag restore_flags[] = {
	{"o", FLAG_STRING, &output, "PATH", "Output path of the restored database. Defaults to the database path when restoring from the configuration."},
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to " CONFIG_DEFAULT_PATH "."},
	{"replica", FLAG_STRING, &replica_name, "NAME", "Restore from a specific replica of the configured database."},
	{"generation", FLAG_STRING, &generation, "NAME", "Restore from a specific generation. Defaults to the generation updated most recently."},
	{"if-db-not-exists", FLAG_BOOL, &if_db_not_exists, NULL, "Returns exit code 0 if the database already exists."},
	{"if-replica-exists", FLAG_BOOL, &if_replica_exists, NULL, "Returns exit code 0 if no backups are found."},
	{"v", FLAG_BOOL, &verbose, NULL, "Verbose output: one line per step."},
	{0},
};

static const struct command_help restore_help = {
	"restore",
	"[arguments] DB_PATH|REPLICA_URL",
	"The restore command recovers a database from a previous snapshot and WAL.",
	restore_flags,
};

/* Finds the replica configuration to restore from; *owned is set when it must be freed. */
static int pick_replica(const char *target, struct config *cfg, struct replica_config *url_rc,
			const struct replica_config **out, const char **out_path)
{
	char err[1024];
	struct db_config *dc;

	if (replica_url_is_url(target)) {
		if (config_replica_from_url(target, url_rc, err, sizeof(err)) != 0) {
			fprintf(stderr, "litestream restore: %s\n", err);
			return 1;
		}
		*out = url_rc;
		*out_path = NULL;
		return 0;
	}
	if (config_load(config_path ? config_path : CONFIG_DEFAULT_PATH, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
		return 1;
	}
	dc = config_find_db(cfg, target);
	if (dc == NULL) {
		fprintf(stderr, "litestream restore: database not found in configuration: %s\n", target);
		return 1;
	}
	*out_path = dc->path;
	for (size_t i = 0; i < dc->n_replicas; i++) {
		if (replica_name == NULL || strcmp(dc->replicas[i].name, replica_name) == 0) {
			*out = &dc->replicas[i];
			return 0;
		}
	}
	if (replica_name != NULL)
		fprintf(stderr, "litestream restore: replica %s not found for %s\n", replica_name, dc->path);
	else
		fprintf(stderr, "litestream restore: database %s has no replicas\n", dc->path);
	return 1;
}

int cmd_restore(int argc, char **argv)
{
	struct config cfg = {0};
	struct replica_config url_rc = {0};
	const struct replica_config *rc_cfg = NULL;
	const char *db_path = NULL;
	struct restore_opts opts = {0};
	struct backend *b = NULL;
	uv_loop_t loop;
	char err[1024];
	int i, rc, code = 1;

	output = config_path = replica_name = generation = NULL;
	verbose = if_db_not_exists = if_replica_exists = false;
	i = flags_parse(&restore_help, argc, argv);
	if (i < 0)
		return flags_exit_code(i);
	if (i >= argc) {
		fprintf(stderr, "litestream restore: database path or replica url required\n");
		return 2;
	}
	if (i + 1 < argc) {
		fprintf(stderr, "litestream restore: too many arguments\n");
		return 2;
	}
	if ((rc = pick_replica(argv[i], &cfg, &url_rc, &rc_cfg, &db_path)) != 0)
		goto out_cfg;
	opts.output = output ? output : db_path;
	if (opts.output == NULL) {
		fprintf(stderr, "litestream restore: output path required (-o PATH)\n");
		code = 2;
		goto out_cfg;
	}
	if (if_db_not_exists && access(opts.output, F_OK) == 0) {
		fprintf(stderr, "database already exists, skipping\n");
		code = 0;
		goto out_cfg;
	}
	opts.generation = generation;
	opts.verbose = verbose;
	uv_loop_init(&loop);
	if (backend_new(&loop, rc_cfg, &b, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
		goto out_loop;
	}
	rc = restore_run(b, &opts, err, sizeof(err));
	if (rc == -ENOENT && if_replica_exists) {
		fprintf(stderr, "no matching backups found\n");
		code = 0;
	} else if (rc != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
	} else {
		code = 0;
	}
	b->ops->free(b);
out_loop:
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
out_cfg:
	config_free(&cfg);
	replica_config_free(&url_rc);
	return code;
}
