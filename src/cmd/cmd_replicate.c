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
 */
#include "cmd/commands.h"
#include "control/control.h"
#include "db/db.h"
#include "util/flags.h"
#include "util/log.h"
#include "replica/replica.h"
#include "util/shellwords.h"
#include "util/subprocess.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

struct watched {
	struct db db;
	struct replica *replicas;
	size_t n_replicas;
	size_t pending; /* replicas still flushing or closing */
	struct app *app;
};

struct app {
	uv_loop_t loop;
	struct config cfg;
	struct watched *dbs;
	size_t n_dbs;
	size_t running;  /* databases not yet closed */
	uv_signal_t sigint, sigterm;
	int signals;
	int forwarded;   /* the signal passed on to the child, 0 if none */
	bool stopping;
	int exit_code;
	struct control *control;
	struct subprocess child;
};

static const char *config_path, *socket_flag, *exec_flag, *log_format_flag;
static const struct flag replicate_flags[] = {
	{"config", FLAG_STRING, &config_path, "PATH", "Specifies the configuration file. Defaults to " CONFIG_DEFAULT_PATH "."},
	{"exec", FLAG_STRING, &exec_flag, "CMD", "Executes a subcommand. Litestream will exit when the child process exits. Useful for simple process management."},
	{"log-format", FLAG_STRING, &log_format_flag, "FORMAT", "Log as text (the default) or json: one object per line on standard error. Overrides the configuration's log-format."},
	{"socket", FLAG_STRING, &socket_flag, "PATH", "Serves status and metrics on this Unix socket (overrides the configuration's socket)."},
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

static void on_db_closed(struct db *db)
{
	struct watched *w = (struct watched *)db;
	struct app *app = w->app;

	if (--app->running == 0) {
		control_close(app->control); /* after the last flush, which sync?wait may be waiting for */
		app->control = NULL;
		uv_close((uv_handle_t *)&app->sigint, NULL);
		uv_close((uv_handle_t *)&app->sigterm, NULL);
	}
}

static void on_backend_closed(void *arg)
{
	struct replica *r = arg;
	struct watched *w = (struct watched *)r->db;

	if (--w->pending == 0)
		db_close(&w->db, on_db_closed);
}

static void on_replica_closed(struct replica *r)
{
	/* The backend's loop handles (S3's http client) must go before the
	 * loop ends; replica_free() frees it later. */
	backend_close(r->backend, on_backend_closed, r);
}

static void on_flushed(struct replica *r, int rc)
{
	struct watched *w = (struct watched *)r->db;

	if (rc != 0)
		LOG_ERROR(w->db.path, r->name,
			  "could not ship everything before exit; the rest stays in the shadow wal "
			  "and ships at the next start");
	if (--w->pending == 0) {
		w->pending = w->n_replicas;
		for (size_t i = 0; i < w->n_replicas; i++)
			replica_close(&w->replicas[i], on_replica_closed);
	}
}

static void on_db_stopped(struct db *db)
{
	struct watched *w = (struct watched *)db;

	if (w->n_replicas == 0) {
		db_close(db, on_db_closed);
		return;
	}
	w->pending = w->n_replicas;
	for (size_t i = 0; i < w->n_replicas; i++)
		replica_flush(&w->replicas[i], on_flushed);
}

/* The last sync and flush of every database, then the loop ends. */
static void shut_down(struct app *app)
{
	if (app->stopping)
		return;
	app->stopping = true;
	for (size_t i = 0; i < app->n_dbs; i++)
		db_stop(&app->dbs[i].db, on_db_stopped);
}

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
	shut_down(app);
}

static void on_child_exit(struct subprocess *sp, int code, int term_signal, const char *how)
{
	struct app *app = sp->data;

	LOG_INFO(NULL, NULL, "exec process exited (%s), litestream shutting down", how);
	/* Ending on the signal it was passed is the clean stop asked for. */
	app->exit_code = app->forwarded != 0 && term_signal == app->forwarded ? 0 : code;
	shut_down(app);
}

static void start_child(struct app *app, const char *cmdline)
{
	char err[512];

	app->child.data = app;
	if (subprocess_start(&app->loop, &app->child, cmdline, on_child_exit, err, sizeof(err)) != 0) {
		LOG_ERROR(NULL, NULL, "%s", err);
		app->exit_code = 1;
		shut_down(app);
	}
}

static int setup(struct app *app)
{
	char err[512];
	int rc;

	app->dbs = calloc(app->cfg.n_dbs, sizeof(*app->dbs));
	if (app->dbs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < app->cfg.n_dbs; i++) {
		struct db_config *dc = &app->cfg.dbs[i];
		struct watched *w = &app->dbs[i];

		w->app = app;
		if ((rc = db_init(&w->db, &app->loop, dc)) != 0) {
			fprintf(stderr, "litestream: %s: %s\n", dc->path, strerror(-rc));
			return rc;
		}
		app->n_dbs++;
		w->replicas = calloc(dc->n_replicas, sizeof(*w->replicas));
		if (w->replicas == NULL && dc->n_replicas > 0)
			return -ENOMEM;
		for (size_t j = 0; j < dc->n_replicas; j++) {
			rc = replica_init(&w->replicas[j], &app->loop, &w->db, &dc->replicas[j], err, sizeof(err));
			if (rc != 0) {
				fprintf(stderr, "litestream: %s\n", err);
				return rc;
			}
			w->n_replicas++;
			if ((rc = db_add_replica(&w->db, &w->replicas[j])) != 0)
				return rc;
		}
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
	struct db **dbs = calloc(app->n_dbs, sizeof(*dbs));
	char err[1024];
	int rc;

	if (dbs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < app->n_dbs; i++)
		dbs[i] = &app->dbs[i].db;
	opt.socket_path = socket_flag ? socket_flag : app->cfg.path ? app->cfg.socket : NULL;
	opt.socket_optional = socket_flag == NULL && strcmp(app->cfg.socket, CONFIG_DEFAULT_SOCKET) == 0;
	opt.socket_mode = app->cfg.socket_mode;
	opt.metrics_addr = app->cfg.metrics_addr;
	rc = control_start(&app->loop, dbs, app->n_dbs, &opt, &app->control, err, sizeof(err));
	free(dbs);
	if (rc != 0)
		fprintf(stderr, "litestream replicate: %s\n", err);
	return rc;
}

static void teardown(struct app *app)
{
	for (size_t i = 0; i < app->n_dbs; i++) {
		for (size_t j = 0; j < app->dbs[i].n_replicas; j++)
			replica_free(&app->dbs[i].replicas[j]);
		free(app->dbs[i].replicas);
		db_free(&app->dbs[i].db);
	}
	free(app->dbs);
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
	if (app->cfg.n_dbs == 0) {
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

int cmd_replicate(int argc, char **argv)
{
	struct app app;
	int first, rc;

	memset(&app, 0, sizeof(app));
	config_path = socket_flag = exec_flag = log_format_flag = NULL;
	first = flags_parse(&replicate_help, argc, argv);
	if (first < 0)
		return flags_exit_code(first);
	if (log_format_flag != NULL && log_format_parse(log_format_flag, &log_output_format) != 0) {
		fprintf(stderr, "litestream replicate: invalid -log-format \"%s\" (want text or json)\n",
			log_format_flag);
		return 2;
	}
	if ((rc = load_config(&app, argc, argv, first)) != 0) {
		config_free(&app.cfg);
		return rc;
	}
	if ((rc = check_exec(&app)) != 0) {
		config_free(&app.cfg);
		return rc;
	}
	log_threshold = app.cfg.log_level;
	if (log_format_flag == NULL)
		log_output_format = app.cfg.log_format;
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&app.loop);
	if (setup(&app) != 0 || start_control(&app) != 0) {
		uv_run(&app.loop, UV_RUN_DEFAULT); /* lets what the control server opened close */
		teardown(&app);
		uv_loop_close(&app.loop);
		return 1;
	}
	uv_signal_init(&app.loop, &app.sigint);
	uv_signal_init(&app.loop, &app.sigterm);
	app.sigint.data = app.sigterm.data = &app;
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	LOG_INFO(NULL, NULL, "litestream v%s: replicating %zu database%s", PACKAGE_VERSION, app.n_dbs,
		 app.n_dbs == 1 ? "" : "s");
	app.running = app.n_dbs;
	for (size_t i = 0; i < app.n_dbs; i++) {
		struct watched *w = &app.dbs[i];
		for (size_t j = 0; j < w->n_replicas; j++) {
			LOG_INFO(w->db.path, w->replicas[j].name, "replicating to %s",
				 w->replicas[j].backend->describe);
			replica_start(&w->replicas[j]);
		}
		db_start(&w->db);
	}
	if (exec_flag != NULL || app.cfg.exec != NULL)
		start_child(&app, exec_flag != NULL ? exec_flag : app.cfg.exec);
	uv_run(&app.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&app.loop);
	if (rc != 0)
		LOG_WARN(NULL, NULL, "loop closed with handles still open: %s", uv_strerror(rc));
	teardown(&app);
	LOG_INFO(NULL, NULL, "litestream stopped");
	return app.exit_code;
}
