/*
 * Loading age keys; see age_keys.h. A value is split into items at white
 * space and commas; an identity item that starts with AGE-SECRET-KEY-1 is
 * a key, anything else a path.
 */
#include "core/age_keys.h"
#include "core/age.h"

#include "util/bech32.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDENTITY_PREFIX "AGE-SECRET-KEY-1"
#define IDENTITY_FILE_MAX (64 * 1024)

static int decode_key(const char *s, size_t n, const char *want_hrp, uint8_t key[AGE_KEY_LEN])
{
	char hrp[32];
	uint8_t buf[64];
	size_t len;
	int rc = bech32_decode(s, n, hrp, sizeof(hrp), buf, sizeof(buf), &len);

	if (rc == 0 && (strcmp(hrp, want_hrp) != 0 || len != AGE_KEY_LEN))
		rc = -EINVAL;
	if (rc == 0)
		memcpy(key, buf, AGE_KEY_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc == 0 ? 0 : -EINVAL;
}

int age_recipient_parse(const char *s, size_t n, uint8_t pub[AGE_KEY_LEN])
{
	/* age writes recipients in lowercase only. */
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return -EINVAL;
	return decode_key(s, n, "age", pub);
}

int age_identity_parse(const char *s, size_t n, uint8_t secret[AGE_KEY_LEN])
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			return -EINVAL;
	return decode_key(s, n, "age-secret-key-", secret);
}

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',' || c == '\n' || c == '\r';
}

/* The next item of a list value: *s at its start, returns its length (0 at the end). */
static size_t next_item(const char **s)
{
	size_t n = 0;

	while (**s != '\0' && is_sep(**s))
		(*s)++;
	while ((*s)[n] != '\0' && !is_sep((*s)[n]))
		n++;
	return n;
}

static int add_identity(struct age_keys *k, const uint8_t secret[AGE_KEY_LEN])
{
	size_t n = k->n_identities + 1;
	uint8_t(*ids)[AGE_KEY_LEN] = OPENSSL_secure_zalloc(n * AGE_KEY_LEN);
	uint8_t(*pubs)[AGE_KEY_LEN] = realloc(k->identity_pubs, n * AGE_KEY_LEN);
	int rc;

	if (pubs != NULL)
		k->identity_pubs = pubs;
	if (ids == NULL || pubs == NULL) {
		OPENSSL_secure_clear_free(ids, n * AGE_KEY_LEN);
		return -ENOMEM;
	}
	if ((rc = age_x25519_public(secret, pubs[n - 1])) != 0) {
		OPENSSL_secure_clear_free(ids, n * AGE_KEY_LEN);
		return rc;
	}
	if (k->n_identities > 0)
		memcpy(ids, k->identities, k->n_identities * AGE_KEY_LEN);
	memcpy(ids[n - 1], secret, AGE_KEY_LEN);
	OPENSSL_secure_clear_free(k->identities, k->n_identities * AGE_KEY_LEN);
	k->identities = ids;
	k->n_identities = n;
	return 0;
}

/* Reads the identity file path: every key in it. */
static int load_identity_file(struct age_keys *k, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0, line = 1, found = 0;
	struct stat st;
	char *text = NULL;
	ssize_t got = 0;

	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "age-identities: cannot read identity file %s: %s", path,
			 strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "age-identities: %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 0007) {
		rc = -EACCES;
		snprintf(err, errlen,
			 "age-identities: identity file %s is accessible by others (mode %04o); "
			 "chmod o-rwx it", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > IDENTITY_FILE_MAX || (text = OPENSSL_secure_zalloc(IDENTITY_FILE_MAX + 1)) == NULL) {
		rc = text == NULL && st.st_size <= IDENTITY_FILE_MAX ? -ENOMEM : -EINVAL;
		snprintf(err, errlen, "age-identities: %s: %s", path,
			 rc == -ENOMEM ? "out of memory" : "too large for an identity file");
		goto out;
	}
	while (got < IDENTITY_FILE_MAX) {
		ssize_t r = read(fd, text + got, (size_t)(IDENTITY_FILE_MAX - got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "age-identities: read %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += r;
	}
	for (char *p = text; *p != '\0' && rc == 0; line++) {
		char *e = strchr(p, '\n');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
		uint8_t secret[AGE_KEY_LEN];

		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > 0 && p[0] != '#') {
			if (age_identity_parse(p, n, secret) != 0) {
				rc = -EINVAL;
				snprintf(err, errlen, "age-identities: %s:%d: not an age identity "
					 "(want AGE-SECRET-KEY-1...)", path, line);
			} else if ((rc = add_identity(k, secret)) != 0) {
				snprintf(err, errlen, "age-identities: %s: %s", path, strerror(-rc));
			}
			found++;
			OPENSSL_cleanse(secret, sizeof(secret));
		}
		p = e != NULL ? e + 1 : p + n;
	}
	if (rc == 0 && found == 0) {
		rc = -EINVAL;
		snprintf(err, errlen, "age-identities: %s holds no identity", path);
	}
out:
	OPENSSL_secure_clear_free(text, IDENTITY_FILE_MAX + 1);
	close(fd);
	return rc;
}

static int parse_recipients(struct age_keys *k, const char *v, char *err, size_t errlen)
{
	for (size_t n; (n = next_item(&v)) > 0; v += n) {
		uint8_t(*r)[AGE_KEY_LEN] = realloc(k->recipients, (k->n_recipients + 1) * AGE_KEY_LEN);

		if (r == NULL) {
			snprintf(err, errlen, "age-recipients: out of memory");
			return -ENOMEM;
		}
		k->recipients = r;
		if (age_recipient_parse(v, n, r[k->n_recipients]) != 0) {
			snprintf(err, errlen, "age-recipients: \"%.*s\" is not an age X25519 recipient "
				 "(want age1...)", (int)(n > 80 ? 80 : n), v);
			return -EINVAL;
		}
		k->n_recipients++;
	}
	return 0;
}

static int parse_identities(struct age_keys *k, const char *v, char *err, size_t errlen)
{
	int rc = 0, item = 0;

	for (size_t n; rc == 0 && (n = next_item(&v)) > 0; v += n) {
		uint8_t secret[AGE_KEY_LEN];
		char path[4096];

		item++;
		if (n >= strlen(IDENTITY_PREFIX) && strncmp(v, IDENTITY_PREFIX, strlen(IDENTITY_PREFIX)) == 0) {
			/* Inline: a secret, never echoed. */
			if (age_identity_parse(v, n, secret) != 0) {
				rc = -EINVAL;
				snprintf(err, errlen, "age-identities: item %d is not a valid age identity "
					 "(AGE-SECRET-KEY-1... with a bad checksum or length)", item);
			} else if ((rc = add_identity(k, secret)) != 0) {
				snprintf(err, errlen, "age-identities: %s", strerror(-rc));
			}
			OPENSSL_cleanse(secret, sizeof(secret));
			continue;
		}
		if (n >= sizeof(path)) {
			snprintf(err, errlen, "age-identities: item %d: path too long", item);
			return -ENAMETOOLONG;
		}
		memcpy(path, v, n);
		path[n] = '\0';
		rc = load_identity_file(k, path, err, errlen);
	}
	return rc;
}

int age_keys_new(const char *recipients, const char *identities, struct age_keys **out, char *err,
		 size_t errlen)
{
	struct age_keys *k;
	int rc;

	*out = NULL;
	if ((recipients == NULL || *recipients == '\0') && (identities == NULL || *identities == '\0'))
		return 0;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errlen, "age keys: out of memory");
		return -ENOMEM;
	}
	rc = parse_recipients(k, recipients ? recipients : "", err, errlen);
	if (rc == 0)
		rc = parse_identities(k, identities ? identities : "", err, errlen);
	if (rc == 0 && k->n_recipients + k->n_identities == 0) {
		age_keys_free(k);
		return 0;
	}
	if (rc == 0 && k->n_recipients > 0 && (k->ready = age_ready_new()) == NULL) {
		snprintf(err, errlen, "age keys: out of memory");
		rc = -ENOMEM;
	}
	if (rc != 0) {
		age_keys_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void age_keys_free(struct age_keys *k)
{
	if (k == NULL)
		return;
	free(k->recipients);
	OPENSSL_secure_clear_free(k->identities, k->n_identities * AGE_KEY_LEN);
	free(k->identity_pubs);
	age_ready_free(k->ready);
	free(k);
}
