#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lib/config_helpers.h"
#include "config/config_ini.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * What the callbacks saw, one line each: "LINE [TITLE] kind=K name=N
 * text=T" for a header, "LINE KEY=VALUE" for a key. A callback fails
 * (with "refused") on the line stop_at, to show that reading then stops.
 */
struct record {
	struct config_ini_error *e;
	char log[4096];
	int stop_at;
};

static void record_add(struct record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void record_add(struct record *r, const char *fmt, ...)
{
	size_t n = strlen(r->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->log + n, sizeof(r->log) - n, fmt, ap);
	va_end(ap);
}

static int on_section(void *arg, const struct config_ini_section *s)
{
	struct record *r = arg;

	record_add(r, "%d [%s] kind=%.*s name=%s text=%.*s\n", s->line, s->title, (int)s->kind_len,
	     s->title, s->name ? s->name : "(none)", (int)s->text_len, s->text);
	if (s->line == r->stop_at)
		return config_ini_fail(r->e, -EINVAL, s->line, s->title, NULL, "refused");
	return 0;
}

static int on_key(void *arg, int line, const char *key, const char *value)
{
	struct record *r = arg;

	record_add(r, "%d %s=%s\n", line, key, value);
	if (line == r->stop_at)
		return config_ini_fail(r->e, -EINVAL, line, NULL, key, "refused");
	return 0;
}

/* Reads text with a recording handler; returns the result, fills log and err. */
static int read_text(struct fixture *f, const char *text, int stop_at, char *log, size_t loglen,
		     char *err, size_t errlen)
{
	struct config_ini_error e = {.path = f->path, .msg = err, .msglen = errlen};
	struct record r = {.e = &e, .stop_at = stop_at};
	const struct config_ini_handler h = {on_section, on_key, &r};
	int rc;

	err[0] = '\0';
	write_file(f->path, text, strlen(text));
	rc = config_ini_read(&h, &e);
	assert_int_equal(rc, e.rc);
	snprintf(log, loglen, "%s", r.log);
	return rc;
}

static void read_ok(struct fixture *f, const char *text, const char *want)
{
	char log[4096], err[1024];

	if (read_text(f, text, 0, log, sizeof(log), err, sizeof(err)) != 0)
		fail_msg("rejected: %s\n%s", err, text);
	if (strcmp(log, want) != 0)
		fail_msg("file:\n%s\ngot:\n%s\nwant:\n%s", text, log, want);
}

/* Reading fails with -EINVAL, the message is PATH + want, and the callbacks saw seen. */
static void read_bad(struct fixture *f, const char *text, int stop_at, const char *seen,
		     const char *want)
{
	char log[4096], err[1024], full[1400];

	if (read_text(f, text, stop_at, log, sizeof(log), err, sizeof(err)) !=
	    -EINVAL)
		fail_msg("accepted:\n%s", text);
	snprintf(full, sizeof(full), "%s%s", f->path, want);
	if (strcmp(err, full) != 0)
		fail_msg("file:\n%s\ngot:  %s\nwant: %s", text, err, full);
	if (strcmp(log, seen) != 0)
		fail_msg("file:\n%s\nseen:\n%s\nwant:\n%s", text, log, seen);
}

static void test_sections(void **state)
{
	read_ok(*state, "", "");
	read_ok(*state,
		"[litestream]\n"
		"[db app]\n"
		"[  replica   my  copy  ]\n"
		"[x]\n",
		"1 [litestream] kind=litestream name=(none) text=litestream\n"
		"2 [db app] kind=db name=app text=db app\n"
		"3 [replica my  copy] kind=replica name=my  copy text=  replica   my  copy  \n"
		"4 [x] kind=x name=(none) text=x\n");
	/* A comment may follow the ']'; the same kind with another name is no duplicate. */
	read_ok(*state, "[db a] ; one\n[db b] # two\n[db  a b]\n",
		"1 [db a] kind=db name=a text=db a\n"
		"2 [db b] kind=db name=b text=db b\n"
		"3 [db a b] kind=db name=a b text=db  a b\n");
}

static void test_keys_and_comments(void **state)
{
	read_ok(*state,
		"; a comment\n"
		"# another\n"
		"[s]\n"
		"a = 1\n"
		"b: two words\n"
		"c=\n"
		"d = x ; an inline comment\n"
		"e = x;no comment\n"
		"f = x # no comment either\n"
		"g = a = b\n"
		"   ; an indented comment\n"
		"\n",
		"3 [s] kind=s name=(none) text=s\n"
		"4 a=1\n"
		"5 b=two words\n"
		"6 c=\n"
		"7 d=x\n"
		"8 e=x;no comment\n"
		"9 f=x # no comment either\n"
		"10 g=a = b\n");
	/* Values are as written: no ${VAR} expansion while reading. */
	read_ok(*state, "[s]\nk = ${HOME}\n", "1 [s] kind=s name=(none) text=s\n2 k=${HOME}\n");
}

static void test_no_continuation(void **state)
{
	/* Indentation is dropped: an indented line is a line of its own. */
	read_ok(*state,
		"  [s]\n"
		"\tk = v\n"
		"    more = x\n",
		"1 [s] kind=s name=(none) text=s\n"
		"2 k=v\n"
		"3 more=x\n");
	/* So an indented word is no continuation of the value above, but an error. */
	read_bad(*state, "[s]\nk = v\n  continued\n", 0,
		 "1 [s] kind=s name=(none) text=s\n2 k=v\n",
		 ":3: [s]: syntax error: want \"key = value\"");
}

static void test_bom_crlf(void **state)
{
	read_ok(*state, "\xef\xbb\xbf[s]\r\nk = v\r\n\r\nl: w\n",
		"1 [s] kind=s name=(none) text=s\n2 k=v\n4 l=w\n");
}

static void test_errors(void **state)
{
	struct fixture *f = *state;

	read_bad(f, "k = v\n", 0, "", ":1: k: not in any section");
	read_bad(f, "\n\n[s\n", 0, "", ":3: syntax error: no ']' closing the section");
	read_bad(f, "[s ;]\n", 0, "", ":1: syntax error: no ']' closing the section");
	read_bad(f, "[a]\n[s] x\n", 0, "1 [a] kind=a name=(none) text=a\n",
		 ":2: [a]: syntax error: text after ']'");
	read_bad(f, "[a]\n= v\n", 0, "1 [a] kind=a name=(none) text=a\n",
		 ":2: [a]: syntax error: want \"key = value\"");
	read_bad(f, "[db a]\nk = 1\n\n[ db  a ]\n", 0,
		 "1 [db a] kind=db name=a text=db a\n2 k=1\n",
		 ":4: [db a]: duplicate section (first on line 1)");

	/* A callback's error stops the reading: line 3 is never seen. */
	read_bad(f, "[s]\nk = 1\nl = 2\n", 2, "1 [s] kind=s name=(none) text=s\n2 k=1\n",
		 ":2: k: refused");
	read_bad(f, "[s]\n[t]\nl = 2\n", 2,
		 "1 [s] kind=s name=(none) text=s\n2 [t] kind=t name=(none) text=t\n",
		 ":2: [t]: refused");
}

/* Through config_load(): what the reader refuses reaches its caller as it said it. */
static void test_bad_bytes(void **state)
{
	struct fixture *f = *state;
	struct config c;
	char line[400], text[600], err[1024], want[1400];
	static const char nul[] = "[db a]\npath = /x\0y\n";

	/* inih's buffer takes 198 bytes of a line; a longer value is kept whole
	 * (read as inih reads one: an inline comment and spaces removed), a
	 * longer key or section header refused, never split. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "exec = ", 7);
	line[198] = '\0';
	snprintf(text, sizeof(text), "[litestream]\n%s\n", line);
	load_ok(f, text, &c);
	assert_int_equal(strlen(c.exec), 198 - 7);
	config_free(&c);
	line[198] = 'a';
	line[350] = '\0';
	snprintf(text, sizeof(text), "[litestream]\n  %s   ; a comment\n[db a]\npath = /x\n", line);
	load_ok(f, text, &c);
	assert_int_equal(strlen(c.exec), 350 - 7);
	assert_int_equal(strspn(c.exec, "a"), 350 - 7);
	config_free(&c);
	snprintf(text, sizeof(text), "[litestream]\nexec: %s\n[db a]\npath = /x\n", line + 7);
	load_ok(f, text, &c);
	assert_int_equal(strlen(c.exec), 350 - 7);
	config_free(&c);
	memset(line, 'k', 210);
	snprintf(line + 210, sizeof(line) - 210, " = v");
	snprintf(text, sizeof(text), "[litestream]\n%s\n", line);
	load_bad(f, text, ":2: [litestream]: key longer than 198 bytes");
	memset(line, 'd', 250);
	line[250] = '\0';
	snprintf(text, sizeof(text), "[db %s]\npath = /x\n", line);
	load_bad(f, text, ":1: line longer than 198 bytes");

	write_file(f->path, nul, sizeof(nul) - 1);
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: [db a]: a NUL byte in the line", f->path);
	assert_string_equal(err, want);
}

static void test_missing_file(void **state)
{
	struct config c;
	char err[256];

	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(config_load("/nonexistent/litestream.conf", &c, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "open /nonexistent/litestream.conf: No such file or directory");
	assert_null(c.dbs);
	assert_null(c.socket);

	/* A directory opens but does not read. */
	assert_int_equal(config_load(((struct fixture *)*state)->dir, &c, err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "Is a directory"));
}

static void test_fail_format(void **state)
{
	char err[256];
	struct config_ini_error e = {.path = "f.ini", .msg = err, .msglen = sizeof(err)};

	assert_int_equal(config_ini_fail(&e, -EINVAL, 3, "db a", "path", "bad %d", 7), -EINVAL);
	assert_string_equal(err, "f.ini:3: [db a] path: bad 7");
	/* The first error stays. */
	assert_int_equal(config_ini_fail(&e, -ENOMEM, 4, NULL, NULL, "later"), -EINVAL);
	assert_string_equal(err, "f.ini:3: [db a] path: bad 7");

	e.rc = 0;
	config_ini_fail(&e, -EINVAL, 5, "db a", NULL, "x");
	assert_string_equal(err, "f.ini:5: [db a]: x");
	e.rc = 0;
	config_ini_fail(&e, -EINVAL, 6, NULL, "k", "x");
	assert_string_equal(err, "f.ini:6: k: x");
	e.rc = 0;
	config_ini_fail(&e, -EINVAL, 7, NULL, NULL, "x");
	assert_string_equal(err, "f.ini:7: x");
	e.rc = 0;
	assert_int_equal(config_ini_fail(&e, -ENOMEM, 0, NULL, NULL, "ignored"), -ENOMEM);
	assert_string_equal(err, "f.ini:0: out of memory");

	/* No file: no location. */
	e.rc = 0;
	e.path = NULL;
	config_ini_fail(&e, -EINVAL, 8, "replica", "url", "just this");
	assert_string_equal(err, "just this");

	/* No buffer: the code alone. */
	e.rc = 0;
	e.msg = NULL;
	assert_int_equal(config_ini_fail(&e, -EINVAL, 1, NULL, NULL, "x"), -EINVAL);
	assert_int_equal(e.rc, -EINVAL);
}

static void expand_ok(const char *in, const char *want)
{
	char err[256] = "", *out = NULL;
	struct config_ini_error e = {.path = "f.ini", .msg = err, .msglen = sizeof(err)};

	if (config_ini_expand(&e, 1, "s", "k", in, &out) != 0)
		fail_msg("\"%s\": %s", in, err);
	if (strcmp(out, want) != 0)
		fail_msg("\"%s\": got \"%s\", want \"%s\"", in, out, want);
	free(out);
}

static void test_expand(void **state)
{
	char err[256], *out = (char *)"untouched";
	struct config_ini_error e = {.path = "f.ini", .msg = err, .msglen = sizeof(err)};
	char name[300];

	setenv("LS_INI_A", "alpha", 1);
	setenv("LS_INI_EMPTY", "", 1);
	setenv("LS_INI_REC", "$LS_INI_A", 1);
	unsetenv("LS_INI_UNSET");

	expand_ok("", "");
	expand_ok("plain", "plain");
	expand_ok("${LS_INI_A}", "alpha");
	expand_ok("$LS_INI_A", "alpha");
	expand_ok("x${LS_INI_A}y $LS_INI_A.z", "xalphay alpha.z");
	expand_ok("$LS_INI_Ab", "");            /* the name runs on: LS_INI_Ab is unset */
	expand_ok("${LS_INI_A}b", "alphab");
	/* An unset or empty variable is "", as os.ExpandEnv has it. */
	expand_ok("[${LS_INI_UNSET}] [$LS_INI_UNSET] [$LS_INI_EMPTY]", "[] [] []");
	/* A '$' before anything but a name or '{' stays. */
	expand_ok("$$ $ end$ $-x $.", "$$ $ end$ $-x $.");
	/* No recursion: a value holding "$NAME" comes out as written. */
	expand_ok("${LS_INI_REC}", "$LS_INI_A");
	/* A name too long for any variable is unset. */
	memset(name, 'N', sizeof(name));
	memcpy(name, "${", 2);
	name[sizeof(name) - 2] = '}';
	name[sizeof(name) - 1] = '\0';
	expand_ok(name, "");

	/* Errors name the line, section and key, and never echo the value. */
	assert_int_equal(config_ini_expand(&e, 4, "db a", "path", "${LS_INI_A", &out), -EINVAL);
	assert_string_equal(err, "f.ini:4: [db a] path: unterminated \"${\" or empty \"${}\"");
	assert_string_equal(out, "untouched");
	e.rc = 0;
	assert_int_equal(config_ini_expand(&e, 9, "replica r", "secret-access-key", "a${}b", &out),
			 -EINVAL);
	assert_string_equal(err, "f.ini:9: [replica r] secret-access-key: unterminated \"${\" or "
				 "empty \"${}\"");
	unsetenv("LS_INI_A");
	unsetenv("LS_INI_EMPTY");
	unsetenv("LS_INI_REC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_and_comments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_continuation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bom_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test(test_fail_format),
		cmocka_unit_test(test_expand),
	};
	return cmocka_run_group_tests_name("config_ini", tests, NULL, NULL);
}
