/*
 * Logging to stderr; see log.h. Each line is formatted into one buffer on
 * the caller's stack (log_line.c) and written with a single write() so
 * lines from threadpool jobs never interleave mid-line.
 */
#include "util/log.h"

#include "util/log_line.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LEVEL_INFO;
enum log_format log_output_format = LOG_FORMAT_TEXT;

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcasecmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

static void write_line(enum log_level level, const struct log_fields *f, const char *fmt,
		       va_list ap) __attribute__((format(printf, 3, 0)));

static void write_line(enum log_level level, const struct log_fields *f, const char *fmt,
		       va_list ap)
{
	char msg[LOG_LINE_TEXT_MAX], line[LOG_LINE_MAX];
	struct timespec ts;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = log_line_format(line, log_output_format,
			    (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, level, f, msg);
	/* Nothing useful can be done if stderr is gone. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

void log_write(enum log_level level, const char *db, const char *replica, const char *fmt, ...)
{
	const struct log_fields f = {db, replica, NULL, NULL};
	va_list ap;

	va_start(ap, fmt);
	write_line(level, &f, fmt, ap);
	va_end(ap);
}

void log_write_fields(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_line(level, f, fmt, ap);
	va_end(ap);
}
