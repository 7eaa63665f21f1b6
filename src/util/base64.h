/*
 * Base64 decoding (RFC 4648, the standard alphabet, '=' padding required),
 * strict: a character outside the alphabet, white space included, a length
 * that is not a multiple of four, padding anywhere but at the end, or
 * non-zero bits left over in the last character is an error. For keys the
 * user writes into a configuration (the SSE-C key), where a stray
 * character must not silently change the key. Pure; any thread.
 */
#ifndef LITESTREAM_BASE64_H
#define LITESTREAM_BASE64_H

#include <stddef.h>

/*
 * Decodes the NUL-terminated in into out (cap bytes). 0 with *len set;
 * -EINVAL when in is not base64 as above; -ENOSPC when it decodes to more
 * than cap bytes (*len is then the size it would have).
 */
int base64_decode(const char *in, unsigned char *out, size_t cap, size_t *len);

#endif
