/*
 * POST /v1/dbs/NAME/verify (control.h's verify hook): `litestream verify`
 * run as a child of replicate, one replica after the other. The check is
 * then exactly the command's (every generation restored by the restore
 * engine into a scratch file, cmd_verify.c), and its downloads,
 * decompression and integrity checks never run on the loop, whose only
 * part is to start the child, read the first line of its standard error
 * and note the outcome in the replica's stats (status and metrics show
 * them). A verify is a reader like any restore: it takes no lock on the
 * database and the replica keeps shipping meanwhile.
 *
 * The child is given, for a database of the configuration file (a [db] or
 * a [dir]'s, which the command finds by path), -config FILE -replica NAME
 * DB_PATH, so that it reads the replica as configured (keys, endpoint, age
 * identities: a replica that has only age-recipients cannot be verified,
 * and says so); for a database from the command line or the socket, the
 * replica's URL, with the credentials of the environment it inherits.
 * The database leaving (DELETE, SIGHUP, shutdown) stops the child. Its
 * scratch directory is one made here for each child and removed once it
 * exited, so that a child stopped half-way leaves no restored copy behind.
 */
#include "cmd/replicate.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct verify_run {
	struct watched *w;      /* NULL once the database left */
	size_t next;            /* the replica being verified */
	uv_process_t proc;
	uv_pipe_t err;
	int open_handles;       /* proc and err, until both are closed */
	bool running;           /* proc started and not exited */
	int64_t status;         /* the child's exit status; -1 for a signal */
	char line[512];         /* the first line of its standard error */
	char failed[128];       /* why the child could not be started, or "" */
	char scratch[PATH_MAX]; /* the child's -scratch, ours to remove; "" when none */
	size_t line_len;
	bool line_done;
};

static void run_next(struct verify_run *v);

static void note_outcome(struct verify_run *v, const char *problem)
{
	struct replica *r;
	int64_t now = clock_wall_ms();

	if (v->w == NULL || v->next >= v->w->n_replicas)
		return;
	r = &v->w->replicas[v->next];
	r->stats.verifying = false;
	r->stats.last_verify_ms = now;
	if (problem == NULL) {
		r->stats.verifies_ok++;
		r->stats.last_verify_ok_ms = now;
		r->stats.last_verify_problem[0] = '\0';
		LOG_INFO(v->w->db.path, r->name, "verify: every generation restores");
		return;
	}
	r->stats.verifies_failed++;
	snprintf(r->stats.last_verify_problem, sizeof(r->stats.last_verify_problem), "%s", problem);
	LOG_ERROR(v->w->db.path, r->name, "verify failed: %s", problem);
}

static void on_closed(uv_handle_t *h)
{
	struct verify_run *v = h->data;
	char why[64];

	if (--v->open_handles > 0)
		return;
	if (v->scratch[0] != '\0')
		fs_remove_tree(v->scratch);
	v->scratch[0] = '\0';
	if (v->failed[0] != '\0') {
		note_outcome(v, v->failed);
	} else if (v->status == 0) {
		note_outcome(v, NULL);
	} else {
		snprintf(why, sizeof(why), "litestream verify exited with status %lld",
			 (long long)v->status);
		note_outcome(v, v->line_len > 0 ? v->line : why);
	}
	v->next++;
	run_next(v);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char scratch[4096];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

/* Keeps the first line; the rest is read and dropped (the child must not block on a full pipe). */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct verify_run *v = s->data;

	if (n < 0) {
		uv_close((uv_handle_t *)s, on_closed);
		return;
	}
	for (ssize_t i = 0; i < n && !v->line_done; i++) {
		if (buf->base[i] == '\n' || v->line_len == sizeof(v->line) - 1)
			v->line_done = true;
		else
			v->line[v->line_len++] = buf->base[i];
	}
	v->line[v->line_len] = '\0';
}

static void on_child_exit(uv_process_t *p, int64_t status, int term_signal)
{
	struct verify_run *v = p->data;

	v->running = false;
	v->status = term_signal != 0 ? -1 : status;
	uv_close((uv_handle_t *)p, on_closed);
}

/* The child's arguments for replica i of w (argv[0] is exe). */
static void child_args(struct watched *w, size_t i, char *exe, char *scratch, char **argv)
{
	const struct replica_config *rc = &w->cfg.replicas[i];
	const char *config = w->app->cfg.path;
	size_t n = 0;

	argv[n++] = exe;
	argv[n++] = (char *)"verify";
	argv[n++] = (char *)"-scratch";
	argv[n++] = scratch;
	if (config != NULL && strcmp(w->origin, "api") != 0) {
		argv[n++] = (char *)"-config";
		argv[n++] = (char *)config;
		argv[n++] = (char *)"-replica";
		argv[n++] = rc->name;
		argv[n++] = w->cfg.path;
	} else {
		argv[n++] = rc->url != NULL ? rc->url : rc->path;
	}
	argv[n] = NULL;
}

static int spawn(struct verify_run *v)
{
	const char *tmp = getenv("TMPDIR");
	char exe[4096], *argv[10];
	size_t len = sizeof(exe);
	uv_stdio_container_t stdio[3];
	uv_process_options_t o;
	uv_loop_t *loop = &v->w->app->loop;
	int rc;

	if ((rc = uv_exepath(exe, &len)) != 0)
		return rc;
	snprintf(v->scratch, sizeof(v->scratch), "%s/litestream-verify-run-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(v->scratch) == NULL) {
		v->scratch[0] = '\0';
		return -errno;
	}
	child_args(v->w, v->next, exe, v->scratch, argv);
	if ((rc = uv_pipe_init(loop, &v->err, 0)) != 0) {
		fs_remove_tree(v->scratch);
		v->scratch[0] = '\0';
		return rc;
	}
	v->err.data = v;
	memset(&o, 0, sizeof(o));
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_IGNORE;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&v->err;
	o.file = exe;
	o.args = argv;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.exit_cb = on_child_exit;
	v->proc.data = v;
	v->line_len = 0;
	v->line_done = false;
	v->line[0] = '\0';
	v->failed[0] = '\0';
	v->open_handles = 2;
	if ((rc = uv_spawn(loop, &v->proc, &o)) != 0) {
		/* Both handles are closed all the same; on_closed notes why. */
		snprintf(v->failed, sizeof(v->failed), "cannot start litestream verify: %s",
			 uv_strerror(rc));
		uv_close((uv_handle_t *)&v->err, on_closed);
		uv_close((uv_handle_t *)&v->proc, on_closed);
		return 0;
	}
	v->running = true;
	uv_read_start((uv_stream_t *)&v->err, on_alloc, on_read);
	return 0;
}

/* Starts the child for the next replica, or ends the run; a failure before any handle exists is noted here. */
static void run_next(struct verify_run *v)
{
	char why[128];
	int rc;

	while (v->w != NULL && v->next < v->w->n_replicas) {
		if ((rc = spawn(v)) == 0)
			return;
		snprintf(why, sizeof(why), "cannot start litestream verify: %s", uv_strerror(rc));
		note_outcome(v, why);
		v->next++;
	}
	if (v->w != NULL)
		v->w->verify = NULL;
	free(v);
}

int replicate_verify_start(struct watched *w, char *err, size_t errlen)
{
	struct verify_run *v;

	if (w->verify != NULL) {
		snprintf(err, errlen, "a verify of %s is already running", w->db.path);
		return 409;
	}
	if (w->retiring || w->app->stopping) {
		snprintf(err, errlen, "%s is closing", w->db.path);
		return 409;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	v->w = w;
	w->verify = v;
	for (size_t i = 0; i < w->n_replicas; i++)
		w->replicas[i].stats.verifying = true;
	LOG_INFO(w->db.path, NULL, "verify: checking %zu replica%s", w->n_replicas,
		 w->n_replicas == 1 ? "" : "s");
	run_next(v);
	return 202;
}

void replicate_verify_cancel(struct watched *w)
{
	struct verify_run *v = w->verify;

	if (v == NULL)
		return;
	for (size_t i = 0; i < w->n_replicas; i++)
		w->replicas[i].stats.verifying = false;
	w->verify = NULL;
	v->w = NULL;
	if (v->running)
		uv_process_kill(&v->proc, SIGTERM);
}
