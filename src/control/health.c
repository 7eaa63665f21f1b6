/*
 * The health rule and GET /healthz's parameters; health.h has both. The
 * query is split by control_params.c, so it reads like every other
 * request's (percent-decoding, '+' as a space).
 */
#include "control/health.h"

#include "control/control_params.h"
#include "util/duration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void health_limits_init(struct health_limits *l)
{
	l->max_lag_ms = -1;
	l->db = NULL;
}

void health_limits_free(struct health_limits *l)
{
	free(l->db);
	l->db = NULL;
}

static int on_param(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
	struct health_limits *l = arg;

	if (strcmp(k, "max-lag") == 0) {
		int64_t ms;

		if (duration_parse(v, &ms) != 0 || ms < 0) {
			snprintf(err, errlen, "invalid max-lag \"%s\" (a duration such as 10s)", v);
			return -EINVAL;
		}
		l->max_lag_ms = ms;
		return 0;
	}
	if (strcmp(k, "db") == 0) {
		char *d;

		if (v[0] == '\0') {
			snprintf(err, errlen, "invalid db \"\" (want a database's name or path)");
			return -EINVAL;
		}
		if ((d = strdup(v)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		free(l->db);
		l->db = d;
		return 0;
	}
	snprintf(err, errlen, "unknown parameter \"%s\" (want max-lag or db)", k);
	return -EINVAL;
}

int health_limits_parse(const char *query, struct health_limits *l, char *err, size_t errlen)
{
	return control_query_each(query, on_param, l, err, errlen);
}

bool health_replica_ok(const struct health_limits *l, const char *last_error, double lag_seconds,
		       char *reason, size_t n)
{
	char d[32];

	if (last_error != NULL && last_error[0] != '\0') {
		snprintf(reason, n, "error: %s", last_error);
		return false;
	}
	if (l->max_lag_ms >= 0 && lag_seconds * 1000 > (double)l->max_lag_ms) {
		duration_format((int64_t)(lag_seconds * 1000), d, sizeof(d));
		snprintf(reason, n, "lags by %s", d);
		return false;
	}
	return true;
}
