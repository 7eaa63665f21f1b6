#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config/parse.h"

#include <errno.h>
#include <stdint.h>

static void test_parse_bool_size(void **state)
{
	static const struct {
		const char *in;
		bool v;
	} bools[] = {
		{"true", true}, {"TRUE", true}, {"yes", true}, {"on", true}, {"1", true},
		{"false", false}, {"No", false}, {"off", false}, {"0", false},
	};
	static const struct {
		const char *in;
		int64_t v;
	} sizes[] = {
		{"0", 0}, {"8388608", 8388608}, {"8MB", 8 << 20}, {"8MiB", 8 << 20}, {"8 mib", 8 << 20},
		{"8M", 8 << 20}, {"512k", 512 << 10}, {"512KB", 512 << 10}, {"2GiB", 2LL << 30},
		{"1g", 1LL << 30}, {"100B", 100},
	};
	static const char *const bad_bools[] = {"", "y", "t", "2", "truee", "enabled"};
	static const char *const bad_sizes[] = {"", "MB", "-1", "1.5MB", "8  MB", "8TB",
						"99999999999999999999", "9999999999999GB", " 8"};
	bool b;
	int64_t n;

	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		b = !bools[i].v;
		assert_int_equal(parse_bool(bools[i].in, &b), 0);
		assert_int_equal(b, bools[i].v);
	}
	for (size_t i = 0; i < sizeof(bad_bools) / sizeof(bad_bools[0]); i++) {
		b = true;
		assert_int_equal(parse_bool(bad_bools[i], &b), -EINVAL);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = -1;
		assert_int_equal(parse_size(sizes[i].in, &n), 0);
		assert_int_equal(n, sizes[i].v);
	}
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		n = -1;
		if (parse_size(bad_sizes[i], &n) != -EINVAL)
			fail_msg("size \"%s\" accepted", bad_sizes[i]);
		assert_int_equal(n, -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_bool_size),
	};
	return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
