/*
 * utf8.c: the length of one well-formed UTF-8 sequence.
 *
 * The JSON log writer replaces what is not UTF-8 with U+FFFD, and the
 * table writer counts code points for column widths; both need the same
 * rule, the one of RFC 3629's table: the second byte's range depends on
 * the lead byte, which is what excludes overlong forms, surrogates and
 * code points above U+10FFFF.
 */
#include "util/utf8.h"

#include <stdbool.h>

static bool in(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

size_t utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c, lo = 0x80, hi = 0xbf; /* the second byte's range */
	size_t n;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (in(c, 0xc2, 0xdf))
		n = 2;
	else if (in(c, 0xe0, 0xef))
		n = 3;
	else if (in(c, 0xf0, 0xf4))
		n = 4;
	else
		return 0; /* continuation byte, C0, C1, F5..FF */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (len < n || !in(s[1], lo, hi))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (!in(s[i], 0x80, 0xbf))
			return 0;
	return n;
}
