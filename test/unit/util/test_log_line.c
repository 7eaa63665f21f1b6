/*
 * The log lines of log_line.h: the text form as it always was, and JSON
 * lines that stay one valid object in valid UTF-8 whatever bytes the
 * message and fields hold. Each JSON line is checked three ways: by a
 * UTF-8 validator written here (independent of the escaper's table), for
 * raw control bytes, and by parsing it with cJSON and comparing the values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/log_line.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1795598586123LL /* 2026-11-25T09:23:06.123Z */

/* Valid UTF-8 by decoding: no overlong form, surrogate or code point past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp, min;
		size_t len;

		if (s[i] < 0x80) {
			i++;
			continue;
		} else if ((s[i] & 0xe0) == 0xc0) {
			len = 2, cp = s[i] & 0x1f, min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			len = 3, cp = s[i] & 0x0f, min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			len = 4, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Formats a JSON line and checks it is one valid object line; returns it parsed. */
static cJSON *json_line(const struct log_fields *f, const char *msg, enum log_level level)
{
	char buf[LOG_LINE_MAX + 1];
	size_t n = log_line_format(buf, LOG_FORMAT_JSON, T0, level, f, msg);
	cJSON *o;

	assert_true(n > 2 && n <= LOG_LINE_MAX);
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(buf[0], '{');
	assert_int_equal(buf[n - 2], '}');
	for (size_t i = 0; i < n - 1; i++)
		if ((unsigned char)buf[i] < 0x20)
			fail_msg("raw control byte 0x%02x at %zu", (unsigned char)buf[i], i);
	if (!utf8_valid((unsigned char *)buf, n))
		fail_msg("not valid UTF-8: %.*s", (int)n, buf);
	buf[n] = '\0';
	o = cJSON_ParseWithLength(buf, n - 1);
	if (o == NULL || !cJSON_IsObject(o))
		fail_msg("not a JSON object: %s", buf);
	return o;
}

static const char *member(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_text(void **state)
{
	char buf[LOG_LINE_MAX + 1];
	struct log_fields f = {"/data/app.db", "s3", "0123456789abcdef/00000001:4152", "HTTP 500"};
	size_t n;

	(void)state;
	n = log_line_format(buf, LOG_FORMAT_TEXT, T0, LOG_LEVEL_INFO, &f, "put wal segment");
	buf[n] = '\0';
	assert_string_equal(buf, "2026-11-25T09:23:06.123Z INFO  /data/app.db(s3): put wal segment: HTTP 500\n");
	f.replica = NULL;
	f.error = NULL;
	n = log_line_format(buf, LOG_FORMAT_TEXT, T0, LOG_LEVEL_ERROR, &f, "opened");
	buf[n] = '\0';
	assert_string_equal(buf, "2026-11-25T09:23:06.123Z ERROR /data/app.db: opened\n");
	n = log_line_format(buf, LOG_FORMAT_TEXT, T0 + 1, LOG_LEVEL_WARN, NULL, "x");
	buf[n] = '\0';
	assert_string_equal(buf, "2026-11-25T09:23:06.124Z WARN  x\n");

	/* A long message is cut to LOG_LINE_TEXT_MAX with its newline. */
	char *big = malloc(5000);
	memset(big, 'a', 4999);
	big[4999] = '\0';
	n = log_line_format(buf, LOG_FORMAT_TEXT, T0, LOG_LEVEL_DEBUG, NULL, big);
	assert_int_equal(n, LOG_LINE_TEXT_MAX - 1);
	assert_int_equal(buf[n - 1], '\n');
	free(big);
}

static void test_json_members(void **state)
{
	struct log_fields f = {"/data/app.db", "s3", "0123456789abcdef/00000001:4152", "HTTP 500"};
	char buf[LOG_LINE_MAX + 1];
	cJSON *o;
	size_t n;

	(void)state;
	n = log_line_format(buf, LOG_FORMAT_JSON, T0, LOG_LEVEL_ERROR, &f, "put wal segment");
	buf[n] = '\0';
	assert_string_equal(buf,
			    "{\"time\":\"2026-11-25T09:23:06.123Z\",\"level\":\"ERROR\",\"msg\":\"put wal "
			    "segment\",\"db\":\"/data/app.db\",\"replica\":\"s3\",\"position\":"
			    "\"0123456789abcdef/00000001:4152\",\"error\":\"HTTP 500\"}\n");
	/* Absent fields are left out, not null. */
	o = json_line(NULL, "started", LOG_LEVEL_INFO);
	assert_int_equal(cJSON_GetArraySize(o), 3);
	assert_string_equal(member(o, "level"), "INFO");
	assert_string_equal(member(o, "msg"), "started");
	cJSON_Delete(o);
	f.replica = f.position = NULL;
	o = json_line(&f, "", LOG_LEVEL_DEBUG);
	assert_int_equal(cJSON_GetArraySize(o), 5);
	assert_string_equal(member(o, "level"), "DEBUG");
	assert_string_equal(member(o, "msg"), "");
	assert_string_equal(member(o, "db"), "/data/app.db");
	assert_string_equal(member(o, "error"), "HTTP 500");
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "replica"));
	cJSON_Delete(o);
}

/* in, as JSON, must read back as want (NULL: in itself). */
static void round_trip(const char *in, const char *want)
{
	/* The position's budget holds 21 bytes at 6 out for 1 in. */
	bool short_in = strlen(in) <= LOG_JSON_POSITION_MAX / 6;
	struct log_fields f = {in, in, short_in ? in : "p", in};
	cJSON *o = json_line(&f, in, LOG_LEVEL_WARN);
	static const char *const keys[] = {"msg", "db", "replica", "error", "position"};

	for (size_t i = 0; i < (short_in ? 5u : 4u); i++) {
		const char *got = member(o, keys[i]);
		if (got == NULL || strcmp(got, want ? want : in) != 0)
			fail_msg("%s: \"%s\" read back as \"%s\"", keys[i], in, got ? got : "(missing)");
	}
	cJSON_Delete(o);
}

#define FFFD "\xef\xbf\xbd"

static void test_json_nasty(void **state)
{
	char ctl[40];

	(void)state;
	round_trip("plain", NULL);
	round_trip("\"quoted\" \\back\\slash\\ /slash", NULL);
	round_trip("line\nbreak\r\ttab\bback\fform", NULL);
	round_trip("del\x7f", NULL);
	round_trip("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8\xe2\x80\xa9", NULL);
	round_trip("\xf4\x8f\xbf\xbf \xee\x80\x80", NULL); /* U+10FFFF, U+E000 */
	for (int c = 1; c < 0x20; c++)
		ctl[c - 1] = (char)c;
	ctl[0x1f] = '\0';
	round_trip(ctl, NULL);
	/* Every kind of bad UTF-8: one U+FFFD per byte that starts nothing valid. */
	round_trip("a\x80z", "a" FFFD "z");                     /* stray continuation */
	round_trip("\xc0\xaf", FFFD FFFD);                      /* overlong '/' */
	round_trip("\xc1\xbf", FFFD FFFD);                      /* overlong */
	round_trip("\xe0\x80\xaf", FFFD FFFD FFFD);             /* overlong, 3 bytes */
	round_trip("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD);    /* overlong, 4 bytes */
	round_trip("\xed\xa0\x80", FFFD FFFD FFFD);             /* surrogate U+D800 */
	round_trip("\xed\xbf\xbf", FFFD FFFD FFFD);             /* surrogate U+DFFF */
	round_trip("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);    /* U+110000 */
	round_trip("\xf5\xff\xfe", FFFD FFFD FFFD);             /* never valid */
	round_trip("cut \xe2\x82", "cut " FFFD FFFD);           /* cut short at the end */
	round_trip("\xe2\x82x", FFFD FFFD "x");                 /* cut short by ASCII */
	round_trip("\xf0\x9f\x98", FFFD FFFD FFFD);
	round_trip("\xc3", FFFD);
	/* Every single byte alone. */
	for (int c = 1; c < 256; c++) {
		char one[2] = {(char)c, '\0'};
		round_trip(one, c < 0x80 ? NULL : FFFD);
	}
}

static void test_json_budgets(void **state)
{
	size_t big = 20000;
	char *s = malloc(big + 1);
	struct log_fields f;
	cJSON *o;

	(void)state;
	/* Quotes double in size: the value is cut, whole escapes only, the line stays valid. */
	memset(s, '"', big);
	s[big] = '\0';
	f = (struct log_fields){s, s, s, s};
	o = json_line(&f, s, LOG_LEVEL_ERROR);
	assert_int_equal(strlen(member(o, "msg")), LOG_JSON_MSG_MAX / 2);
	assert_int_equal(strlen(member(o, "db")), LOG_JSON_DB_MAX / 2);
	assert_int_equal(strlen(member(o, "replica")), LOG_JSON_REPLICA_MAX / 2);
	assert_int_equal(strlen(member(o, "position")), LOG_JSON_POSITION_MAX / 2);
	assert_int_equal(strlen(member(o, "error")), LOG_JSON_ERROR_MAX / 2);
	cJSON_Delete(o);
	/* Control bytes (6 out for 1 in) and 3-byte characters: cut between characters. */
	for (size_t i = 0; i < big; i++)
		s[i] = i % 4 == 0 ? '\x01' : "\xe2\x82\xac"[i % 4 - 1];
	o = json_line(&f, s, LOG_LEVEL_ERROR);
	assert_true(strlen(member(o, "msg")) > 0);
	cJSON_Delete(o);
	for (size_t i = 0; i < big; i++)
		s[i] = (char)(0x80 + i % 64); /* all garbage: 6 out per byte */
	o = json_line(&f, s, LOG_LEVEL_ERROR);
	assert_int_equal(strlen(member(o, "error")), LOG_JSON_ERROR_MAX / 6 * 3);
	cJSON_Delete(o);
	free(s);
}

static void test_escape_cap(void **state)
{
	char out[16];
	size_t used, n;

	(void)state;
	memset(out, 'X', sizeof(out));
	n = log_json_escape(out, 5, "\x01", 1, &used);
	assert_int_equal(n, 0);
	assert_int_equal(used, 0);
	assert_int_equal(out[0], 'X');
	n = log_json_escape(out, 6, "\x01z", 2, &used);
	assert_int_equal(n, 6);
	assert_int_equal(used, 1);
	assert_memory_equal(out, "\\u0001", 6);
	n = log_json_escape(out, 2, "a\xc3\xa9", 3, &used);
	assert_int_equal(n, 1); /* é does not fit in one byte */
	assert_int_equal(used, 1);
	n = log_json_escape(out, 3, "a\xc3\xa9", 3, &used);
	assert_int_equal(n, 3);
	assert_int_equal(used, 3);
	/* Only s[0..len) is read: a character cut by len is garbage. */
	n = log_json_escape(out, sizeof(out), "\xc3\xa9", 1, &used);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "\\ufffd", 6);
	assert_int_equal(log_json_escape(out, sizeof(out), "", 0, &used), 0);
	assert_int_equal(used, 0);
}

static void test_parse_format(void **state)
{
	enum log_format f = LOG_FORMAT_TEXT;

	(void)state;
	assert_int_equal(log_format_parse("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_format_parse("TEXT", &f), 0);
	assert_int_equal(f, LOG_FORMAT_TEXT);
	assert_int_equal(log_format_parse("JSON", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_format_parse("xml", &f), -EINVAL);
	assert_int_equal(log_format_parse("", &f), -EINVAL);
	assert_int_equal(log_format_parse("json ", &f), -EINVAL);
	assert_int_equal(f, LOG_FORMAT_JSON);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_json_members),
		cmocka_unit_test(test_json_nasty),
		cmocka_unit_test(test_json_budgets),
		cmocka_unit_test(test_escape_cap),
		cmocka_unit_test(test_parse_format),
	};
	return cmocka_run_group_tests_name("log_line", tests, NULL, NULL);
}
