/*
 * RFC 3339 times, as Litestream prints and takes them
 * ("2026-11-25T09:23:06Z", optionally with fractional seconds and a
 * numeric offset). Held as milliseconds since the Unix epoch, UTC.
 */
#ifndef LITESTREAM_TIMEFMT_H
#define LITESTREAM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses s; 0 or -EINVAL. *ms untouched on failure. */
int timefmt_parse(const char *s, int64_t *ms);

/* Formats ms as "YYYY-MM-DDTHH:MM:SSZ" (whole seconds, UTC, as Go's RFC3339). */
void timefmt_format(int64_t ms, char *buf, size_t n);

#endif
