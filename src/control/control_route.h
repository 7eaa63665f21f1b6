/*
 * Which database a /v1/dbs/... request addresses, and what it asks of it:
 *
 *   /v1/dbs/NAME              GET the database
 *   /v1/dbs/NAME/sync         POST a sync (likewise checkpoint, snapshot)
 *
 * NAME is what `litestream status` shows (a [db] section's name; in URL
 * mode the database file's name) or the database's path, and may be
 * written as it reads: a path with its slashes as they are
 * (/v1/dbs//var/lib/app/app.db/sync), percent-encoded
 * (/v1/dbs/%2Fvar%2Flib%2Fapp%2Fapp.db/sync), or any mix. So NAME is
 * everything between "/v1/dbs/" and the action, decoded as a whole.
 *
 * The path alone cannot say where NAME ends (a database may be called
 * "sync", a path may end in "/sync"), so the databases decide: when the
 * part after the last literal '/' is an action and what comes before it
 * names a database, that is the request; else the whole rest must name a
 * database (a GET). Only a literal '/' can end NAME: %2F is part of it.
 * So with [db x] and [db x/sync] both configured, /v1/dbs/x/sync is the
 * sync of x, and x/sync is GET /v1/dbs/x%2Fsync.
 *
 * No I/O, no allocation; the caller looks databases up.
 */
#ifndef LITESTREAM_CONTROL_ROUTE_H
#define LITESTREAM_CONTROL_ROUTE_H

#include <stddef.h>

enum control_db_action {
	CONTROL_DB_GET,
	CONTROL_DB_SYNC,
	CONTROL_DB_CHECKPOINT,
	CONTROL_DB_SNAPSHOT,
	CONTROL_DB_VERIFY,
};

/* The database called name (decoded), or NULL. */
typedef void *(*control_route_lookup_fn)(void *arg, const char *name);

/*
 * Resolves rest, the request's path after "/v1/dbs/" as sent. buf must
 * hold strlen(rest) + 1 bytes. Returns 0 with *db and *action set;
 * -ENOENT when no database matches, with buf holding the name looked for
 * (for the 404's message); -EOPNOTSUPP when what precedes the last '/'
 * names a database and what follows is no action; -EINVAL when rest holds
 * a bad escape (a '%' without two hex digits, or %00).
 */
int control_route_db(const char *rest, control_route_lookup_fn lookup, void *arg, char *buf,
		     void **db, enum control_db_action *action);

#endif
