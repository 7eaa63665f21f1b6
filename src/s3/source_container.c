/*
 * The container credentials endpoint (source.h): ECS tasks and EKS Pod
 * Identity. One GET of
 *
 *   http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, or
 *   AWS_CONTAINER_CREDENTIALS_FULL_URI
 *
 * (the relative one wins when both are set, as in the SDKs), with an
 * Authorization header from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read
 * at every fetch: the agent rotates it) or AWS_CONTAINER_AUTHORIZATION_TOKEN.
 * The answer is JSON (creds_parse.h).
 *
 * A full URI over plain http must name a loopback address or one of the
 * link-local addresses AWS serves this on (169.254.170.2, 169.254.170.23,
 * fd00:ec2::23): anywhere else the token and the credentials would cross a
 * network in clear. https may go anywhere.
 */
#include "s3/source.h"
#include "s3/client.h"
#include "s3/creds_parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONTAINER_HOST "http://169.254.170.2"

struct container {
	struct s3_source base;
	char *url;
	char *token_file; /* or NULL */
	char *token;      /* AWS_CONTAINER_AUTHORIZATION_TOKEN, or NULL */
	struct http_request *req;
};

/* The host of an authority ("h", "h:p", "[v6]:p") into buf. */
static void authority_host(const char *a, char *buf, size_t n)
{
	const char *end;

	if (a[0] == '[' && (end = strchr(a, ']')) != NULL) {
		snprintf(buf, n, "%.*s", (int)(end - a - 1), a + 1);
		return;
	}
	end = strrchr(a, ':');
	snprintf(buf, n, "%.*s", (int)(end != NULL ? (size_t)(end - a) : strlen(a)), a);
}

static bool host_allowed(const char *h)
{
	static const char *const allowed[] = {"localhost", "::1", "169.254.170.2",
					      "169.254.170.23", "fd00:ec2::23"};

	if (strncmp(h, "127.", 4) == 0)
		return true;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strcasecmp(h, allowed[i]) == 0)
			return true;
	return false;
}

/* Checks a FULL_URI. 0, or -EINVAL with why. */
static int check_full_uri(const char *uri, char *why, size_t n)
{
	char *scheme = NULL, *auth = NULL, *base = NULL, host[256];
	int rc = s3_endpoint_split(uri, &scheme, &auth, &base);

	if (rc == -ENOMEM)
		return rc;
	if (rc != 0) {
		snprintf(why, n, "AWS_CONTAINER_CREDENTIALS_FULL_URI \"%.200s\" is not an http(s) URL",
			 uri);
		return -EINVAL;
	}
	authority_host(auth, host, sizeof(host));
	if (strcmp(scheme, "http") == 0 && !host_allowed(host)) {
		snprintf(why, n,
			 "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http to %.100s is not allowed (only "
			 "loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23; use https)",
			 host);
		rc = -EINVAL;
	}
	free(scheme);
	free(auth);
	free(base);
	return rc;
}

static void on_answer(struct http_response *r, void *data)
{
	struct container *k = data;
	struct s3_credentials c;
	char why[S3_SOURCE_WHY_MAX];
	int rc;

	k->req = NULL;
	if (r->result == -ECANCELED) {
		k->base.done(&k->base, -ECANCELED, NULL, "cancelled");
		return;
	}
	if (r->result != 0 || r->status != 200) {
		s3_source_describe(r, "GET", why, sizeof(why));
		k->base.done(&k->base, r->result != 0 ? r->result : -EACCES, NULL, why);
		return;
	}
	rc = s3_creds_json_parse(S3_CREDS_CONTAINER, r->body, r->body_len, &c, why, sizeof(why));
	if (rc == 0)
		snprintf(c.source, sizeof(c.source), "%s", k->base.name);
	k->base.done(&k->base, rc, rc == 0 ? &c : NULL, why);
}

static int container_fetch(struct s3_source *s)
{
	struct container *k = (struct container *)s;
	struct http_request_opts o;
	char *token = NULL, *header = NULL;
	const char *headers[2] = {NULL, NULL};
	int rc;

	if (k->token_file != NULL) {
		rc = s3_source_read_token(k->token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
					  &token, s->why, sizeof(s->why));
		if (rc != 0)
			return rc;
	}
	if (token != NULL || k->token != NULL) {
		const char *t = token != NULL ? token : k->token;

		if (strpbrk(t, "\r\n") != NULL) {
			snprintf(s->why, sizeof(s->why), "the authorization token holds a line break");
			s3_source_wipe_free(token);
			return -EINVAL;
		}
		header = malloc(strlen(t) + sizeof("Authorization: "));
		if (header == NULL) {
			s3_source_wipe_free(token);
			return -ENOMEM;
		}
		sprintf(header, "Authorization: %s", t);
		headers[0] = header;
	}
	memset(&o, 0, sizeof(o));
	o.method = "GET";
	o.url = k->url;
	o.headers = headers;
	rc = s3_source_request(s, &o, S3_METADATA_CONNECT_TIMEOUT_MS, S3_METADATA_TIMEOUT_MS,
			       on_answer, k, &k->req);
	s3_source_wipe_free(header);
	s3_source_wipe_free(token);
	return rc;
}

static void container_cancel(struct s3_source *s)
{
	struct container *k = (struct container *)s;

	if (k->req != NULL)
		http_request_cancel(k->req);
}

static void container_free(struct s3_source *s)
{
	struct container *k = (struct container *)s;

	free(k->url);
	free(k->token_file);
	s3_source_wipe_free(k->token);
	free(k);
}

static const struct s3_source_ops container_ops = {container_fetch, container_cancel,
						   container_free};

int s3_source_container_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
			    size_t n)
{
	const char *rel = s3_source_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = s3_source_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *file = s3_source_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = s3_source_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct container *k;
	int rc;

	if (rel == NULL && full == NULL) {
		snprintf(why, n, "AWS_CONTAINER_CREDENTIALS_*_URI not set");
		return 1;
	}
	if (rel != NULL && rel[0] != '/') {
		snprintf(why, n, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \"%.200s\" does not start "
			 "with '/'", rel);
		return -EINVAL;
	}
	if (rel == NULL && (rc = check_full_uri(full, why, n)) != 0)
		return rc;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return -ENOMEM;
	k->url = rel != NULL ? malloc(strlen(CONTAINER_HOST) + strlen(rel) + 1) : strdup(full);
	if (k->url != NULL && rel != NULL)
		sprintf(k->url, "%s%s", CONTAINER_HOST, rel);
	k->token_file = file != NULL ? strdup(file) : NULL;
	k->token = file == NULL && tok != NULL ? strdup(tok) : NULL;
	if (k->url == NULL || (file != NULL && k->token_file == NULL) ||
	    (file == NULL && tok != NULL && k->token == NULL)) {
		container_free(&k->base);
		return -ENOMEM;
	}
	k->base.ops = &container_ops;
	k->base.ctx = ctx;
	/* The URL names no secret (the token travels in a header). */
	snprintf(k->base.name, sizeof(k->base.name), "container endpoint %.200s", k->url);
	snprintf(k->base.label, sizeof(k->base.label), "container endpoint");
	*out = &k->base;
	return 0;
}
