/*
 * credential_process (source.h): the command a profile of the AWS config
 * file (AWS_CONFIG_FILE or ~/.aws/config, profile AWS_PROFILE or
 * default) names, run at every fetch; it prints its credentials as JSON
 * Version 1 on standard output (creds_parse.h).
 *
 * The command runs as `/bin/sh -c COMMAND`, as the Go SDK runs it, so
 * quoting, variables and pipes work as the user wrote them. It runs under
 * uv_spawn(): standard input is /dev/null, standard output a pipe the loop
 * reads (at most S3_CREDS_DOC_MAX bytes), standard error litestream's own
 * (what it says goes to the log's stream). A command that has not exited
 * within PROCESS_TIMEOUT_MS is killed. The output holds the secret and is
 * wiped once parsed.
 *
 * One fetch owns three handles, the process, the pipe and a timer, all
 * initialised by fetch() and all closed before done() is called: done()
 * runs from the last close callback, so that free() may follow at once.
 * A spawn that fails is reported that way too, from the loop.
 */
#include "s3/source.h"
#include "s3/creds_parse.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCESS_TIMEOUT_MS 30000

struct process {
	struct s3_source base;
	char *command;
	uv_process_t proc;
	uv_pipe_t pipe;
	uv_timer_t timer;
	int open_handles; /* initialised, close callback not yet run */
	bool running;     /* spawned and not yet exited */
	bool pipe_open;   /* not yet at EOF or closed */
	int64_t status;
	int term_signal;
	int rc;           /* the first failure of this fetch */
	char why[S3_SOURCE_WHY_MAX];
	char *out;
	size_t out_len;
	bool timed_out;
};

static void set_failure(struct process *p, int rc, const char *why)
{
	if (p->rc != 0)
		return;
	p->rc = rc;
	snprintf(p->why, sizeof(p->why), "%s", why);
}

static void drop_output(struct process *p)
{
	if (p->out != NULL) {
		explicit_bzero(p->out, S3_CREDS_DOC_MAX + 1);
		free(p->out);
		p->out = NULL;
	}
	p->out_len = 0;
}

/* The end of a fetch, once every handle is closed. */
static void report(struct process *p)
{
	struct s3_credentials c;
	char why[S3_SOURCE_WHY_MAX];
	int rc = p->rc;

	if (rc == 0 && p->timed_out) {
		rc = -ETIMEDOUT;
		snprintf(why, sizeof(why), "did not exit within %d s; killed",
			 PROCESS_TIMEOUT_MS / 1000);
	} else if (rc == 0 && p->term_signal != 0) {
		rc = -ECHILD;
		snprintf(why, sizeof(why), "killed by signal %d",
			 p->term_signal);
	} else if (rc == 0 && p->status != 0) {
		rc = -ECHILD;
		snprintf(why, sizeof(why), "exited with status %lld",
			 (long long)p->status);
	} else if (rc == 0) {
		rc = s3_creds_json_parse(S3_CREDS_PROCESS, p->out, p->out_len, &c, why, sizeof(why));
		if (rc == 0)
			snprintf(c.source, sizeof(c.source), "%s", p->base.name);
	} else {
		snprintf(why, sizeof(why), "%s", p->why);
	}
	drop_output(p);
	p->base.done(&p->base, rc, rc == 0 ? &c : NULL, why);
}

static void on_closed(uv_handle_t *h)
{
	struct process *p = h->data;

	if (--p->open_handles == 0)
		report(p);
}

static void close_pipe(struct process *p)
{
	if (p->pipe_open) {
		p->pipe_open = false;
		uv_close((uv_handle_t *)&p->pipe, on_closed);
	}
}

/* The process and the pipe are both done with: the timer goes too. */
static void maybe_end(struct process *p)
{
	if (p->open_handles == 0 || p->running || p->pipe_open ||
	    uv_is_closing((uv_handle_t *)&p->timer))
		return;
	uv_close((uv_handle_t *)&p->timer, on_closed);
}

static void on_proc_exit(uv_process_t *h, int64_t status, int term_signal)
{
	struct process *p = h->data;

	p->running = false;
	p->status = status;
	p->term_signal = term_signal;
	uv_close((uv_handle_t *)h, on_closed);
	maybe_end(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct process *p = h->data;

	(void)suggested;
	*buf = uv_buf_init(p->out + p->out_len, (unsigned)(S3_CREDS_DOC_MAX + 1 - p->out_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct process *p = s->data;

	(void)buf;
	if (n > 0) {
		p->out_len += (size_t)n;
		if (p->out_len > S3_CREDS_DOC_MAX) {
			set_failure(p, -EFBIG, "printed more than 64 KiB");
			if (p->running)
				uv_process_kill(&p->proc, SIGKILL);
			close_pipe(p);
			maybe_end(p);
		}
		return;
	}
	if (n == UV_ENOBUFS)
		set_failure(p, -ENOMEM, "out of memory reading its output");
	else if (n < 0 && n != UV_EOF)
		set_failure(p, (int)n, "cannot read its output");
	if (n < 0) {
		close_pipe(p);
		maybe_end(p);
	}
}

static void on_timeout(uv_timer_t *t)
{
	struct process *p = t->data;

	p->timed_out = true;
	if (p->running)
		uv_process_kill(&p->proc, SIGKILL);
	/* A child of the command may still hold the pipe open. */
	close_pipe(p);
	maybe_end(p);
}

static int process_fetch(struct s3_source *s)
{
	struct process *p = (struct process *)s;
	char sh[] = "sh", dash_c[] = "-c";
	char *args[] = {sh, dash_c, p->command, NULL};
	uv_stdio_container_t stdio[3];
	uv_process_options_t o;
	int rc;

	if ((p->out = malloc(S3_CREDS_DOC_MAX + 1)) == NULL)
		return -ENOMEM;
	p->out_len = 0;
	p->rc = 0;
	p->timed_out = false;
	p->status = p->term_signal = 0;
	uv_pipe_init(s->ctx->loop, &p->pipe, 0);
	uv_timer_init(s->ctx->loop, &p->timer);
	p->pipe.data = p->timer.data = p->proc.data = p;
	p->open_handles = 3;
	p->pipe_open = true;
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&p->pipe;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	memset(&o, 0, sizeof(o));
	o.file = "/bin/sh";
	o.args = args;
	o.exit_cb = on_proc_exit;
	o.stdio = stdio;
	o.stdio_count = 3;
	rc = uv_spawn(s->ctx->loop, &p->proc, &o);
	if (rc != 0) {
		char why[S3_SOURCE_WHY_MAX];

		snprintf(why, sizeof(why), "cannot run /bin/sh: %s", uv_strerror(rc));
		set_failure(p, rc, why);
		/* libuv wants a handle that failed to spawn closed all the same. */
		uv_close((uv_handle_t *)&p->proc, on_closed);
		close_pipe(p);
		maybe_end(p);
		return 0;
	}
	p->running = true;
	rc = uv_read_start((uv_stream_t *)&p->pipe, on_alloc, on_read);
	if (rc != 0) {
		set_failure(p, rc, "cannot read its output");
		uv_process_kill(&p->proc, SIGKILL);
		close_pipe(p);
	}
	uv_timer_start(&p->timer, on_timeout, PROCESS_TIMEOUT_MS, 0);
	return 0;
}

static void process_cancel(struct s3_source *s)
{
	struct process *p = (struct process *)s;

	if (p->open_handles == 0)
		return;
	set_failure(p, -ECANCELED, "cancelled");
	if (p->running)
		uv_process_kill(&p->proc, SIGKILL);
	close_pipe(p);
	maybe_end(p);
}

static void process_free(struct s3_source *s)
{
	struct process *p = (struct process *)s;

	drop_output(p);
	free(p->command);
	free(p);
}

static const struct s3_source_ops process_ops = {process_fetch, process_cancel, process_free};

int s3_source_process_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
			  size_t n)
{
	const char *profile = s3_profile_name();
	char *path = s3_config_file_path(), *command = NULL;
	struct process *p;
	int rc;

	if (path == NULL) {
		snprintf(why, n, "no home directory, so no ~/.aws/config");
		return 1;
	}
	rc = s3_config_file_value(path, profile, "credential_process", &command, why, n);
	if (rc != 0) {
		free(path);
		return rc;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		free(path);
		free(command);
		return -ENOMEM;
	}
	p->command = command;
	p->base.ops = &process_ops;
	p->base.ctx = ctx;
	/* Not the command itself: it may carry a secret on its command line. */
	snprintf(p->base.name, sizeof(p->base.name), "credential_process of profile [%.64s] in %.150s",
		 profile, path);
	snprintf(p->base.label, sizeof(p->base.label), "credential_process [%.64s]", profile);
	free(path);
	*out = &p->base;
	return 0;
}
