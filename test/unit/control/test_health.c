/*
 * health.h: GET /healthz's parameters and the rule status shares.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "control/health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void parses(const char *q, int64_t max_lag_ms, const char *db)
{
	struct health_limits l;
	char err[256] = "";

	health_limits_init(&l);
	if (health_limits_parse(q, &l, err, sizeof(err)) != 0)
		fail_msg("\"%s\": %s", q, err);
	assert_int_equal(l.max_lag_ms, max_lag_ms);
	if (db == NULL)
		assert_null(l.db);
	else
		assert_string_equal(l.db, db);
	health_limits_free(&l);
}

static void refuses(const char *q, const char *want)
{
	struct health_limits l;
	char err[256] = "";

	health_limits_init(&l);
	if (health_limits_parse(q, &l, err, sizeof(err)) != -EINVAL)
		fail_msg("\"%s\" accepted", q);
	assert_string_equal(err, want);
	health_limits_free(&l);
}

static void test_parse(void **state)
{
	(void)state;
	parses("", -1, NULL);
	parses("max-lag=10s", 10000, NULL);
	parses("max-lag=0", 0, NULL);
	parses("max-lag=1m30s&db=app", 90000, "app");
	parses("db=%2Fvar%2Flib%2Fapp.db", -1, "/var/lib/app.db");
	parses("db=/var/lib/app.db", -1, "/var/lib/app.db");
	parses("db=a+b&&max-lag=500ms&", 500, "a b");
	parses("db=x&db=y", -1, "y"); /* the last wins, as elsewhere */
	refuses("max-lag=abc", "invalid max-lag \"abc\" (a duration such as 10s)");
	refuses("max-lag=-1s", "invalid max-lag \"-1s\" (a duration such as 10s)");
	refuses("max-lag", "invalid max-lag \"\" (a duration such as 10s)");
	refuses("db=", "invalid db \"\" (want a database's name or path)");
	refuses("timeout=1s", "unknown parameter \"timeout\" (want max-lag or db)");
	refuses("max-lag=%zz", "malformed query string");
}

static void test_rule(void **state)
{
	struct health_limits none, lim;
	char why[128];

	(void)state;
	health_limits_init(&none);
	health_limits_init(&lim);
	lim.max_lag_ms = 2000;
	strcpy(why, "untouched");
	assert_true(health_replica_ok(&none, NULL, 3600, why, sizeof(why)));
	assert_true(health_replica_ok(&none, "", 0, why, sizeof(why)));
	assert_string_equal(why, "untouched");
	assert_true(health_replica_ok(&lim, NULL, 2.0, why, sizeof(why)));
	assert_false(health_replica_ok(&lim, NULL, 2.5, why, sizeof(why)));
	assert_string_equal(why, "lags by 2.5s");
	/* An error counts with or without a limit, and before the lag. */
	assert_false(health_replica_ok(&none, "put x: HTTP 503", 0, why, sizeof(why)));
	assert_string_equal(why, "error: put x: HTTP 503");
	assert_false(health_replica_ok(&lim, "boom", 99, why, sizeof(why)));
	assert_string_equal(why, "error: boom");
	lim.max_lag_ms = 0;
	assert_true(health_replica_ok(&lim, NULL, 0, why, sizeof(why)));
	assert_false(health_replica_ok(&lim, NULL, 0.001, why, sizeof(why)));
	assert_string_equal(why, "lags by 1ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_rule),
	};
	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
