/*
 * The age v1 header: writing one for X25519 recipients, and reading one
 * (any stanza types, X25519 opened with the identities given). Layout and
 * derivations in age.h. Parsing is strict, as age's own is: canonical
 * base64 without padding, stanza bodies in full 64-column lines ending
 * with a shorter one, arguments of visible ASCII, a MAC line of exactly
 * "--- " and 43 characters.
 */
#include "core/age.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define X25519_LABEL "age-encryption.org/v1/X25519"
#define MAX_STANZAS 256
#define B64_MAX 4096

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Raw (unpadded) base64 of n bytes into out, NUL-terminated; returns the length. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = B64[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = B64[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return o;
}

/* Strict raw base64 of n characters into out (cap); -EINVAL when not canonical. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const char *p = s[i] != '\0' ? strchr(B64, s[i]) : NULL;
		if (p == NULL)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)(p - B64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -EINVAL;
			out[o++] = (uint8_t)(acc >> bits);
		}
		acc &= (1u << bits) - 1;
	}
	if (acc != 0)
		return -EINVAL; /* non-zero leftover bits: not canonical */
	*len = o;
	return 0;
}

bool age_is_encrypted(const void *p, size_t n)
{
	return n >= strlen(AGE_MAGIC) && memcmp(p, AGE_MAGIC, strlen(AGE_MAGIC)) == 0;
}

/* The wrap key of a stanza: HKDF(shared, E || R, label). */
static int wrap_key(const uint8_t shared[AGE_KEY_LEN], const uint8_t share[AGE_KEY_LEN],
		    const uint8_t recipient[AGE_KEY_LEN], uint8_t key[AGE_KEY_LEN])
{
	uint8_t salt[2 * AGE_KEY_LEN];

	memcpy(salt, share, AGE_KEY_LEN);
	memcpy(salt + AGE_KEY_LEN, recipient, AGE_KEY_LEN);
	return age_hkdf(shared, AGE_KEY_LEN, salt, sizeof(salt), X25519_LABEL, key, AGE_KEY_LEN);
}

static int header_mac(const uint8_t file_key[AGE_FILE_KEY_LEN], const void *text, size_t n,
		      uint8_t mac[32])
{
	uint8_t k[AGE_KEY_LEN];
	int rc = age_hkdf(file_key, AGE_FILE_KEY_LEN, NULL, 0, "header", k, sizeof(k));

	if (rc == 0)
		rc = age_hmac(k, text, n, mac);
	OPENSSL_cleanse(k, sizeof(k));
	return rc;
}

/* One X25519 stanza for recipient into out (room for 128 bytes); its length. */
static int stanza_make(const uint8_t recipient[AGE_KEY_LEN], const uint8_t file_key[AGE_FILE_KEY_LEN],
		       char *out, size_t *len)
{
	uint8_t share[AGE_KEY_LEN], shared[AGE_KEY_LEN], key[AGE_KEY_LEN];
	uint8_t body[AGE_FILE_KEY_LEN + AGE_TAG_LEN], nonce[AGE_NONCE_LEN] = {0};
	size_t o;
	int rc;

	if ((rc = age_x25519_ephemeral(recipient, share, shared)) != 0 ||
	    (rc = wrap_key(shared, share, recipient, key)) != 0 ||
	    (rc = age_aead_seal(key, nonce, file_key, AGE_FILE_KEY_LEN, body)) != 0)
		goto out;
	o = (size_t)sprintf(out, "-> X25519 ");
	o += b64_encode(share, sizeof(share), out + o);
	out[o++] = '\n';
	o += b64_encode(body, sizeof(body), out + o); /* 43 columns: one short line */
	out[o++] = '\n';
	*len = o;
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int age_header_make(const struct age_keys *k, const uint8_t file_key[AGE_FILE_KEY_LEN], char **out,
		    size_t *n)
{
	size_t cap = strlen(AGE_MAGIC) + 128 * k->n_recipients + 64, o, sn;
	char *h = malloc(cap);
	uint8_t mac[32];
	int rc;

	if (k->n_recipients == 0) {
		free(h);
		return -EINVAL;
	}
	if (h == NULL)
		return -ENOMEM;
	o = (size_t)sprintf(h, "%s", AGE_MAGIC);
	for (size_t i = 0; i < k->n_recipients; i++) {
		if ((rc = stanza_make(k->recipients[i], file_key, h + o, &sn)) != 0) {
			free(h);
			return rc;
		}
		o += sn;
	}
	o += (size_t)sprintf(h + o, "---");
	if ((rc = header_mac(file_key, h, o, mac)) != 0) {
		free(h);
		return rc;
	}
	h[o++] = ' ';
	o += b64_encode(mac, sizeof(mac), h + o);
	h[o++] = '\n';
	*out = h;
	*n = o;
	return 0;
}

/* ---- reading ---------------------------------------------------------------- */

struct cursor {
	const char *p, *end;
	int line;
};

/* The next line (without its '\n'); -EAGAIN when no '\n' is in the buffer yet. */
static int next_line(struct cursor *c, const char **s, size_t *n)
{
	const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));

	if (nl == NULL)
		return -EAGAIN;
	*s = c->p;
	*n = (size_t)(nl - c->p);
	c->p = nl + 1;
	c->line++;
	return 0;
}

static int bad(char *err, size_t errlen, int line, const char *what)
{
	snprintf(err, errlen, "encrypted with age: malformed header (line %d: %s)", line, what);
	return -EBADMSG;
}

/* A stanza's body: lines of 64 columns ending with a shorter one. */
static int read_body(struct cursor *c, uint8_t *body, size_t *len, char *err, size_t errlen)
{
	char text[B64_MAX];
	size_t t = 0, n;
	const char *s;
	int rc;

	for (;;) {
		if ((rc = next_line(c, &s, &n)) != 0)
			return rc;
		if (n > 64 || t + n > sizeof(text))
			return bad(err, errlen, c->line, "stanza body line too long");
		memcpy(text + t, s, n);
		t += n;
		if (n < 64)
			break;
	}
	if (b64_decode(text, t, body, B64_MAX, len) != 0)
		return bad(err, errlen, c->line, "stanza body is not canonical base64");
	return 0;
}

/* Tries every identity on one X25519 stanza; 0 when one opens it. */
static int open_x25519(const struct age_keys *k, const uint8_t share[AGE_KEY_LEN], const uint8_t *body,
		       uint8_t file_key[AGE_FILE_KEY_LEN])
{
	uint8_t shared[AGE_KEY_LEN], key[AGE_KEY_LEN], nonce[AGE_NONCE_LEN] = {0};
	int rc = -ENOKEY;

	for (size_t i = 0; k != NULL && i < k->n_identities && rc != 0; i++) {
		if (age_x25519(k->identities[i], share, shared) != 0)
			continue;
		if (wrap_key(shared, share, k->identity_pubs[i], key) == 0 &&
		    age_aead_open(key, nonce, body, AGE_FILE_KEY_LEN + AGE_TAG_LEN, file_key) == 0)
			rc = 0;
	}
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* One "-> TYPE ARGS" line and its body; *opened when it gave the file key. */
static int read_stanza(struct cursor *c, const char *s, size_t n, const struct age_keys *k,
		       uint8_t file_key[AGE_FILE_KEY_LEN], bool *opened, size_t *x25519,
		       char *err, size_t errlen)
{
	const char *args[3];
	size_t lens[3], nargs = 0, blen;
	uint8_t body[B64_MAX], share[64];
	int line = c->line, rc;

	const char *a = s + 3;

	for (size_t i = 3; i <= n; i++) {
		if (i == n || s[i] == ' ') {
			size_t an = (size_t)(s + i - a);
			if (an == 0)
				return bad(err, errlen, line, "empty stanza argument");
			if (nargs < 3) {
				args[nargs] = a;
				lens[nargs] = an;
			}
			nargs++;
			a = s + i + 1;
		} else if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126) {
			return bad(err, errlen, line, "stanza argument is not visible ASCII");
		}
	}
	if (nargs == 0)
		return bad(err, errlen, line, "stanza without a type");
	if ((rc = read_body(c, body, &blen, err, errlen)) != 0)
		return rc;
	if (lens[0] != 6 || memcmp(args[0], "X25519", 6) != 0)
		return 0; /* another recipient type: not ours to open */
	size_t sl;
	if (nargs != 2 || b64_decode(args[1], lens[1], share, sizeof(share), &sl) != 0 ||
	    sl != AGE_KEY_LEN || blen != AGE_FILE_KEY_LEN + AGE_TAG_LEN)
		return bad(err, errlen, line, "invalid X25519 stanza");
	(*x25519)++;
	if (!*opened && open_x25519(k, share, body, file_key) == 0)
		*opened = true;
	return 0;
}

int age_header_open(const uint8_t *buf, size_t len, const struct age_keys *k, size_t *hdr_len,
		    uint8_t file_key[AGE_FILE_KEY_LEN], char *err, size_t errlen)
{
	struct cursor c = {(const char *)buf, (const char *)buf + len, 0};
	uint8_t mac[32], want[32];
	size_t n, x25519 = 0, stanzas = 0, ml;
	bool opened = false;
	const char *s;
	int rc;

	if ((rc = next_line(&c, &s, &n)) != 0)
		return rc;
	if (n + 1 != strlen(AGE_MAGIC) || memcmp(s, AGE_MAGIC, n) != 0)
		return bad(err, errlen, 1, "not age-encryption.org/v1");
	for (;;) {
		if ((rc = next_line(&c, &s, &n)) != 0)
			return rc;
		if (n >= 3 && memcmp(s, "---", 3) == 0)
			break;
		if (n < 3 || memcmp(s, "-> ", 3) != 0)
			return bad(err, errlen, c.line, "expected a stanza or the MAC line");
		if (++stanzas > MAX_STANZAS)
			return bad(err, errlen, c.line, "too many stanzas");
		rc = read_stanza(&c, s, n, k, file_key, &opened, &x25519, err, errlen);
		if (rc != 0)
			return rc;
	}
	if (stanzas == 0)
		return bad(err, errlen, c.line, "no recipient stanza");
	if (n != 4 + 43 || s[3] != ' ' || b64_decode(s + 4, 43, mac, sizeof(mac), &ml) != 0 || ml != 32)
		return bad(err, errlen, c.line, "invalid MAC line");
	if (!opened) {
		if (k == NULL || k->n_identities == 0)
			snprintf(err, errlen, "encrypted with age, and no age-identities are configured "
				 "to read it");
		else
			snprintf(err, errlen, "encrypted with age, and none of the %zu age-identities "
				 "opens it (%zu X25519 recipient stanza%s; wrong identity?)",
				 k->n_identities, x25519, x25519 == 1 ? "" : "s");
		return -ENOKEY;
	}
	if ((rc = header_mac(file_key, buf, (size_t)(s + 3 - (const char *)buf), want)) != 0)
		return rc;
	if (CRYPTO_memcmp(mac, want, sizeof(mac)) != 0) {
		OPENSSL_cleanse(file_key, AGE_FILE_KEY_LEN);
		snprintf(err, errlen, "encrypted with age: header MAC mismatch (corrupt header)");
		return -EBADMSG;
	}
	*hdr_len = (size_t)(c.p - (const char *)buf);
	return 0;
}
