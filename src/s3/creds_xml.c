/*
 * STS answers with expat; see creds_parse.h for the contract.
 *
 * The paths read are few and fixed: depth 4 under *Result > Credentials
 * for a success, depth 3 under ErrorResponse > Error for an error answer
 * (AWS's query protocol). Everything else is ignored, so what a server
 * adds (AssumedRoleUser, SubjectFromWebIdentityToken, RequestId) is
 * harmless. As in xml.c, a DOCTYPE is refused (no entity ever reaches
 * expat's tables), text is capped and nesting bounded.
 *
 * The text buffer sees the secret and the token: it is wiped before it is
 * freed, and so is every partial result.
 */
#include "s3/creds_parse.h"
#include "util/timefmt.h"

#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STS_TEXT_MAX 8192 /* a session token is at most a few KiB */
#define STS_DEPTH_MAX 16
#define STS_NAME_MAX 64

enum sts_field { F_KEY, F_SECRET, F_TOKEN, F_EXPIRATION, F_N };

struct sts_ctx {
	XML_Parser parser;
	char names[STS_DEPTH_MAX][STS_NAME_MAX];
	int depth;
	char text[STS_TEXT_MAX + 1];
	size_t text_len;
	bool is_error;
	bool saw_credentials;
	char *fields[F_N];
	struct s3_sts_error *e;
	int rc;
	char why[160];
};

static void sts_fail(struct sts_ctx *x, int rc, const char *why)
{
	if (x->rc != 0)
		return;
	x->rc = rc;
	snprintf(x->why, sizeof(x->why), "%s", why);
	XML_StopParser(x->parser, XML_FALSE);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct sts_ctx *x = ud;

	(void)attrs;
	if (x->rc != 0)
		return;
	if (x->depth >= STS_DEPTH_MAX) {
		sts_fail(x, -EBADMSG, "elements nested too deep");
		return;
	}
	snprintf(x->names[x->depth], STS_NAME_MAX, "%s", name);
	x->depth++;
	x->text_len = 0;
	if (x->depth == 1) {
		if (strcmp(name, "ErrorResponse") == 0 || strcmp(name, "Error") == 0)
			x->is_error = true;
		else if (!ends_with(name, "Response"))
			sts_fail(x, -EBADMSG, "not an STS answer (its root is not *Response)");
	}
}

static void copy_field(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src);
}

/* A closed element of an error answer: <ErrorResponse><Error><Code> or a bare <Error><Code>. */
static void error_end(struct sts_ctx *x, const char *name, const char *parent)
{
	if (strcmp(parent, "Error") != 0)
		return;
	if (strcmp(name, "Type") == 0)
		copy_field(x->e->type, sizeof(x->e->type), x->text);
	else if (strcmp(name, "Code") == 0)
		copy_field(x->e->code, sizeof(x->e->code), x->text);
	else if (strcmp(name, "Message") == 0)
		copy_field(x->e->message, sizeof(x->e->message), x->text);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	static const char *const names[F_N] = {"AccessKeyId", "SecretAccessKey", "SessionToken",
					       "Expiration"};
	struct sts_ctx *x = ud;
	const char *parent = x->depth >= 2 ? x->names[x->depth - 2] : "";

	(void)name;
	if (x->rc != 0)
		return;
	x->text[x->text_len] = '\0';
	if (x->is_error) {
		error_end(x, x->names[x->depth - 1], parent);
	} else if (x->depth == 3 && strcmp(x->names[2], "Credentials") == 0 &&
		   ends_with(x->names[1], "Result")) {
		x->saw_credentials = true;
	} else if (x->depth == 4 && strcmp(parent, "Credentials") == 0 &&
		   ends_with(x->names[1], "Result")) {
		for (int f = 0; f < F_N; f++) {
			if (strcmp(x->names[3], names[f]) != 0)
				continue;
			if (x->fields[f] != NULL) {
				explicit_bzero(x->fields[f], strlen(x->fields[f]));
				free(x->fields[f]);
			}
			if ((x->fields[f] = strdup(x->text)) == NULL)
				sts_fail(x, -ENOMEM, "out of memory");
		}
	}
	x->depth--;
	x->text_len = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct sts_ctx *x = ud;

	if (x->rc != 0 || len <= 0)
		return;
	if (x->text_len + (size_t)len > STS_TEXT_MAX) {
		sts_fail(x, -EBADMSG, "a text node is too long");
		return;
	}
	memcpy(x->text + x->text_len, s, (size_t)len);
	x->text_len += (size_t)len;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	sts_fail(ud, -EBADMSG, "a DOCTYPE is not allowed");
}

static void wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* The credentials out of a parse that went through. */
static int sts_result(struct sts_ctx *x, struct s3_credentials *out, char *err, size_t errlen)
{
	struct s3_credentials c;
	int64_t expires = 0;

	if (!x->saw_credentials) {
		snprintf(err, errlen, "malformed STS answer: no <Credentials>");
		return -EBADMSG;
	}
	if (x->fields[F_KEY] == NULL || x->fields[F_KEY][0] == '\0' ||
	    x->fields[F_SECRET] == NULL || x->fields[F_SECRET][0] == '\0') {
		snprintf(err, errlen, "malformed STS answer: <Credentials> has no %s",
			 x->fields[F_KEY] == NULL || x->fields[F_KEY][0] == '\0' ? "<AccessKeyId>"
										: "<SecretAccessKey>");
		return -EBADMSG;
	}
	if (x->fields[F_EXPIRATION] != NULL && timefmt_parse(x->fields[F_EXPIRATION], &expires) != 0) {
		snprintf(err, errlen, "malformed STS answer: <Expiration> is not an RFC 3339 time");
		return -EBADMSG;
	}
	memset(&c, 0, sizeof(c));
	c.access_key_id = x->fields[F_KEY];
	c.secret_access_key = x->fields[F_SECRET];
	if (x->fields[F_TOKEN] != NULL && x->fields[F_TOKEN][0] != '\0') {
		c.session_token = x->fields[F_TOKEN];
		x->fields[F_TOKEN] = NULL;
	}
	x->fields[F_KEY] = x->fields[F_SECRET] = NULL;
	c.expires_ms = expires;
	snprintf(c.source, sizeof(c.source), "STS");
	*out = c;
	return 0;
}

int s3_sts_parse(const char *xml, size_t len, struct s3_credentials *out, struct s3_sts_error *e,
		 char *err, size_t errlen)
{
	struct s3_sts_error scratch;
	struct sts_ctx *x;
	int rc;

	if (len > S3_CREDS_DOC_MAX || len > INT_MAX) {
		snprintf(err, errlen, "STS answer of %zu bytes is too large", len);
		return -EBADMSG;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -ENOMEM;
	x->e = e != NULL ? e : &scratch;
	memset(x->e, 0, sizeof(*x->e));
	if ((x->parser = XML_ParserCreate(NULL)) == NULL) {
		free(x);
		return -ENOMEM;
	}
	XML_SetUserData(x->parser, x);
	XML_SetElementHandler(x->parser, on_start, on_end);
	XML_SetCharacterDataHandler(x->parser, on_text);
	XML_SetStartDoctypeDeclHandler(x->parser, on_doctype);
	if (XML_Parse(x->parser, xml ? xml : "", (int)len, XML_TRUE) != XML_STATUS_OK && x->rc == 0) {
		enum XML_Error code = XML_GetErrorCode(x->parser);

		x->rc = code == XML_ERROR_NO_MEMORY ? -ENOMEM : -EBADMSG;
		snprintf(x->why, sizeof(x->why), "line %lu: %s",
			 (unsigned long)XML_GetCurrentLineNumber(x->parser), XML_ErrorString(code));
	}
	rc = x->rc;
	if (rc != 0)
		snprintf(err, errlen, "malformed STS answer: %s", x->why);
	else if (x->is_error)
		rc = -EREMOTEIO;
	else
		rc = sts_result(x, out, err, errlen);
	XML_ParserFree(x->parser);
	for (int f = 0; f < F_N; f++)
		wipe_free(x->fields[f]);
	explicit_bzero(x->text, sizeof(x->text));
	free(x);
	return rc;
}
