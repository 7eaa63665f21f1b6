/*
 * Restore from configured replicas; see restore_replicas.h.
 */
#include "restore/restore_replicas.h"

#include <errno.h>
#include <stdlib.h>

int restore_from_replicas(const struct replica_config *const *rcs, size_t n,
			  const struct restore_opts *opts, char *err, size_t errlen)
{
	struct restore_source *src = calloc(n > 0 ? n : 1, sizeof(*src));
	size_t made = 0;
	uv_loop_t loop;
	int rc = 0;

	if (src == NULL)
		return -ENOMEM;
	uv_loop_init(&loop);
	for (; made < n; made++) {
		if ((rc = backend_new(&loop, rcs[made], &src[made].backend, err, errlen)) != 0)
			break;
		src[made].name = rcs[made]->name;
	}
	if (rc == 0)
		rc = restore_run(src, n, opts, err, errlen);
	for (size_t i = 0; i < made; i++)
		src[i].backend->ops->free(src[i].backend);
	uv_run(&loop, UV_RUN_DEFAULT); /* the backends' handles close */
	uv_loop_close(&loop);
	free(src);
	return rc;
}
