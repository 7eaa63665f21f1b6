/*
 * Backend helpers shared by every storage type; see backend.h.
 */
#include "backend/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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
	case REPLICA_ABS:
		return backend_abs_new(loop, cfg, out, err, errlen);
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
