/*
 * /v1/dbs/NAME[/ACTION] resolution (control_route.h) against a table of
 * database names, as control.c looks them up (names and paths alike).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "control/control_route.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {
	"app", "x", "x/sync", "/var/lib/app/app.db", "sync", "a b", "/data", "caf\xc3\xa9.db", "%41",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

static void *lookup(void *arg, const char *name)
{
	int *calls = arg;

	(*calls)++;
	for (size_t i = 0; i < N_NAMES; i++)
		if (strcmp(names[i], name) == 0)
			return (void *)names[i];
	return NULL;
}

/* rest must resolve to the database called want with action a. */
static void ok(const char *rest, const char *want, enum control_db_action a)
{
	char buf[256];
	enum control_db_action got_a = (enum control_db_action)-1;
	void *db = NULL;
	int calls = 0, rc = control_route_db(rest, lookup, &calls, buf, &db, &got_a);

	if (rc != 0)
		fail_msg("\"%s\": %d, want \"%s\"", rest, rc, want);
	if (db == NULL || strcmp(db, want) != 0 || got_a != a)
		fail_msg("\"%s\": got \"%s\" action %d, want \"%s\" action %d", rest,
			 db ? (char *)db : "(null)", got_a, want, a);
}

/* rest must fail with rc; for -ENOENT, buf names named. */
static void bad(const char *rest, int want_rc, const char *named)
{
	char buf[256];
	enum control_db_action a = CONTROL_DB_SNAPSHOT;
	void *db = (void *)"untouched";
	int calls = 0, rc = control_route_db(rest, lookup, &calls, buf, &db, &a);

	if (rc != want_rc)
		fail_msg("\"%s\": got %d, want %d", rest, rc, want_rc);
	assert_string_equal(db, "untouched");
	assert_int_equal(a, CONTROL_DB_SNAPSHOT);
	if (named != NULL && strcmp(buf, named) != 0)
		fail_msg("\"%s\": names \"%s\", want \"%s\"", rest, buf, named);
}

static void test_names_and_actions(void **state)
{
	(void)state;
	ok("app", "app", CONTROL_DB_GET);
	ok("app/sync", "app", CONTROL_DB_SYNC);
	ok("app/checkpoint", "app", CONTROL_DB_CHECKPOINT);
	ok("app/snapshot", "app", CONTROL_DB_SNAPSHOT);
	ok("app/%73ync", "app", CONTROL_DB_SYNC); /* each part decoded, as before */
	ok("%61pp", "app", CONTROL_DB_GET);
	ok("a%20b/sync", "a b", CONTROL_DB_SYNC);
	bad("a+b", -ENOENT, "a+b"); /* '+' is no space in a path */
}

static void test_paths(void **state)
{
	(void)state;
	/* As written, with the slashes. */
	ok("/var/lib/app/app.db", "/var/lib/app/app.db", CONTROL_DB_GET);
	ok("/var/lib/app/app.db/sync", "/var/lib/app/app.db", CONTROL_DB_SYNC);
	ok("/var/lib/app/app.db/checkpoint", "/var/lib/app/app.db", CONTROL_DB_CHECKPOINT);
	ok("/var/lib/app/app.db/snapshot", "/var/lib/app/app.db", CONTROL_DB_SNAPSHOT);
	/* Percent-encoded, wholly or in part. */
	ok("%2Fvar%2Flib%2Fapp%2Fapp.db", "/var/lib/app/app.db", CONTROL_DB_GET);
	ok("%2Fvar%2Flib%2Fapp%2Fapp.db/sync", "/var/lib/app/app.db", CONTROL_DB_SYNC);
	ok("%2fvar/lib%2Fapp/app.db/sync", "/var/lib/app/app.db", CONTROL_DB_SYNC);
}

static void test_ambiguous(void **state)
{
	(void)state;
	/* A database called "sync", and paths ending in an action's word. */
	ok("sync", "sync", CONTROL_DB_GET);
	ok("sync/sync", "sync", CONTROL_DB_SYNC);
	/* x and x/sync: a literal slash before an action is the action. */
	ok("x/sync", "x", CONTROL_DB_SYNC);
	ok("x%2Fsync", "x/sync", CONTROL_DB_GET);
	ok("x%2Fsync/sync", "x/sync", CONTROL_DB_SYNC);
	/* /data exists, /data/sync is no database: the sync of /data. */
	ok("/data/sync", "/data", CONTROL_DB_SYNC);
	/* A name that looks encoded is reached encoded. */
	ok("%2541", "%41", CONTROL_DB_GET);
	ok("caf%C3%A9.db/snapshot", "caf\xc3\xa9.db", CONTROL_DB_SNAPSHOT);
	ok("caf\xc3\xa9.db", "caf\xc3\xa9.db", CONTROL_DB_GET);
}

static void test_not_found(void **state)
{
	(void)state;
	bad("", -ENOENT, "");
	bad("nope", -ENOENT, "nope");
	bad("nope/sync", -ENOENT, "nope");
	bad("/var/lib/other.db/sync", -ENOENT, "/var/lib/other.db");
	bad("%2Fnope", -ENOENT, "/nope");
	bad("app/", -EOPNOTSUPP, NULL);
	bad("app/sync/", -ENOENT, "app/sync/");
	bad("app/frobnicate", -EOPNOTSUPP, NULL);
	bad("/var/lib/app/app.db/frobnicate", -EOPNOTSUPP, NULL);
	bad("app/sync/sync", -ENOENT, "app/sync");
	bad("%zz", -EINVAL, NULL);
	bad("a%00b", -EINVAL, NULL);
	bad("app%", -EINVAL, NULL);
	bad("app/%zz", -EINVAL, NULL);
	/* A bad escape in the name before a good action is still bad. */
	bad("ap%p/sync", -EINVAL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_actions),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_ambiguous),
		cmocka_unit_test(test_not_found),
	};
	return cmocka_run_group_tests_name("control_route", tests, NULL, NULL);
}
