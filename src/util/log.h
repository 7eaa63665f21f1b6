/*
 * Logging: one line per event on stderr,
 *
 *   2026-11-25T09:23:06.123Z INFO  /data/app.db(file): message
 *
 * with a UTC timestamp, the level, and the database and replica it concerns
 * (either may be NULL). LOG_* macros test the level before any formatting.
 * Never pass a secret.
 */
#ifndef LITESTREAM_LOG_H
#define LITESTREAM_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

extern enum log_level log_threshold;

/* Parses "debug", "info", "warn" or "error". 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *db, const char *replica, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define LOG_AT(lvl, db, rep, ...)                              \
	do {                                                   \
		if ((lvl) >= log_threshold)                    \
			log_write((lvl), (db), (rep), __VA_ARGS__); \
	} while (0)

#define LOG_DEBUG(db, rep, ...) LOG_AT(LOG_LEVEL_DEBUG, db, rep, __VA_ARGS__)
#define LOG_INFO(db, rep, ...) LOG_AT(LOG_LEVEL_INFO, db, rep, __VA_ARGS__)
#define LOG_WARN(db, rep, ...) LOG_AT(LOG_LEVEL_WARN, db, rep, __VA_ARGS__)
#define LOG_ERROR(db, rep, ...) LOG_AT(LOG_LEVEL_ERROR, db, rep, __VA_ARGS__)

#endif
