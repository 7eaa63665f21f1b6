#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/duration.h"

#include <string.h>

static void test_parse(void **state)
{
	static const struct {
		const char *in;
		int64_t ms;
	} ok[] = {
		{"0", 0}, {"1s", 1000}, {"500ms", 500}, {"1h30m", 5400000}, {"1.5h", 5400000},
		{"10s", 10000}, {"2m3s", 123000}, {"1500us", 1}, {"1000000ns", 1}, {"24h", 86400000},
		{"-1s", -1000}, {"0s", 0}, {".5s", 500},
		/* Exact, as Go: fractions are not summed in floating point (fuzzing). */
		{"1s1ms", 1001}, {"1.001s", 1001}, {"1.003s", 1003}, {"8.2m", 492000},
		{"0.1s", 100}, {"1.000000000000000000001s", 1000}, {"2562047h", 9223369200000},
		{"2562047h47m16.854s", 9223372036854},
	};
	static const char *const bad[] = {"", "1", "s", "1x", "1 s", "1s2", "abc", "1.s.", "--1s",
					  "2562048h", "99999999999999999999s", "2562047h48m"};
	int64_t ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = -42;
		assert_int_equal(duration_parse(ok[i].in, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = -42;
		assert_int_not_equal(duration_parse(bad[i], &ms), 0);
		assert_int_equal(ms, -42); /* untouched on failure */
	}
}

/* What duration_format() writes reads back as the same value. */
static void test_round_trip(void **state)
{
	char buf[64];
	int64_t ms;

	(void)state;
	for (int64_t v = -5000; v <= 200000; v += 1 + (v > 2000 ? 997 : 0)) {
		duration_format(v, buf, sizeof(buf));
		assert_int_equal(duration_parse(buf, &ms), 0);
		if (ms != v)
			fail_msg("%lld formats as %s, which parses as %lld", (long long)v, buf,
				 (long long)ms);
	}
}

static void test_format(void **state)
{
	static const struct {
		int64_t ms;
		const char *out;
	} cases[] = {
		{0, "0s"}, {500, "500ms"}, {1000, "1s"}, {1500, "1.5s"}, {61000, "1m1s"},
		{5400000, "1h30m0s"}, {86400000, "24h0m0s"}, {1001, "1.001s"}, {-2000, "-2s"},
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		duration_format(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests_name("duration", tests, NULL, NULL);
}
