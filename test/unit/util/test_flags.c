#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/flags.h"

#include <stdio.h>

static bool f_bool;
static const char *f_str;
static long f_int;
static int64_t f_dur;

static const struct flag test_flags[] = {
	{"v", FLAG_BOOL, &f_bool, NULL, "verbose"},
	{"o", FLAG_STRING, &f_str, "PATH", "output"},
	{"parallelism", FLAG_INT, &f_int, "N", "parallelism"},
	{"interval", FLAG_DURATION, &f_dur, "DURATION", "interval"},
	{0},
};

static const struct command_help test_cmd = {"test", "[flags] ARG", "A test.", test_flags};

static int reset(void **state)
{
	f_bool = false;
	f_str = NULL;
	f_int = 0;
	f_dur = 0;
	return 0;
}

/* Builds argv {"test", args..., NULL} from a NULL-terminated list. */
static int parse_list(const char *first, ...)
{
	char *argv[16] = {(char *)"test"};
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 15; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	return flags_parse(&test_cmd, argc, argv);
}

#define PARSE(...) parse_list(__VA_ARGS__, (const char *)NULL)

static void test_forms(void **state)
{
	assert_int_equal(PARSE("-v", "-o", "out.db", "--parallelism=4", "-interval", "1m", "db"), 7);
	assert_true(f_bool);
	assert_string_equal(f_str, "out.db");
	assert_int_equal(f_int, 4);
	assert_int_equal(f_dur, 60000);
}

static void test_stops_at_positional(void **state)
{
	assert_int_equal(PARSE("db", "-v"), 1);
	assert_false(f_bool);
	assert_int_equal(PARSE("-v=false", "--", "-o"), 3);
	assert_false(f_bool);
}

static void test_errors(void **state)
{
	assert_int_equal(PARSE("-nope"), FLAGS_ERROR);
	assert_int_equal(PARSE("-o"), FLAGS_ERROR);
	assert_int_equal(PARSE("-parallelism", "x"), FLAGS_ERROR);
	assert_int_equal(PARSE("-interval", "soon"), FLAGS_ERROR);
	assert_int_equal(PARSE("-v=maybe"), FLAGS_ERROR);
	assert_int_equal(flags_exit_code(FLAGS_ERROR), 2);
}

static void test_help(void **state)
{
	assert_int_equal(PARSE("-h"), FLAGS_HELP);
	assert_int_equal(PARSE("--help"), FLAGS_HELP);
	assert_int_equal(flags_exit_code(FLAGS_HELP), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_forms, reset),
		cmocka_unit_test_setup(test_stops_at_positional, reset),
		cmocka_unit_test_setup(test_errors, reset),
		cmocka_unit_test_setup(test_help, reset),
	};
	return cmocka_run_group_tests_name("flags", tests, NULL, NULL);
}
