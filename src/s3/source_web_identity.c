/*
 * Web identity (source.h): EKS IRSA and any OIDC federation. The token in
 * AWS_WEB_IDENTITY_TOKEN_FILE is exchanged for the role AWS_ROLE_ARN's
 * credentials at STS:
 *
 *   POST / HTTP/1.1                (the query API, form-encoded, unsigned)
 *   Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=...
 *   &RoleSessionName=...&WebIdentityToken=...
 *
 * to AWS_ENDPOINT_URL_STS, else the regional endpoint
 * https://sts.REGION.amazonaws.com (.com.cn in China), REGION being
 * AWS_REGION, AWS_DEFAULT_REGION or the replica's. The session is named
 * AWS_ROLE_SESSION_NAME, else litestream-UNIXTIME. The token file is read
 * at every fetch: Kubernetes replaces it well before it expires, and an
 * expired token is STS's ExpiredTokenException, named in the message.
 * The answer and the error answers are XML (creds_parse.h).
 */
#include "s3/source.h"
#include "s3/creds_parse.h"
#include "s3/sigv4.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct web_identity {
	struct s3_source base;
	char *role_arn, *token_file, *session_name, *endpoint;
	char *body; /* the request's, wiped once it is answered */
	size_t body_len;
	struct http_request *req;
};

/* "&name=value" (the value form-encoded) onto b. */
static void add_param(struct strbuf *b, const char *name, const char *value)
{
	char *enc = NULL;

	if (sigv4_encode_component(value, &enc) != 0) {
		b->oom = true;
		return;
	}
	if (b->len > 0)
		strbuf_putc(b, '&');
	strbuf_puts(b, name);
	strbuf_putc(b, '=');
	strbuf_puts(b, enc);
	explicit_bzero(enc, strlen(enc));
	free(enc);
}

static void drop_body(struct web_identity *w)
{
	if (w->body != NULL) {
		explicit_bzero(w->body, w->body_len);
		free(w->body);
		w->body = NULL;
	}
}

static void on_answer(struct http_response *r, void *data)
{
	struct web_identity *w = data;
	struct s3_credentials c;
	struct s3_sts_error e;
	char why[S3_SOURCE_WHY_MAX];
	int rc;

	w->req = NULL;
	drop_body(w);
	if (r->result == -ECANCELED) {
		w->base.done(&w->base, -ECANCELED, NULL, "cancelled");
		return;
	}
	if (r->result != 0) {
		s3_source_describe(r, "AssumeRoleWithWebIdentity", why, sizeof(why));
		w->base.done(&w->base, r->result, NULL, why);
		return;
	}
	rc = s3_sts_parse(r->body, r->body_len, &c, &e, why, sizeof(why));
	if (rc == -EREMOTEIO || (rc == 0 && r->status != 200)) {
		if (rc == 0)
			s3_credentials_free(&c);
		snprintf(why, sizeof(why), "AssumeRoleWithWebIdentity %s: HTTP %ld %s%s%.200s",
			 w->role_arn, r->status, e.code[0] ? e.code : "error", e.message[0] ? ": " : "",
			 e.message);
		w->base.done(&w->base, -EACCES, NULL, why);
		return;
	}
	if (rc != 0 && r->status != 200) {
		s3_source_describe(r, "AssumeRoleWithWebIdentity", why, sizeof(why));
		rc = -EACCES;
	}
	if (rc == 0)
		snprintf(c.source, sizeof(c.source), "%s", w->base.name);
	w->base.done(&w->base, rc, rc == 0 ? &c : NULL, why);
}

static int web_identity_fetch(struct s3_source *s)
{
	struct web_identity *w = (struct web_identity *)s;
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		"Accept: text/xml", NULL};
	struct strbuf b = {0};
	struct http_request_opts o;
	char *token = NULL, url[1200];
	int rc = s3_source_read_token(w->token_file, "AWS_WEB_IDENTITY_TOKEN_FILE", &token, s->why,
				      sizeof(s->why));

	if (rc != 0)
		return rc;
	add_param(&b, "Action", "AssumeRoleWithWebIdentity");
	add_param(&b, "Version", "2011-06-15");
	add_param(&b, "RoleArn", w->role_arn);
	add_param(&b, "RoleSessionName", w->session_name);
	add_param(&b, "WebIdentityToken", token);
	s3_source_wipe_free(token);
	if (strbuf_take(&b, &w->body, &w->body_len) != 0)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s/", w->endpoint);
	memset(&o, 0, sizeof(o));
	o.method = "POST";
	o.url = url;
	o.headers = headers;
	o.body_source = HTTP_BODY_MEMORY;
	o.body = w->body;
	o.body_len = w->body_len;
	rc = s3_source_request(s, &o, S3_STS_CONNECT_TIMEOUT_MS, S3_STS_TIMEOUT_MS, on_answer, w,
			       &w->req);
	if (rc != 0)
		drop_body(w);
	return rc;
}

static void web_identity_cancel(struct s3_source *s)
{
	struct web_identity *w = (struct web_identity *)s;

	if (w->req != NULL)
		http_request_cancel(w->req);
}

static void web_identity_free(struct s3_source *s)
{
	struct web_identity *w = (struct web_identity *)s;

	drop_body(w);
	free(w->role_arn);
	free(w->token_file);
	free(w->session_name);
	free(w->endpoint);
	free(w);
}

static const struct s3_source_ops web_identity_ops = {web_identity_fetch, web_identity_cancel,
						      web_identity_free};

/* The STS endpoint: AWS_ENDPOINT_URL_STS or the region's; malloc'd, no trailing '/'. */
static char *sts_endpoint(const struct s3_source_ctx *ctx, char *why, size_t n, int *rc)
{
	const char *ep = s3_source_env("AWS_ENDPOINT_URL_STS");
	const char *region = s3_source_env("AWS_REGION");
	char *out;
	size_t len;

	*rc = -ENOMEM;
	if (ep != NULL) {
		if (strncasecmp(ep, "http://", 7) != 0 && strncasecmp(ep, "https://", 8) != 0) {
			snprintf(why, n, "AWS_ENDPOINT_URL_STS \"%.200s\" is not an http(s) URL", ep);
			*rc = -EINVAL;
			return NULL;
		}
		out = strdup(ep);
	} else {
		if (region == NULL)
			region = s3_source_env("AWS_DEFAULT_REGION");
		if (region == NULL)
			region = ctx->region != NULL && ctx->region[0] ? ctx->region : "us-east-1";
		if (strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region)) {
			snprintf(why, n, "region \"%.64s\" is not a region name", region);
			*rc = -EINVAL;
			return NULL;
		}
		out = malloc(strlen(region) + 40);
		if (out != NULL)
			sprintf(out, "https://sts.%s.amazonaws.com%s", region,
				strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	}
	if (out == NULL)
		return NULL;
	len = strlen(out);
	while (len > 0 && out[len - 1] == '/')
		out[--len] = '\0';
	*rc = 0;
	return out;
}

int s3_source_web_identity_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
			       size_t n)
{
	const char *arn = s3_source_env("AWS_ROLE_ARN");
	const char *file = s3_source_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *session = s3_source_env("AWS_ROLE_SESSION_NAME");
	struct web_identity *w;
	char default_session[64];
	int rc;

	if (arn == NULL && file == NULL) {
		snprintf(why, n, "AWS_ROLE_ARN not set");
		return 1;
	}
	if (arn == NULL || file == NULL) {
		snprintf(why, n, "%s is set but %s is not",
			 arn ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE",
			 arn ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
		return -EINVAL;
	}
	snprintf(default_session, sizeof(default_session), "litestream-%lld",
		 (long long)time(NULL));
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->endpoint = sts_endpoint(ctx, why, n, &rc);
	w->role_arn = strdup(arn);
	w->token_file = strdup(file);
	w->session_name = strdup(session != NULL ? session : default_session);
	if (w->endpoint == NULL || w->role_arn == NULL || w->token_file == NULL ||
	    w->session_name == NULL) {
		web_identity_free(&w->base);
		return rc != 0 ? rc : -ENOMEM;
	}
	w->base.ops = &web_identity_ops;
	w->base.ctx = ctx;
	snprintf(w->base.name, sizeof(w->base.name), "web identity %.120s at %.100s", w->role_arn,
		 w->endpoint);
	snprintf(w->base.label, sizeof(w->base.label), "web identity");
	*out = &w->base;
	return 0;
}
