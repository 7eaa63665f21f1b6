/*
 * The Go formats the listing commands print: Duration.String(), Litestream
 * 0.3.13's lag truncation and Time.Format(time.RFC3339) in UTC. Expected
 * strings are what Go prints for the same values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cmd/listing.h"

#include <stdint.h>

#define NS 1LL
#define US (1000 * NS)
#define MS (1000 * US)
#define S (1000 * MS)
#define MINUTE (60 * S)
#define HOUR (60 * MINUTE)

static void assert_duration(int64_t ns, const char *want)
{
	char buf[LISTING_DURATION_LEN];

	listing_format_duration(ns, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_duration_string(void **state)
{
	assert_duration(0, "0s");
	assert_duration(1 * NS, "1ns");
	assert_duration(999 * NS, "999ns");
	assert_duration(1100 * NS, "1.1\xc2\xb5s");
	assert_duration(250 * US, "250\xc2\xb5s");
	assert_duration(2200 * US, "2.2ms");
	assert_duration(123 * MS, "123ms");
	assert_duration(3300 * MS, "3.3s");
	assert_duration(4 * MINUTE + 5 * S, "4m5s");
	assert_duration(4 * MINUTE + 5001 * MS, "4m5.001s");
	assert_duration(5 * HOUR + 6 * MINUTE + 7001 * MS, "5h6m7.001s");
	assert_duration(8 * HOUR + 1, "8h0m0.000000001s");
	assert_duration(HOUR, "1h0m0s");
	assert_duration(-1500 * MS, "-1.5s");
	assert_duration(-5 * MS, "-5ms");
	assert_duration(INT64_MAX, "2562047h47m16.854775807s");
	assert_duration(INT64_MIN, "-2562047h47m16.854775808s");
}

static void test_truncate_lag(void **state)
{
	assert_int_equal(listing_truncate_lag(12345678 * US), 12 * S);
	assert_int_equal(listing_truncate_lag(10 * S), 10 * S);
	assert_int_equal(listing_truncate_lag(10 * S + 999 * MS), 10 * S);
	assert_int_equal(listing_truncate_lag(1234 * MS), 1200 * MS);
	assert_int_equal(listing_truncate_lag(S), S);
	assert_int_equal(listing_truncate_lag(123456789 * NS), 123 * MS);
	assert_int_equal(listing_truncate_lag(500 * US + 7), 500 * US);
	assert_int_equal(listing_truncate_lag(US), US);
	assert_int_equal(listing_truncate_lag(999 * NS), 999 * NS);
	assert_int_equal(listing_truncate_lag(0), 0);
	/* Below zero the same steps apply, toward zero. */
	assert_int_equal(listing_truncate_lag(-12900 * MS), -12 * S);
	assert_int_equal(listing_truncate_lag(-1234 * MS), -1200 * MS);
	assert_int_equal(listing_truncate_lag(-5500 * US), -5 * MS);
	assert_int_equal(listing_truncate_lag(-1500 * NS), -1 * US);
	assert_int_equal(listing_truncate_lag(-999 * NS), -999 * NS);
	assert_int_equal(listing_truncate_lag(INT64_MAX), 9223372036 * S);
}

static void test_lag(void **state)
{
	char buf[LISTING_DURATION_LEN];

	assert_int_equal(listing_lag_ns(1700000000123456789LL, 1700000000000LL), 123456789);
	assert_int_equal(listing_lag_ns(1700000000000000000LL, 1700000000005LL), -5 * MS);
	/* An empty generation: Go's Time.Sub from the zero time saturates. */
	assert_true(listing_lag_ns(1700000000000000000LL, LISTING_GO_ZERO_TIME_MS) == INT64_MAX);
	listing_format_duration(listing_truncate_lag(INT64_MAX), buf, sizeof(buf));
	assert_string_equal(buf, "2562047h47m16s");
}

static void assert_time(int64_t ms, const char *want)
{
	char buf[LISTING_TIME_LEN];

	listing_format_time(ms, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_time(void **state)
{
	assert_time(0, "1970-01-01T00:00:00Z");
	assert_time(1700000000999LL, "2023-11-14T22:13:20Z");
	assert_time(-1, "1969-12-31T23:59:59Z");
	assert_time(LISTING_GO_ZERO_TIME_MS, "0001-01-01T00:00:00Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_string),
		cmocka_unit_test(test_truncate_lag),
		cmocka_unit_test(test_lag),
		cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
