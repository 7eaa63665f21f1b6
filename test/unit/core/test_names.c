#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/names.h"

#include <string.h>

static void test_generation(void **state)
{
	char a[GENERATION_LEN + 1], b[GENERATION_LEN + 1];

	assert_int_equal(generation_new(a), 0);
	assert_int_equal(generation_new(b), 0);
	assert_true(generation_valid(a));
	assert_string_not_equal(a, b);
	assert_true(generation_valid("0123456789abcdef"));
	assert_false(generation_valid("0123456789ABCDEF"));
	assert_false(generation_valid("0123456789abcde"));
	assert_false(generation_valid("0123456789abcdef0"));
	assert_false(generation_valid(""));
}

static void test_snapshot(void **state)
{
	char buf[NAME_MAX_LEN];
	uint32_t idx = 7;

	snapshot_name(buf, sizeof(buf), 0x1a);
	assert_string_equal(buf, "0000001a.snapshot.lz4");
	assert_int_equal(snapshot_name_parse(buf, &idx), 0);
	assert_int_equal(idx, 0x1a);
	idx = 7;
	assert_int_not_equal(snapshot_name_parse("0000001A.snapshot.lz4", &idx), 0);
	assert_int_not_equal(snapshot_name_parse("0000001a.snapshot", &idx), 0);
	assert_int_not_equal(snapshot_name_parse("000001a.snapshot.lz4", &idx), 0);
	assert_int_not_equal(snapshot_name_parse("80000000.snapshot.lz4", &idx), 0);
	assert_int_equal(idx, 7);
}

static void test_segment(void **state)
{
	char buf[NAME_MAX_LEN];
	uint32_t idx;
	uint64_t off;
	enum segment_form form;

	segment_name(buf, sizeof(buf), 2, 0x1020);
	assert_string_equal(buf, "00000002_00001020.wal.lz4");
	assert_int_equal(segment_name_parse(buf, &idx, &off, &form), 0);
	assert_int_equal(idx, 2);
	assert_int_equal(off, 0x1020);
	assert_int_equal(form, SEGMENT_OFFSET);

	/* Offsets past 4 GiB widen as %08x does. */
	segment_name(buf, sizeof(buf), 3, 0x123456789ull);
	assert_string_equal(buf, "00000003_123456789.wal.lz4");
	assert_int_equal(segment_name_parse(buf, &idx, &off, &form), 0);
	assert_true(off == 0x123456789ull);

	assert_int_equal(segment_name_parse("0000000a.wal.lz4", &idx, &off, &form), 0);
	assert_int_equal(idx, 10);
	assert_int_equal(off, 0);
	assert_int_equal(form, SEGMENT_WHOLE_LZ4);
	assert_int_equal(segment_name_parse("0000000b.wal", &idx, &off, &form), 0);
	assert_int_equal(idx, 11);
	assert_int_equal(form, SEGMENT_WHOLE_RAW);

	static const char *const bad[] = {
		"00000002_00001020.wal", "00000002-00001020.wal.lz4", "00000002_1020.wal.lz4",
		"0000002_00001020.wal.lz4", "00000002_00001020.wal.lz4.tmp", "00000002_0000000001020.wal.lz4",
		"0000000G.wal", "00000002.snapshot.lz4", ".wal", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(segment_name_parse(bad[i], &idx, &off, &form), 0);
}

static void test_shadow_and_index(void **state)
{
	char buf[NAME_MAX_LEN];
	uint32_t idx;

	shadow_wal_name(buf, sizeof(buf), 0xff);
	assert_string_equal(buf, "000000ff.wal");
	assert_int_equal(shadow_wal_name_parse(buf, &idx), 0);
	assert_int_equal(idx, 0xff);
	assert_int_not_equal(shadow_wal_name_parse("000000ff.wal.lz4", &idx), 0);

	assert_int_equal(index_parse("1a", &idx), 0);
	assert_int_equal(idx, 0x1a);
	assert_int_equal(index_parse("0000001a", &idx), 0);
	assert_int_equal(idx, 0x1a);
	assert_int_not_equal(index_parse("", &idx), 0);
	assert_int_not_equal(index_parse("123456789", &idx), 0);
	assert_int_not_equal(index_parse("xyz", &idx), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generation),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_segment),
		cmocka_unit_test(test_shadow_and_index),
	};
	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
