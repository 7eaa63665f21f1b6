/*
 * AWS Signature Version 4 for S3 requests (header form, HMAC-SHA256), and
 * the digests an S3 client needs beside it: hex SHA-256 of a payload and
 * base64 MD5 for Content-MD5, of a buffer or of a range of a file.
 *
 * Signing, in short: the request is reduced to a canonical request
 *
 *   METHOD \n ENCODED-PATH \n SORTED-QUERY \n name:value\n... \n
 *   SIGNED;HEADERS \n PAYLOAD-HASH
 *
 * whose SHA-256 goes into the string to sign
 *
 *   AWS4-HMAC-SHA256 \n YYYYMMDDTHHMMSSZ \n YYYYMMDD/REGION/SERVICE/aws4_request \n HEX
 *
 * which is HMAC-ed with a key derived from the secret, the date, region and
 * service. S3's variant: the path is percent-encoded exactly once and never
 * normalised (an object key "a/../b" is a key, not a path), and the payload
 * hash is always sent and signed as x-amz-content-sha256.
 *
 * Encoding: the unreserved bytes A-Z a-z 0-9 - _ . ~ stay, every other byte
 * becomes %XX with uppercase hex (space is %20, never '+'); the path keeps
 * its '/' separators, query names and values do not.
 *
 * Whoever signs also decides what goes on the wire: the result carries the
 * request-target (encoded path and query) and the headers to add, so that
 * what was signed and what is sent cannot drift apart.
 *
 * Thread safety: there is no global or static mutable state; every function
 * may run on any thread (the loop or libuv's threadpool) at once, provided
 * the objects passed are not shared. Secrets: the secret key is read, never
 * copied into a result, never logged; the derived keys are wiped
 * (OPENSSL_cleanse) before the functions return.
 *
 * Errors: functions return 0 or a negative errno value; out-parameters are
 * written only on success.
 */
#ifndef LITESTREAM_S3_SIGV4_H
#define LITESTREAM_S3_SIGV4_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SIGV4_SHA256_HEX_LEN 64 /* a buffer for one needs LEN + 1 bytes */
#define SIGV4_MD5_BASE64_LEN 24
#define SIGV4_SIGNING_KEY_LEN 32
#define SIGV4_AMZ_DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */

/* The payload hash to send instead of a digest when the body is not signed. */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* A length for the file-range digests meaning "up to the end of the file". */
#define SIGV4_TO_EOF UINT64_MAX

/*
 * A query parameter, unencoded (the signer encodes it). value NULL sends the
 * bare name ("?delete"); it signs as "delete=", exactly like value "".
 */
struct sigv4_param {
	const char *name;
	const char *value;
};

/*
 * A header. Names are case-insensitive and are signed lowercased; values
 * are signed trimmed with inner runs of spaces and tabs collapsed to one
 * space, but sent as given. A name given more than once is signed as one
 * header whose values are joined with ',' in the order given.
 */
struct sigv4_header {
	const char *name;
	const char *value;
};

enum sigv4_flags {
	/*
	 * path is already percent-encoded as it goes on the wire: it is signed
	 * and sent verbatim. Without the flag the path is raw bytes (an object
	 * key behind "/bucket/") and is encoded here.
	 */
	SIGV4_PATH_ENCODED = 1u << 0,
	/*
	 * Neither add nor sign x-amz-content-sha256. Only for services other
	 * than S3 (AWS's generic test suite); S3 rejects such a request.
	 */
	SIGV4_NO_CONTENT_SHA256 = 1u << 1,
};

/*
 * What to sign. Everything is borrowed for the duration of sigv4_sign()
 * only; nothing is kept.
 *
 * Every header in headers[] is signed; headers that must stay unsigned
 * (User-Agent, Expect) are not passed here but added to the request
 * directly. headers[] must not contain Host (give host), Authorization,
 * X-Amz-Date, X-Amz-Content-SHA256 or X-Amz-Security-Token: the signer owns
 * those.
 */
struct sigv4_request {
	const char *method; /* "GET", "PUT", ...: sent and signed as given */
	const char *host;   /* the Host header: "bucket.s3.amazonaws.com",
			       "127.0.0.1:7480" (port only when not the default) */
	const char *path;   /* starts with '/'; see SIGV4_PATH_ENCODED */
	const struct sigv4_param *params;
	size_t n_params;
	const struct sigv4_header *headers;
	size_t n_headers;
	/*
	 * The payload hash: NULL to hash body[0..body_len) here, or a value to
	 * use as is (64 lowercase hex digits computed beforehand, for instance
	 * with sigv4_sha256_file() on the threadpool, or SIGV4_UNSIGNED_PAYLOAD).
	 */
	const char *payload_hash;
	const void *body; /* may be NULL when body_len is 0 */
	size_t body_len;
	const char *region;  /* "us-east-1" */
	const char *service; /* "s3" */
	const char *access_key_id;
	const char *secret_key;    /* read only; never copied into the result */
	const char *session_token; /* NULL or "" for long-term credentials */
	time_t time;               /* the signing time, UTC seconds */
	unsigned flags;            /* enum sigv4_flags */
};

/* Headers the signer adds: x-amz-date, x-amz-content-sha256, x-amz-security-token, authorization. */
#define SIGV4_MAX_ADDED 4

/*
 * The outcome of sigv4_sign(), one heap object owned by the caller and
 * released with sigv4_signed_free(). Every string in it (and every value in
 * added[]) points into the object itself, lives as long as it and is
 * NUL-terminated. It holds no secret key; it does hold the session token,
 * which is sent in a header.
 */
struct sigv4_signed {
	const char *canonical_request;
	const char *string_to_sign;
	const char *signature;     /* 64 lowercase hex digits */
	const char *authorization; /* the Authorization header value */
	const char *target;        /* request-target to send: "/enc/path?sorted&query" */
	const char *amz_date;      /* YYYYMMDDTHHMMSSZ */
	const char *payload_hash;  /* the value signed (and sent unless omitted) */
	/*
	 * The headers to add to the request, in this order: X-Amz-Date,
	 * X-Amz-Content-SHA256 (unless SIGV4_NO_CONTENT_SHA256),
	 * X-Amz-Security-Token (with a session token), Authorization. Names
	 * are static strings.
	 */
	struct sigv4_header added[SIGV4_MAX_ADDED];
	size_t n_added;
};

/*
 * Signs req. On success *out is a new result and 0 is returned. On failure
 * *out is untouched and the return is -EINVAL (the request is malformed:
 * *why, when why is not NULL, points at a static sentence saying what) or
 * -ENOMEM / -EIO (libcrypto failed).
 */
int sigv4_sign(const struct sigv4_request *req, struct sigv4_signed **out, const char **why);

/* Frees a result; NULL is a no-op. */
void sigv4_signed_free(struct sigv4_signed *s);

/*
 * The signing key for one day, region and service:
 * HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
 * date is YYYYMMDD; no argument may be NULL. The caller owns key[] and
 * should OPENSSL_cleanse it. 0, -ENOMEM or -EIO; key[] untouched on failure.
 */
int sigv4_signing_key(const char *secret_key, const char *date, const char *region,
		      const char *service, unsigned char key[SIGV4_SIGNING_KEY_LEN]);

/*
 * Percent-encode for S3: sigv4_encode_path() keeps '/', for an object key
 * or a whole path; sigv4_encode_component() encodes '/' too, for a query
 * name or value. *out is a new string the caller frees. 0 or -ENOMEM.
 */
int sigv4_encode_path(const char *s, char **out);
int sigv4_encode_component(const char *s, char **out);

/*
 * Incremental SHA-256, for hashing a large body piece by piece (on the
 * threadpool). init, then update any number of times, then final, which
 * writes 64 lowercase hex digits and a NUL and releases the state. close
 * releases the state without a result and is a no-op after final; call it
 * on every path that abandons a hash. init: 0, -ENOMEM or -EIO; update and
 * final: 0, -EIO, or -EINVAL on a closed or finished state.
 */
struct sigv4_sha256 {
	EVP_MD_CTX *ctx; /* owned; NULL once final or close has run */
};

int sigv4_sha256_init(struct sigv4_sha256 *h);
int sigv4_sha256_update(struct sigv4_sha256 *h, const void *buf, size_t n);
int sigv4_sha256_final(struct sigv4_sha256 *h, char hex[SIGV4_SHA256_HEX_LEN + 1]);
void sigv4_sha256_close(struct sigv4_sha256 *h);

/* Hex SHA-256 and base64 MD5 (the Content-MD5 value) of a buffer. 0 or -ENOMEM/-EIO. */
int sigv4_sha256_hex(const void *buf, size_t n, char hex[SIGV4_SHA256_HEX_LEN + 1]);
int sigv4_md5_base64(const void *buf, size_t n, char b64[SIGV4_MD5_BASE64_LEN + 1]);

/*
 * Digests of bytes [offset, offset + length) of a file, read in one pass
 * with pread (the fd's file position is neither used nor moved, so one fd
 * may serve several jobs at once). length SIGV4_TO_EOF reads to the end of
 * the file. Either output may be NULL. Returns 0, -ENODATA when the file
 * ends before the range does (it changed under us, or the caller's size is
 * wrong), -EINVAL for a range beyond what off_t holds, or another -errno
 * from open/pread.
 */
int sigv4_digest_fd(int fd, uint64_t offset, uint64_t length,
		    char sha256_hex[SIGV4_SHA256_HEX_LEN + 1], char md5_b64[SIGV4_MD5_BASE64_LEN + 1]);
int sigv4_digest_file(const char *path, uint64_t offset, uint64_t length,
		      char sha256_hex[SIGV4_SHA256_HEX_LEN + 1], char md5_b64[SIGV4_MD5_BASE64_LEN + 1]);

/* The two single-digest forms of sigv4_digest_file(). */
int sigv4_sha256_file(const char *path, uint64_t offset, uint64_t length,
		      char hex[SIGV4_SHA256_HEX_LEN + 1]);
int sigv4_md5_base64_file(const char *path, uint64_t offset, uint64_t length,
			  char b64[SIGV4_MD5_BASE64_LEN + 1]);

#endif
