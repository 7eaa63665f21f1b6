/*
 * The file descriptor limit of `litestream replicate` (replicate.h). A
 * thousand databases need a few thousand descriptors, and a service's
 * soft limit is often 1024 (the hard limit much higher), so the soft
 * limit is raised to the hard one at start, as Go's runtime does for
 * Litestream 0.3. What one database holds open, measured: its file and
 * WAL through each of our two SQLite connections, the shared memory file,
 * our own descriptor of the file (db_conn.h), the shadow WAL while a sync
 * runs; a replica, a connection or a file being written while it ships.
 * The estimate takes the worst of those, and a margin for the control
 * socket, the loop and the children: below it the start fails with a
 * message that says how many are needed, rather than failing later with
 * EMFILE on one database among a thousand.
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define FDS_BASE 64
#define FDS_PER_DB 8
#define FDS_PER_REPLICA 3

int replicate_limits_raise(size_t n_dbs, size_t n_replicas, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t need = FDS_BASE + (rlim_t)n_dbs * FDS_PER_DB + (rlim_t)n_replicas * FDS_PER_REPLICA;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0; /* nothing to go by: let it run */
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			LOG_WARN(NULL, NULL, "cannot raise the open file limit from %llu to %llu: %s",
				 (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
			rl.rlim_cur = was;
		} else {
			LOG_DEBUG(NULL, NULL, "open file limit raised from %llu to %llu",
				  (unsigned long long)was, (unsigned long long)rl.rlim_cur);
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		snprintf(err, errlen,
			 "the open file limit (%llu, hard limit %llu) is too low for %zu database%s with "
			 "%zu replica%s: they need about %llu (raise it: ulimit -n, or LimitNOFILE= in "
			 "the systemd unit)",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, n_dbs,
			 n_dbs == 1 ? "" : "s", n_replicas, n_replicas == 1 ? "" : "s",
			 (unsigned long long)need);
		return -EMFILE;
	}
	return 0;
}
