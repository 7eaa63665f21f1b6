/*
 * Bech32; see bech32.h. The checksum is BCH over GF(32) as BIP 173 gives
 * it: polymod() over the expanded human-readable part, a zero, the data
 * characters and the six checksum characters must come to 1.
 */
#include "util/bech32.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char CHARSET[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, uint8_t v)
{
	static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
	uint8_t top = (uint8_t)(chk >> 25);

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

static uint32_t hrp_polymod(const char *hrp, size_t n)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (uint8_t)hrp[i] >> 5);
	chk = polymod_step(chk, 0);
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (uint8_t)hrp[i] & 31);
	return chk;
}

int bech32_decode(const char *s, size_t n, char *hrp, size_t hrp_cap, uint8_t *out, size_t cap,
		  size_t *len)
{
	bool lower = false, upper = false;
	size_t sep = 0, hn, o = 0;
	uint32_t chk, acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126)
			return -EINVAL;
		lower |= islower(c) != 0;
		upper |= isupper(c) != 0;
		if (c == '1')
			sep = i;
	}
	if (lower && upper)
		return -EINVAL;
	if (sep == 0 || sep + 7 > n)
		return -EINVAL;
	hn = sep;
	if (hn + 1 > hrp_cap)
		return -ENOSPC;
	for (size_t i = 0; i < hn; i++)
		hrp[i] = (char)tolower((unsigned char)s[i]);
	hrp[hn] = '\0';
	chk = hrp_polymod(hrp, hn);
	for (size_t i = sep + 1; i < n; i++) {
		const char *p = strchr(CHARSET, tolower((unsigned char)s[i]));
		if (p == NULL || *p == '\0')
			return -EINVAL;
		uint8_t v = (uint8_t)(p - CHARSET);
		chk = polymod_step(chk, v);
		if (i + 6 >= n)
			continue; /* the checksum characters carry no data */
		acc = (acc << 5) | v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -ENOSPC;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (chk != 1 || bits >= 5 || acc != 0)
		return -EINVAL;
	*len = o;
	return 0;
}

int bech32_encode(const char *hrp, const uint8_t *data, size_t n, char *buf, size_t cap)
{
	size_t hn = strlen(hrp), o = 0, groups = (n * 8 + 4) / 5;
	uint32_t chk = hrp_polymod(hrp, hn), acc = 0;
	int bits = 0;

	if (hn + 1 + groups + 6 + 1 > cap)
		return -ENOSPC;
	memcpy(buf, hrp, hn);
	o = hn;
	buf[o++] = '1';
	for (size_t i = 0; i < n || bits > 0;) {
		uint8_t v;
		if (bits < 5 && i < n) {
			acc = (acc << 8) | data[i++];
			bits += 8;
		}
		if (bits >= 5) {
			bits -= 5;
			v = (uint8_t)((acc >> bits) & 31);
		} else {
			v = (uint8_t)((acc << (5 - bits)) & 31);
			bits = 0;
		}
		chk = polymod_step(chk, v);
		buf[o++] = CHARSET[v];
	}
	for (int i = 0; i < 6; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (int i = 0; i < 6; i++)
		buf[o++] = CHARSET[(chk >> (5 * (5 - i))) & 31];
	buf[o] = '\0';
	return 0;
}
