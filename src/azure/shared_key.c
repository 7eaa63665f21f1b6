/*
 * Azure Shared Key and SAS signing; see shared_key.h for the contract.
 *
 * The string to sign is built in a strbuf from the request's headers (the
 * standard ones by name, the x-ms- ones sorted), the canonicalized
 * resource and the query; the target sent is the same encoded path and
 * query, so what was signed and what goes on the wire cannot drift apart.
 * The result is one heap block: the struct, then its strings.
 */
#include "azure/shared_key.h"
#include "util/base64.h"
#include "util/strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_HEADERS 16
#define MAX_PARAMS 16
#define KEY_MAX 128

static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void abs_http_date(time_t t, char buf[30])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int abs_parse_http_date(const char *s, int64_t *ms)
{
	char day[4], mon[4], zone[4];
	int d, y, hh, mm, ss, m = -1, n = 0;
	struct tm tm;

	if (s == NULL ||
	    sscanf(s, "%3s, %d %3s %d %d:%d:%d %3s%n", day, &d, mon, &y, &hh, &mm, &ss, zone, &n) != 8 ||
	    s[n] != '\0' || strcmp(zone, "GMT") != 0)
		return -EINVAL;
	for (int i = 0; i < 12; i++)
		if (strcmp(mon, months[i]) == 0)
			m = i;
	if (m < 0 || d < 1 || d > 31 || y < 1970 || hh > 23 || mm > 59 || ss > 60 || hh < 0 ||
	    mm < 0 || ss < 0)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*ms = (int64_t)timegm(&tm) * 1000;
	return 0;
}

/* The value of header name in req, or "" when it is not there. */
static const char *header(const struct sigv4_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return "";
}

static int cmp_header(const void *a, const void *b)
{
	const struct sigv4_header *x = a, *y = b;

	return strcasecmp(x->name, y->name);
}

static int cmp_param(const void *a, const void *b)
{
	const struct sigv4_param *x = a, *y = b;

	return strcasecmp(x->name, y->name);
}

static void put_lower(struct strbuf *b, const char *s)
{
	for (; *s != '\0'; s++)
		strbuf_putc(b, (char)tolower((unsigned char)*s));
}

/* The x-ms- headers (with x-ms-date and x-ms-version), sorted, as "name:value\n" lines. */
static int canonical_headers(const struct sigv4_request *req, const char *date, struct strbuf *b)
{
	struct sigv4_header h[MAX_HEADERS + 2];
	size_t n = 0;

	h[n++] = (struct sigv4_header){"x-ms-date", date};
	h[n++] = (struct sigv4_header){"x-ms-version", ABS_API_VERSION};
	for (size_t i = 0; i < req->n_headers; i++) {
		if (strncasecmp(req->headers[i].name, "x-ms-", 5) != 0)
			continue;
		if (n == MAX_HEADERS + 2)
			return -EINVAL;
		h[n++] = req->headers[i];
	}
	qsort(h, n, sizeof(h[0]), cmp_header);
	for (size_t i = 0; i < n; i++) {
		put_lower(b, h[i].name);
		strbuf_putc(b, ':');
		strbuf_puts(b, h[i].value);
		strbuf_putc(b, '\n');
	}
	return 0;
}

/* "/ACCOUNT" + path, then "\nname:value" per parameter, names lowercased and sorted. */
static int canonical_resource(const struct sigv4_request *req, const char *path, struct strbuf *b)
{
	struct sigv4_param p[MAX_PARAMS];

	if (req->n_params > MAX_PARAMS)
		return -EINVAL;
	if (req->n_params > 0) {
		memcpy(p, req->params, req->n_params * sizeof(p[0]));
		qsort(p, req->n_params, sizeof(p[0]), cmp_param);
	}
	strbuf_putc(b, '/');
	strbuf_puts(b, req->access_key_id);
	strbuf_puts(b, path);
	for (size_t i = 0; i < req->n_params; i++) {
		strbuf_putc(b, '\n');
		put_lower(b, p[i].name);
		strbuf_putc(b, ':');
		/* A repeated name joins its values with ',' (none of ours repeats). */
		strbuf_puts(b, p[i].value ? p[i].value : "");
	}
	return 0;
}

/* The request-target: the encoded path, the encoded query, then the SAS token. */
static int build_target(const struct sigv4_request *req, const char *path, const char *sas,
			struct strbuf *b)
{
	char sep = '?';

	strbuf_puts(b, path);
	for (size_t i = 0; i < req->n_params; i++) {
		char *name = NULL, *value = NULL;
		int rc = sigv4_encode_component(req->params[i].name, &name);

		if (rc == 0 && req->params[i].value != NULL)
			rc = sigv4_encode_component(req->params[i].value, &value);
		if (rc == 0) {
			strbuf_putc(b, sep);
			strbuf_puts(b, name);
			if (value != NULL) {
				strbuf_putc(b, '=');
				strbuf_puts(b, value);
			}
			sep = '&';
		}
		free(name);
		free(value);
		if (rc != 0)
			return rc;
	}
	if (sas != NULL && sas[0] != '\0') {
		strbuf_putc(b, sep);
		strbuf_puts(b, sas);
	}
	return 0;
}

/* The string to sign (see shared_key.h) into b. */
static int string_to_sign(const struct sigv4_request *req, uint64_t content_length,
			  const char *path, const char *date, struct strbuf *b)
{
	static const char *const std[] = {"Content-Encoding", "Content-Language"};
	static const char *const std2[] = {"Content-MD5",     "Content-Type",     "Date",
					   "If-Modified-Since", "If-Match",       "If-None-Match",
					   "If-Unmodified-Since", "Range"};
	char len[24] = "";
	int rc;

	strbuf_puts(b, req->method);
	strbuf_putc(b, '\n');
	for (size_t i = 0; i < 2; i++) {
		strbuf_puts(b, header(req, std[i]));
		strbuf_putc(b, '\n');
	}
	if (content_length > 0)
		snprintf(len, sizeof(len), "%" PRIu64, content_length);
	strbuf_puts(b, len);
	strbuf_putc(b, '\n');
	for (size_t i = 0; i < sizeof(std2) / sizeof(std2[0]); i++) {
		strbuf_puts(b, header(req, std2[i]));
		strbuf_putc(b, '\n');
	}
	rc = canonical_headers(req, date, b);
	if (rc == 0)
		rc = canonical_resource(req, path, b);
	return rc;
}

/* base64(HMAC-SHA256(base64decode(key), msg)) into sig (45 bytes). */
static int hmac_b64(const char *key_b64, const char *msg, size_t n, char sig[45], const char **why)
{
	unsigned char key[KEY_MAX], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t klen = 0;
	int rc = 0;

	if (base64_decode(key_b64, key, sizeof(key), &klen) != 0 || klen == 0) {
		*why = "the account key is not base64";
		rc = -EINVAL;
	} else if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, n, md, &mdlen) ==
			   NULL ||
		   mdlen != 32) {
		rc = -EIO;
	} else {
		EVP_EncodeBlock((unsigned char *)sig, md, 32);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* Packs the strings into one block behind the struct. */
static int pack(struct sigv4_signed **out, const char *sts, const char *sig, const char *auth,
		const char *target, const char *date)
{
	const char *src[5] = {sts, sig, auth, target, date};
	size_t total = sizeof(struct sigv4_signed);
	struct sigv4_signed *s;
	char *p;
	const char *dst[5];

	for (size_t i = 0; i < 5; i++)
		total += strlen(src[i]) + 1;
	s = calloc(1, total);
	if (s == NULL)
		return -ENOMEM;
	p = (char *)(s + 1);
	for (size_t i = 0; i < 5; i++) {
		size_t n = strlen(src[i]) + 1;

		memcpy(p, src[i], n);
		dst[i] = p;
		p += n;
	}
	s->canonical_request = "";
	s->payload_hash = "";
	s->string_to_sign = dst[0];
	s->signature = dst[1];
	s->authorization = dst[2];
	s->target = dst[3];
	s->amz_date = dst[4];
	s->added[s->n_added++] = (struct sigv4_header){"x-ms-date", dst[4]};
	s->added[s->n_added++] = (struct sigv4_header){"x-ms-version", ABS_API_VERSION};
	if (dst[2][0] != '\0')
		s->added[s->n_added++] = (struct sigv4_header){"Authorization", dst[2]};
	*out = s;
	return 0;
}

int abs_sign(const struct sigv4_request *req, uint64_t content_length, struct sigv4_signed **out,
	     const char **why)
{
	struct strbuf sts = {0}, target = {0};
	char date[30], sig[45] = "", *path = NULL, *auth = NULL, *t = NULL, *s = NULL;
	bool sas = req->session_token != NULL && req->session_token[0] != '\0';
	int rc;

	if (req->method == NULL || req->path == NULL || req->path[0] != '/' ||
	    req->access_key_id == NULL) {
		*why = "a request without a method, a path or an account";
		return -EINVAL;
	}
	if (!sas && (req->secret_key == NULL || req->secret_key[0] == '\0')) {
		*why = "neither an account key nor a SAS token";
		return -EINVAL;
	}
	abs_http_date(req->time, date);
	rc = (req->flags & SIGV4_PATH_ENCODED) ? ((path = strdup(req->path)) ? 0 : -ENOMEM)
					       : sigv4_encode_path(req->path, &path);
	if (rc == 0)
		rc = build_target(req, path, sas ? req->session_token : NULL, &target);
	if (rc == 0 && !sas)
		rc = string_to_sign(req, content_length, path, date, &sts);
	if (rc == -EINVAL)
		*why = "too many headers or query parameters";
	if (rc == 0 && (rc = strbuf_take(&target, &t, NULL)) == 0 &&
	    (rc = strbuf_take(&sts, &s, NULL)) == 0 && !sas) {
		rc = hmac_b64(req->secret_key, s, strlen(s), sig, why);
		if (rc == 0 && (auth = malloc(strlen(req->access_key_id) + sizeof(sig) + 12)) == NULL)
			rc = -ENOMEM;
		if (rc == 0)
			sprintf(auth, "SharedKey %s:%s", req->access_key_id, sig);
	}
	if (rc == 0)
		rc = pack(out, s, sig, auth ? auth : "", t, date);
	strbuf_free(&sts);
	strbuf_free(&target);
	free(path);
	free(auth);
	if (t != NULL) {
		/* It may hold the SAS token. */
		explicit_bzero(t, strlen(t));
		free(t);
	}
	free(s);
	return rc;
}
