/*
 * The keys of an age-encrypted replica, as the configuration gives them:
 *
 *   age-recipients   "age1..." X25519 public keys, separated by white
 *                    space or commas: every object written is encrypted
 *                    to all of them;
 *   age-identities   "AGE-SECRET-KEY-1..." keys written inline, or paths
 *                    of identity files as age-keygen writes them (one key
 *                    a line, '#' comments and blank lines ignored), the
 *                    same separators: reading tries each.
 *
 * An identity file that others can read (mode & 0007) is refused, as ssh
 * refuses such a key. Messages name the key and the file (path:line) but
 * never echo a secret. The secrets are wiped when the keys are freed.
 *
 * Ownership: age_keys_new() returns a struct the caller frees with
 * age_keys_free(); after that it is read-only and any thread may use it
 * (but for the pool of headers made ahead, which has its own lock).
 */
#ifndef LITESTREAM_AGE_KEYS_H
#define LITESTREAM_AGE_KEYS_H

#include "core/age_crypto.h"

#include <stddef.h>
#include <stdint.h>

struct age_ready;

struct age_keys {
	uint8_t (*recipients)[AGE_KEY_LEN]; /* public keys */
	size_t n_recipients;
	uint8_t (*identities)[AGE_KEY_LEN]; /* secret scalars */
	uint8_t (*identity_pubs)[AGE_KEY_LEN]; /* their public keys (the stanza's salt) */
	size_t n_identities;
	struct age_ready *ready; /* headers made ahead (age.h); NULL without recipients */
};

/*
 * Parses both values (either may be NULL or empty). *out is NULL when both
 * are empty (a plaintext replica). 0, or -EINVAL / -EACCES / -ENOENT /
 * -ENOMEM with err like "age-recipients: \"age1qy\" is not an age
 * recipient (bad bech32)".
 */
int age_keys_new(const char *recipients, const char *identities, struct age_keys **out, char *err,
		 size_t errlen);

void age_keys_free(struct age_keys *k);

/* Parses one "age1..." recipient (n bytes of text). 0 or -EINVAL. */
int age_recipient_parse(const char *s, size_t n, uint8_t pub[AGE_KEY_LEN]);

/* Parses one "AGE-SECRET-KEY-1..." identity (n bytes of text). 0 or -EINVAL. */
int age_identity_parse(const char *s, size_t n, uint8_t secret[AGE_KEY_LEN]);

#endif
