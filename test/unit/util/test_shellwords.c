#include "util/shellwords.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* Splits s and checks the words against the NULL-terminated list. */
static void split_is(const char *s, const char *const *want)
{
	char **got = NULL, err[128] = "";
	size_t n = 0, i;

	assert_int_equal(shellwords_split(s, &got, &n, err, sizeof(err)), 0);
	for (i = 0; want[i] != NULL; i++) {
		assert_true(i < n);
		assert_string_equal(got[i], want[i]);
	}
	assert_int_equal(n, i);
	assert_null(got[n]);
	shellwords_free(got);
}

static void fails(const char *s, const char *msg)
{
	char **got = NULL, err[128] = "";
	size_t n = 0;

	assert_int_equal(shellwords_split(s, &got, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, msg));
	assert_null(got);
}

static void test_words(void **state)
{
	(void)state;
	split_is("myapp", (const char *const[]){"myapp", NULL});
	split_is("  myapp  -port 8080\t-v\n", (const char *const[]){"myapp", "-port", "8080", "-v", NULL});
	split_is("sh -c 'echo $HOME; exit 3'",
		 (const char *const[]){"sh", "-c", "echo $HOME; exit 3", NULL});
	split_is("a\"b c\"d 'e f'g", (const char *const[]){"ab cd", "e fg", NULL});
	split_is("echo \"a \\\"q\\\" \\\\ \\$x \\n\"",
		 (const char *const[]){"echo", "a \"q\" \\ $x \\n", NULL});
	split_is("echo a\\ b \\'c\\'", (const char *const[]){"echo", "a b", "'c'", NULL});
	split_is("echo '' \"\" x", (const char *const[]){"echo", "", "", "x", NULL});
	split_is("one \\\ntwo", (const char *const[]){"one", "two", NULL});
	split_is("ls *.db | wc > out", (const char *const[]){"ls", "*.db", "|", "wc", ">", "out", NULL});
	split_is("'it''s'", (const char *const[]){"its", NULL});
	split_is("\"caf\xc3\xa9\"", (const char *const[]){"caf\xc3\xa9", NULL});
}

static void test_errors(void **state)
{
	(void)state;
	fails("", "no command");
	fails("   \t\n ", "no command");
	fails("echo 'oops", "unterminated ' (opened at character 6)");
	fails("echo \"oops", "unterminated \" (opened at character 6)");
	fails("echo \"a\\\"", "unterminated \"");
	fails("echo oops\\", "a backslash ends the command");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests_name("shellwords", tests, NULL, NULL);
}
