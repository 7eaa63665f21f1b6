/*
 * Logging: one line per event on stderr, as text (the default)
 *
 *   2026-11-25T09:23:06.123Z INFO  /data/app.db(file): message
 *
 * with a UTC timestamp, the level, and the database and replica it concerns
 * (either may be NULL), or, with log_output_format LOG_FORMAT_JSON, as one
 * JSON object per line for container log collectors:
 *
 *   {"time":"2026-11-25T09:23:06.123Z","level":"INFO","msg":"message",
 *    "db":"/data/app.db","replica":"file"}
 *
 * (log_line.h has the exact forms). A message may also carry a position
 * and an error (struct log_fields, the LOG_*_ERR and LOG_*_POS macros):
 * JSON gives them as "position" and "error"; text appends ": ERROR" to the
 * message and leaves the position to the message's own words. LOG_*
 * macros test the level before any formatting. Never pass a secret.
 *
 * log_threshold and log_output_format are set once by the command, before
 * the loop and threads start; log_write() may then be called from any
 * thread (one write() per line, so lines never interleave).
 */
#ifndef LITESTREAM_LOG_H
#define LITESTREAM_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

extern enum log_level log_threshold;
extern enum log_format log_output_format;

/* Parses "debug", "info", "warn" or "error". 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

/* Parses "text" or "json" (any case). 0 or -EINVAL; *out untouched on failure. */
int log_format_parse(const char *s, enum log_format *out);

/* What a line is about; every member may be NULL. Borrowed for the call. */
struct log_fields {
	const char *db;       /* the database's path */
	const char *replica;  /* the replica's name */
	const char *position; /* "GENERATION/INDEX:OFFSET" (db_pos_format()) */
	const char *error;    /* what went wrong, without the message's words */
};

void log_write(enum log_level level, const char *db, const char *replica, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_write_fields(enum log_level level, const struct log_fields *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, db, rep, ...)                              \
	do {                                                   \
		if ((lvl) >= log_threshold)                    \
			log_write((lvl), (db), (rep), __VA_ARGS__); \
	} while (0)

#define LOG_FIELDS_AT(lvl, db, rep, pos, err, ...)                                    \
	do {                                                                          \
		if ((lvl) >= log_threshold) {                                         \
			const struct log_fields log_f_ = {(db), (rep), (pos), (err)}; \
			log_write_fields((lvl), &log_f_, __VA_ARGS__);                \
		}                                                                     \
	} while (0)

#define LOG_DEBUG(db, rep, ...) LOG_AT(LOG_LEVEL_DEBUG, db, rep, __VA_ARGS__)
#define LOG_INFO(db, rep, ...) LOG_AT(LOG_LEVEL_INFO, db, rep, __VA_ARGS__)
#define LOG_WARN(db, rep, ...) LOG_AT(LOG_LEVEL_WARN, db, rep, __VA_ARGS__)
#define LOG_ERROR(db, rep, ...) LOG_AT(LOG_LEVEL_ERROR, db, rep, __VA_ARGS__)

/* With an error: text "message: ERR", JSON "error":"ERR". */
#define LOG_DEBUG_ERR(db, rep, err, ...) LOG_FIELDS_AT(LOG_LEVEL_DEBUG, db, rep, NULL, err, __VA_ARGS__)
#define LOG_WARN_ERR(db, rep, err, ...) LOG_FIELDS_AT(LOG_LEVEL_WARN, db, rep, NULL, err, __VA_ARGS__)
#define LOG_ERROR_ERR(db, rep, err, ...) LOG_FIELDS_AT(LOG_LEVEL_ERROR, db, rep, NULL, err, __VA_ARGS__)

/* With a position: JSON "position":"POS"; the text is the message alone. */
#define LOG_DEBUG_POS(db, rep, pos, ...) LOG_FIELDS_AT(LOG_LEVEL_DEBUG, db, rep, pos, NULL, __VA_ARGS__)
#define LOG_INFO_POS(db, rep, pos, ...) LOG_FIELDS_AT(LOG_LEVEL_INFO, db, rep, pos, NULL, __VA_ARGS__)
#define LOG_ERROR_POS(db, rep, pos, ...) LOG_FIELDS_AT(LOG_LEVEL_ERROR, db, rep, pos, NULL, __VA_ARGS__)

#endif
