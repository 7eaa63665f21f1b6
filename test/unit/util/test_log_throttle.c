#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/log_throttle.h"

#include <string.h>

static void test_first_failure_at_once_then_one_a_minute(void **state)
{
	struct log_throttle t;
	uint64_t held = 99, logged = 0;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_true(log_throttle_failure(&t, 1000, &held));
	assert_int_equal(held, 0);
	/* Retries every 10 s for 5 minutes: 30 failures, a line a minute. */
	for (int64_t now = 11000; now <= 301000; now += 10000)
		if (log_throttle_failure(&t, now, &held)) {
			logged++;
			/* Five held back between two lines a minute apart. */
			assert_int_equal(held, 5);
		}
	assert_int_equal(logged, 5);
	assert_int_equal(t.failures, 31);
}

static void test_success_ends_the_run(void **state)
{
	struct log_throttle t;
	uint64_t held, failures = 0;
	int64_t dur = 0;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_false(log_throttle_success(&t, 5, &failures, &dur)); /* nothing to end */
	assert_true(log_throttle_failure(&t, 1000, &held));
	assert_false(log_throttle_failure(&t, 2000, &held));
	assert_false(log_throttle_failure(&t, 3000, &held));
	assert_true(log_throttle_success(&t, 4500, &failures, &dur));
	assert_int_equal(failures, 3);
	assert_int_equal(dur, 3500);
	assert_false(log_throttle_success(&t, 5000, &failures, &dur));
	/* A new failure after the success is news again. */
	assert_true(log_throttle_failure(&t, 6000, &held));
	assert_int_equal(held, 0);
}

static void test_exactly_a_minute(void **state)
{
	struct log_throttle t;
	uint64_t held;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_true(log_throttle_failure(&t, 0, &held));
	assert_false(log_throttle_failure(&t, LOG_THROTTLE_MS - 1, &held));
	assert_true(log_throttle_failure(&t, LOG_THROTTLE_MS, &held));
	assert_int_equal(held, 1);
}

static void test_notes(void **state)
{
	char buf[128];

	(void)state;
	log_throttle_held_note(0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	log_throttle_held_note(1, buf, sizeof(buf));
	assert_string_equal(buf, " (still failing: 1 more failure since the last line)");
	log_throttle_held_note(5, buf, sizeof(buf));
	assert_string_equal(buf, " (still failing: 5 more failures since the last line)");
	log_throttle_run_note(1, 1500, buf, sizeof(buf));
	assert_string_equal(buf, "1 failure in 1.5s");
	log_throttle_run_note(7, 62000, buf, sizeof(buf));
	assert_string_equal(buf, "7 failures in 1m2s");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_failure_at_once_then_one_a_minute),
		cmocka_unit_test(test_success_ends_the_run),
		cmocka_unit_test(test_exactly_a_minute),
		cmocka_unit_test(test_notes),
	};

	return cmocka_run_group_tests_name("log_throttle", tests, NULL, NULL);
}
