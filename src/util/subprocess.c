#include "util/subprocess.h"
#include "util/shellwords.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void on_proc_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_proc_exit(uv_process_t *p, int64_t status, int term_signal)
{
	struct subprocess *sp = p->data;
	char how[64];
	int code;

	sp->running = false;
	if (term_signal != 0) {
		snprintf(how, sizeof(how), "killed by signal %d (%s)", term_signal, strsignal(term_signal));
		code = 128 + term_signal;
	} else {
		snprintf(how, sizeof(how), "exit status %lld", (long long)status);
		code = (int)status;
	}
	uv_close((uv_handle_t *)p, on_proc_closed);
	sp->on_exit(sp, code, term_signal, how);
}

int subprocess_start(uv_loop_t *loop, struct subprocess *sp, const char *cmdline,
		     subprocess_exit_cb on_exit, char *err, size_t errlen)
{
	uv_stdio_container_t stdio[3];
	uv_process_options_t opt;
	char **argv, why[256];
	size_t argc;
	int rc;

	rc = shellwords_split(cmdline, &argv, &argc, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "cannot parse exec command \"%s\": %s", cmdline, why);
		return rc;
	}
	for (int i = 0; i < 3; i++) {
		stdio[i].flags = UV_INHERIT_FD;
		stdio[i].data.fd = i;
	}
	memset(&opt, 0, sizeof(opt));
	opt.file = argv[0];
	opt.args = argv;
	opt.exit_cb = on_proc_exit;
	opt.stdio = stdio;
	opt.stdio_count = 3;
	sp->on_exit = on_exit;
	sp->proc.data = sp;
	/* libuv reports a failed exec (not found, not executable) here, and
	 * still wants the handle closed. */
	rc = uv_spawn(loop, &sp->proc, &opt);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start exec command %s: %s", argv[0], uv_strerror(rc));
		uv_close((uv_handle_t *)&sp->proc, on_proc_closed);
	} else {
		sp->running = true;
	}
	shellwords_free(argv);
	return rc;
}

int subprocess_signal(struct subprocess *sp, int signum)
{
	if (!sp->running)
		return -ESRCH;
	return uv_process_kill(&sp->proc, signum);
}
