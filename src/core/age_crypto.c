/*
 * age's primitives on libcrypto; see age_crypto.h. Each call makes and
 * frees its own OpenSSL context, so nothing is shared between threads but
 * the cipher and KDF implementations, fetched once (OpenSSL 3 would
 * otherwise look them up in its provider tables, under a lock, on every
 * init: a cost per small object that the 0.3.13 figures do not carry).
 */
#include "core/age_crypto.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t fetched = PTHREAD_ONCE_INIT;
static EVP_CIPHER *chacha;
static EVP_KDF *hkdf;

static void fetch_once(void)
{
	chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

static EVP_PKEY *x25519_key(const uint8_t *raw, bool secret)
{
	return secret ? EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, raw, AGE_KEY_LEN)
		      : EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, raw, AGE_KEY_LEN);
}

int age_x25519_public(const uint8_t secret[AGE_KEY_LEN], uint8_t pub[AGE_KEY_LEN])
{
	EVP_PKEY *k = x25519_key(secret, true);
	size_t n = AGE_KEY_LEN;
	int rc = -EIO;

	if (k != NULL && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == AGE_KEY_LEN)
		rc = 0;
	EVP_PKEY_free(k);
	return rc;
}

/* shared = X25519(me, peer), refusing an all-zero result. */
static int derive(EVP_PKEY *me, const uint8_t peer[AGE_KEY_LEN], uint8_t shared[AGE_KEY_LEN])
{
	EVP_PKEY *them = x25519_key(peer, false);
	EVP_PKEY_CTX *ctx = me != NULL ? EVP_PKEY_CTX_new(me, NULL) : NULL;
	uint8_t out[AGE_KEY_LEN], zero[AGE_KEY_LEN] = {0};
	size_t n = sizeof(out);
	int rc = -EIO;

	if (ctx != NULL && them != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, them) == 1) {
		/* OpenSSL refuses an all-zero result itself: the same verdict. */
		if (EVP_PKEY_derive(ctx, out, &n) != 1 || n != AGE_KEY_LEN ||
		    CRYPTO_memcmp(out, zero, AGE_KEY_LEN) == 0) {
			rc = -EBADMSG;
		} else {
			memcpy(shared, out, AGE_KEY_LEN);
			rc = 0;
		}
	}
	OPENSSL_cleanse(out, sizeof(out));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(them);
	return rc;
}

int age_x25519(const uint8_t secret[AGE_KEY_LEN], const uint8_t peer[AGE_KEY_LEN],
	       uint8_t shared[AGE_KEY_LEN])
{
	EVP_PKEY *me = x25519_key(secret, true);
	int rc = me != NULL ? derive(me, peer, shared) : -EIO;

	EVP_PKEY_free(me);
	return rc;
}

int age_x25519_ephemeral(const uint8_t peer[AGE_KEY_LEN], uint8_t share[AGE_KEY_LEN],
			 uint8_t shared[AGE_KEY_LEN])
{
	/* Generated in one go, the key's public half comes with it (OpenSSL
	 * computes it on import too: a raw key would cost a third multiplication). */
	EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	size_t n = AGE_KEY_LEN;
	int rc = -EIO;

	if (e != NULL && EVP_PKEY_get_raw_public_key(e, share, &n) == 1 && n == AGE_KEY_LEN)
		rc = derive(e, peer, shared);
	EVP_PKEY_free(e);
	return rc;
}

int age_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
	     const char *info, uint8_t *out, size_t out_len)
{
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[5], *p = params;
	char digest[] = "SHA256";
	int rc = -EIO;

	pthread_once(&fetched, fetch_once);
	ctx = hkdf != NULL ? EVP_KDF_CTX_new(hkdf) : NULL;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	/* An empty salt is HKDF's default (HashLen zeros); OpenSSL wants it left out. */
	if (salt_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	*p = OSSL_PARAM_construct_end();
	if (ctx != NULL && EVP_KDF_derive(ctx, out, out_len, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

int age_hmac(const uint8_t key[AGE_KEY_LEN], const void *msg, size_t len, uint8_t mac[32])
{
	unsigned int n = 32;

	return HMAC(EVP_sha256(), key, AGE_KEY_LEN, msg, len, mac, &n) != NULL && n == 32 ? 0 : -EIO;
}

static int aead(bool seal, const uint8_t *key, const uint8_t *nonce, const uint8_t *in, size_t n,
		uint8_t *out)
{
	EVP_CIPHER_CTX *ctx;
	size_t body = seal ? n : n - AGE_TAG_LEN;
	int len = 0, rc = -EIO;

	pthread_once(&fetched, fetch_once);
	ctx = chacha != NULL ? EVP_CIPHER_CTX_new() : NULL;
	if (ctx == NULL || EVP_CipherInit_ex(ctx, chacha, NULL, NULL, NULL, seal) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, AGE_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, seal) != 1)
		goto out;
	if (!seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AGE_TAG_LEN,
					 (void *)(in + body)) != 1)
		goto out;
	if (body > 0 && (EVP_CipherUpdate(ctx, out, &len, in, (int)body) != 1 || (size_t)len != body))
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1) {
		rc = seal ? -EIO : -EBADMSG;
		goto out;
	}
	if (seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AGE_TAG_LEN, out + body) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int age_aead_seal(const uint8_t key[AGE_KEY_LEN], const uint8_t nonce[AGE_NONCE_LEN],
		  const uint8_t *in, size_t n, uint8_t *out)
{
	return aead(true, key, nonce, in, n, out);
}

int age_aead_open(const uint8_t key[AGE_KEY_LEN], const uint8_t nonce[AGE_NONCE_LEN],
		  const uint8_t *in, size_t n, uint8_t *out)
{
	if (n < AGE_TAG_LEN)
		return -EBADMSG;
	return aead(false, key, nonce, in, n, out);
}

void age_stream_nonce(uint64_t counter, bool last, uint8_t nonce[AGE_NONCE_LEN])
{
	memset(nonce, 0, AGE_NONCE_LEN);
	for (int i = 0; i < 8; i++)
		nonce[10 - i] = (uint8_t)(counter >> (8 * i));
	nonce[11] = last ? 1 : 0;
}

int age_random(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -EIO;
}
