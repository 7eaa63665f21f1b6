/*
 * The payload digests of sigv4.h: hex SHA-256 and base64 MD5 of a buffer,
 * of a range of a file descriptor or of a file, on libcrypto's EVP.
 * Nothing here is secret; nothing here keeps state between calls.
 */
#include "s3/sigv4_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

void sigv4_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- digests ---- */

int sigv4_sha256_init(struct sigv4_sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -EIO;
	}
	h->ctx = ctx;
	return 0;
}

int sigv4_sha256_update(struct sigv4_sha256 *h, const void *buf, size_t n)
{
	if (h->ctx == NULL)
		return -EINVAL;
	return EVP_DigestUpdate(h->ctx, buf, n) == 1 ? 0 : -EIO;
}

int sigv4_sha256_final(struct sigv4_sha256 *h, char hex[SIGV4_SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int rc;

	if (h->ctx == NULL)
		return -EINVAL;
	rc = EVP_DigestFinal_ex(h->ctx, md, &len) == 1 && len == 32 ? 0 : -EIO;
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	if (rc == 0)
		sigv4_hex(md, 32, hex);
	return rc;
}

void sigv4_sha256_close(struct sigv4_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

static int digest(const EVP_MD *md, const void *buf, size_t n, unsigned char *out, unsigned int want)
{
	unsigned int len = 0;

	/* EVP_Digest wants a non-NULL pointer even for zero bytes. */
	if (EVP_Digest(n ? buf : "", n, out, &len, md, NULL) != 1 || len != want)
		return -EIO;
	return 0;
}

int sigv4_sha256_hex(const void *buf, size_t n, char hex[SIGV4_SHA256_HEX_LEN + 1])
{
	unsigned char md[32];
	int rc = digest(EVP_sha256(), buf, n, md, sizeof(md));

	if (rc == 0)
		sigv4_hex(md, sizeof(md), hex);
	return rc;
}

static void md5_to_base64(const unsigned char md[16], char b64[SIGV4_MD5_BASE64_LEN + 1])
{
	/* 16 bytes encode to exactly 24 characters (two of them '=' padding). */
	EVP_EncodeBlock((unsigned char *)b64, md, 16);
	b64[SIGV4_MD5_BASE64_LEN] = '\0';
}

int sigv4_md5_base64(const void *buf, size_t n, char b64[SIGV4_MD5_BASE64_LEN + 1])
{
	unsigned char md[16];
	int rc = digest(EVP_md5(), buf, n, md, sizeof(md));

	if (rc == 0)
		md5_to_base64(md, b64);
	return rc;
}

int sigv4_digest_fd(int fd, uint64_t offset, uint64_t length,
		    char sha256_hex[SIGV4_SHA256_HEX_LEN + 1], char md5_b64[SIGV4_MD5_BASE64_LEN + 1])
{
	enum { CHUNK = 256 * 1024 };
	EVP_MD_CTX *sha = NULL, *md5 = NULL;
	unsigned char sha_md[EVP_MAX_MD_SIZE], md5_md[EVP_MAX_MD_SIZE];
	unsigned int sha_len = 0, md5_len = 0;
	uint64_t left = length;
	unsigned char *buf = NULL;
	int rc = 0;

	/* pread takes an off_t: the whole range has to fit in one. */
	if (offset > INT64_MAX || (length != SIGV4_TO_EOF && length > (uint64_t)INT64_MAX - offset))
		return -EINVAL;
	buf = malloc(CHUNK);
	if (buf == NULL)
		return -ENOMEM;
	if (sha256_hex != NULL) {
		sha = EVP_MD_CTX_new();
		if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
			rc = sha == NULL ? -ENOMEM : -EIO;
			goto out;
		}
	}
	if (md5_b64 != NULL) {
		md5 = EVP_MD_CTX_new();
		if (md5 == NULL || EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
			rc = md5 == NULL ? -ENOMEM : -EIO;
			goto out;
		}
	}
	while (left > 0) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK;
		ssize_t r = pread(fd, buf, want, (off_t)offset);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0) {
			if (length != SIGV4_TO_EOF)
				rc = -ENODATA;
			break;
		}
		if ((sha && EVP_DigestUpdate(sha, buf, (size_t)r) != 1) ||
		    (md5 && EVP_DigestUpdate(md5, buf, (size_t)r) != 1)) {
			rc = -EIO;
			goto out;
		}
		offset += (uint64_t)r;
		if (length != SIGV4_TO_EOF)
			left -= (uint64_t)r;
	}
	if (rc != 0)
		goto out;
	if ((sha && (EVP_DigestFinal_ex(sha, sha_md, &sha_len) != 1 || sha_len != 32)) ||
	    (md5 && (EVP_DigestFinal_ex(md5, md5_md, &md5_len) != 1 || md5_len != 16))) {
		rc = -EIO;
		goto out;
	}
	/* Both digests are ready before either output is written. */
	if (sha)
		sigv4_hex(sha_md, 32, sha256_hex);
	if (md5)
		md5_to_base64(md5_md, md5_b64);
out:
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(md5);
	free(buf);
	return rc;
}

int sigv4_digest_file(const char *path, uint64_t offset, uint64_t length,
		      char sha256_hex[SIGV4_SHA256_HEX_LEN + 1], char md5_b64[SIGV4_MD5_BASE64_LEN + 1])
{
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = sigv4_digest_fd(fd, offset, length, sha256_hex, md5_b64);
	close(fd);
	return rc;
}

int sigv4_sha256_file(const char *path, uint64_t offset, uint64_t length,
		      char hex[SIGV4_SHA256_HEX_LEN + 1])
{
	return sigv4_digest_file(path, offset, length, hex, NULL);
}

int sigv4_md5_base64_file(const char *path, uint64_t offset, uint64_t length,
			  char b64[SIGV4_MD5_BASE64_LEN + 1])
{
	return sigv4_digest_file(path, offset, length, NULL, b64);
}
