#include "util/timefmt.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void parses_as(const char *s, int64_t want)
{
	int64_t ms = -42;

	if (timefmt_parse(s, &ms) != 0)
		fail_msg("%s rejected", s);
	if (ms != want)
		fail_msg("%s parsed as %lld, want %lld", s, (long long)ms, (long long)want);
}

static void test_parse(void **state)
{
	(void)state;
	parses_as("1970-01-01T00:00:00Z", 0);
	parses_as("2026-11-25T09:23:06Z", 1795598586000);
	parses_as("2026-11-25t09:23:06.5z", 1795598586500);
	parses_as("2026-11-25T09:23:06.123456789Z", 1795598586123);
	parses_as("2026-11-25T10:23:06+01:00", 1795598586000);
	parses_as("2026-11-25T04:53:06-04:30", 1795598586000);
	parses_as("2024-02-29T00:00:00Z", 1709164800000);  /* a leap year */
	parses_as("2000-02-29T00:00:00Z", 951782400000);   /* divisible by 400 */
	parses_as("2026-12-31T23:59:59Z", 1798761599000);
}

static void test_rejects(void **state)
{
	/* Go's time.Parse refuses these too; nothing rolls over into the next
	 * month (found by fuzzing). */
	static const char *const bad[] = {
		"2026-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "2026-02-31T00:00:00Z",
		"2026-04-31T00:00:00Z", "1900-02-29T00:00:00Z", "2026-11-25T23:59:60Z",
		"2026-11-25T24:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
		"2026-11-00T00:00:00Z", "2026-11-25T09:23:06",  "2026-11-25T09:23:06.Z",
		"2026-11-25 09:23:06Z", "2026-11-25T09:23:06+0100", "2026-11-25T09:23:06Zjunk",
		"",
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = -42;
		if (timefmt_parse(bad[i], &ms) != -EINVAL || ms != -42)
			fail_msg("%s accepted", bad[i]);
	}
}

static void test_format(void **state)
{
	char buf[64];
	int64_t back;

	(void)state;
	timefmt_format(1795598586999, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-25T09:23:06Z");
	timefmt_format(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59Z");
	/* Four-digit years, so that what is written parses back. */
	timefmt_format(-62135596800000, buf, sizeof(buf));
	assert_string_equal(buf, "0001-01-01T00:00:00Z");
	assert_int_equal(timefmt_parse(buf, &back), 0);
	assert_int_equal(back, -62135596800000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests_name("timefmt", tests, NULL, NULL);
}
