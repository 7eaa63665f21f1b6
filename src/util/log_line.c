/*
 * Formatting log lines, text and JSON; see log_line.h for the forms.
 *
 * The JSON escaper decodes UTF-8 by the table of well-formed sequences in
 * Unicode's chapter 3 (Table 3-7): the second byte's range depends on the
 * first (E0 A0..BF, ED 80..9F, F0 90..BF, F4 80..8F), which rules out
 * overlong forms, surrogates and code points past U+10FFFF without
 * computing the code point. Anything else is one byte of garbage and
 * becomes U+FFFD, so the output is valid UTF-8 by construction.
 */
#include "util/log_line.h"
#include "util/utf8.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* "2026-11-25T09:23:06.123Z" into buf (at least 32 bytes); its length. */
static size_t format_time(char *buf, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, cap - n, ".%03dZ", (int)(ms % 1000));
	return n;
}

/* ---- JSON strings ------------------------------------------------------------ */

size_t log_json_escape(char *out, size_t cap, const char *str, size_t len, size_t *used)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, o = 0;

	while (i < len) {
		char esc[8];
		const char *piece = esc;
		size_t plen, take = 1;
		unsigned char c = s[i];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			plen = 2;
		} else if (c < 0x20) {
			static const char short_esc[] = "btn\0fr"; /* 0x08 .. 0x0d */
			if (c >= 0x08 && c <= 0x0d && short_esc[c - 0x08] != '\0') {
				esc[0] = '\\';
				esc[1] = short_esc[c - 0x08];
				plen = 2;
			} else {
				plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
			}
		} else if ((take = utf8_seq_len(s + i, len - i)) > 0) {
			piece = str + i;
			plen = take;
		} else {
			piece = "\\ufffd";
			plen = 6;
			take = 1;
		}
		if (o + plen > cap)
			break;
		memcpy(out + o, piece, plen);
		o += plen;
		i += take;
	}
	*used = i;
	return o;
}

/* ---- lines ---------------------------------------------------------------------- */

struct jline {
	char *buf;
	size_t n;
};

static void put_raw(struct jline *j, const char *s)
{
	size_t len = strlen(s);

	memcpy(j->buf + j->n, s, len);
	j->n += len;
}

/* ,"key":"value" (the comma unless first), value within budget bytes. */
static void put_member(struct jline *j, const char *key, const char *value, size_t budget)
{
	size_t used;

	if (value == NULL)
		return;
	put_raw(j, j->n > 1 ? ",\"" : "\"");
	put_raw(j, key);
	put_raw(j, "\":\"");
	j->n += log_json_escape(j->buf + j->n, budget, value, strlen(value), &used);
	put_raw(j, "\"");
}

/*
 * The budgets, the keys, the time and the punctuation add up to less than
 * LOG_LINE_MAX, so nothing here checks for room.
 */
_Static_assert(LOG_JSON_MSG_MAX + LOG_JSON_DB_MAX + LOG_JSON_REPLICA_MAX + LOG_JSON_POSITION_MAX +
			       LOG_JSON_ERROR_MAX + 256 <
		       LOG_LINE_MAX,
	       "the JSON budgets must fit in LOG_LINE_MAX");

static size_t format_json(char *buf, int64_t time_ms, enum log_level level,
			  const struct log_fields *f, const char *msg)
{
	struct jline j = {buf, 0};
	char t[64];

	format_time(t, sizeof(t), time_ms);
	put_raw(&j, "{");
	put_member(&j, "time", t, sizeof(t));
	put_member(&j, "level", level_names[level], 16);
	put_member(&j, "msg", msg, LOG_JSON_MSG_MAX);
	if (f != NULL) {
		put_member(&j, "db", f->db, LOG_JSON_DB_MAX);
		put_member(&j, "replica", f->replica, LOG_JSON_REPLICA_MAX);
		put_member(&j, "position", f->position, LOG_JSON_POSITION_MAX);
		put_member(&j, "error", f->error, LOG_JSON_ERROR_MAX);
	}
	put_raw(&j, "}\n");
	return j.n;
}

static size_t format_text(char *line, int64_t time_ms, enum log_level level,
			  const struct log_fields *f, const char *msg)
{
	const size_t cap = LOG_LINE_TEXT_MAX;
	const char *db = f ? f->db : NULL, *replica = f ? f->replica : NULL;
	size_t n;

	n = format_time(line, cap, time_ms);
	n += (size_t)snprintf(line + n, cap - n, " %-5s ", level_names[level]);
	if (db != NULL && replica != NULL)
		n += (size_t)snprintf(line + n, cap - n, "%s(%s): ", db, replica);
	else if (db != NULL)
		n += (size_t)snprintf(line + n, cap - n, "%s: ", db);
	if (n < cap)
		n += (size_t)snprintf(line + n, cap - n, "%s", msg);
	if (n < cap && f != NULL && f->error != NULL)
		n += (size_t)snprintf(line + n, cap - n, ": %s", f->error);
	if (n >= cap - 1)
		n = cap - 2;
	line[n++] = '\n';
	return n;
}

size_t log_line_format(char *buf, enum log_format format, int64_t time_ms, enum log_level level,
		       const struct log_fields *f, const char *msg)
{
	if ((unsigned)level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	if (format == LOG_FORMAT_JSON)
		return format_json(buf, time_ms, level, f, msg);
	return format_text(buf, time_ms, level, f, msg);
}
