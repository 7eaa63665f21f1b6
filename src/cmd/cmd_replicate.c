/*
 * `litestream replicate`: watches every configured database and ships it to
 * its replicas until SIGINT or SIGTERM. On a signal it stops watching,
 * syncs each database one last time (never checkpointing), flushes every
 * replica and exits 0.
 *
 * With -exec CMD (or the `exec` key) it also runs the application as its
 * child: a signal goes to the child first, and when the child exits,
 * for whatever reason, litestream syncs and flushes the same way and
 * exits with the child's status (0 when the child ended on the signal it
 * was passed).
 *
 * -restore-if-db-not-exists restores each configured database whose file
 * is missing before anything starts; -once ships everything and exits
 * (replicate_stop.c); -force-snapshot and -enforce-retention add a
 * snapshot at start and a retention run. See replicate.h for the files.
 */
#include "cmd/commands.h"
#include "cmd/replicate.h"
#include "restore/restore_replicas.h"
#include "s3/provider.h"
#include "util/flags.h"
#include "util/log.h"
#include "util/shellwords.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static const char *config_path, *socket_flag, *exec_flag, *log_format_flag;
static bool once_flag, force_snapshot_flag, enforce_retention_flag, restore_flag;
static const struct flag replicate_flags[] = {
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to " CONFIG_DEFAULT_PATH "."},
	{"exec", FLAG_STRING, &exec_flag, "CMD", "Executes a subcommand. Litestream will exit when the child process exits. Useful for simple process management."},
	{"log-format", FLAG_STRING, &log_format_flag, "FORMAT", "Log as text (the default) or json: one object per line on standard error. Overrides the configuration's log-format."},
	{"socket", FLAG_STRING, &socket_flag, "PATH", "Serves status and metrics on this Unix socket (overrides the configuration's socket)."},
	{"once", FLAG_BOOL, &once_flag, NULL, "Syncs every database, ships everything to every replica and exits (1 when a replica could not take it)."},
	{"force-snapshot", FLAG_BOOL, &force_snapshot_flag, NULL, "Ships a new snapshot of every database to every replica first."},
	{"enforce-retention", FLAG_BOOL, &enforce_retention_flag, NULL, "Applies retention once: at start, or before exiting with -once."},
	{"restore-if-db-not-exists", FLAG_BOOL, &restore_flag, NULL, "Restores each database that does not exist from its replicas first (none yet: it starts empty)."},
	{0},
};

static const struct command_help replicate_help = {
	"replicate",
	"[arguments] [DB_PATH REPLICA_URL [REPLICA_URL...]]",
	"The replicate command starts a server to monitor & replicate databases.\n"
	"You can specify your database & replicas in a configuration file or you can\n"
	"replicate a single database file by specifying its path and its replicas in the\n"
	"command line arguments.",
	replicate_flags,
};

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *app = h->data;

	if (app->signals++ > 0) {
		LOG_WARN(NULL, NULL, "second signal received, exiting now");
		(void)subprocess_signal(&app->child, signum);
		exit(1);
	}
	if (app->child.running) {
		LOG_INFO(NULL, NULL, "signal received, sending it to the exec process and waiting for it "
				     "to exit");
		app->forwarded = signum;
		if (subprocess_signal(&app->child, signum) == 0)
			return;
	}
	LOG_INFO(NULL, NULL, "signal received, litestream shutting down");
	replicate_shut_down(app);
}

static void on_sighup(uv_signal_t *h, int signum)
{
	(void)signum;
	replicate_reload(h->data);
}

static void on_child_exit(struct subprocess *sp, int code, int term_signal, const char *how)
{
	struct app *app = sp->data;

	LOG_INFO(NULL, NULL, "exec process exited (%s), litestream shutting down", how);
	/* Ending on the signal it was passed is the clean stop asked for. */
	app->exit_code = app->forwarded != 0 && term_signal == app->forwarded ? 0 : code;
	replicate_shut_down(app);
}

static void start_child(struct app *app, const char *cmdline)
{
	char err[512];

	app->child.data = app;
	if (subprocess_start(&app->loop, &app->child, cmdline, on_child_exit, err, sizeof(err)) != 0) {
		LOG_ERROR(NULL, NULL, "%s", err);
		app->exit_code = 1;
		replicate_shut_down(app);
	}
}

/* The [db] sections, then the files of the [dir] sections: the first set, not started. */
static int setup(struct app *app)
{
	char err[1024];
	size_t n_replicas = 0;
	int rc;

	for (size_t i = 0; i < app->cfg.n_dbs; i++) {
		struct db_config dc;

		if (config_db_copy(&app->cfg.dbs[i], &dc) != 0)
			return -ENOMEM;
		if (replicate_db_new(app, &dc, "config", err, sizeof(err)) == NULL) {
			fprintf(stderr, "litestream: %s\n", err);
			return -EINVAL;
		}
	}
	if ((rc = replicate_dirs_start(app)) != 0)
		return rc;
	for (size_t i = 0; i < app->n_dbs; i++)
		n_replicas += app->dbs[i]->n_replicas;
	if (replicate_limits_raise(app->n_dbs, n_replicas, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream replicate: %s\n", err);
		return -EMFILE;
	}
	return 0;
}

/*
 * The control socket: -socket, else the configuration file's `socket`
 * (URL mode has none without -socket). The default path is best effort.
 */
static int start_control(struct app *app)
{
	struct control_options opt = {0};
	struct db **dbs = calloc(app->n_dbs ? app->n_dbs : 1, sizeof(*dbs));
	char err[1024];
	int rc;

	if (dbs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < app->n_dbs; i++)
		dbs[i] = &app->dbs[i]->db;
	opt.socket_path = socket_flag ? socket_flag : app->cfg.path ? app->cfg.socket : NULL;
	opt.socket_optional = socket_flag == NULL && strcmp(app->cfg.socket, CONFIG_DEFAULT_SOCKET) == 0;
	opt.socket_mode = app->cfg.socket_mode;
	opt.metrics_addr = app->cfg.metrics_addr;
	replicate_api_hooks(app, &opt.hooks);
	rc = control_start(&app->loop, dbs, app->n_dbs, &opt, &app->control, err, sizeof(err));
	free(dbs);
	if (rc != 0)
		fprintf(stderr, "litestream replicate: %s\n", err);
	return rc;
}

static void teardown(struct app *app)
{
	replicate_set_free(app);
	free(app->dirs);
	config_free(&app->cfg);
}

static int load_config(struct app *app, int argc, char **argv, int first)
{
	char err[1024];
	int rc;

	if (first < argc) {
		if (config_path != NULL) {
			fprintf(stderr, "litestream replicate: cannot specify a replica URL and the -config flag\n");
			return 2;
		}
		if (argc - first < 2) {
			fprintf(stderr, "litestream replicate: must specify at least one replica URL for %s\n",
				argv[first]);
			return 2;
		}
		rc = config_from_args(argv[first], argv + first + 1, (size_t)(argc - first - 1), &app->cfg,
				      err, sizeof(err));
	} else {
		rc = config_load(config_path ? config_path : CONFIG_DEFAULT_PATH, &app->cfg, err, sizeof(err));
	}
	if (rc != 0) {
		fprintf(stderr, "litestream replicate: %s\n", err);
		return 1;
	}
	if (app->cfg.n_dbs == 0 && app->cfg.n_dirs == 0) {
		fprintf(stderr, "litestream replicate: no databases specified in configuration\n");
		return 1;
	}
	return 0;
}

/* A command that does not parse stops the start, before anything runs. */
static int check_exec(const struct app *app)
{
	const char *cmd = exec_flag != NULL ? exec_flag : app->cfg.exec;
	char **words, err[256];
	size_t n;

	if (cmd == NULL)
		return 0;
	if (shellwords_split(cmd, &words, &n, err, sizeof(err)) == 0) {
		shellwords_free(words);
		return 0;
	}
	if (exec_flag != NULL) {
		fprintf(stderr, "litestream replicate: -exec \"%s\": %s\n", cmd, err);
		return 2;
	}
	fprintf(stderr, "litestream replicate: %s: [litestream] exec = %s: %s\n", app->cfg.path, cmd,
		err);
	return 1;
}

/*
 * -restore-if-db-not-exists: each database whose file is missing is
 * restored from its replicas before anything watches it. No backup yet
 * is a first start: the database starts empty. Any other failure stops
 * the start (1), naming the database.
 */
static int restore_missing(const struct app *app)
{
	for (size_t i = 0; i < app->cfg.n_dbs; i++) {
		const struct db_config *dc = &app->cfg.dbs[i];
		const struct replica_config *rcs[64];
		struct restore_opts o = {.output = dc->path, .index = -1, .timestamp_ms = -1, .parallelism = 8};
		struct stat st;
		char err[1024];
		size_t n = 0;
		int rc;

		if (stat(dc->path, &st) == 0 || errno != ENOENT)
			continue;
		for (size_t j = 0; j < dc->n_replicas && n < 64; j++)
			rcs[n++] = &dc->replicas[j];
		if (n == 0) {
			LOG_INFO(dc->path, NULL, "database does not exist and has no replica to restore from");
			continue;
		}
		LOG_INFO(dc->path, NULL, "database does not exist: restoring it from its replicas");
		rc = restore_from_replicas(rcs, n, &o, err, sizeof(err));
		if (rc == -ENOENT) {
			LOG_INFO(dc->path, NULL, "no backup found (%s); starting with an empty database", err);
		} else if (rc != 0) {
			fprintf(stderr, "litestream replicate: -restore-if-db-not-exists: %s: %s\n", dc->path, err);
			return 1;
		} else {
			LOG_INFO(dc->path, NULL, "restored");
		}
	}
	return 0;
}

/* Flags that only make sense together. 0, or the usage exit code 2. */
static int check_flags(const struct app *app)
{
	if (once_flag && (exec_flag != NULL || app->cfg.exec != NULL)) {
		fprintf(stderr, "litestream replicate: -once cannot be used with -exec (or the exec key)\n");
		return 2;
	}
	return 0;
}

/* Starts the databases and replicas (and the child with -exec). */
static void start_all(struct app *app)
{
	for (size_t i = 0; i < app->n_dbs; i++) {
		struct watched *w = app->dbs[i];
		for (size_t j = 0; j < w->n_replicas; j++) {
			LOG_INFO(w->db.path, w->replicas[j].name, "replicating to %s",
				 w->replicas[j].backend->describe);
			replica_start(&w->replicas[j]);
			if (force_snapshot_flag)
				replica_request_snapshot(&w->replicas[j]);
			if (enforce_retention_flag && !app->once)
				replica_request_retention(&w->replicas[j]);
		}
		w->started = true;
		db_start(&w->db);
	}
	app->started = true;
	replicate_dirs_started(app);
	if (exec_flag != NULL || app->cfg.exec != NULL)
		start_child(app, exec_flag != NULL ? exec_flag : app->cfg.exec);
	if (app->once)
		replicate_shut_down(app);
}

int cmd_replicate(int argc, char **argv)
{
	struct app app;
	int first, rc;

	memset(&app, 0, sizeof(app));
	config_path = socket_flag = exec_flag = log_format_flag = NULL;
	once_flag = force_snapshot_flag = enforce_retention_flag = restore_flag = false;
	first = flags_parse(&replicate_help, argc, argv);
	if (first < 0)
		return flags_exit_code(first);
	if (log_format_flag != NULL && log_format_parse(log_format_flag, &log_output_format) != 0) {
		fprintf(stderr, "litestream replicate: invalid -log-format \"%s\" (want text or json)\n",
			log_format_flag);
		return 2;
	}
	if ((rc = load_config(&app, argc, argv, first)) != 0 || (rc = check_exec(&app)) != 0 ||
	    (rc = check_flags(&app)) != 0) {
		config_free(&app.cfg);
		return rc;
	}
	app.once = once_flag;
	app.enforce_retention = enforce_retention_flag;
	log_threshold = app.cfg.log_level;
	if (log_format_flag == NULL)
		log_output_format = app.cfg.log_format;
	s3_provider_announce = true;
	signal(SIGPIPE, SIG_IGN);
	/*
	 * No bulk page-cache allocation per connection (20 pages, 80 KB, by
	 * default): ours read a page or two, and a thousand databases have
	 * two thousand of them. Before SQLite initialises, so before any use.
	 */
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	if (restore_flag && (rc = restore_missing(&app)) != 0) {
		config_free(&app.cfg);
		return rc;
	}
	uv_loop_init(&app.loop);
	if (setup(&app) != 0 || start_control(&app) != 0) {
		replicate_dirs_close(&app);
		uv_run(&app.loop, UV_RUN_DEFAULT); /* lets what the control server opened close */
		teardown(&app);
		uv_loop_close(&app.loop);
		return 1;
	}
	uv_signal_init(&app.loop, &app.sigint);
	uv_signal_init(&app.loop, &app.sigterm);
	uv_timer_init(&app.loop, &app.stop_timer);
	app.sigint.data = app.sigterm.data = app.stop_timer.data = &app;
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	uv_signal_init(&app.loop, &app.sighup);
	app.sighup.data = &app;
	uv_signal_start(&app.sighup, on_sighup, SIGHUP);
	replicate_notify_start(&app);
	replicate_trim_start(&app);
	LOG_INFO(NULL, NULL, "litestream v%s: %s %zu database%s", PACKAGE_VERSION,
		 app.once ? "shipping" : "replicating", app.n_dbs, app.n_dbs == 1 ? "" : "s");
	start_all(&app);
	uv_run(&app.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&app.loop);
	if (rc != 0)
		LOG_WARN(NULL, NULL, "loop closed with handles still open: %s", uv_strerror(rc));
	teardown(&app);
	LOG_INFO(NULL, NULL, "litestream stopped");
	return app.exit_code;
}
