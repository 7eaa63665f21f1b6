/*
 * The age v1 payload, streamed; see age.h. The writer holds back one
 * chunk of plaintext: a full chunk is sealed as "not last" only once a
 * byte after it arrives, so a payload that is an exact multiple of 64 KiB
 * ends with a full chunk flagged last, as age requires. The reader reads
 * one byte past a full chunk for the same reason: a chunk is the last
 * exactly when the file ends right after it.
 */
#include "core/age.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEALED_CHUNK (AGE_CHUNK + AGE_TAG_LEN)
#define READ_CAP (SEALED_CHUNK + 1)

static int payload_key(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t nonce[AGE_STREAM_NONCE_LEN],
		       uint8_t key[AGE_KEY_LEN])
{
	return age_hkdf(file_key, AGE_FILE_KEY_LEN, nonce, AGE_STREAM_NONCE_LEN, "payload", key, AGE_KEY_LEN);
}

/* ---- writer --------------------------------------------------------------- */

int age_writer_begin(struct age_writer *w, const struct age_keys *k, age_write_fn fn, void *ctx)
{
	uint8_t nonce[AGE_STREAM_NONCE_LEN];
	struct age_prepared p = {{0}, NULL, 0};
	int rc;

	memset(w, 0, sizeof(*w));
	w->write_fn = fn;
	w->ctx = ctx;
	if (k == NULL || k->n_recipients == 0)
		return -EINVAL;
	w->plain = malloc(AGE_CHUNK);
	w->sealed = malloc(SEALED_CHUNK);
	if (w->plain == NULL || w->sealed == NULL)
		return -ENOMEM;
	if (!age_ready_take(k, &p) && (rc = age_prepared_make(k, &p)) != 0)
		return rc;
	if ((rc = age_random(nonce, sizeof(nonce))) != 0 || (rc = payload_key(p.file_key, nonce, w->key)) != 0)
		goto out;
	if ((rc = fn(ctx, p.hdr, p.n)) != 0 || (rc = fn(ctx, nonce, sizeof(nonce))) != 0)
		goto out;
	w->written = p.n + sizeof(nonce);
out:
	age_prepared_wipe(&p);
	return rc;
}

static int seal(struct age_writer *w, bool last)
{
	uint8_t nonce[AGE_NONCE_LEN];
	int rc;

	age_stream_nonce(w->counter, last, nonce);
	if ((rc = age_aead_seal(w->key, nonce, w->plain, w->n_plain, w->sealed)) != 0)
		return rc;
	if ((rc = w->write_fn(w->ctx, w->sealed, w->n_plain + AGE_TAG_LEN)) != 0)
		return rc;
	w->written += w->n_plain + AGE_TAG_LEN;
	w->counter++;
	w->n_plain = 0;
	return 0;
}

int age_writer_write(void *ctx, const void *buf, size_t n)
{
	struct age_writer *w = ctx;
	const uint8_t *p = buf;
	int rc;

	while (n > 0) {
		if (w->n_plain == AGE_CHUNK && (rc = seal(w, false)) != 0)
			return rc;
		size_t take = AGE_CHUNK - w->n_plain < n ? AGE_CHUNK - w->n_plain : n;
		memcpy(w->plain + w->n_plain, p, take);
		w->n_plain += take;
		p += take;
		n -= take;
	}
	return 0;
}

int age_writer_end(struct age_writer *w, uint64_t *written)
{
	int rc = seal(w, true);

	if (rc == 0)
		*written = w->written;
	age_writer_free(w);
	return rc;
}

void age_writer_free(struct age_writer *w)
{
	OPENSSL_cleanse(w->key, sizeof(w->key));
	if (w->plain != NULL)
		OPENSSL_cleanse(w->plain, AGE_CHUNK);
	free(w->plain);
	free(w->sealed);
	w->plain = w->sealed = NULL;
}

/* ---- reader --------------------------------------------------------------- */

/* Reads until r->buf holds want bytes or the source ends. */
static int fill(struct age_reader *r, size_t want, char *err, size_t errlen)
{
	while (r->len < want && !r->eof) {
		long got = r->read_fn(r->ctx, r->buf + r->len, READ_CAP - r->len, err, errlen);
		if (got < 0)
			return (int)got;
		if (got == 0)
			r->eof = true;
		r->len += (size_t)got;
	}
	return 0;
}

static void consume(struct age_reader *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
}

int age_reader_begin(struct age_reader *r, const struct age_keys *k, age_read_fn fn, void *ctx,
		     const void *prefix, size_t prefix_len, char *err, size_t errlen)
{
	uint8_t file_key[AGE_FILE_KEY_LEN];
	size_t hdr = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	r->read_fn = fn;
	r->ctx = ctx;
	r->buf = malloc(READ_CAP);
	r->plain = malloc(AGE_CHUNK);
	if (r->buf == NULL || r->plain == NULL || prefix_len > READ_CAP)
		return -ENOMEM;
	if (prefix_len > 0)
		memcpy(r->buf, prefix, prefix_len);
	r->len = prefix_len;
	/* The header is text ending in a line: read until it parses. */
	for (;;) {
		rc = age_header_open(r->buf, r->len, k, &hdr, file_key, err, errlen);
		if (rc != -EAGAIN)
			break;
		if (r->eof || r->len == READ_CAP) {
			snprintf(err, errlen, "encrypted with age: %s", r->eof ? "truncated header"
				 : "header longer than 64 KiB");
			return -EBADMSG;
		}
		if ((rc = fill(r, r->len + 1, err, errlen)) != 0)
			return rc;
	}
	if (rc != 0)
		return rc;
	consume(r, hdr);
	if ((rc = fill(r, AGE_STREAM_NONCE_LEN, err, errlen)) != 0)
		goto out;
	if (r->len < AGE_STREAM_NONCE_LEN) {
		snprintf(err, errlen, "encrypted with age: truncated (no payload nonce)");
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = payload_key(file_key, r->buf, r->key)) != 0)
		goto out;
	consume(r, AGE_STREAM_NONCE_LEN);
	r->header_len = hdr + AGE_STREAM_NONCE_LEN;
out:
	OPENSSL_cleanse(file_key, sizeof(file_key));
	return rc;
}

/* Opens the next chunk into r->plain. */
static int next_chunk(struct age_reader *r, char *err, size_t errlen)
{
	uint8_t nonce[AGE_NONCE_LEN];
	size_t n;
	bool last;
	int rc;

	if ((rc = fill(r, READ_CAP, err, errlen)) != 0)
		return rc;
	last = r->len <= SEALED_CHUNK; /* the file ends within this chunk */
	n = last ? r->len : SEALED_CHUNK;
	if (n < AGE_TAG_LEN || (last && n == AGE_TAG_LEN && r->counter > 0)) {
		snprintf(err, errlen, "encrypted with age: truncated payload (chunk %llu)",
			 (unsigned long long)r->counter);
		return -EBADMSG;
	}
	age_stream_nonce(r->counter, last, nonce);
	if (age_aead_open(r->key, nonce, r->buf, n, r->plain) != 0) {
		snprintf(err, errlen, "encrypted with age: payload chunk %llu fails authentication "
			 "(corrupt or truncated object)", (unsigned long long)r->counter);
		return -EBADMSG;
	}
	r->plain_len = n - AGE_TAG_LEN;
	r->pos = 0;
	r->counter++;
	r->done = last;
	consume(r, n);
	return 0;
}

long age_reader_read(void *ctx, void *buf, size_t n, char *err, size_t errlen)
{
	struct age_reader *r = ctx;
	int rc;

	while (r->pos == r->plain_len) {
		if (r->done)
			return 0;
		if ((rc = next_chunk(r, err, errlen)) != 0)
			return rc;
	}
	if (n > r->plain_len - r->pos)
		n = r->plain_len - r->pos;
	memcpy(buf, r->plain + r->pos, n);
	r->pos += n;
	return (long)n;
}

void age_reader_free(struct age_reader *r)
{
	OPENSSL_cleanse(r->key, sizeof(r->key));
	if (r->plain != NULL)
		OPENSSL_cleanse(r->plain, AGE_CHUNK);
	free(r->plain);
	free(r->buf);
	r->plain = r->buf = NULL;
}
