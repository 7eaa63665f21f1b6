/*
 * AWS Signature Version 4 for S3, and the payload digests; see sigv4.h for
 * the contract.
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
#include "s3/sigv4.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"

/* ---- encoding ---- */

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_encode(struct strbuf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_unreserved(*p) || (keep_slash && *p == '/')) {
			strbuf_putc(b, (char)*p);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			strbuf_add(b, esc, 3);
		}
	}
}

static int encode(const char *s, bool keep_slash, char **out)
{
	struct strbuf b = { 0 };

	/* Reserving even for "" leaves a NUL-terminated buffer to hand out. */
	strbuf_reserve(&b, strlen(s));
	sb_encode(&b, s, keep_slash);
	if (b.oom) {
		strbuf_free(&b);
		return -ENOMEM;
	}
	*out = b.p;
	return 0;
}

int sigv4_encode_path(const char *s, char **out)
{
	return encode(s, true, out);
}

int sigv4_encode_component(const char *s, char **out)
{
	return encode(s, false, out);
}

static void to_hex(const unsigned char *in, size_t n, char *out)
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
		to_hex(md, 32, hex);
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
		to_hex(md, sizeof(md), hex);
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
		to_hex(sha_md, 32, sha256_hex);
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

/* ---- validation ---- */

/* RFC 9110 token characters: what a method or a header name may hold. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

/*
 * A header value may hold tabs and any byte from space up, but no other
 * control character: CR or LF in one would let a value smuggle in a header
 * of its own once the request is written out.
 */
static bool is_header_value(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

/* Region, service and access key id go into "a/b/c/d" scopes: no separators. */
static bool is_scope_part(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == ',' || *p == ';' || *p == '=')
			return false;
	return true;
}

/* A host, or an already-encoded path: visible ASCII only. */
static bool is_visible_ascii(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return false;
	return true;
}

static bool is_payload_hash(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!(s[n] == '-' || (s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= 'A' && s[n] <= 'Z')))
			return false;
	return n > 0 && n <= SIGV4_SHA256_HEX_LEN;
}

static const char *const reserved_headers[] = {
	"host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token",
};

static bool is_reserved_header(const char *name)
{
	for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(reserved_headers[0]); i++)
		if (strcasecmp(name, reserved_headers[i]) == 0)
			return true;
	return false;
}

#define INVALID(msg)            \
	do {                    \
		*why = (msg);   \
		return -EINVAL; \
	} while (0)

static int validate(const struct sigv4_request *r, const char **why)
{
	if (!is_token(r->method))
		INVALID("method is missing or not an HTTP token");
	if (r->host == NULL || *r->host == '\0' || !is_visible_ascii(r->host))
		INVALID("host is missing or holds spaces, control or non-ASCII bytes");
	if (r->path == NULL || r->path[0] != '/')
		INVALID("path does not start with '/'");
	if ((r->flags & SIGV4_PATH_ENCODED) &&
	    (!is_visible_ascii(r->path) || strpbrk(r->path, "?#") != NULL))
		INVALID("encoded path holds bytes that must be percent-encoded");
	if (r->flags & ~(unsigned)(SIGV4_PATH_ENCODED | SIGV4_NO_CONTENT_SHA256))
		INVALID("unknown flag");
	if (r->n_params > 0 && r->params == NULL)
		INVALID("params is NULL");
	for (size_t i = 0; i < r->n_params; i++)
		if (r->params[i].name == NULL)
			INVALID("query parameter without a name");
	if (r->n_headers > 0 && r->headers == NULL)
		INVALID("headers is NULL");
	for (size_t i = 0; i < r->n_headers; i++) {
		if (!is_token(r->headers[i].name))
			INVALID("header name is missing or not an HTTP token");
		if (is_reserved_header(r->headers[i].name))
			INVALID("header is set by the signer (Host, Authorization, X-Amz-Date, "
				"X-Amz-Content-SHA256, X-Amz-Security-Token)");
		if (r->headers[i].value == NULL || !is_header_value(r->headers[i].value))
			INVALID("header value is missing or holds control characters");
	}
	if (r->payload_hash != NULL && !is_payload_hash(r->payload_hash))
		INVALID("payload hash is not hex digits or a keyword like UNSIGNED-PAYLOAD");
	if (r->payload_hash == NULL && r->body_len > 0 && r->body == NULL)
		INVALID("body is NULL but body_len is not 0");
	if (!is_scope_part(r->region))
		INVALID("region is missing or malformed");
	if (!is_scope_part(r->service))
		INVALID("service is missing or malformed");
	if (!is_scope_part(r->access_key_id))
		INVALID("access key id is missing or malformed");
	if (r->secret_key == NULL || *r->secret_key == '\0')
		INVALID("secret key is missing");
	if (r->session_token != NULL && !is_header_value(r->session_token))
		INVALID("session token holds control characters");
	return 0;
}

/* ---- canonical pieces ---- */

static void put_digits(char *p, unsigned v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

static int amz_date(time_t t, char out[SIGV4_AMZ_DATE_LEN + 1])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -EINVAL;
	put_digits(out, (unsigned)tm.tm_year + 1900, 4);
	put_digits(out + 4, (unsigned)tm.tm_mon + 1, 2);
	put_digits(out + 6, (unsigned)tm.tm_mday, 2);
	out[8] = 'T';
	put_digits(out + 9, (unsigned)tm.tm_hour, 2);
	put_digits(out + 11, (unsigned)tm.tm_min, 2);
	put_digits(out + 13, (unsigned)tm.tm_sec, 2);
	out[15] = 'Z';
	out[16] = '\0';
	return 0;
}

struct qparam {
	char *name;  /* encoded */
	char *value; /* encoded; "" for a bare name */
	bool bare;
	size_t index; /* position given, so equal pairs keep their order */
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0)
		c = strcmp(x->value, y->value);
	if (c == 0)
		c = x->index < y->index ? -1 : x->index > y->index;
	return c;
}

/*
 * Sorted by encoded name, then encoded value (byte order), as AWS compares
 * them. The same order goes on the wire: a server does not care, and a
 * reader comparing the two sees the same thing.
 */
static int build_query(const struct sigv4_request *r, struct strbuf *canon, struct strbuf *target)
{
	struct qparam *q;
	int rc = 0;

	if (r->n_params == 0)
		return 0;
	q = calloc(r->n_params, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_params; i++) {
		const char *v = r->params[i].value;

		q[i].index = i;
		q[i].bare = v == NULL;
		rc = sigv4_encode_component(r->params[i].name, &q[i].name);
		if (rc == 0)
			rc = sigv4_encode_component(v ? v : "", &q[i].value);
		if (rc != 0)
			goto out;
	}
	qsort(q, r->n_params, sizeof(*q), qparam_cmp);
	strbuf_putc(target, '?');
	for (size_t i = 0; i < r->n_params; i++) {
		if (i > 0) {
			strbuf_putc(canon, '&');
			strbuf_putc(target, '&');
		}
		strbuf_puts(canon, q[i].name);
		strbuf_putc(canon, '=');
		strbuf_puts(canon, q[i].value);
		strbuf_puts(target, q[i].name);
		if (!q[i].bare) {
			strbuf_putc(target, '=');
			strbuf_puts(target, q[i].value);
		}
	}
out:
	for (size_t i = 0; i < r->n_params; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
	return rc;
}

struct cheader {
	char *name;        /* lowercased copy */
	const char *value; /* borrowed, untrimmed */
	size_t index;
};

static int cheader_cmp(const void *a, const void *b)
{
	const struct cheader *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0)
		c = x->index < y->index ? -1 : x->index > y->index;
	return c;
}

/* Trimall: no leading or trailing blanks, each inner run of blanks one space. */
static void sb_trimall(struct strbuf *b, const char *v)
{
	bool pending = false, any = false;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			pending = any;
			continue;
		}
		if (pending)
			strbuf_putc(b, ' ');
		pending = false;
		any = true;
		strbuf_putc(b, *v);
	}
}

/*
 * Canonical headers ("name:value\n" each, sorted by lowercase name, repeated
 * names merged in the order given) and the signed-headers list. Sorts h.
 */
static void build_headers(struct cheader *h, size_t n, struct strbuf *canon, struct strbuf *names)
{
	qsort(h, n, sizeof(*h), cheader_cmp);
	for (size_t i = 0; i < n; i++) {
		bool repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;

		if (repeat) {
			strbuf_putc(canon, ',');
		} else {
			if (i > 0) {
				strbuf_putc(canon, '\n');
				strbuf_putc(names, ';');
			}
			strbuf_puts(canon, h[i].name);
			strbuf_putc(canon, ':');
			strbuf_puts(names, h[i].name);
		}
		sb_trimall(canon, h[i].value);
	}
	strbuf_putc(canon, '\n');
}

static char *lower_dup(const char *s)
{
	char *d = strdup(s);

	if (d != NULL)
		for (char *p = d; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return d;
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

int sigv4_sign(const struct sigv4_request *r, struct sigv4_signed **out, const char **why)
{
	const char *ignored;
	const char *token;
	struct pieces p = { 0 };
	struct strbuf headers = { 0 }, names = { 0 };
	struct cheader *h = NULL;
	size_t nh = 0;
	char scope_date[9], creq_hash[SIGV4_SHA256_HEX_LEN + 1];
	unsigned char key[SIGV4_SIGNING_KEY_LEN], mac[32];
	struct sigv4_signed *s;
	int rc;

	if (why == NULL)
		why = &ignored;
	rc = validate(r, why);
	if (rc != 0)
		return rc;
	token = r->session_token && *r->session_token ? r->session_token : NULL;
	rc = amz_date(r->time, p.date);
	if (rc != 0) {
		*why = "time is outside years 0000-9999";
		return rc;
	}
	memcpy(scope_date, p.date, 8);
	scope_date[8] = '\0';

	if (r->payload_hash != NULL) {
		memcpy(p.payload, r->payload_hash, strlen(r->payload_hash) + 1);
	} else {
		rc = sigv4_sha256_hex(r->body, r->body_len, p.payload);
		if (rc != 0)
			goto out;
	}

	/* Path, then query: the canonical forms and the request-target. */
	if (r->flags & SIGV4_PATH_ENCODED)
		strbuf_puts(&p.target, r->path);
	else
		sb_encode(&p.target, r->path, true);
	strbuf_add(&p.creq, r->method, strlen(r->method));
	strbuf_putc(&p.creq, '\n');
	strbuf_add(&p.creq, p.target.p ? p.target.p : "", p.target.len);
	strbuf_putc(&p.creq, '\n');
	rc = build_query(r, &p.creq, &p.target);
	if (rc != 0)
		goto out;
	strbuf_putc(&p.creq, '\n');

	/* The caller's headers plus the ones the signer owns. */
	h = calloc(r->n_headers + 4, sizeof(*h));
	if (h == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->n_headers; i++, nh++) {
		h[nh].name = lower_dup(r->headers[i].name);
		h[nh].value = r->headers[i].value;
		h[nh].index = nh;
		if (h[nh].name == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	}
	{
		const char *own[4][2] = {
			{ "host", r->host },
			{ "x-amz-date", p.date },
			{ "x-amz-content-sha256", r->flags & SIGV4_NO_CONTENT_SHA256 ? NULL : p.payload },
			{ "x-amz-security-token", token },
		};

		for (size_t i = 0; i < 4; i++) {
			if (own[i][1] == NULL)
				continue;
			h[nh].name = strdup(own[i][0]);
			h[nh].value = own[i][1];
			h[nh].index = nh;
			if (h[nh++].name == NULL) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	build_headers(h, nh, &headers, &names);
	strbuf_add(&p.creq, headers.p, headers.len);
	strbuf_putc(&p.creq, '\n');
	strbuf_add(&p.creq, names.p, names.len);
	strbuf_putc(&p.creq, '\n');
	strbuf_puts(&p.creq, p.payload);
	if (p.creq.oom || p.target.oom || headers.oom || names.oom) {
		rc = -ENOMEM;
		goto out;
	}

	rc = sigv4_sha256_hex(p.creq.p, p.creq.len, creq_hash);
	if (rc != 0)
		goto out;
	strbuf_puts(&p.sts, ALGORITHM "\n");
	strbuf_puts(&p.sts, p.date);
	strbuf_putc(&p.sts, '\n');
	strbuf_puts(&p.sts, scope_date);
	strbuf_putc(&p.sts, '/');
	strbuf_puts(&p.sts, r->region);
	strbuf_putc(&p.sts, '/');
	strbuf_puts(&p.sts, r->service);
	strbuf_puts(&p.sts, "/" TERMINATOR "\n");
	strbuf_puts(&p.sts, creq_hash);
	if (p.sts.oom) {
		rc = -ENOMEM;
		goto out;
	}

	rc = sigv4_signing_key(r->secret_key, scope_date, r->region, r->service, key);
	if (rc == 0)
		rc = hmac(key, sizeof(key), p.sts.p, p.sts.len, mac);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc != 0)
		goto out;
	to_hex(mac, sizeof(mac), p.signature);

	strbuf_puts(&p.auth, ALGORITHM " Credential=");
	strbuf_puts(&p.auth, r->access_key_id);
	strbuf_putc(&p.auth, '/');
	strbuf_puts(&p.auth, scope_date);
	strbuf_putc(&p.auth, '/');
	strbuf_puts(&p.auth, r->region);
	strbuf_putc(&p.auth, '/');
	strbuf_puts(&p.auth, r->service);
	strbuf_puts(&p.auth, "/" TERMINATOR ", SignedHeaders=");
	strbuf_add(&p.auth, names.p, names.len);
	strbuf_puts(&p.auth, ", Signature=");
	strbuf_puts(&p.auth, p.signature);
	if (p.auth.oom) {
		rc = -ENOMEM;
		goto out;
	}

	s = pack(r, &p);
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	*out = s;
out:
	for (size_t i = 0; i < nh; i++)
		free(h[i].name);
	free(h);
	strbuf_free(&headers);
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
