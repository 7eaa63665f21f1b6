/*
 * The table writer against text/tabwriter's layout (NewWriter(w, 0, 8, 2,
 * ' ', 0)). The expected strings follow tabwriter's rules as table.h
 * states them; the ragged cases are where a naive "one width per column"
 * writer differs from Go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW(t, ...)                                                                          \
	do {                                                                                 \
		const char *const cells_[] = {__VA_ARGS__};                                  \
		assert_int_equal(table_add_row((t), cells_, sizeof(cells_) / sizeof(*cells_)), 0); \
	} while (0)

static void assert_renders(struct table *t, const char *want)
{
	char *got = table_render(t);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	table_free(t);
}

static void test_empty(void **state)
{
	struct table t;

	table_init(&t);
	assert_renders(&t, "");
}

static void test_header_only(void **state)
{
	struct table t;

	table_init(&t);
	ROW(&t, "replica", "generation", "index", "size", "created");
	/* Each column is its cell plus two spaces; the last cell is never padded. */
	assert_renders(&t, "replica  generation  index  size  created\n");
}

static void test_aligned(void **state)
{
	struct table t;

	table_init(&t);
	ROW(&t, "path", "replicas");
	ROW(&t, "/a/b.db", "a1,a2");
	ROW(&t, "/c.db", "");
	/* An empty last cell leaves the padding of the column before it. */
	assert_renders(&t, "path     replicas\n"
			   "/a/b.db  a1,a2\n"
			   "/c.db    \n");
}

static void test_numbers_left_aligned(void **state)
{
	struct table t;

	table_init(&t);
	ROW(&t, "replica", "generation", "index", "offset", "size", "created");
	ROW(&t, "file", "0123456789abcdef", "0", "0", "4152", "2024-05-01T12:00:00Z");
	ROW(&t, "file", "0123456789abcdef", "12", "4152", "123456", "2024-05-01T12:00:01Z");
	assert_renders(&t, "replica  generation        index  offset  size    created\n"
			   "file     0123456789abcdef  0      0       4152    2024-05-01T12:00:00Z\n"
			   "file     0123456789abcdef  12     4152    123456  2024-05-01T12:00:01Z\n");
}

static void test_empty_cells_padded(void **state)
{
	struct table t;

	table_init(&t);
	ROW(&t, "", "x");
	ROW(&t, "abc", "");
	assert_renders(&t, "     x\nabc  \n");
}

static void test_ragged_blocks(void **state)
{
	struct table t;

	table_init(&t);
	ROW(&t, "a", "b", "c");
	ROW(&t, "aaaa", "x");
	ROW(&t, "q");
	ROW(&t, "bb", "cc", "d");
	/*
	 * Rows 0-1 form column 0's first block (width 4+2), row 0 alone
	 * column 1's (width 1+2); the one-cell row ends the block, and row 3
	 * starts new blocks with its own widths.
	 */
	assert_renders(&t, "a     b  c\n"
			   "aaaa  x\n"
			   "q\n"
			   "bb  cc  d\n");
}

static void test_nested_block_ends_inside_outer(void **state)
{
	struct table t;

	table_init(&t);
	ROW(&t, "x", "yyyy", "z");
	ROW(&t, "xx", "y");
	ROW(&t, "xxx", "y", "zz", "w");
	/*
	 * Column 0 spans all rows (width 3+2). Column 1 has a block in row 0
	 * and another in row 2 (row 1 has no cell there), so "yyyy" does not
	 * widen row 2's column 1.
	 */
	assert_renders(&t, "x    yyyy  z\n"
			   "xx   y\n"
			   "xxx  y  zz  w\n");
}

static void test_utf8_width(void **state)
{
	struct table t;

	assert_int_equal(table_text_width(""), 0);
	assert_int_equal(table_text_width("h\xc3\xa9llo"), 5);
	assert_int_equal(table_text_width("250\xc2\xb5s"), 5);
	assert_int_equal(table_text_width("\xf0\x9f\x98\x80"), 1);
	/* Invalid bytes count one each, as utf8.RuneCount counts them. */
	assert_int_equal(table_text_width("\xff"), 1);
	assert_int_equal(table_text_width("\xe2\x82"), 2);
	assert_int_equal(table_text_width("\xed\xa0\x80"), 3);     /* surrogate */
	assert_int_equal(table_text_width("\xc0\x80"), 2);         /* overlong */
	assert_int_equal(table_text_width("\xf4\x90\x80\x80"), 4); /* > U+10FFFF */

	table_init(&t);
	ROW(&t, "\xc3\xa9", "x");
	ROW(&t, "ab", "y");
	assert_renders(&t, "\xc3\xa9   x\nab  y\n");
}

static void test_write(void **state)
{
	struct table t;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	table_init(&t);
	ROW(&t, "a", "b");
	assert_int_equal(table_write(&t, f), 0);
	fclose(f);
	assert_string_equal(buf, "a  b\n");
	free(buf);
	table_free(&t);
	/* A row needs at least one cell; a refused row leaves the table as it was. */
	assert_int_equal(table_add_row(&t, NULL, 0), -EINVAL);
	assert_int_equal(t.n_rows, 0);
	table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_header_only),
		cmocka_unit_test(test_aligned),
		cmocka_unit_test(test_numbers_left_aligned),
		cmocka_unit_test(test_empty_cells_padded),
		cmocka_unit_test(test_ragged_blocks),
		cmocka_unit_test(test_nested_block_ends_inside_outer),
		cmocka_unit_test(test_utf8_width),
		cmocka_unit_test(test_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
