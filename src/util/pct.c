/*
 * Hex digits and percent-decoding; pct.h has the contract. One decoder
 * serves the strict callers (URLs and control requests, where a bad escape
 * is the client's error) and the lenient one (S3 listings, whose keys are
 * taken as the server sends them).
 */
#include "util/pct.h"

#include <errno.h>
#include <stdbool.h>

int pct_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pct_decode(const char *s, size_t len, unsigned flags, char *out)
{
	bool lenient = (flags & PCT_LENIENT) != 0;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int hi = -1, lo = -1;

		if (s[i] == '%' && i + 2 < len) {
			hi = pct_hex_digit((unsigned char)s[i + 1]);
			lo = pct_hex_digit((unsigned char)s[i + 2]);
		}
		if (s[i] == '%' && hi >= 0 && lo >= 0 && (lenient || hi != 0 || lo != 0)) {
			out[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '%' && !lenient) {
			out[n] = '\0';
			return -EINVAL;
		} else if (s[i] == '+' && (flags & PCT_PLUS_SPACE)) {
			out[n++] = ' ';
		} else {
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
	return 0;
}
