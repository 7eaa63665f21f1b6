#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "control/control_params.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ALL (CONTROL_PARAM_WAIT | CONTROL_PARAM_TIMEOUT | CONTROL_PARAM_MODE)
#define SYNC (CONTROL_PARAM_WAIT | CONTROL_PARAM_TIMEOUT)
#define CHECKPOINT (CONTROL_PARAM_MODE | CONTROL_PARAM_TIMEOUT)

struct ok_case {
	const char *query, *body; /* body NULL: none */
	unsigned allowed;
	bool wait;
	int64_t timeout_ms;
	enum db_checkpoint_mode mode;
};

struct bad_case {
	const char *query, *body;
	unsigned allowed;
	const char *want; /* the whole message, as the 400 answer carries it */
};

static int parse(const char *query, const char *body, unsigned allowed, struct control_params *p,
		 char *err, size_t errlen)
{
	return control_params_parse(query, body, body != NULL ? strlen(body) : 0, allowed, p, err,
				    errlen);
}

static void test_defaults(void **state)
{
	struct control_params p;
	char err[256] = "";

	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(parse("", NULL, ALL, &p, err, sizeof(err)), 0);
	assert_false(p.wait);
	assert_int_equal(p.timeout_ms, CONTROL_DEFAULT_TIMEOUT_MS);
	assert_int_equal(p.timeout_ms, 30000);
	assert_int_equal(p.mode, CHECKPOINT_PASSIVE);
	assert_string_equal(err, "");

	/* An empty body, or one of white space only, is no body. */
	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(parse("", " \t\r\n", ALL, &p, err, sizeof(err)), 0);
	assert_false(p.wait);
	assert_int_equal(p.timeout_ms, 30000);
	assert_int_equal(control_params_parse("", "{", 0, ALL, &p, err, sizeof(err)), 0);
}

static void test_good(void **state)
{
	static const struct ok_case cases[] = {
		/* The query string. */
		{"wait=1&timeout=10s", NULL, SYNC, true, 10000, CHECKPOINT_PASSIVE},
		{"wait", NULL, SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"wait=", NULL, SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"wait=TRUE", NULL, SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"wait=Yes", NULL, SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"wait=1&wait=no", NULL, SYNC, false, 30000, CHECKPOINT_PASSIVE},
		{"wait=0", NULL, SYNC, false, 30000, CHECKPOINT_PASSIVE},
		{"wait=false", NULL, SYNC, false, 30000, CHECKPOINT_PASSIVE},
		{"&&wait=1&", NULL, SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"timeout=1m%30s", NULL, SYNC, false, 60000, CHECKPOINT_PASSIVE},
		{"%74imeout=1%6D", NULL, SYNC, false, 60000, CHECKPOINT_PASSIVE}, /* keys decode too */
		{"timeout=10m", NULL, SYNC, false, 600000, CHECKPOINT_PASSIVE},
		{"timeout=1ms", NULL, SYNC, false, 1, CHECKPOINT_PASSIVE},
		{"mode=full", NULL, CHECKPOINT, false, 30000, CHECKPOINT_FULL},
		{"mode=Restart&timeout=5s", NULL, CHECKPOINT, false, 5000, CHECKPOINT_RESTART},
		{"mode=TRUNCATE", NULL, CHECKPOINT, false, 30000, CHECKPOINT_TRUNCATE},
		/* The JSON body. */
		{"", "{\"wait\": true, \"timeout\": \"10s\"}", SYNC, true, 10000, CHECKPOINT_PASSIVE},
		{"", "{\"wait\": 1}", SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"", "{\"wait\": 0}", SYNC, false, 30000, CHECKPOINT_PASSIVE},
		{"", "{\"wait\": \"yes\"}", SYNC, true, 30000, CHECKPOINT_PASSIVE},
		{"", "{\"timeout\": 5}", SYNC, false, 5000, CHECKPOINT_PASSIVE},
		{"", "{\"timeout\": 0.25}", SYNC, false, 250, CHECKPOINT_PASSIVE},
		{"", "{\"timeout\": 600}", SYNC, false, 600000, CHECKPOINT_PASSIVE},
		{"", "{\"mode\": \"restart\"}", CHECKPOINT, false, 30000, CHECKPOINT_RESTART},
		{"", "  {}  ", ALL, false, 30000, CHECKPOINT_PASSIVE},
		/* The body comes after the query, so it wins. */
		{"wait=1&timeout=2s", "{\"wait\": false}", SYNC, false, 2000, CHECKPOINT_PASSIVE},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ok_case *c = &cases[i];
		struct control_params p;
		char err[256] = "";

		if (parse(c->query, c->body, c->allowed, &p, err, sizeof(err)) != 0)
			fail_msg("query \"%s\" body %s: %s", c->query, c->body ? c->body : "none", err);
		if (p.wait != c->wait || p.timeout_ms != c->timeout_ms || p.mode != c->mode)
			fail_msg("query \"%s\" body %s: wait %d timeout %lld mode %d", c->query,
				 c->body ? c->body : "none", p.wait, (long long)p.timeout_ms, p.mode);
	}
}

static void test_bad(void **state)
{
	static const struct bad_case cases[] = {
		/* The query string. */
		{"wait=2", NULL, SYNC, "invalid value \"2\" for wait (1 or 0)"},
		{"wait=on", NULL, SYNC, "invalid value \"on\" for wait (1 or 0)"},
		{"timeout=10", NULL, SYNC, "invalid timeout \"10\" (a duration such as 10s)"},
		{"timeout=abc", NULL, SYNC, "invalid timeout \"abc\" (a duration such as 10s)"},
		{"timeout=", NULL, SYNC, "invalid timeout \"\" (a duration such as 10s)"},
		{"timeout=0s", NULL, SYNC, "invalid timeout \"0s\" (more than 0, at most 10m)"},
		{"timeout=-1s", NULL, SYNC, "invalid timeout \"-1s\" (more than 0, at most 10m)"},
		{"timeout=10m1ms", NULL, SYNC, "invalid timeout \"10m1ms\" (more than 0, at most 10m)"},
		{"mode=fast", NULL, CHECKPOINT,
		 "invalid checkpoint mode \"fast\" (PASSIVE, FULL, RESTART or TRUNCATE)"},
		{"mode=+FULL", NULL, CHECKPOINT,
		 "invalid checkpoint mode \" FULL\" (PASSIVE, FULL, RESTART or TRUNCATE)"},
		{"mode=FULL", NULL, SYNC, "unknown parameter \"mode\""},
		{"wait=1", NULL, CHECKPOINT, "unknown parameter \"wait\""},
		{"wait=1&verbose=1", NULL, SYNC, "unknown parameter \"verbose\""},
		{"x=%zz", NULL, SYNC, "malformed query string"},
		{"%00=1", NULL, SYNC, "malformed query string"},
		{"wait=%4", NULL, SYNC, "malformed query string"},
		/* A bad query stops before the body is read. */
		{"wait=2", "{\"nope\": 1}", SYNC, "invalid value \"2\" for wait (1 or 0)"},
		/* The JSON body. */
		{"", "{", SYNC, "invalid JSON body"},
		{"", "wait=1", SYNC, "invalid JSON body"},
		{"", "[1]", SYNC, "the JSON body must be an object"},
		{"", "\"wait\"", SYNC, "the JSON body must be an object"},
		{"", "{\"nope\": 1}", SYNC, "unknown parameter \"nope\""},
		{"", "{\"mode\": \"FULL\"}", SYNC, "unknown parameter \"mode\""},
		{"", "{\"mode\": 1}", CHECKPOINT, "invalid value for \"mode\""},
		{"", "{\"wait\": null}", SYNC, "invalid value for \"wait\""},
		{"", "{\"timeout\": true}", SYNC, "invalid value for \"timeout\""},
		{"", "{\"wait\": \"maybe\"}", SYNC, "invalid value \"maybe\" for wait (1 or 0)"},
		{"", "{\"timeout\": \"5\"}", SYNC, "invalid timeout \"5\" (a duration such as 10s)"},
		{"", "{\"timeout\": 0}", SYNC, "invalid timeout \"(number)\" (more than 0, at most 10m)"},
		{"", "{\"timeout\": -3}", SYNC, "invalid timeout \"(number)\" (more than 0, at most 10m)"},
		{"", "{\"timeout\": 601}", SYNC, "invalid timeout \"(number)\" (more than 0, at most 10m)"},
		{"", "{\"timeout\": \"11m\"}", SYNC, "invalid timeout \"11m\" (more than 0, at most 10m)"},
		/* The first bad parameter is the one reported. */
		{"", "{\"wait\": 1, \"x\": 1, \"y\": 2}", SYNC, "unknown parameter \"x\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		struct control_params p;
		char err[256] = "";

		if (parse(c->query, c->body, c->allowed, &p, err, sizeof(err)) != -EINVAL)
			fail_msg("query \"%s\" body %s: accepted", c->query, c->body ? c->body : "none");
		if (strcmp(err, c->want) != 0)
			fail_msg("query \"%s\" body %s:\ngot:  %s\nwant: %s", c->query,
				 c->body ? c->body : "none", err, c->want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests_name("control_params", tests, NULL, NULL);
}
