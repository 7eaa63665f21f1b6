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
	struct age_keys *keys = NULL;
	char why[512];
	int rc;

	if ((rc = age_keys_new(cfg->age_recipients, cfg->age_identities, &keys, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "replica %s: %s", cfg->name, why);
		return rc;
	}
	switch (cfg->type) {
	case REPLICA_FILE:
		rc = backend_file_new(loop, cfg->path, out);
		break;
	case REPLICA_S3:
		rc = backend_s3_new(loop, cfg, out, err, errlen);
		break;
	case REPLICA_ABS:
		rc = backend_abs_new(loop, cfg, out, err, errlen);
		break;
	case REPLICA_SFTP:
		rc = backend_sftp_new(loop, cfg, out, err, errlen);
		break;
	default:
		snprintf(err, errlen, "replica %s: unknown replica type", cfg->name);
		rc = -ENOTSUP;
	}
	if (rc != 0) {
		age_keys_free(keys);
		return rc;
	}
	(*out)->age = keys;
	return 0;
}

void backend_close(struct backend *b, void (*cb)(void *arg), void *arg)
{
	if (b->ops->close != NULL)
		b->ops->close(b, cb, arg);
	else if (cb != NULL)
		cb(arg);
}
