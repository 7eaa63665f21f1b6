#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/utf8.h"

#include <string.h>

/* utf8_seq_len of the bytes in s (len of them) must be want. */
static void expect_len(const char *s, size_t len, size_t want)
{
	size_t got = utf8_seq_len((const unsigned char *)s, len);

	if (got != want)
		fail_msg("utf8_seq_len of %zu bytes starting 0x%02x = %zu, want %zu", len,
			 len ? (unsigned char)s[0] : 0, got, want);
}

static void test_well_formed(void **state)
{
	(void)state;
	expect_len("a", 1, 1);
	expect_len("\0", 1, 1);
	expect_len("\xc2\x80", 2, 2);           /* U+0080, smallest 2-byte */
	expect_len("\xdf\xbf", 2, 2);           /* U+07FF */
	expect_len("\xe0\xa0\x80", 3, 3);       /* U+0800, smallest 3-byte */
	expect_len("\xed\x9f\xbf", 3, 3);       /* U+D7FF, just below the surrogates */
	expect_len("\xee\x80\x80", 3, 3);       /* U+E000, just above */
	expect_len("\xef\xbf\xbf", 3, 3);       /* U+FFFF */
	expect_len("\xf0\x90\x80\x80", 4, 4);   /* U+10000 */
	expect_len("\xf4\x8f\xbf\xbf", 4, 4);   /* U+10FFFF, the largest */
	expect_len("\xc3\xa9tail", 6, 2);       /* only the first sequence counts */
}

static void test_ill_formed(void **state)
{
	(void)state;
	expect_len("", 0, 0);
	expect_len("\x80", 1, 0);               /* a continuation byte alone */
	expect_len("\xc0\x80", 2, 0);           /* overlong NUL */
	expect_len("\xc1\xbf", 2, 0);           /* overlong */
	expect_len("\xe0\x9f\xbf", 3, 0);       /* overlong 3-byte */
	expect_len("\xed\xa0\x80", 3, 0);       /* U+D800, a surrogate */
	expect_len("\xf0\x8f\xbf\xbf", 4, 0);   /* overlong 4-byte */
	expect_len("\xf4\x90\x80\x80", 4, 0);   /* above U+10FFFF */
	expect_len("\xf5\x80\x80\x80", 4, 0);
	expect_len("\xff", 1, 0);
	expect_len("\xc3" "a", 2, 0);           /* the second byte is no continuation */
	expect_len("\xe2\x82" "a", 3, 0);       /* nor the third */
}

static void test_cut_short(void **state)
{
	(void)state;
	/* The bytes are there but len says they are not: never read past it. */
	expect_len("\xc3\xa9", 1, 0);
	expect_len("\xe2\x82\xac", 2, 0);
	expect_len("\xf0\x9f\x98\x80", 3, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_well_formed),
		cmocka_unit_test(test_ill_formed),
		cmocka_unit_test(test_cut_short),
	};

	return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
