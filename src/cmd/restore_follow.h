/*
 * `restore -f`: the follow mode of cmd_restore.c (follower.h), with its
 * signals and its control socket. Returns the exit code: 0 after SIGINT or
 * SIGTERM, 1 when the follower stopped on an error (printed on stderr).
 */
#ifndef LITESTREAM_RESTORE_FOLLOW_H
#define LITESTREAM_RESTORE_FOLLOW_H

#include "config/config.h"
#include "restore/follower.h"

int restore_follow_run(const struct replica_config *rc, const struct follower_opts *o,
		       const char *socket_path);

#endif
