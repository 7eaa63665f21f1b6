/*
 * The child process of `replicate -exec CMD`: the application that
 * litestream runs and outlives by only as long as the last sync takes. It
 * is started directly (CMD split by shellwords.h, found on PATH), with
 * litestream's environment, standard input, output and error.
 *
 * Everything runs on the loop thread.
 */
#ifndef LITESTREAM_SUBPROCESS_H
#define LITESTREAM_SUBPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct subprocess;

/*
 * Called once when the child has exited. code is what litestream should
 * exit with on its account: its exit status, or 128 + N when signal N
 * killed it. how describes it for the log ("exit status 3", "killed by
 * signal 15"). The handle is closed after the callback returns.
 */
typedef void (*subprocess_exit_cb)(struct subprocess *sp, int code, int term_signal,
				   const char *how);

struct subprocess {
	uv_process_t proc;
	bool running;
	subprocess_exit_cb on_exit;
	void *data;
};

/* 0, or a negative errno with a message in err (the command does not
 * parse, or cannot be started: not found, not executable). */
int subprocess_start(uv_loop_t *loop, struct subprocess *sp, const char *cmdline,
		     subprocess_exit_cb on_exit, char *err, size_t errlen);

/* Sends signum to the child if it is still running. 0 or a negative errno. */
int subprocess_signal(struct subprocess *sp, int signum);

#endif
