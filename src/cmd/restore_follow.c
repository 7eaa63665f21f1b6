/*
 * `restore -f`: one loop holding the replica's backend, the follower, its
 * control socket and the SIGINT/SIGTERM handles. A signal stops the
 * follower after its current step (an apply finishes; PATH is never left
 * mid-change) and the command exits 0.
 */
#include "cmd/restore_follow.h"

#include "backend/backend.h"
#include "control/control_follow.h"
#include "util/log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct follow_app {
	uv_loop_t loop;
	uv_signal_t sigint, sigterm;
	struct follower f;
};

static void on_signal(uv_signal_t *h, int signum)
{
	struct follow_app *app = h->data;

	LOG_INFO(app->f.o.output, NULL, "signal %d received, stopping", signum);
	follower_stop(&app->f);
}

int restore_follow_run(const struct replica_config *rc, const struct follower_opts *o,
		       const char *socket_path)
{
	struct follow_app app;
	struct restore_source src;
	struct control_follow *ctl = NULL;
	char err[1024];
	int rc_ = 0, code = 0;

	memset(&app, 0, sizeof(app));
	uv_loop_init(&app.loop);
	src.name = rc->name;
	if (backend_new(&app.loop, rc, &src.backend, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
		uv_loop_close(&app.loop);
		return 1;
	}
	if (follower_init(&app.f, &app.loop, &src, o) != 0) {
		fprintf(stderr, "litestream restore: out of memory\n");
		code = 1;
		goto out;
	}
	uv_signal_init(&app.loop, &app.sigint);
	uv_signal_init(&app.loop, &app.sigterm);
	app.sigint.data = app.sigterm.data = &app;
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	if (socket_path != NULL &&
	    control_follow_start(&app.loop, &app.f, socket_path, &ctl, err, sizeof(err)) != 0) {
		fprintf(stderr, "litestream restore: -socket: %s\n", err);
		code = 1;
	}
	if (code == 0 && (rc_ = follower_run(&app.f, err, sizeof(err))) != 0) {
		fprintf(stderr, "litestream restore: %s\n", err);
		code = 1;
	}
	control_follow_close(ctl);
	uv_close((uv_handle_t *)&app.sigint, NULL);
	uv_close((uv_handle_t *)&app.sigterm, NULL);
out:
	follower_free(&app.f);
	src.backend->ops->free(src.backend);
	uv_run(&app.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&app.loop) != 0)
		LOG_WARN(o->output, NULL, "follow: the loop still holds handles at exit");
	return code;
}
