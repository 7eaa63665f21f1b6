#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/crc64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_check_value(void **state)
{
	assert_true(crc64_update(0, "123456789", 9) == 0xb90956c775a41001ull);
}

static void test_empty(void **state)
{
	assert_true(crc64_update(0, "", 0) == 0);
}

/* Feeding the same bytes in pieces of every size gives the same CRC. */
static void test_incremental(void **state)
{
	uint8_t buf[1000];
	uint64_t whole, crc;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	whole = crc64_update(0, buf, sizeof(buf));
	for (size_t step = 1; step < 20; step++) {
		crc = 0;
		for (size_t off = 0; off < sizeof(buf); off += step) {
			size_t n = sizeof(buf) - off < step ? sizeof(buf) - off : step;
			crc = crc64_update(crc, buf + off, n);
		}
		assert_true(crc == whole);
	}
}

/* Bit-at-a-time reference, to check the sliced tables. */
static uint64_t slow_crc(const uint8_t *p, size_t n)
{
	uint64_t c = ~0ull;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xd800000000000000ull : c >> 1;
	}
	return ~c;
}

static void test_matches_reference(void **state)
{
	uint8_t buf[4099];

	srand(42);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (size_t n = 0; n < sizeof(buf); n += 97)
		assert_true(crc64_update(0, buf, n) == slow_crc(buf, n));
}

static void test_file(void **state)
{
	char path[] = "/tmp/litestream-crc64-XXXXXX";
	int fd = mkstemp(path);
	uint64_t crc = 1;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "123456789", 9), 9);
	close(fd);
	assert_int_equal(crc64_file(path, &crc), 0);
	assert_true(crc == 0xb90956c775a41001ull);
	unlink(path);
	assert_true(crc64_file(path, &crc) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_matches_reference),
		cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests_name("crc64", tests, NULL, NULL);
}
