#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/pct.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void test_hex_digit(void **state)
{
	for (int c = -1; c < 256; c++) {
		int want = -1;

		if (c >= '0' && c <= '9')
			want = c - '0';
		else if (c >= 'a' && c <= 'f')
			want = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			want = c - 'A' + 10;
		if (pct_hex_digit(c) != want)
			fail_msg("pct_hex_digit(%d) = %d, want %d", c, pct_hex_digit(c), want);
	}
}

/* Decodes all of in with flags; the result must be 0 and out want. */
static void decode_ok(const char *in, unsigned flags, const char *want)
{
	char out[256];

	memset(out, 'X', sizeof(out));
	if (pct_decode(in, strlen(in), flags, out) != 0)
		fail_msg("\"%s\" (flags %u): refused", in, flags);
	if (strcmp(out, want) != 0)
		fail_msg("\"%s\" (flags %u): got \"%s\", want \"%s\"", in, flags, out, want);
}

static void test_decode(void **state)
{
	static const char *const bad[] = {
		"%", "%2", "a%2", "%zz", "%g0", "%0g", "%00", "a%00b", "%%41", "x%",
	};
	char out[64];

	decode_ok("", 0, "");
	decode_ok("plain", 0, "plain");
	decode_ok("a%20b", 0, "a b");
	decode_ok("%41%62%2f%2F", 0, "Ab//");
	decode_ok("%C3%A9%ff", 0, "\xc3\xa9\xff");
	decode_ok("a+b", 0, "a+b");
	decode_ok("a+b%2B", PCT_PLUS_SPACE, "a b+");
	decode_ok("%01", 0, "\x01");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pct_decode(bad[i], strlen(bad[i]), PCT_PLUS_SPACE, out) != -EINVAL)
			fail_msg("\"%s\" accepted as \"%s\"", bad[i], out);

	/* Only s[0..len) is read: an escape cut by len is a bad one. */
	assert_int_equal(pct_decode("%41xyz", 3, 0, out), 0);
	assert_string_equal(out, "A");
	assert_int_equal(pct_decode("a%41", 3, 0, out), -EINVAL);
	assert_int_equal(pct_decode("abc", 0, 0, out), 0);
	assert_string_equal(out, "");
}

static void test_lenient(void **state)
{
	char buf[64];

	/* A bad escape stays as written; nothing is refused. */
	decode_ok("%zz%4%", PCT_LENIENT, "%zz%4%");
	decode_ok("%41+b%2", PCT_LENIENT | PCT_PLUS_SPACE, "A b%2");
	decode_ok("a+b", PCT_LENIENT, "a+b");

	/* In place, as S3 listings are decoded; %00 ends the string there. */
	snprintf(buf, sizeof(buf), "dir%%2Fkey+1%%25");
	assert_int_equal(pct_decode(buf, strlen(buf), PCT_LENIENT | PCT_PLUS_SPACE, buf), 0);
	assert_string_equal(buf, "dir/key 1%");
	snprintf(buf, sizeof(buf), "ab%%00cd");
	assert_int_equal(pct_decode(buf, strlen(buf), PCT_LENIENT, buf), 0);
	assert_string_equal(buf, "ab");
	assert_memory_equal(buf, "ab\0cd", 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_digit),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_lenient),
	};
	return cmocka_run_group_tests_name("pct", tests, NULL, NULL);
}
