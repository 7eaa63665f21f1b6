/*
 * The S3 client's policy, apart from its state so that tests and fuzz
 * targets reach it directly (client.h, "the policy"): which failures are
 * worth another attempt and after how long, the errno and the code an
 * answer stands for, the hint a message carries, whether credentials were
 * rejected, and the parsing of an endpoint and of a Content-Range header.
 * Pure functions: no allocation except s3_endpoint_split()'s results, no
 * I/O, callable from any thread.
 */
#include "s3/client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool s3_retryable(int result, long status, const char *code)
{
	if (result != 0) {
		switch (-result) {
		case ECONNREFUSED:
		case ECONNRESET:
		case ECONNABORTED:
		case EPIPE:
		case ETIMEDOUT:
		case EBADMSG:
		case EHOSTUNREACH:
		case ENETUNREACH:
		case ENETDOWN:
		case EAGAIN:
			return true;
		default:
			return false;
		}
	}
	if (code != NULL && (strcmp(code, "SlowDown") == 0 || strcmp(code, "RequestTimeout") == 0 ||
			     strcmp(code, "InternalError") == 0 ||
			     strcmp(code, "ServiceUnavailable") == 0 || strcmp(code, "ServerBusy") == 0 ||
			     strcmp(code, "OperationTimedOut") == 0))
		return true;
	switch (status) {
	case 408:
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		return true;
	default:
		return false;
	}
}

static bool code_is(const char *code, const char *want)
{
	return code != NULL && strcmp(code, want) == 0;
}

int s3_status_errno(long status, const char *code)
{
	if (code_is(code, "NoSuchBucket") || code_is(code, "ContainerNotFound"))
		return -ENXIO;
	if (code_is(code, "AuthorizationHeaderMalformed") || code_is(code, "PermanentRedirect") ||
	    code_is(code, "IllegalLocationConstraintException") || status == 301 || status == 307)
		return -EINVAL;
	if (status == 401 || status == 403)
		return -EACCES;
	if (status == 404)
		return -ENOENT;
	return -EIO;
}

const char *s3_status_code(long status)
{
	switch (status) {
	case 301:
		return "PermanentRedirect";
	case 307:
		return "TemporaryRedirect";
	case 400:
		return "BadRequest";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 405:
		return "MethodNotAllowed";
	case 409:
		return "Conflict";
	case 412:
		return "PreconditionFailed";
	case 500:
		return "InternalError";
	case 503:
		return "ServiceUnavailable";
	default:
		return "";
	}
}

void s3_hint(long status, const char *code, const struct s3_error *e, const char *bucket_region,
	     const char *region, const char *bucket, char *buf, size_t n)
{
	const char *right = e != NULL && e->region[0] != '\0' ? e->region : bucket_region;

	buf[0] = '\0';
	/* Azurite says AuthorizationFailure for a wrong signature, Azure AuthenticationFailed. */
	if (code_is(code, "AuthenticationFailed") || code_is(code, "AuthorizationFailure")) {
		snprintf(buf, n,
			 "check account-name and account-key (or LITESTREAM_AZURE_ACCOUNT_KEY), or the "
			 "sas-token, its permissions and expiry");
		return;
	}
	if (code_is(code, "ContainerNotFound")) {
		snprintf(buf, n,
			 "container %s does not exist: create it, or check bucket and the endpoint",
			 bucket);
		return;
	}
	if (code_is(code, "AuthorizationPermissionMismatch") ||
	    code_is(code, "AuthorizationResourceTypeMismatch")) {
		snprintf(buf, n, "the sas-token may not do this: it needs read, write, delete and list "
				 "on container %s", bucket);
		return;
	}
	if (code_is(code, "SignatureDoesNotMatch") || code_is(code, "InvalidAccessKeyId") ||
	    code_is(code, "InvalidClientTokenId") || code_is(code, "Forbidden") ||
	    (status == 403 && (code == NULL || code[0] == '\0'))) {
		snprintf(buf, n, "check the access key and secret");
	} else if (code_is(code, "AccessDenied")) {
		snprintf(buf, n, "check the access key and secret, and that they may use bucket %s",
			 bucket);
	} else if (code_is(code, "AuthorizationHeaderMalformed") ||
		   code_is(code, "PermanentRedirect") ||
		   code_is(code, "IllegalLocationConstraintException") || status == 301 ||
		   status == 307) {
		if (right != NULL && right[0] != '\0' && strcmp(right, region) != 0)
			snprintf(buf, n, "wrong region: bucket %s is in %s, not %s; set region = %s",
				 bucket, right, region, right);
		else
			snprintf(buf, n,
				 "wrong region or endpoint for bucket %s: check region and endpoint",
				 bucket);
	} else if (code_is(code, "NoSuchBucket")) {
		snprintf(buf, n, "bucket %s does not exist: check the bucket name and the endpoint",
			 bucket);
	} else if (code_is(code, "ExpiredToken") || code_is(code, "InvalidToken") ||
		   code_is(code, "TokenRefreshRequired")) {
		snprintf(buf, n, "the session token is invalid or has expired");
	} else if (code_is(code, "RequestTimeTooSkewed")) {
		snprintf(buf, n, "the system clock is off: synchronise it");
	} else if (code_is(code, "BadDigest") || code_is(code, "XAmzContentSHA256Mismatch")) {
		snprintf(buf, n, "the body changed while it was sent");
	} else if (code_is(code, "EntityTooSmall")) {
		snprintf(buf, n, "a part is below the server's minimum: raise part-size");
	}
}

uint64_t s3_backoff_ms(int attempt, double r)
{
	uint64_t d = S3_BACKOFF_BASE_MS;

	for (int i = 1; i < attempt && d < S3_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > S3_BACKOFF_MAX_MS)
		d = S3_BACKOFF_MAX_MS;
	if (r < 0)
		r = 0;
	if (r > 1)
		r = 1;
	/* "Equal jitter": at least half the step, so retries do spread out
	 * without ever hammering at once. */
	return d / 2 + (uint64_t)((double)(d / 2) * r);
}

bool s3_creds_rejected(long status, const char *code)
{
	static const char *const codes[] = {"InvalidAccessKeyId", "SignatureDoesNotMatch",
					    "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
					    "AccessDenied", "InvalidClientTokenId", "AuthenticationFailed",
					    "AuthorizationFailure"};

	if (status != 400 && status != 401 && status != 403)
		return false;
	if (status == 401)
		return true;
	for (size_t i = 0; code != NULL && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

/* A decimal number at *p, advancing *p; false without digits or on overflow. */
static bool parse_u64(const char **p, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (!isdigit((unsigned char)*s))
		return false;
	for (; isdigit((unsigned char)*s); s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return true;
}

int s3_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total)
{
	const char *p = v;

	if (v == NULL || strncasecmp(p, "bytes ", 6) != 0)
		return -EINVAL;
	p += 6;
	while (*p == ' ')
		p++;
	if (*p == '*') {
		*first = *last = UINT64_MAX;
		p++;
	} else if (!parse_u64(&p, first) || *p++ != '-' || !parse_u64(&p, last) || *last < *first) {
		return -EINVAL;
	}
	if (*p++ != '/' || !parse_u64(&p, total) || *p != '\0')
		return -EINVAL;
	if (*first != UINT64_MAX && *last >= *total)
		return -EINVAL;
	return 0;
}

int s3_endpoint_split(const char *endpoint, char **scheme, char **authority, char **base)
{
	const char *sep = strstr(endpoint, "://"), *host, *slash;
	size_t slen, alen, blen;
	char *s = NULL, *a = NULL, *b = NULL;

	if (sep == NULL)
		return -EINVAL;
	slen = (size_t)(sep - endpoint);
	if (!(slen == 4 && strncasecmp(endpoint, "http", 4) == 0) &&
	    !(slen == 5 && strncasecmp(endpoint, "https", 5) == 0))
		return -EINVAL;
	host = sep + 3;
	slash = strchr(host, '/');
	alen = slash ? (size_t)(slash - host) : strlen(host);
	if (alen == 0 || memchr(host, '@', alen) != NULL || memchr(host, '?', alen) != NULL)
		return -EINVAL;
	/* curl leaves a default port out of Host; what is signed must match. */
	if (slen == 4 && alen > 3 && strncmp(host + alen - 3, ":80", 3) == 0)
		alen -= 3;
	else if (slen == 5 && alen > 4 && strncmp(host + alen - 4, ":443", 4) == 0)
		alen -= 4;
	blen = slash ? strlen(slash) : 0;
	while (blen > 0 && slash[blen - 1] == '/')
		blen--;
	s = strndup(endpoint, slen);
	a = strndup(host, alen);
	b = strndup(slash ? slash : "", blen);
	if (s == NULL || a == NULL || b == NULL) {
		free(s);
		free(a);
		free(b);
		return -ENOMEM;
	}
	for (char *p = s; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	*scheme = s;
	*authority = a;
	*base = b;
	return 0;
}
