/*
 * Restore from configured replicas: makes a backend for each replica
 * configuration on a loop of its own, runs restore_run() over them and
 * frees everything again. For the commands that restore before anything
 * else runs (restore, replicate -restore-if-db-not-exists). Blocking.
 */
#ifndef LITESTREAM_RESTORE_REPLICAS_H
#define LITESTREAM_RESTORE_REPLICAS_H

#include "config/config.h"
#include "restore/restore.h"

#include <stddef.h>

/*
 * As restore_run(): 0, -ENOENT when no backup matches, another -errno
 * otherwise (a backend that cannot be made among them); err explains.
 */
int restore_from_replicas(const struct replica_config *const *rcs, size_t n,
			  const struct restore_opts *opts, char *err, size_t errlen);

#endif
