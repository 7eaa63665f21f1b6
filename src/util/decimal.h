/*
 * decimal.h: a whole string read as an unsigned decimal number.
 *
 * Contract: decimal_parse_u64() accepts one or more ASCII digits and
 * nothing else (no sign, no space, no suffix, no "0x"), and a value that
 * fits in 64 bits. It returns 0 with *out set, -EINVAL for anything that is
 * not such a string (NULL included) or -ERANGE for a value too large;
 * *out is untouched on error. No state; safe from any thread.
 */
#ifndef LITESTREAM_UTIL_DECIMAL_H
#define LITESTREAM_UTIL_DECIMAL_H

#include <stdint.h>

int decimal_parse_u64(const char *s, uint64_t *out);

#endif
