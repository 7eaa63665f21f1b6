/*
 * Strict base64 decoding; see base64.h. Four characters make three bytes;
 * the last group may end in "=" (two bytes) or "==" (one byte), and the
 * bits those drop must be zero, so that every byte string has exactly one
 * encoding that is accepted.
 */
#include "util/base64.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static int value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(const char *in, unsigned char *out, size_t cap, size_t *len)
{
	size_t n = strlen(in), pad = 0, need;

	if (n == 0 || n % 4 != 0)
		return -EINVAL;
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	need = n / 4 * 3 - pad;
	if (need > cap) {
		*len = need;
		return -ENOSPC;
	}
	for (size_t i = 0, o = 0; i < n; i += 4) {
		int v[4];
		uint32_t group = 0;
		size_t real = i + 4 == n ? 4 - pad : 4;

		for (size_t j = 0; j < 4; j++) {
			v[j] = j < real ? value(in[i + j]) : (in[i + j] == '=' ? 0 : -1);
			if (v[j] < 0)
				return -EINVAL;
			group = group << 6 | (uint32_t)v[j];
		}
		if ((real == 3 && (group & 0xff) != 0) || (real == 2 && (group & 0xffff) != 0))
			return -EINVAL;
		out[o++] = (unsigned char)(group >> 16);
		if (real > 2)
			out[o++] = (unsigned char)(group >> 8);
		if (real > 3)
			out[o++] = (unsigned char)group;
	}
	*len = need;
	return 0;
}
