/*
 * One call of the S3 client (see client_internal.h): the copy of its
 * request, each attempt signed and handed to the http client, its answer.
 *
 * An attempt is signed just before it is sent, with the credentials the
 * client holds at that moment (the generation is kept in the call so that a
 * rejection can tell whether newer ones came since). Every string the
 * attempt needs (host, path, URL, header lines) is built here and freed once
 * the http client has taken its own copies.
 */
#include "s3/client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UPLOAD_RATE_FLOOR (32 * 1024)     /* bytes/s an upload is given at least */
#define RECEIVE_ALLOWANCE_MS (30 * 60 * 1000)
#define EXPECT_CONTINUE_MIN (1024 * 1024) /* ask first before sending this much */
#define CONNECT_TIMEOUT_MAX_MS 10000

/* ---- the call ---- */

void s3_call_free(struct s3_call *k)
{
	free((char *)k->req.method);
	free((char *)k->req.op);
	free((char *)k->req.key);
	free((char *)k->req.label);
	free((char *)k->req.what);
	free((char *)k->req.content_md5);
	free((char *)k->req.content_type);
	free((char *)k->req.range);
	free((char *)k->req.payload_hash);
	for (size_t i = 0; i < k->req.n_headers; i++) {
		free((char *)k->headers[i].name);
		free((char *)k->headers[i].value);
	}
	for (size_t i = 0; i < k->req.n_params; i++) {
		free((char *)k->params[i].name);
		free((char *)k->params[i].value);
	}
	free(k->params);
	free(k);
}

static bool dup_opt(const char *in, const char **out)
{
	if (in == NULL) {
		*out = NULL;
		return true;
	}
	*out = strdup(in);
	return *out != NULL;
}

struct s3_call *s3_call_new(struct s3_client *c, const struct s3_request *req)
{
	struct s3_call *k = calloc(1, sizeof(*k));
	bool ok;

	if (k == NULL)
		return NULL;
	k->c = c;
	k->req = *req;
	k->req.n_params = 0;
	k->req.params = NULL;
	k->req.n_headers = 0;
	k->req.headers = k->headers;
	ok = dup_opt(req->method, &k->req.method) && dup_opt(req->op, &k->req.op) &&
	     dup_opt(req->key, &k->req.key) && dup_opt(req->label, &k->req.label) &&
	     dup_opt(req->what, &k->req.what) && dup_opt(req->content_md5, &k->req.content_md5) &&
	     dup_opt(req->content_type, &k->req.content_type) &&
	     dup_opt(req->range, &k->req.range) && dup_opt(req->payload_hash, &k->req.payload_hash);
	if (ok && req->n_params > 0) {
		k->params = calloc(req->n_params, sizeof(*k->params));
		ok = k->params != NULL;
		for (size_t i = 0; ok && i < req->n_params; i++) {
			ok = dup_opt(req->params[i].name, &k->params[i].name) &&
			     dup_opt(req->params[i].value, &k->params[i].value);
			k->req.n_params = i + 1;
		}
		k->req.params = k->params;
	}
	for (size_t i = 0; ok && i < req->n_headers; i++) {
		ok = dup_opt(req->headers[i].name, &k->headers[i].name) &&
		     dup_opt(req->headers[i].value, &k->headers[i].value);
		k->req.n_headers = i + 1;
	}
	if (!ok) {
		s3_call_free(k);
		return NULL;
	}
	return k;
}

/* "PUT generations/x/wal/y (part 2 of 7)" */
void s3_call_title(const struct s3_call *k, char *buf, size_t n)
{
	const struct s3_request *r = &k->req;

	snprintf(buf, n, "%s %s%s%s%s", r->op ? r->op : r->method,
			r->label ? r->label : (r->key ? r->key : "/"), r->what ? " (" : "",
			r->what ? r->what : "", r->what ? ")" : "");
}

/* Answers k and frees it; the slot it held (if any) was released before. */
void s3_call_finish(struct s3_call *k, struct s3_response *resp)
{
	resp->attempts = k->attempts;
	k->cb(k->arg, resp);
	s3_call_free(k);
}

void s3_call_fail(struct s3_call *k, int rc, const char *why)
{
	struct s3_response resp = {0};
	char title[S3_CLIENT_MESSAGE_MAX], msg[S3_CLIENT_MESSAGE_MAX];

	s3_call_title(k, title, sizeof(title));
	snprintf(msg, sizeof(msg), "%s: %s", title, why ? why : strerror(-rc));
	resp.rc = rc;
	resp.code = "";
	resp.message = msg;
	s3_call_finish(k, &resp);
}

/* ---- an attempt ---- */

static char *build_path(const struct s3_client *c, const char *key)
{
	size_t n = strlen(c->base) + strlen(c->bucket) + (key ? strlen(key) : 0) + 4;
	char *p = malloc(n);

	if (p == NULL)
		return NULL;
	if (c->path_style)
		snprintf(p, n, "%s/%s%s%s", c->base, c->bucket, key ? "/" : "", key ? key : "");
	else
		snprintf(p, n, "%s/%s", c->base, key ? key : "");
	return p;
}

static long total_timeout_ms(const struct s3_client *c, const struct s3_call *k)
{
	int64_t t = 10 * c->stall_ms;

	if (k->req.body != S3_BODY_NONE)
		t += (int64_t)(k->req.body_len * 1000 / UPLOAD_RATE_FLOOR);
	if (k->req.sink == S3_SINK_FD)
		t += RECEIVE_ALLOWANCE_MS;
	return t > 0x7fffffff ? 0x7fffffff : (long)t;
}

/*
 * The body, the sink and the limits of k's next attempt: everything of o
 * but the method, URL and headers. 0, or -errno with why set.
 */
static int attempt_opts(const struct s3_call *k, struct http_request_opts *o, const char **why)
{
	const struct s3_client *c = k->c;
	const struct s3_request *r = &k->req;

	switch (r->body) {
	case S3_BODY_NONE:
		o->body_source = HTTP_BODY_NONE;
		break;
	case S3_BODY_MEMORY:
		o->body_source = HTTP_BODY_MEMORY;
		o->body = r->body_buf;
		o->body_len = r->body_len;
		break;
	case S3_BODY_FD:
		o->body_source = HTTP_BODY_FD;
		o->body_fd = r->body_fd;
		o->body_offset = r->body_offset;
		o->body_len = r->body_len;
		break;
	}
	if (r->sink == S3_SINK_FD) {
		o->sink = HTTP_SINK_FD;
		o->sink_fd = r->sink_fd;
		o->sink_offset = r->sink_offset;
		/* A retry starts the file over: no bytes of the failed attempt stay.
		 * A range is written again over itself; the rest is another's. */
		if (k->attempts > 1 && r->range == NULL && ftruncate(r->sink_fd, r->sink_offset) != 0) {
			int rc = -errno;

			*why = "cannot truncate the download file";
			return rc;
		}
	} else {
		o->sink = HTTP_SINK_MEMORY;
		o->max_body = r->max_body;
	}
	o->timeout_ms = total_timeout_ms(c, k);
	/* Connecting gets less: a blackholed endpoint should not hold a
	 * shutdown's last flush for minutes. */
	o->connect_timeout_ms = (long)(c->stall_ms < CONNECT_TIMEOUT_MAX_MS ? c->stall_ms
									  : CONNECT_TIMEOUT_MAX_MS);
	o->low_speed_limit = 1;
	o->low_speed_time = (long)(c->stall_ms / 1000 > 0 ? c->stall_ms / 1000 : 1);
	o->ca_file = c->ca_file;
	o->insecure = c->insecure;
	o->expect_continue = r->body != S3_BODY_NONE && r->body_len >= EXPECT_CONTINUE_MIN;
	return 0;
}

/* The Host of c's requests: the authority, or "bucket.authority". */
static char *call_host(const struct s3_client *c)
{
	char *host;

	if (c->path_style) {
		host = strdup(c->authority);
	} else if ((host = malloc(strlen(c->bucket) + strlen(c->authority) + 2)) != NULL) {
		sprintf(host, "%s.%s", c->bucket, c->authority);
	}
	return host;
}

/* Signs k's attempt with creds (generation gen) into *sig. */
static int call_sign(struct s3_call *k, const struct s3_credentials *creds, unsigned gen,
		     const char *host, const char *path, const struct sigv4_header *sh, size_t n_sh,
		     struct sigv4_signed **sig, const char **why)
{
	struct s3_client *c = k->c;
	const struct s3_request *r = &k->req;
	struct sigv4_request sr;

	memset(&sr, 0, sizeof(sr));
	sr.method = r->method;
	sr.host = host;
	sr.path = path;
	sr.params = r->params;
	sr.n_params = r->n_params;
	sr.headers = sh;
	sr.n_headers = n_sh;
	sr.payload_hash = r->body == S3_BODY_FD ? r->payload_hash : NULL;
	sr.body = r->body == S3_BODY_MEMORY ? r->body_buf : NULL;
	sr.body_len = r->body == S3_BODY_MEMORY ? (size_t)r->body_len : 0;
	sr.region = c->region;
	sr.service = "s3";
	sr.access_key_id = creds->access_key_id;
	sr.secret_key = creds->secret_access_key;
	sr.session_token = creds->session_token;
	k->creds_gen = gen;
	sr.time = time(NULL);
	if (c->sign != NULL)
		return c->sign(&sr, r->body != S3_BODY_NONE ? r->body_len : 0, sig, why);
	return sigv4_sign(&sr, sig, why);
}

/*
 * "Name: value" lines of the caller's headers sh then the signer's, into
 * lines; *n_lines counts the lines to free, set on failure too.
 */
static int call_header_lines(const struct sigv4_header *sh, size_t n_sh,
			     const struct sigv4_signed *sig, char **lines, size_t *n_lines)
{
	for (size_t i = 0; i < n_sh + sig->n_added; i++) {
		const struct sigv4_header *h = i < n_sh ? &sh[i] : &sig->added[i - n_sh];

		lines[*n_lines] = malloc(strlen(h->name) + strlen(h->value) + 3);
		if (lines[*n_lines] == NULL)
			return -ENOMEM;
		sprintf(lines[(*n_lines)++], "%s: %s", h->name, h->value);
	}
	return 0;
}

int s3_call_send(struct s3_call *k, const struct s3_credentials *creds, unsigned gen,
		 const char **why)
{
	struct s3_client *c = k->c;
	const struct s3_request *r = &k->req;
	struct sigv4_header sh[3 + S3_REQ_MAX_HEADERS + S3_SSE_MAX_HEADERS];
	struct sigv4_signed *sig = NULL;
	struct http_request_opts o;
	char *path = build_path(c, r->key), *host = call_host(c), *url = NULL;
	char *lines[3 + S3_REQ_MAX_HEADERS + S3_SSE_MAX_HEADERS + SIGV4_MAX_ADDED + 1] = {0};
	size_t n_sh = 0, n_lines = 0;
	int rc;

	if (path == NULL || host == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (r->content_md5 != NULL)
		sh[n_sh++] = (struct sigv4_header){"Content-MD5", r->content_md5};
	if (r->content_type != NULL)
		sh[n_sh++] = (struct sigv4_header){"Content-Type", r->content_type};
	if (r->range != NULL)
		sh[n_sh++] = (struct sigv4_header){"Range", r->range};
	for (size_t i = 0; i < r->n_headers; i++)
		sh[n_sh++] = r->headers[i];
	n_sh += s3_sse_headers(&c->sse, r->flags & S3_REQ_NEW_OBJECT, r->flags & S3_REQ_OBJECT_DATA,
			       sh + n_sh);
	rc = call_sign(k, creds, gen, host, path, sh, n_sh, &sig, why);
	if (rc != 0)
		goto out;
	url = malloc(strlen(c->scheme) + strlen(host) + strlen(sig->target) + 4);
	if (url == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	sprintf(url, "%s://%s%s", c->scheme, host, sig->target);
	rc = call_header_lines(sh, n_sh, sig, lines, &n_lines);
	if (rc != 0)
		goto out;
	memset(&o, 0, sizeof(o));
	o.method = r->method;
	o.url = url;
	o.headers = (const char *const *)lines;
	rc = attempt_opts(k, &o, why);
	if (rc != 0)
		goto out;
	rc = http_client_request(c->http, &o, s3_client_on_http_done, k, &k->http);
	if (rc != 0)
		*why = NULL;
	else
		k->sent_ms = uv_now(c->loop);
out:
	/* The lines hold the session token and the SSE-C key. */
	for (size_t i = 0; i < n_lines; i++) {
		explicit_bzero(lines[i], strlen(lines[i]));
		free(lines[i]);
	}
	free(url);
	sigv4_signed_free(sig);
	free(path);
	free(host);
	return rc;
}
