#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/clock.h"

#include <time.h>

/* The monotonic clock never goes back, and moves with time slept. */
static void test_mono(void **state)
{
	struct timespec nap = {0, 20 * 1000000};
	int64_t a = clock_mono_ms(), b;

	assert_true(a >= 0);
	nanosleep(&nap, NULL);
	b = clock_mono_ms();
	assert_true(b >= a + 20);
	assert_true(b - a < 10000);
}

/* The wall clock is the epoch's: close to time(), and ms and ns agree. */
static void test_wall(void **state)
{
	int64_t before = (int64_t)time(NULL);
	int64_t ms = clock_wall_ms();
	int64_t ns = clock_wall_ns();
	int64_t after = (int64_t)time(NULL);

	/* time() may read a coarser clock, up to a tick behind. */
	assert_true(ms / 1000 >= before && ms / 1000 <= after + 1);
	assert_true(ns / 1000000 >= ms);
	assert_true(ns / 1000000 - ms < 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mono),
		cmocka_unit_test(test_wall),
	};
	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
