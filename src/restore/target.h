/*
 * What a one-shot command (restore, generations, snapshots, wal) works on:
 * its DB_PATH|REPLICA_URL argument turned into a list of replica
 * configurations, the way Litestream 0.3 resolves it.
 *
 * - An argument that looks like a URL (replica_url_is_url(): "s3://...",
 *   "file://...") names one replica, configured from the URL alone
 *   (config_replica_from_url()); it is named after its type ("file",
 *   "s3"). The configuration file is not read, and a replica name is
 *   ignored, as Litestream ignores -replica there. Whether -config beside
 *   a URL is an error is the caller's choice (the listing commands say it
 *   is, as Litestream does).
 * - Anything else is a database path: made absolute, looked up among the
 *   configuration file's [db] sections; every replica of that database in
 *   file order, or only the one called replica_name. A database with no
 *   replica resolves to an empty list: the caller decides whether that is
 *   an error (a listing shows nothing, a restore has nothing to read).
 *
 * Ownership: a resolved target owns the configuration it read; db_path
 * and replicas[] point into it and live until target_free().
 */
#ifndef LITESTREAM_TARGET_H
#define LITESTREAM_TARGET_H

#include "config/config.h"

#include <stddef.h>

struct target {
	const char *db_path;                    /* absolute, or NULL for a URL */
	const struct replica_config **replicas; /* selected, in file order */
	size_t n_replicas;
	/* Private: what replicas[] point into. */
	struct config cfg;
	struct replica_config url_rc;
};

/*
 * The configuration file a command reads when no -config is given:
 * $LITESTREAM_CONFIG when set and not empty (as Litestream 0.3 does), else
 * CONFIG_DEFAULT_PATH. config_path (the -config value) wins when neither
 * NULL nor empty (Go's flag package reads an empty value as unset).
 */
const char *target_config_path(const char *config_path);

/*
 * Resolves arg into *t (zeroed first). Returns 0; or, with a one-line
 * message in err that does not repeat the command's name:
 *   -EINVAL  arg is an invalid replica URL, or the file does not load
 *            (config_load()'s codes are passed through, e.g. -ENOENT for
 *            a missing file: the message names the file either way);
 *   -ESRCH   no [db] section has that path ("database not found in
 *            config: PATH");
 *   -ENXIO   the database has no replica called replica_name.
 * On failure *t holds nothing to free (target_free() is harmless).
 */
int target_resolve(struct target *t, const char *arg, const char *config_path,
		   const char *replica_name, char *err, size_t errlen);

void target_free(struct target *t);

#endif
