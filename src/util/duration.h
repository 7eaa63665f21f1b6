/*
 * Durations written as Go writes them: "0", "500ms", "10s", "1h30m",
 * "1.5h", units ns, us (or µs), ms, s, m, h. Held as milliseconds.
 */
#ifndef LITESTREAM_DURATION_H
#define LITESTREAM_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses s into *ms (sub-millisecond parts round down). 0 or -EINVAL. */
int duration_parse(const char *s, int64_t *ms);

/* Formats ms the way Go prints a Duration ("1h30m0s", "500ms", "0s"). */
void duration_format(int64_t ms, char *buf, size_t n);

#endif
