/*
 * The string map (util/strmap.c): put, get, replace, delete, growth
 * through many keys (every one still found), and keys that share a
 * bucket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/strmap.h"

#include <stdint.h>
#include <stdio.h>

static void test_basic(void **state)
{
	struct strmap m = {0};
	int a, b;

	(void)state;
	assert_null(strmap_get(&m, "x"));
	strmap_del(&m, "x");
	assert_int_equal(strmap_put(&m, "x", &a), 0);
	assert_ptr_equal(strmap_get(&m, "x"), &a);
	assert_int_equal(strmap_put(&m, "x", &b), 0);
	assert_ptr_equal(strmap_get(&m, "x"), &b);
	assert_int_equal(m.n, 1);
	assert_null(strmap_get(&m, "y"));
	assert_null(strmap_get(&m, ""));
	strmap_del(&m, "x");
	assert_null(strmap_get(&m, "x"));
	assert_int_equal(m.n, 0);
	strmap_free(&m);
	assert_int_equal(m.n_buckets, 0);
}

static void test_many(void **state)
{
	struct strmap m = {0};
	char key[64];

	(void)state;
	for (uintptr_t i = 1; i <= 5000; i++) {
		snprintf(key, sizeof(key), "/srv/tenants/t%04lu.db", (unsigned long)i);
		assert_int_equal(strmap_put(&m, key, (void *)i), 0);
	}
	assert_int_equal(m.n, 5000);
	assert_true(m.n_buckets >= 5000);
	for (uintptr_t i = 1; i <= 5000; i++) {
		snprintf(key, sizeof(key), "/srv/tenants/t%04lu.db", (unsigned long)i);
		assert_ptr_equal(strmap_get(&m, key), (void *)i);
		if (i % 2 == 0)
			strmap_del(&m, key);
	}
	assert_int_equal(m.n, 2500);
	for (uintptr_t i = 1; i <= 5000; i++) {
		snprintf(key, sizeof(key), "/srv/tenants/t%04lu.db", (unsigned long)i);
		assert_ptr_equal(strmap_get(&m, key), i % 2 ? (void *)i : NULL);
	}
	strmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
