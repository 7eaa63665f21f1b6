/*
 * What a struct sigv4_request may hold before it is signed: HTTP tokens for
 * the method and header names, no control characters in header values (no
 * smuggled headers), no separators in the scope parts, none of the headers
 * the signer sets itself. Checks only; nothing is allocated.
 */
#include "s3/sigv4_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

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

int sigv4_validate(const struct sigv4_request *r, const char **why)
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
