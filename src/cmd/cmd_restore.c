/*
 * `litestream restore`: rebuilds a database from its replicas (restore.h).
 * The target is a replica URL, or a database path from the configuration
 * file (all its replicas are candidates, or only the one named by
 * -replica). With -f it keeps the output following the replica
 * (restore_follow.h).
 */
#include "backend/backend.h"
#include "cmd/commands.h"
#include "cmd/restore_follow.h"
#include "config/config.h"
#include "util/flags.h"
#include "util/log.h"
#include "core/names.h"
#include "restore/restore_replicas.h"
#include "util/timefmt.h"
#include "config/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static const char *output, *config_path, *replica_name, *generation, *index_arg, *timestamp_arg,
	*log_format_flag, *socket_path;
static long parallelism;
static bool verbose, if_db_not_exists, if_replica_exists, follow, force;
static int64_t follow_interval_ms;

static const struct flag restore_flags[] = {
	{"o", FLAG_STRING, &output, "PATH", "Output path of the restored database. Defaults to the database path when restoring from the configuration."},
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to " CONFIG_DEFAULT_PATH "."},
	{"replica", FLAG_STRING, &replica_name, "NAME", "Restore from a specific replica. Defaults to the replica with the latest data."},
	{"generation", FLAG_STRING, &generation, "NAME", "Restore from a specific generation. Defaults to the generation with the latest data."},
	{"index", FLAG_STRING, &index_arg, "INDEX", "Restore up to a specific hex-encoded WAL index (inclusive). Requires -generation."},
	{"timestamp", FLAG_STRING, &timestamp_arg, "TIMESTAMP", "Restore to the state at this time (RFC 3339, e.g. 2026-11-25T09:00:00Z)."},
	{"parallelism", FLAG_INT, &parallelism, "NUM", "Number of WAL segments downloaded in parallel. Defaults to 8."},
	{"if-db-not-exists", FLAG_BOOL, &if_db_not_exists, NULL, "Returns exit code 0 if the database already exists."},
	{"if-replica-exists", FLAG_BOOL, &if_replica_exists, NULL, "Returns exit code 0 if no backups are found."},
	{"f", FLAG_BOOL, &follow, NULL, "Follow: after the restore, keep applying new segments of the replica until SIGINT or SIGTERM; other processes may read the output meanwhile."},
	{"follow-interval", FLAG_DURATION, &follow_interval_ms, "DURATION", "With -f, how often the replica is polled. Defaults to 1s."},
	{"force", FLAG_BOOL, &force, NULL, "With -f, restore anew when the output cannot be resumed from its position file."},
	{"socket", FLAG_STRING, &socket_path, "PATH", "With -f, serve GET /v1/status and GET /metrics on this Unix socket."},
	{"v", FLAG_BOOL, &verbose, NULL, "Verbose output: one line per step."},
	{"log-format", FLAG_STRING, &log_format_flag, "FORMAT", "Log as text (the default) or json. Overrides the configuration's log-format."},
	{0},
};

static const struct command_help restore_help = {
	"restore",
	"[arguments] DB_PATH|REPLICA_URL",
	"The restore command recovers a database from a previous snapshot and WAL.",
	restore_flags,
};

struct sources {
	struct config cfg;
	struct replica_config url_rc;
	const struct replica_config *rcs[64];
	size_t n;
	const char *db_path;
};

/* Finds the candidate replica configurations. 0, or an exit code. */
static int pick_sources(const char *target, struct sources *s)
{
	char err[1024];
	struct db_config *dc;

	if (replica_url_is_url(target)) {
		if (config_replica_from_url(target, &s->url_rc, err, sizeof(err)) != 0) {
			fprintf(stderr, "litestream restore: %s\n", err);
			return 1;
		}
		s->rcs[s->n++] = &s->url_rc;
		return 0;
	}
	if (config_load(config_path ? config_path : CONFIG_DEFAULT_PATH, &s->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
		return 1;
	}
	if (log_format_flag == NULL)
		log_output_format = s->cfg.log_format;
	dc = config_find_db(&s->cfg, target);
	if (dc == NULL) {
		fprintf(stderr, "litestream restore: database not found in configuration: %s\n", target);
		return 1;
	}
	s->db_path = dc->path;
	for (size_t i = 0; i < dc->n_replicas && s->n < 64; i++)
		if (replica_name == NULL || strcmp(dc->replicas[i].name, replica_name) == 0)
			s->rcs[s->n++] = &dc->replicas[i];
	if (s->n > 0)
		return 0;
	if (replica_name != NULL)
		fprintf(stderr, "litestream restore: replica %s not found for %s\n", replica_name, dc->path);
	else
		fprintf(stderr, "litestream restore: database %s has no replicas\n", dc->path);
	return 1;
}

static int parse_targets(struct restore_opts *o)
{
	uint32_t idx;

	o->index = -1;
	o->timestamp_ms = -1;
	if (index_arg != NULL) {
		if (index_parse(index_arg, &idx) != 0) {
			fprintf(stderr, "litestream restore: invalid -index \"%s\": want a hex wal index\n", index_arg);
			return 2;
		}
		o->index = idx;
	}
	if (timestamp_arg != NULL && timefmt_parse(timestamp_arg, &o->timestamp_ms) != 0) {
		fprintf(stderr, "litestream restore: invalid -timestamp \"%s\": want RFC 3339, e.g. 2026-11-25T09:00:00Z\n",
			timestamp_arg);
		return 2;
	}
	if (parallelism < 1 || parallelism > 1024) {
		fprintf(stderr, "litestream restore: -parallelism must be from 1 to 1024\n");
		return 2;
	}
	o->parallelism = (int)parallelism;
	return 0;
}

/* -f: follows the first candidate replica (or the one -replica names). */
static int run_follow(struct sources *s, const struct restore_opts *o)
{
	struct follower_opts fo = {0};

	if (generation != NULL || index_arg != NULL || timestamp_arg != NULL) {
		fprintf(stderr, "litestream restore: -f follows the newest state: it takes no -generation, -index or -timestamp\n");
		return 2;
	}
	if (if_db_not_exists || if_replica_exists) {
		fprintf(stderr, "litestream restore: -f takes no -if-db-not-exists or -if-replica-exists\n");
		return 2;
	}
	fo.output = o->output;
	fo.interval_ms = follow_interval_ms;
	fo.force = force;
	fo.verbose = verbose;
	fo.parallelism = o->parallelism;
	return restore_follow_run(s->rcs[0], &fo, socket_path);
}

static int run(struct sources *s, struct restore_opts *o)
{
	char err[1024];
	int rc;

	if (follow)
		return run_follow(s, o);
	rc = restore_from_replicas(s->rcs, s->n, o, err, sizeof(err));

	if (rc == -ENOENT && if_replica_exists) {
		fprintf(stderr, "no matching backups found\n");
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
		return 1;
	}
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	struct sources s;
	struct restore_opts opts = {0};
	int i, code;

	memset(&s, 0, sizeof(s));
	output = config_path = replica_name = generation = index_arg = timestamp_arg = NULL;
	log_format_flag = socket_path = NULL;
	parallelism = 8;
	verbose = if_db_not_exists = if_replica_exists = follow = force = false;
	follow_interval_ms = 1000;
	i = flags_parse(&restore_help, argc, argv);
	if (i < 0)
		return flags_exit_code(i);
	if (log_format_flag != NULL && log_format_parse(log_format_flag, &log_output_format) != 0) {
		fprintf(stderr, "litestream restore: invalid -log-format \"%s\" (want text or json)\n",
			log_format_flag);
		return 2;
	}
	if (i >= argc) {
		fprintf(stderr, "litestream restore: database path or replica url required\n");
		return 2;
	}
	if (i + 1 < argc) {
		fprintf(stderr, "litestream restore: too many arguments\n");
		return 2;
	}
	if ((code = parse_targets(&opts)) != 0)
		return code;
	if (index_arg != NULL && generation == NULL) {
		fprintf(stderr, "litestream restore: must specify -generation when restoring to an index\n");
		return 2;
	}
	if (index_arg != NULL && timestamp_arg != NULL) {
		fprintf(stderr, "litestream restore: cannot specify both -index and -timestamp\n");
		return 2;
	}
	if (!follow && (force || socket_path != NULL)) {
		fprintf(stderr, "litestream restore: -force and -socket need -f\n");
		return 2;
	}
	if (follow_interval_ms < 10 || follow_interval_ms > 3600 * 1000) {
		fprintf(stderr, "litestream restore: -follow-interval must be from 10ms to 1h\n");
		return 2;
	}
	if ((code = pick_sources(argv[i], &s)) != 0)
		goto out;
	opts.output = output ? output : s.db_path;
	if (opts.output == NULL) {
		fprintf(stderr, "litestream restore: output path required (-o PATH)\n");
		code = 2;
		goto out;
	}
	if (if_db_not_exists && access(opts.output, F_OK) == 0) {
		fprintf(stderr, "database already exists, skipping\n");
		code = 0;
		goto out;
	}
	opts.generation = generation;
	opts.verbose = verbose;
	opts.progress = isatty(STDERR_FILENO);
	code = run(&s, &opts);
out:
	config_free(&s.cfg);
	replica_config_free(&s.url_rc);
	return code;
}
