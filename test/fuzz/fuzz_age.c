/*
 * age files and keys (src/core/age.h, age_keys.h, util/bech32.h): the
 * input is read as an age file, fed in pieces of a size taken from its
 * first byte, with the identity the unit tests' known-answer files were
 * made for, so that inputs grown from those seeds get past the header MAC
 * into the payload. Also bech32_decode, age_recipient_parse and
 * age_identity_parse on the input as text. With -DFUZZ_INVARIANTS, a
 * payload that reads to the end was authenticated chunk by chunk, so it
 * is never longer than the input.
 */
#include "fuzz.h"

#include "core/age.h"
#include "core/age_keys.h"
#include "util/bech32.h"

#define KAT_IDENTITY "AGE-SECRET-KEY-13EG40E8FF9VGE582QVP8MXP7X0E4ZY9JG03CKPYKNF6J6GFAH6CQ0DMZ97"

struct src {
	const uint8_t *p;
	size_t n, pos, step;
};

static long src_read(void *ctx, void *buf, size_t n, char *err, size_t errlen)
{
	struct src *s = ctx;
	size_t take = s->n - s->pos;

	if (take > n)
		take = n;
	if (take > s->step)
		take = s->step;
	memcpy(buf, s->p + s->pos, take);
	s->pos += take;
	return (long)take;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct age_keys *keys;
	struct age_reader r;
	struct src s;
	char err[512], hrp[64];
	uint8_t out[4096], key[32];
	size_t len, total = 0;
	long got = 0;

	if (keys == NULL && age_keys_new(NULL, KAT_IDENTITY, &keys, err, sizeof(err)) != 0)
		abort();
	(void)bech32_decode((const char *)data, size, hrp, sizeof(hrp), out, sizeof(out), &len);
	(void)age_recipient_parse((const char *)data, size, key);
	(void)age_identity_parse((const char *)data, size, key);
	if (size == 0)
		return 0;
	s = (struct src){data + 1, size - 1, 0, (size_t)data[0] * 257 + 1};
	if (age_reader_begin(&r, keys, src_read, &s, NULL, 0, err, sizeof(err)) == 0) {
		while ((got = age_reader_read(&r, out, sizeof(out), err, sizeof(err))) > 0)
			total += (size_t)got;
		FUZZ_CHECK(got < 0 || total <= size);
		(void)total; /* read only by FUZZ_CHECK under -DFUZZ_INVARIANTS */
	}
	age_reader_free(&r);
	return 0;
}
