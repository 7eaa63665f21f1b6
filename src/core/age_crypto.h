/*
 * The primitives age v1 composes, over OpenSSL's libcrypto: X25519,
 * HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305 (12-byte nonce, 16-byte
 * tag) and the STREAM nonce of age's payload (an 11-byte big-endian chunk
 * counter and a last-chunk flag byte). age.h builds the file format on
 * them.
 *
 * Contract: every function returns 0 or a negative errno: -EBADMSG when an
 * authentication tag does not verify (age_aead_open) or a shared secret is
 * all zeros (age_x25519: a low-order point), -EIO when libcrypto fails.
 * Outputs are untouched on failure except the plaintext buffer of
 * age_aead_open, which the caller must then discard. Pure; any thread.
 */
#ifndef LITESTREAM_AGE_CRYPTO_H
#define LITESTREAM_AGE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGE_KEY_LEN 32
#define AGE_TAG_LEN 16
#define AGE_NONCE_LEN 12

/* pub = X25519(secret, 9): the public key of a secret scalar. */
int age_x25519_public(const uint8_t secret[AGE_KEY_LEN], uint8_t pub[AGE_KEY_LEN]);

/*
 * A fresh ephemeral key e: share = X25519(e, 9) and shared = X25519(e,
 * peer), e wiped. Two scalar multiplications, the least a stanza costs.
 */
int age_x25519_ephemeral(const uint8_t peer[AGE_KEY_LEN], uint8_t share[AGE_KEY_LEN],
			 uint8_t shared[AGE_KEY_LEN]);

/* shared = X25519(secret, peer); -EBADMSG when it is all zeros. */
int age_x25519(const uint8_t secret[AGE_KEY_LEN], const uint8_t peer[AGE_KEY_LEN],
	       uint8_t shared[AGE_KEY_LEN]);

/* RFC 5869 HKDF-SHA-256 (extract then expand) into out_len bytes. */
int age_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
	     const char *info, uint8_t *out, size_t out_len);

/* mac = HMAC-SHA-256(key, msg). */
int age_hmac(const uint8_t key[AGE_KEY_LEN], const void *msg, size_t len, uint8_t mac[32]);

/* out (n + AGE_TAG_LEN bytes) = ChaCha20-Poly1305 seal of in, no associated data. */
int age_aead_seal(const uint8_t key[AGE_KEY_LEN], const uint8_t nonce[AGE_NONCE_LEN],
		  const uint8_t *in, size_t n, uint8_t *out);

/* out (n - AGE_TAG_LEN bytes) = open of in (n >= AGE_TAG_LEN); -EBADMSG on a bad tag. */
int age_aead_open(const uint8_t key[AGE_KEY_LEN], const uint8_t nonce[AGE_NONCE_LEN],
		  const uint8_t *in, size_t n, uint8_t *out);

/* The nonce of payload chunk counter (the first is 0), last set on the final one. */
void age_stream_nonce(uint64_t counter, bool last, uint8_t nonce[AGE_NONCE_LEN]);

/* Fills buf from the system's CSPRNG. */
int age_random(void *buf, size_t n);

#endif
