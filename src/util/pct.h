/*
 * Hex digits and percent-decoding (RFC 3986 "%XX"), for the replica URLs
 * (url.c), the control server's paths and queries (control.c,
 * control_params.c), S3 listings sent with EncodingType=url (s3/xml.c)
 * and the hex in generation names (names.c). No state, no allocation,
 * safe from any thread.
 */
#ifndef LITESTREAM_PCT_H
#define LITESTREAM_PCT_H

#include <stddef.h>

/* The value of the hex digit c (0-9, a-f, A-F), or -1 for anything else. */
int pct_hex_digit(int c);

enum {
	PCT_PLUS_SPACE = 1, /* '+' is a space, as in query strings */
	PCT_LENIENT = 2,    /* a bad escape is kept, and %00 is decoded (see below) */
};

/*
 * Percent-decodes s[0..len) into out, which has room for len + 1 bytes and
 * may be s itself (the output never runs ahead of the input), and
 * NUL-terminates it. Returns 0, or -EINVAL for a '%' not followed by two
 * hex digits or for "%00", which no C string could carry; out then holds
 * a partial result. With PCT_LENIENT nothing fails: such a '%' is copied
 * as it stands, and "%00" becomes a NUL byte, which ends the string there.
 */
int pct_decode(const char *s, size_t len, unsigned flags, char *out);

#endif
