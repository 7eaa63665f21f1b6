/*
 * The lines log.h writes, formatted without I/O or allocation so that any
 * thread may format one on its stack, and tests may check them.
 *
 * Text: "TIME LEVEL DB(REPLICA): MESSAGE[: ERROR]\n" (the "DB(REPLICA): "
 * part is "DB: " without a replica and absent without a database), cut
 * to LOG_LINE_TEXT_MAX bytes with the newline; bytes go out as they are.
 *
 * JSON: {"time":"TIME","level":"LEVEL","msg":"MESSAGE","db":"DB",
 * "replica":"REPLICA","position":"POS","error":"ERROR"}\n, in that order,
 * members whose field is NULL left out. TIME is RFC 3339 in UTC with
 * milliseconds ("2026-11-25T09:23:06.123Z", as the text has it); LEVEL is
 * DEBUG, INFO, WARN or ERROR. Strings are escaped so that the line is
 * always one valid JSON text in valid UTF-8 whatever the bytes given:
 * '"' and '\' get a backslash; \b \f \n \r \t stand for themselves; other
 * bytes below 0x20 become \u00XX; valid UTF-8 passes through (DEL and
 * U+2028/U+2029 included, both valid JSON); every byte that does not
 * begin a valid UTF-8 sequence (a stray continuation byte, an overlong
 * form, a surrogate, a code point past U+10FFFF, a sequence cut short)
 * becomes \ufffd, one per byte. Each value has its own budget of output
 * bytes (LOG_JSON_*_MAX) and is cut at a character boundary, never inside
 * an escape, so a long value shortens the line but never breaks it.
 */
#ifndef LITESTREAM_LOG_LINE_H
#define LITESTREAM_LOG_LINE_H

#include "util/log.h"

#include <stddef.h>
#include <stdint.h>

#define LOG_LINE_TEXT_MAX 2048
#define LOG_JSON_MSG_MAX 3072
#define LOG_JSON_DB_MAX 2048
#define LOG_JSON_REPLICA_MAX 512
#define LOG_JSON_POSITION_MAX 128
#define LOG_JSON_ERROR_MAX 2048
/* A buffer this large holds any line of either form. */
#define LOG_LINE_MAX 8192

/*
 * Formats one line: level at time_ms (milliseconds since the Unix epoch),
 * about f (NULL: no fields), saying msg. buf must hold LOG_LINE_MAX bytes.
 * Returns the line's length, its last byte the newline; buf is not
 * NUL-terminated.
 */
size_t log_line_format(char *buf, enum log_format format, int64_t time_ms, enum log_level level,
		       const struct log_fields *f, const char *msg);

/*
 * Escapes s[0..len) as the inside of a JSON string (the rules above) into
 * out, writing at most cap bytes and stopping before the first character
 * whose escape would not fit. Returns the bytes written; *used is the
 * input bytes they stand for (len when all fitted).
 */
size_t log_json_escape(char *out, size_t cap, const char *s, size_t len, size_t *used);

#endif
