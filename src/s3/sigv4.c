/*
 * AWS Signature Version 4 for S3: the key derivation, the string to sign,
 * the signature and the result; see sigv4.h for the contract. The canonical
 * request is sigv4_canonical.c's, the checks on a request sigv4_validate.c's
 * and the payload digests sigv4_digest.c's.
 *
 * Every string is built in a growable buffer (struct strbuf) that latches
 * allocation failure, so the building code reads straight through and the
 * failure is checked once per string. The result is packed into a single
 * allocation at the end, which is why the caller frees it with one call and
 * why a half-built result is never visible.
 *
 * Key material (the "AWS4" + secret buffer and every HMAC stage) lives only
 * in buffers this file wipes with OPENSSL_cleanse before returning, on the
 * error paths as well.
 */
#include "s3/sigv4_internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"

/* ---- keys ---- */

static int hmac(const void *key, size_t key_len, const void *msg, size_t msg_len,
		unsigned char out[32])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &len) == NULL || len != 32)
		return -EIO;
	return 0;
}

int sigv4_signing_key(const char *secret_key, const char *date, const char *region,
		      const char *service, unsigned char key[SIGV4_SIGNING_KEY_LEN])
{
	unsigned char a[32], b[32];
	size_t secret_len = strlen(secret_key);
	char *k_secret;
	int rc;

	if (secret_len > (size_t)INT32_MAX - 4)
		return -EINVAL;
	k_secret = malloc(secret_len + 4);
	if (k_secret == NULL)
		return -ENOMEM;
	memcpy(k_secret, "AWS4", 4);
	memcpy(k_secret + 4, secret_key, secret_len);
	rc = hmac(k_secret, secret_len + 4, date, strlen(date), a);
	if (rc == 0)
		rc = hmac(a, 32, region, strlen(region), b);
	if (rc == 0)
		rc = hmac(b, 32, service, strlen(service), a);
	if (rc == 0)
		rc = hmac(a, 32, TERMINATOR, strlen(TERMINATOR), b);
	if (rc == 0)
		memcpy(key, b, 32);
	OPENSSL_cleanse(k_secret, secret_len + 4);
	free(k_secret);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return rc;
}

/* ---- signing ---- */

struct pieces {
	struct strbuf creq, sts, auth, target;
	char date[SIGV4_AMZ_DATE_LEN + 1];
	char payload[SIGV4_SHA256_HEX_LEN + 1];
	char signature[SIGV4_SHA256_HEX_LEN + 1];
};

/* Packs everything into one allocation; the struct comes first. */
static struct sigv4_signed *pack(const struct sigv4_request *r, const struct pieces *p)
{
	const char *token = r->session_token && *r->session_token ? r->session_token : NULL;
	const char *src[] = { p->creq.p, p->sts.p, p->signature, p->auth.p, p->target.p,
			      p->date, p->payload, token ? token : "" };
	enum { N = sizeof(src) / sizeof(src[0]) };
	const char *dst[N];
	size_t total = sizeof(struct sigv4_signed);
	struct sigv4_signed *s;
	char *w;

	for (size_t i = 0; i < N; i++)
		total += strlen(src[i]) + 1;
	s = calloc(1, total);
	if (s == NULL)
		return NULL;
	w = (char *)(s + 1);
	for (size_t i = 0; i < N; i++) {
		size_t n = strlen(src[i]) + 1;

		memcpy(w, src[i], n);
		dst[i] = w;
		w += n;
	}
	s->canonical_request = dst[0];
	s->string_to_sign = dst[1];
	s->signature = dst[2];
	s->authorization = dst[3];
	s->target = dst[4];
	s->amz_date = dst[5];
	s->payload_hash = dst[6];
	s->added[s->n_added++] = (struct sigv4_header){ "X-Amz-Date", s->amz_date };
	if (!(r->flags & SIGV4_NO_CONTENT_SHA256))
		s->added[s->n_added++] =
			(struct sigv4_header){ "X-Amz-Content-SHA256", s->payload_hash };
	if (token)
		s->added[s->n_added++] = (struct sigv4_header){ "X-Amz-Security-Token", dst[7] };
	s->added[s->n_added++] = (struct sigv4_header){ "Authorization", s->authorization };
	return s;
}

/* The string to sign: algorithm, date, scope and the canonical request's hash. */
static int string_to_sign(const struct sigv4_request *r, const char *scope_date, struct pieces *p)
{
	char creq_hash[SIGV4_SHA256_HEX_LEN + 1];
	int rc = sigv4_sha256_hex(p->creq.p, p->creq.len, creq_hash);

	if (rc != 0)
		return rc;
	strbuf_puts(&p->sts, ALGORITHM "\n");
	strbuf_puts(&p->sts, p->date);
	strbuf_putc(&p->sts, '\n');
	strbuf_puts(&p->sts, scope_date);
	strbuf_putc(&p->sts, '/');
	strbuf_puts(&p->sts, r->region);
	strbuf_putc(&p->sts, '/');
	strbuf_puts(&p->sts, r->service);
	strbuf_puts(&p->sts, "/" TERMINATOR "\n");
	strbuf_puts(&p->sts, creq_hash);
	return p->sts.oom ? -ENOMEM : 0;
}

/* The signature: the string to sign HMAC-ed with the derived key, in hex. */
static int signature(const struct sigv4_request *r, const char *scope_date, struct pieces *p)
{
	unsigned char key[SIGV4_SIGNING_KEY_LEN], mac[32];
	int rc;

	rc = sigv4_signing_key(r->secret_key, scope_date, r->region, r->service, key);
	if (rc == 0)
		rc = hmac(key, sizeof(key), p->sts.p, p->sts.len, mac);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc != 0)
		return rc;
	sigv4_hex(mac, sizeof(mac), p->signature);
	return 0;
}

/* The Authorization header's value. */
static int authorization(const struct sigv4_request *r, const char *scope_date,
			 const struct strbuf *names, struct pieces *p)
{
	strbuf_puts(&p->auth, ALGORITHM " Credential=");
	strbuf_puts(&p->auth, r->access_key_id);
	strbuf_putc(&p->auth, '/');
	strbuf_puts(&p->auth, scope_date);
	strbuf_putc(&p->auth, '/');
	strbuf_puts(&p->auth, r->region);
	strbuf_putc(&p->auth, '/');
	strbuf_puts(&p->auth, r->service);
	strbuf_puts(&p->auth, "/" TERMINATOR ", SignedHeaders=");
	strbuf_add(&p->auth, names->p, names->len);
	strbuf_puts(&p->auth, ", Signature=");
	strbuf_puts(&p->auth, p->signature);
	return p->auth.oom ? -ENOMEM : 0;
}

int sigv4_sign(const struct sigv4_request *r, struct sigv4_signed **out, const char **why)
{
	const char *ignored;
	struct pieces p = { 0 };
	struct strbuf names = { 0 };
	char scope_date[9];
	struct sigv4_signed *s;
	int rc;

	if (why == NULL)
		why = &ignored;
	rc = sigv4_validate(r, why);
	if (rc != 0)
		return rc;
	rc = sigv4_amz_date(r->time, p.date);
	if (rc != 0) {
		*why = "time is outside years 0000-9999";
		return rc;
	}
	memcpy(scope_date, p.date, 8);
	scope_date[8] = '\0';

	if (r->payload_hash != NULL)
		memcpy(p.payload, r->payload_hash, strlen(r->payload_hash) + 1);
	else
		rc = sigv4_sha256_hex(r->body, r->body_len, p.payload);
	if (rc == 0)
		rc = sigv4_canonical_request(r, p.date, p.payload, &p.creq, &p.target, &names);
	if (rc == 0)
		rc = string_to_sign(r, scope_date, &p);
	if (rc == 0)
		rc = signature(r, scope_date, &p);
	if (rc == 0)
		rc = authorization(r, scope_date, &names, &p);
	if (rc == 0) {
		s = pack(r, &p);
		if (s == NULL)
			rc = -ENOMEM;
		else
			*out = s;
	}
	strbuf_free(&names);
	strbuf_free(&p.creq);
	strbuf_free(&p.sts);
	strbuf_free(&p.auth);
	strbuf_free(&p.target);
	if (rc == -ENOMEM)
		*why = "out of memory";
	else if (rc == -EIO)
		*why = "libcrypto failed";
	return rc;
}

void sigv4_signed_free(struct sigv4_signed *s)
{
	free(s);
}