/*
 * Bech32 (BIP 173, the original checksum constant 1), as age writes its
 * keys: "age1..." recipients and "AGE-SECRET-KEY-1..." identities. Without
 * BIP 173's 90-character limit, like age's own decoder. Strict: mixed
 * case, a character outside the alphabet, a bad checksum or non-zero
 * padding bits are errors. Pure; any thread.
 */
#ifndef LITESTREAM_BECH32_H
#define LITESTREAM_BECH32_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes s (n bytes, not necessarily NUL-terminated): its human-readable
 * part, lowercased, into hrp (hrp_cap bytes, NUL-terminated) and its data
 * into out (cap bytes), *len set. 0, -EINVAL when s is not bech32, or
 * -ENOSPC when a part does not fit.
 */
int bech32_decode(const char *s, size_t n, char *hrp, size_t hrp_cap, uint8_t *out, size_t cap,
		  size_t *len);

/* Encodes hrp (lowercase) and data into buf as lowercase bech32. 0 or -ENOSPC. */
int bech32_encode(const char *hrp, const uint8_t *data, size_t n, char *buf, size_t cap);

#endif
