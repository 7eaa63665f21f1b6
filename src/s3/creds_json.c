/*
 * The JSON shapes of temporary credentials, with cJSON; see
 * creds_parse.h for the contract.
 *
 * The three shapes differ only in a few names (the token is "Token" from
 * the container endpoint and IMDS, "SessionToken" from a credential
 * process) and in what else they must say (IMDS: Code "Success"; a
 * process: Version 1), so one table per kind drives one reader. cJSON's
 * copy of the document holds the secret: every string of the tree is
 * wiped before cJSON_Delete() frees it.
 */
#include "s3/creds_parse.h"
#include "util/timefmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shape {
	const char *doc;   /* what messages call the document */
	const char *token; /* the name of the session token */
};

static const struct shape shapes[] = {
	[S3_CREDS_CONTAINER] = {"container credentials", "Token"},
	[S3_CREDS_IMDS] = {"instance metadata credentials", "Token"},
	[S3_CREDS_PROCESS] = {"credential_process output", "SessionToken"},
};

/* Wipes every string of the tree (cJSON_Delete() frees it afterwards). */
static void wipe_tree(cJSON *j)
{
	for (cJSON *c = j; c != NULL; c = c->next) {
		if (c->valuestring != NULL)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
		if (c->child != NULL)
			wipe_tree(c->child);
	}
}

/*
 * The string member name of o into *out (NULL when absent or empty and
 * !required). 0, or -EBADMSG with err naming the member.
 */
static int member(const cJSON *o, const char *name, bool required, const char **out,
		  const struct shape *sh, char *err, size_t errlen)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = NULL;
	if (m == NULL || cJSON_IsNull(m)) {
		if (!required)
			return 0;
		snprintf(err, errlen, "malformed %s: no \"%s\"", sh->doc, name);
		return -EBADMSG;
	}
	if (!cJSON_IsString(m)) {
		snprintf(err, errlen, "malformed %s: \"%s\" is not a string", sh->doc, name);
		return -EBADMSG;
	}
	if (m->valuestring[0] == '\0') {
		if (!required)
			return 0;
		snprintf(err, errlen, "malformed %s: \"%s\" is empty", sh->doc, name);
		return -EBADMSG;
	}
	*out = m->valuestring;
	return 0;
}

/* What IMDS and a credential process must say besides the keys. */
static int check_kind(enum s3_creds_json kind, const cJSON *o, const struct shape *sh, char *err,
		      size_t errlen)
{
	if (kind == S3_CREDS_IMDS) {
		const char *code;
		int rc = member(o, "Code", false, &code, sh, err, errlen);

		if (rc == 0 && code != NULL && strcmp(code, "Success") != 0) {
			snprintf(err, errlen, "%s: Code is \"%.64s\", not \"Success\"", sh->doc, code);
			return -EBADMSG;
		}
		return rc;
	}
	if (kind == S3_CREDS_PROCESS) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "Version");

		if (v == NULL) {
			snprintf(err, errlen, "malformed %s: no \"Version\" (want 1)", sh->doc);
			return -EBADMSG;
		}
		if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
			snprintf(err, errlen, "%s: unsupported \"Version\" (want 1)", sh->doc);
			return -EBADMSG;
		}
	}
	return 0;
}

/* The credentials of the object o of kind into *out. */
static int read_object(enum s3_creds_json kind, const cJSON *o, struct s3_credentials *out,
		       char *err, size_t errlen)
{
	const struct shape *sh = &shapes[kind];
	const char *id, *secret, *token, *exp;
	struct s3_credentials c;
	int64_t expires = 0;
	int rc;

	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "malformed %s: not a JSON object", sh->doc);
		return -EBADMSG;
	}
	if ((rc = check_kind(kind, o, sh, err, errlen)) != 0 ||
	    (rc = member(o, "AccessKeyId", true, &id, sh, err, errlen)) != 0 ||
	    (rc = member(o, "SecretAccessKey", true, &secret, sh, err, errlen)) != 0 ||
	    (rc = member(o, sh->token, false, &token, sh, err, errlen)) != 0 ||
	    (rc = member(o, "Expiration", false, &exp, sh, err, errlen)) != 0)
		return rc;
	if (exp != NULL && timefmt_parse(exp, &expires) != 0) {
		snprintf(err, errlen, "malformed %s: \"Expiration\" is not an RFC 3339 time", sh->doc);
		return -EBADMSG;
	}
	memset(&c, 0, sizeof(c));
	c.access_key_id = strdup(id);
	c.secret_access_key = strdup(secret);
	c.session_token = token != NULL ? strdup(token) : NULL;
	c.expires_ms = expires;
	snprintf(c.source, sizeof(c.source), "%s", sh->doc);
	if (c.access_key_id == NULL || c.secret_access_key == NULL ||
	    (token != NULL && c.session_token == NULL)) {
		s3_credentials_free(&c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

int s3_creds_json_parse(enum s3_creds_json kind, const char *json, size_t len,
			struct s3_credentials *out, char *err, size_t errlen)
{
	const struct shape *sh = &shapes[kind];
	cJSON *o;
	int rc;

	if (len > S3_CREDS_DOC_MAX) {
		snprintf(err, errlen, "%s of %zu bytes is too large", sh->doc, len);
		return -EBADMSG;
	}
	o = cJSON_ParseWithLength(json != NULL ? json : "", len);
	if (o == NULL) {
		snprintf(err, errlen, "malformed %s: not JSON", sh->doc);
		return -EBADMSG;
	}
	rc = read_object(kind, o, out, err, errlen);
	wipe_tree(o);
	cJSON_Delete(o);
	return rc;
}

void s3_creds_json_error(const char *json, size_t len, char *buf, size_t n)
{
	cJSON *o;
	const cJSON *code, *msg;

	buf[0] = '\0';
	if (json == NULL || len == 0 || len > S3_CREDS_DOC_MAX)
		return;
	if ((o = cJSON_ParseWithLength(json, len)) == NULL)
		return;
	code = cJSON_GetObjectItem(o, "code"); /* case-insensitive: Code too */
	msg = cJSON_GetObjectItem(o, "message");
	if (cJSON_IsString(code) || cJSON_IsString(msg))
		snprintf(buf, n, "%.64s%s%.200s", cJSON_IsString(code) ? code->valuestring : "",
			 cJSON_IsString(code) && cJSON_IsString(msg) ? ": " : "",
			 cJSON_IsString(msg) ? msg->valuestring : "");
	wipe_tree(o);
	cJSON_Delete(o);
}
