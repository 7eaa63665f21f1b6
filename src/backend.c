/*
 * Backend helpers shared by every storage type; see backend.h.
 */
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void backend_list_free(struct backend_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int backend_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out, char *err,
		size_t errlen)
{
	switch (cfg->type) {
	case REPLICA_FILE:
		return backend_file_new(loop, cfg->path, out);
	case REPLICA_S3:
		return backend_s3_new(loop, cfg, out, err, errlen);
	}
	snprintf(err, errlen, "replica %s: unknown replica type", cfg->name);
	return -ENOTSUP;
}

void backend_close(struct backend *b, void (*cb)(void *arg), void *arg)
{
	if (b->ops->close != NULL)
		b->ops->close(b, cb, arg);
	else if (cb != NULL)
		cb(arg);
}

struct wait_state {
	bool done;
	int rc;
	char *err;
	size_t errlen;
	struct backend_list *list;
};

static void on_list_done(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct wait_state *w = arg;

	w->done = true;
	w->rc = rc;
	if (rc != 0) {
		snprintf(w->err, w->errlen, "%s", err ? err : strerror(-rc));
	} else {
		*w->list = *list;
		list->v = NULL;
		list->n = 0;
	}
}

static void on_done(void *arg, int rc, const char *err)
{
	struct wait_state *w = arg;

	w->done = true;
	w->rc = rc;
	if (rc != 0)
		snprintf(w->err, w->errlen, "%s", err ? err : strerror(-rc));
}

static void run_until(uv_loop_t *loop, const bool *done)
{
	while (!*done)
		uv_run(loop, UV_RUN_ONCE);
}

int backend_list_wait(struct backend *b, const char *dir, struct backend_list *out, char *err,
		      size_t errlen)
{
	struct wait_state w = {false, 0, err, errlen, out};

	b->ops->list(b, dir, on_list_done, &w);
	run_until(b->loop, &w.done);
	return w.rc;
}

int backend_get_wait(struct backend *b, const char *key, const char *local_path, char *err,
		     size_t errlen)
{
	struct wait_state w = {false, 0, err, errlen, NULL};

	b->ops->get(b, key, local_path, on_done, &w);
	run_until(b->loop, &w.done);
	return w.rc;
}
