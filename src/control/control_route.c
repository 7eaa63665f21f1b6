/*
 * Resolving /v1/dbs/NAME[/ACTION]; control_route.h has the rules. Two
 * readings are tried, the one with an action first, each decoded into the
 * caller's buffer (decoding never lengthens a string).
 */
#include "control/control_route.h"

#include "util/pct.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const struct {
	const char *word;
	enum control_db_action action;
} actions[] = {
	{"sync", CONTROL_DB_SYNC},
	{"checkpoint", CONTROL_DB_CHECKPOINT},
	{"snapshot", CONTROL_DB_SNAPSHOT},
	{"verify", CONTROL_DB_VERIFY},
};

/* The action s[0..len) spells (decoded), or false. buf: room for len + 1. */
static bool action_of(const char *s, size_t len, char *buf, enum control_db_action *out)
{
	if (pct_decode(s, len, 0, buf) != 0)
		return false;
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcmp(buf, actions[i].word) == 0) {
			*out = actions[i].action;
			return true;
		}
	return false;
}

int control_route_db(const char *rest, control_route_lookup_fn lookup, void *arg, char *buf,
		     void **db, enum control_db_action *action)
{
	const char *slash = strrchr(rest, '/');
	size_t len = strlen(rest);
	enum control_db_action a;
	void *found;

	if (slash != NULL && action_of(slash + 1, len - (size_t)(slash + 1 - rest), buf, &a) &&
	    pct_decode(rest, (size_t)(slash - rest), 0, buf) == 0 && (found = lookup(arg, buf)) != NULL) {
		*db = found;
		*action = a;
		return 0;
	}
	if (pct_decode(rest, len, 0, buf) != 0)
		return -EINVAL;
	if ((found = lookup(arg, buf)) != NULL) {
		*db = found;
		*action = CONTROL_DB_GET;
		return 0;
	}
	if (slash == NULL)
		return -ENOENT;
	/* The 404 names what was meant: the database before the action, if any. */
	if (action_of(slash + 1, len - (size_t)(slash + 1 - rest), buf, &a) &&
	    pct_decode(rest, (size_t)(slash - rest), 0, buf) == 0)
		return -ENOENT;
	/* A database, then something that is no action. */
	if (pct_decode(rest, (size_t)(slash - rest), 0, buf) == 0 && lookup(arg, buf) != NULL)
		return -EOPNOTSUPP;
	pct_decode(rest, len, 0, buf);
	return -ENOENT;
}
