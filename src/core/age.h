/*
 * The age v1 file format (age-encryption.org/v1), streamed: what Litestream
 * 0.3.10-0.3.13 and the `age` tool read and write. A file is
 *
 *   age-encryption.org/v1
 *   -> X25519 BASE64(ephemeral share)          one stanza per recipient
 *   BASE64(file key wrapped for that recipient)
 *   --- BASE64(HMAC-SHA-256 of the header up to "---")
 *   NONCE (16 bytes) || payload chunks
 *
 * base64 is the standard alphabet without padding, a stanza body in lines
 * of 64 columns, the last one shorter. The 16-byte file key is random; a
 * recipient's wrap key is HKDF-SHA-256(X25519(e, R), salt = E || R,
 * "age-encryption.org/v1/X25519") and the wrap ChaCha20-Poly1305 with a
 * zero nonce; the header key HKDF(file key, "", "header"); the payload key
 * HKDF(file key, NONCE, "payload"). The payload is ChaCha20-Poly1305 over
 * 64 KiB chunks (the last may be shorter, and empty only when the whole
 * payload is), nonce = 11-byte big-endian chunk number || last flag.
 * Stanzas of other types (scrypt, ssh, grease) are skipped when reading.
 *
 * Writer: age_writer_begin() writes the header through a sink, then
 * age_writer_write() takes plaintext (an lz4io_write_fn: the LZ4 frame
 * goes straight in), age_writer_end() seals the last chunk. Memory: two
 * 64 KiB buffers.
 *
 * Reader: age_reader_begin() reads and checks the header through a source
 * (an lz4io_read_fn, so the same download follower restore uses can feed
 * it), unwraps the file key with the first identity that opens a stanza
 * and verifies the header MAC; age_reader_read() is in turn an
 * lz4io_read_fn yielding only authenticated plaintext. Errors are -ENOKEY
 * (no identity given, or none opens the file) or -EBADMSG (anything
 * malformed, truncated or failing authentication), each with a message
 * that starts "encrypted with age: ".
 *
 * Blocking, for the threadpool; one writer or reader per thread.
 */
#ifndef LITESTREAM_AGE_H
#define LITESTREAM_AGE_H

#include "core/age_keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGE_MAGIC "age-encryption.org/v1\n"
#define AGE_CHUNK (64 * 1024)
#define AGE_FILE_KEY_LEN 16
#define AGE_STREAM_NONCE_LEN 16

/* Whether the n bytes at p start like an age file (n >= strlen(AGE_MAGIC)). */
bool age_is_encrypted(const void *p, size_t n);

/* Sink: 0 or -errno. */
typedef int (*age_write_fn)(void *ctx, const void *buf, size_t n);
/* Source: bytes read, 0 at the end, or -errno with a reason in err. */
typedef long (*age_read_fn)(void *ctx, void *buf, size_t n, char *err, size_t errlen);

struct age_writer {
	age_write_fn write_fn;
	void *ctx;
	uint8_t key[AGE_KEY_LEN]; /* payload key */
	uint64_t counter;
	uint8_t *plain;           /* AGE_CHUNK */
	size_t n_plain;
	uint8_t *sealed;          /* AGE_CHUNK + AGE_TAG_LEN */
	uint64_t written;         /* bytes given to the sink */
};

/* Writes the header for k's recipients (at least one), one made ahead by
 * age_keys_prepare() if there is one. 0 or -errno. */
int age_writer_begin(struct age_writer *w, const struct age_keys *k, age_write_fn fn, void *ctx);
/* ctx is the struct age_writer. */
int age_writer_write(void *ctx, const void *buf, size_t n);
/* Seals the last chunk and frees the buffers; *written = bytes of the whole file. */
int age_writer_end(struct age_writer *w, uint64_t *written);
/* Frees the buffers of a writer abandoned after begin (safe after end). */
void age_writer_free(struct age_writer *w);

struct age_reader {
	age_read_fn read_fn;
	void *ctx;
	uint8_t key[AGE_KEY_LEN];
	uint64_t counter;
	bool eof, done;
	uint8_t *buf;             /* ciphertext read ahead, AGE_CHUNK + AGE_TAG_LEN + 1 */
	size_t len;
	uint8_t *plain;           /* AGE_CHUNK */
	size_t pos, plain_len;
	uint64_t header_len;      /* bytes of header and nonce */
};

/*
 * Reads the header from fn (after the prefix bytes already read from it,
 * which it takes first) and opens it with k's identities (k may be NULL).
 * 0, or -ENOKEY / -EBADMSG / -errno with err set; the reader needs
 * age_reader_free() either way.
 */
int age_reader_begin(struct age_reader *r, const struct age_keys *k, age_read_fn fn, void *ctx,
		     const void *prefix, size_t prefix_len, char *err, size_t errlen);
/* ctx is the struct age_reader. */
long age_reader_read(void *ctx, void *buf, size_t n, char *err, size_t errlen);
void age_reader_free(struct age_reader *r);

/* ---- the header (age_header.c), for the reader, the writer and tests ---- */

/*
 * The header for recipients and file_key, with its MAC: malloc'd text in
 * *out, *n bytes. 0 or -errno.
 */
int age_header_make(const struct age_keys *k, const uint8_t file_key[AGE_FILE_KEY_LEN], char **out,
		    size_t *n);

/*
 * Parses the header at the start of buf (len bytes): -EAGAIN when it is
 * not complete yet, else as age_reader_begin(); on success *hdr_len is its
 * length and file_key the unwrapped key.
 */
int age_header_open(const uint8_t *buf, size_t len, const struct age_keys *k, size_t *hdr_len,
		    uint8_t file_key[AGE_FILE_KEY_LEN], char *err, size_t errlen);

/*
 * Headers made ahead (age_ready.c): a fresh file key and the header that
 * wraps it for every recipient, each for one object only.
 */
struct age_prepared {
	uint8_t file_key[AGE_FILE_KEY_LEN];
	char *hdr;
	size_t n;
};

/* Makes one now. 0 or -errno. */
int age_prepared_make(const struct age_keys *k, struct age_prepared *p);
/* Wipes the key and frees the header. */
void age_prepared_wipe(struct age_prepared *p);
/* Takes one made ahead into *p: false when there is none. */
bool age_ready_take(const struct age_keys *k, struct age_prepared *p);
/* Whether age_keys_prepare() would make any (k has recipients, fewer than
 * two are ready, none are being made). */
bool age_keys_want_prepare(const struct age_keys *k);
/* Makes headers until two are ready (blocking: the threadpool). 0 or -errno. */
int age_keys_prepare(const struct age_keys *k);

struct age_ready *age_ready_new(void);
void age_ready_free(struct age_ready *q);

#endif
