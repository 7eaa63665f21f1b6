/*
 * age v1 and its primitives: known answers from the RFCs (X25519: RFC
 * 7748 section 6.1; HKDF-SHA-256: RFC 5869 cases 1 and 3), and files made
 * by the `age` tool (filippo.io/age 1.1.1) in age_kat/: an empty payload,
 * exactly one full 64 KiB chunk (which age flags last) and 64 KiB + 1
 * (two chunks), all to the recipient of KAT_IDENTITY, the payload being
 * byte i = i * 7 mod 251. Then our writer against our reader, and every
 * way a file can be damaged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/age.h"
#include "core/age_crypto.h"
#include "core/age_keys.h"
#include "util/bech32.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KAT_IDENTITY "AGE-SECRET-KEY-13EG40E8FF9VGE582QVP8MXP7X0E4ZY9JG03CKPYKNF6J6GFAH6CQ0DMZ97"
#define KAT_RECIPIENT "age1jew77wf50m7fhredjy26cskpnlxpxh3ejasmdtvtgh5swp7ky39qh8msrk"
#define OTHER_IDENTITY "AGE-SECRET-KEY-165KAHTG5YXD22PYWWRAEFX77SS8UU8D26FX9AJV3L3K53PUJA5NQUQ822U"

static void hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static void test_x25519_rfc7748(void **state)
{
	uint8_t a[32], b[32], pa[32], pb[32], want_pa[32], want_pb[32], k1[32], k2[32], want[32];

	hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
	hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, 32);
	hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want_pa, 32);
	hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", want_pb, 32);
	hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want, 32);
	assert_int_equal(age_x25519_public(a, pa), 0);
	assert_int_equal(age_x25519_public(b, pb), 0);
	assert_memory_equal(pa, want_pa, 32);
	assert_memory_equal(pb, want_pb, 32);
	assert_int_equal(age_x25519(a, pb, k1), 0);
	assert_int_equal(age_x25519(b, pa, k2), 0);
	assert_memory_equal(k1, want, 32);
	assert_memory_equal(k2, want, 32);
	/* A low-order point gives an all-zero secret: refused. */
	uint8_t zero[32] = {0};
	assert_int_equal(age_x25519(a, zero, k1), -EBADMSG);
}

static void test_hkdf_rfc5869(void **state)
{
	uint8_t ikm[22], salt[13], okm[42], want[42];
	char info[11];

	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (char)(0xf0 + i);
	info[10] = '\0';
	hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", want, 42);
	assert_int_equal(age_hkdf(ikm, sizeof(ikm), salt, sizeof(salt), info, okm, 42), 0);
	assert_memory_equal(okm, want, 42);
	/* Case 3: no salt, no info. */
	hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", want, 42);
	assert_int_equal(age_hkdf(ikm, sizeof(ikm), NULL, 0, "", okm, 42), 0);
	assert_memory_equal(okm, want, 42);
}

static void test_stream_nonce(void **state)
{
	uint8_t n[12], want[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1};

	age_stream_nonce(0x0102, true, n);
	assert_memory_equal(n, want, 12);
	age_stream_nonce(0, false, n);
	memset(want, 0, 12);
	assert_memory_equal(n, want, 12);
}

static void test_aead_round_trip_and_tamper(void **state)
{
	uint8_t key[32] = {1}, nonce[12] = {2}, msg[100], sealed[116], out[100];

	memset(msg, 'x', sizeof(msg));
	assert_int_equal(age_aead_seal(key, nonce, msg, sizeof(msg), sealed), 0);
	assert_int_equal(age_aead_open(key, nonce, sealed, sizeof(sealed), out), 0);
	assert_memory_equal(out, msg, sizeof(msg));
	sealed[3] ^= 1;
	assert_int_equal(age_aead_open(key, nonce, sealed, sizeof(sealed), out), -EBADMSG);
	sealed[3] ^= 1;
	nonce[11] = 1; /* the last-chunk flag is part of the nonce */
	assert_int_equal(age_aead_open(key, nonce, sealed, sizeof(sealed), out), -EBADMSG);
	/* Empty plaintext: just a tag. */
	nonce[11] = 0;
	assert_int_equal(age_aead_seal(key, nonce, msg, 0, sealed), 0);
	assert_int_equal(age_aead_open(key, nonce, sealed, 16, out), 0);
	assert_int_equal(age_aead_open(key, nonce, sealed, 15, out), -EBADMSG);
}

static void test_keys_bech32(void **state)
{
	uint8_t secret[32], pub[32], parsed[32];
	char text[128];

	assert_int_equal(age_identity_parse(KAT_IDENTITY, strlen(KAT_IDENTITY), secret), 0);
	assert_int_equal(age_x25519_public(secret, pub), 0);
	assert_int_equal(bech32_encode("age", pub, 32, text, sizeof(text)), 0);
	assert_string_equal(text, KAT_RECIPIENT);
	assert_int_equal(age_recipient_parse(KAT_RECIPIENT, strlen(KAT_RECIPIENT), parsed), 0);
	assert_memory_equal(parsed, pub, 32);
	/* A changed character breaks the checksum; case is not mixed. */
	snprintf(text, sizeof(text), "%s", KAT_RECIPIENT);
	text[10] = text[10] == 'q' ? 'p' : 'q';
	assert_int_equal(age_recipient_parse(text, strlen(text), parsed), -EINVAL);
	snprintf(text, sizeof(text), "%s", KAT_RECIPIENT);
	text[5] = (char)(text[5] - 32);
	assert_int_equal(age_recipient_parse(text, strlen(text), parsed), -EINVAL);
	/* A recipient is not an identity and the other way round. */
	assert_int_equal(age_identity_parse(KAT_RECIPIENT, strlen(KAT_RECIPIENT), parsed), -EINVAL);
	assert_int_equal(age_recipient_parse(KAT_IDENTITY, strlen(KAT_IDENTITY), parsed), -EINVAL);
}

static void test_keys_new_messages(void **state)
{
	struct age_keys *k = NULL;
	char err[512];

	assert_int_equal(age_keys_new(NULL, "", &k, err, sizeof(err)), 0);
	assert_null(k);
	assert_int_equal(age_keys_new(KAT_RECIPIENT ", " KAT_RECIPIENT, KAT_IDENTITY, &k, err,
				      sizeof(err)), 0);
	assert_int_equal(k->n_recipients, 2);
	assert_int_equal(k->n_identities, 1);
	age_keys_free(k);
	assert_int_equal(age_keys_new("age1nope", NULL, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "age1nope"));
	/* A bad inline identity is named by position, never echoed. */
	assert_int_equal(age_keys_new(NULL, "AGE-SECRET-KEY-1QQQQ", &k, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "QQQQ"));
	assert_non_null(strstr(err, "item 1"));
	assert_int_equal(age_keys_new(NULL, "/nonexistent/key.txt", &k, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/key.txt"));
}

static void test_identity_file_mode(void **state)
{
	char path[] = "/tmp/test_age_keyXXXXXX", err[512];
	struct age_keys *k = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	dprintf(fd, "# created: now\n# public key: %s\n\n%s\n", KAT_RECIPIENT, KAT_IDENTITY);
	close(fd);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(age_keys_new(NULL, path, &k, err, sizeof(err)), 0);
	assert_int_equal(k->n_identities, 1);
	age_keys_free(k);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(age_keys_new(NULL, path, &k, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "0644"));
	unlink(path);
}

/* ---- whole files ---- */

struct mem {
	uint8_t *p;
	size_t n, cap, pos, step;
};

static int mem_write(void *ctx, const void *buf, size_t n)
{
	struct mem *m = ctx;

	if (m->n + n > m->cap) {
		m->cap = (m->n + n) * 2;
		m->p = realloc(m->p, m->cap);
	}
	memcpy(m->p + m->n, buf, n);
	m->n += n;
	return 0;
}

/* Hands out at most step bytes a call, to exercise the reader's buffering. */
static long mem_read(void *ctx, void *buf, size_t n, char *err, size_t errlen)
{
	struct mem *m = ctx;
	size_t take = m->n - m->pos;

	if (take > n)
		take = n;
	if (m->step > 0 && take > m->step)
		take = m->step;
	memcpy(buf, m->p + m->pos, take);
	m->pos += take;
	return (long)take;
}

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n + 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 7) % 251);
	return p;
}

/* Decrypts m with identities; the plaintext in *out (malloc'd), or the error. */
static int decrypt(struct mem *m, const char *identities, uint8_t **out, size_t *n, char *err)
{
	struct age_keys *k = NULL;
	struct age_reader r;
	struct mem plain = {0};
	uint8_t buf[5000];
	long got;
	int rc;

	assert_int_equal(age_keys_new(NULL, identities, &k, err, 512), 0);
	m->pos = 0;
	rc = age_reader_begin(&r, k, mem_read, m, NULL, 0, err, 512);
	while (rc == 0 && (got = age_reader_read(&r, buf, sizeof(buf), err, 512)) != 0) {
		if (got < 0) {
			rc = (int)got;
			break;
		}
		mem_write(&plain, buf, (size_t)got);
	}
	age_reader_free(&r);
	age_keys_free(k);
	*out = plain.p;
	*n = plain.n;
	if (rc != 0)
		free(plain.p);
	return rc;
}

static void load(const char *name, struct mem *m)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/test/unit/core/age_kat/%s", TOP_SRCDIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	memset(m, 0, sizeof(*m));
	m->cap = 200000;
	m->p = malloc(m->cap);
	m->n = fread(m->p, 1, m->cap, f);
	fclose(f);
	m->step = 7001;
}

static void check_kat(const char *name, size_t len)
{
	struct mem m;
	uint8_t *out, *want = pattern(len);
	size_t n;
	char err[512] = "";

	load(name, &m);
	assert_int_equal(decrypt(&m, KAT_IDENTITY, &out, &n, err), 0);
	assert_int_equal(n, len);
	if (len > 0)
		assert_memory_equal(out, want, len);
	free(out);
	free(want);
	free(m.p);
}

static void test_kat_empty(void **state)
{
	check_kat("empty.age", 0);
}

static void test_kat_exact_chunk(void **state)
{
	check_kat("chunk.age", 65536);
}

static void test_kat_two_chunks(void **state)
{
	check_kat("two.age", 65537);
}

static void expect_failure(struct mem *m, const char *identity, int want_rc, const char *want_msg)
{
	uint8_t *out;
	size_t n;
	char err[512] = "";

	assert_int_equal(decrypt(m, identity, &out, &n, err), want_rc);
	if (strstr(err, want_msg) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want_msg);
	assert_non_null(strstr(err, "encrypted with age"));
}

static void test_damage(void **state)
{
	struct mem m;

	load("two.age", &m);
	size_t hdr = (size_t)((uint8_t *)strstr((char *)m.p, "\n---") - m.p) + 1 + 48;
	expect_failure(&m, OTHER_IDENTITY, -ENOKEY, "none of the 1 age-identities");
	/* A flipped byte in the header: in the share, its body, or the MAC itself. */
	m.p[40] ^= 1;
	expect_failure(&m, KAT_IDENTITY, -ENOKEY, "wrong identity");
	m.p[40] ^= 1;
	m.p[hdr - 5] ^= 1;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "MAC");
	m.p[hdr - 5] ^= 1;
	/* The payload, and the nonce it is keyed with. */
	m.p[hdr + 100] ^= 0x80;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "chunk 0 fails authentication");
	m.p[hdr + 100] ^= 0x80;
	m.p[hdr + 3] ^= 1;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "chunk 0");
	m.p[hdr + 3] ^= 1;
	/* The last chunk gone: the first, sealed "not last", cannot end the file. */
	size_t whole = m.n;
	m.n = hdr + 16 + 65536 + 16;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "chunk 0 fails authentication");
	/* Cut inside a chunk, into the nonce, into the header. */
	m.n = whole - 1;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "chunk 1");
	m.n = hdr + 8;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "truncated");
	m.n = hdr - 20;
	expect_failure(&m, KAT_IDENTITY, -EBADMSG, "truncated header");
	/* No identity at all. */
	m.n = whole;
	expect_failure(&m, NULL, -ENOKEY, "no age-identities");
	free(m.p);
}

static void round_trip(size_t len)
{
	struct age_keys *k = NULL;
	struct age_writer w;
	struct mem m = {0};
	uint8_t *plain = pattern(len), *out, other[32], pub[32];
	char err[512], two[256];
	uint64_t written = 0;
	size_t n;

	/* Two recipients: the KAT key and a second one. */
	memset(other, 0x42, 32);
	age_x25519_public(other, pub);
	char second[128];
	bech32_encode("age", pub, 32, second, sizeof(second));
	snprintf(two, sizeof(two), "%s %s", KAT_RECIPIENT, second);
	assert_int_equal(age_keys_new(two, NULL, &k, err, sizeof(err)), 0);
	assert_int_equal(age_writer_begin(&w, k, mem_write, &m), 0);
	/* Odd-sized writes, as lz4 hands them over. */
	for (size_t off = 0; off < len; off += 9999)
		assert_int_equal(age_writer_write(&w, plain + off, len - off < 9999 ? len - off : 9999), 0);
	assert_int_equal(age_writer_end(&w, &written), 0);
	assert_int_equal(written, m.n);
	size_t chunks = len == 0 ? 1 : (len + 65535) / 65536;
	size_t hdr = (size_t)((uint8_t *)strstr((char *)m.p, "\n---") - m.p) + 1 + 48;
	assert_int_equal(m.n, hdr + 16 + len + 16 * chunks);
	m.step = 65553; /* exactly one sealed chunk and one byte */
	assert_int_equal(decrypt(&m, KAT_IDENTITY, &out, &n, err), 0);
	assert_int_equal(n, len);
	if (len > 0)
		assert_memory_equal(out, plain, len);
	free(out);
	/* The second identity alone opens it too. */
	char second_id[128], up[128];
	bech32_encode("age-secret-key-", other, 32, second_id, sizeof(second_id));
	for (size_t i = 0; i <= strlen(second_id); i++)
		up[i] = (char)(second_id[i] >= 'a' && second_id[i] <= 'z' ? second_id[i] - 32 : second_id[i]);
	assert_int_equal(decrypt(&m, up, &out, &n, err), 0);
	assert_int_equal(n, len);
	free(out);
	free(m.p);
	free(plain);
	age_keys_free(k);
}

static void test_round_trips(void **state)
{
	size_t sizes[] = {0, 1, 65535, 65536, 65537, 131072, 200000};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		round_trip(sizes[i]);
}

/* Encrypts 1000 bytes for the KAT recipient into *m. */
static void encrypt_one(struct age_keys *k, struct mem *m)
{
	struct age_writer w;
	uint8_t *plain = pattern(1000);
	uint64_t written = 0;

	assert_int_equal(age_writer_begin(&w, k, mem_write, m), 0);
	assert_int_equal(age_writer_write(&w, plain, 1000), 0);
	assert_int_equal(age_writer_end(&w, &written), 0);
	free(plain);
}

/* Headers made ahead: two are ready, each taken once with its own file
 * key, and the files written with them decrypt; once they are taken the
 * writer makes its own. */
static void test_headers_made_ahead(void **state)
{
	struct age_keys *k = NULL;
	struct mem m[3] = {{0}};
	char err[512];
	uint8_t *out;
	size_t n;

	assert_int_equal(age_keys_new(KAT_RECIPIENT, NULL, &k, err, sizeof(err)), 0);
	assert_true(age_keys_want_prepare(k));
	assert_int_equal(age_keys_prepare(k), 0);
	assert_false(age_keys_want_prepare(k));
	for (int i = 0; i < 3; i++)
		encrypt_one(k, &m[i]);
	assert_true(age_keys_want_prepare(k));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(decrypt(&m[i], KAT_IDENTITY, &out, &n, err), 0);
		assert_int_equal(n, 1000);
		free(out);
		free(m[i].p);
	}
	/* Each taken once, with its own file key. */
	struct age_prepared a, b, c;
	assert_int_equal(age_keys_prepare(k), 0);
	assert_true(age_ready_take(k, &a));
	assert_true(age_ready_take(k, &b));
	assert_false(age_ready_take(k, &c));
	assert_memory_not_equal(a.file_key, b.file_key, sizeof(a.file_key));
	assert_true(a.n > strlen(AGE_MAGIC) && memcmp(a.hdr, AGE_MAGIC, strlen(AGE_MAGIC)) == 0);
	age_prepared_wipe(&a);
	age_prepared_wipe(&b);
	assert_null(a.hdr);
	age_keys_free(k);
	/* Identities only: nothing to make. */
	assert_int_equal(age_keys_new(NULL, KAT_IDENTITY, &k, err, sizeof(err)), 0);
	assert_false(age_keys_want_prepare(k));
	assert_int_equal(age_keys_prepare(k), 0);
	age_keys_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_x25519_rfc7748),
		cmocka_unit_test(test_hkdf_rfc5869),
		cmocka_unit_test(test_stream_nonce),
		cmocka_unit_test(test_aead_round_trip_and_tamper),
		cmocka_unit_test(test_keys_bech32),
		cmocka_unit_test(test_keys_new_messages),
		cmocka_unit_test(test_identity_file_mode),
		cmocka_unit_test(test_kat_empty),
		cmocka_unit_test(test_kat_exact_chunk),
		cmocka_unit_test(test_kat_two_chunks),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_headers_made_ahead),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
