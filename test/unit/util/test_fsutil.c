#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_parent_dir(void **state)
{
	char buf[8];

	assert_int_equal(fs_parent_dir("a/b/c", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "a/b");
	assert_int_equal(fs_parent_dir("/x", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(fs_parent_dir("dir/", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "dir");
	/* Exactly fitting, then one byte short; buf stays as it was. */
	assert_int_equal(fs_parent_dir("1234567/x", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1234567");
	assert_int_equal(fs_parent_dir("12345678/x", buf, sizeof(buf)), -EINVAL);
	assert_string_equal(buf, "1234567");
	assert_int_equal(fs_parent_dir("plain", buf, sizeof(buf)), -EINVAL);
	assert_string_equal(buf, "1234567");
}

static void test_mkdir_parent(void **state)
{
	char root[] = "/tmp/test_fsutil.XXXXXX";
	char *file, *dir;
	struct stat st;

	assert_non_null(mkdtemp(root));
	file = str_printf("%s/a/b/file", root);
	dir = str_printf("%s/a/b", root);
	assert_non_null(file);
	assert_non_null(dir);
	assert_int_equal(fs_mkdir_parent(file, 0755), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fs_mkdir_parent(file, 0755), 0); /* already there */
	assert_int_equal(fs_mkdir_parent("plain", 0755), -EINVAL);
	assert_int_equal(fs_remove_tree(root), 0);
	free(file);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parent_dir),
		cmocka_unit_test(test_mkdir_parent),
	};
	return cmocka_run_group_tests_name("fsutil", tests, NULL, NULL);
}
