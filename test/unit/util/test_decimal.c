#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/decimal.h"

#include <errno.h>
#include <stdint.h>

static void expect(const char *s, int want_rc, uint64_t want)
{
	uint64_t v = 7;
	int rc = decimal_parse_u64(s, &v);

	if (rc != want_rc)
		fail_msg("decimal_parse_u64(\"%s\") = %d, want %d", s ? s : "(null)", rc, want_rc);
	if (rc == 0 && v != want)
		fail_msg("decimal_parse_u64(\"%s\") gave %llu, want %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
	if (rc != 0 && v != 7)
		fail_msg("decimal_parse_u64(\"%s\") changed *out on error", s ? s : "(null)");
}

static void test_accepts(void **state)
{
	(void)state;
	expect("0", 0, 0);
	expect("42", 0, 42);
	expect("007", 0, 7);
	expect("18446744073709551615", 0, UINT64_MAX);
}

static void test_refuses(void **state)
{
	(void)state;
	expect(NULL, -EINVAL, 0);
	expect("", -EINVAL, 0);
	expect(" 1", -EINVAL, 0);
	expect("+1", -EINVAL, 0);
	expect("-1", -EINVAL, 0);
	expect("1 ", -EINVAL, 0);
	expect("12k", -EINVAL, 0);
	expect("0x10", -EINVAL, 0);
	expect("18446744073709551616", -ERANGE, 0);
	expect("99999999999999999999999", -ERANGE, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_refuses),
	};

	return cmocka_run_group_tests_name("decimal", tests, NULL, NULL);
}
