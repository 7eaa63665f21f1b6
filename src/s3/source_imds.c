/*
 * IMDSv2, the EC2 instance metadata service (source.h), in three requests:
 *
 *   PUT /latest/api/token              X-aws-ec2-metadata-token-ttl-seconds
 *   GET /latest/meta-data/iam/security-credentials/       the role's name
 *   GET /latest/meta-data/iam/security-credentials/ROLE   its credentials
 *
 * the GETs carrying the session token as X-aws-ec2-metadata-token. A
 * server that answers the PUT with 403, 404 or 405 predates IMDSv2 (or
 * forbids it), and the GETs then go without a token, as the SDKs do. A PUT
 * that times out does not fall back: in a container behind a hop limit of
 * 1 the answer never arrives, and waiting longer would only hold up the
 * other sources (the SDKs' advice is to raise the hop limit to 2).
 *
 * Endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
 * AWS_EC2_METADATA_DISABLED=true leaves the source out. Every request
 * connects within a second and ends within three, so an instance without
 * IMDS (or a laptop) falls through fast.
 */
#include "s3/source.h"
#include "s3/creds_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_TOKEN_PATH "/latest/api/token"
#define IMDS_CREDS_PATH "/latest/meta-data/iam/security-credentials/"
#define IMDS_TOKEN_TTL "21600"
#define IMDS_ROLE_MAX 256

enum imds_step { IMDS_TOKEN, IMDS_ROLE, IMDS_CREDS };

struct imds {
	struct s3_source base;
	char *endpoint; /* no trailing '/' */
	enum imds_step step;
	char *token;    /* the session token, NULL for IMDSv1 */
	char role[IMDS_ROLE_MAX];
	struct http_request *req;
};

static void on_answer(struct http_response *r, void *data);

/* Sends the request of m's current step. 0 or -errno with why set. */
static int imds_send(struct imds *m)
{
	struct http_request_opts o;
	char url[1024], header[2048];
	const char *headers[2] = {header, NULL};

	memset(&o, 0, sizeof(o));
	if (m->step == IMDS_TOKEN) {
		o.method = "PUT";
		snprintf(url, sizeof(url), "%s%s", m->endpoint, IMDS_TOKEN_PATH);
		snprintf(header, sizeof(header), "X-aws-ec2-metadata-token-ttl-seconds: %s",
			 IMDS_TOKEN_TTL);
	} else {
		o.method = "GET";
		snprintf(url, sizeof(url), "%s%s%s", m->endpoint, IMDS_CREDS_PATH,
			 m->step == IMDS_CREDS ? m->role : "");
		if (m->token != NULL)
			snprintf(header, sizeof(header), "X-aws-ec2-metadata-token: %s", m->token);
		else
			headers[0] = NULL;
	}
	o.url = url;
	o.headers = headers;
	return s3_source_request(&m->base, &o, S3_METADATA_CONNECT_TIMEOUT_MS,
				 S3_METADATA_TIMEOUT_MS, on_answer, m, &m->req);
}

static void finish(struct imds *m, int rc, struct s3_credentials *c, const char *why)
{
	s3_source_wipe_free(m->token);
	m->token = NULL;
	m->base.done(&m->base, rc, c, why);
}

/* The step after an answer of step m->step; 1 when the fetch is over (*rc, why set). */
static int next_step(struct imds *m, const struct http_response *r, int *rc,
		     struct s3_credentials *c, char *why, size_t n)
{
	const char *path = m->step == IMDS_TOKEN  ? "PUT " IMDS_TOKEN_PATH
			   : m->step == IMDS_ROLE ? "GET " IMDS_CREDS_PATH
						  : "GET " IMDS_CREDS_PATH "ROLE";

	if (r->result == 0 && m->step == IMDS_TOKEN &&
	    (r->status == 403 || r->status == 404 || r->status == 405)) {
		m->step = IMDS_ROLE; /* IMDSv1 */
		return 0;
	}
	if (r->result != 0 || r->status != 200) {
		s3_source_describe(r, path, why, n);
		if (r->result == 0 && r->status == 404 && m->step == IMDS_ROLE)
			snprintf(why + strlen(why), n - strlen(why),
				 " (no IAM role is attached to this instance)");
		*rc = r->result != 0 ? r->result : -EACCES;
		return 1;
	}
	if (m->step == IMDS_TOKEN) {
		if (r->body == NULL || r->body_len == 0 || strpbrk(r->body, "\r\n") != NULL) {
			snprintf(why, n, "%s: the answer is not a token", path);
			*rc = -EBADMSG;
			return 1;
		}
		if ((m->token = strdup(r->body)) == NULL) {
			*rc = -ENOMEM;
			snprintf(why, n, "out of memory");
			return 1;
		}
		m->step = IMDS_ROLE;
		return 0;
	}
	if (m->step == IMDS_ROLE) {
		size_t len = r->body != NULL ? strcspn(r->body, "\r\n") : 0;

		if (len == 0 || len >= sizeof(m->role) || memchr(r->body, '/', len) != NULL ||
		    memchr(r->body, ' ', len) != NULL) {
			snprintf(why, n, "%s: the answer is not a role name", path);
			*rc = -EBADMSG;
			return 1;
		}
		snprintf(m->role, sizeof(m->role), "%.*s", (int)len, r->body);
		m->step = IMDS_CREDS;
		return 0;
	}
	*rc = s3_creds_json_parse(S3_CREDS_IMDS, r->body, r->body_len, c, why, n);
	if (*rc == 0)
		snprintf(c->source, sizeof(c->source), "%s", m->base.name);
	return 1;
}

static void on_answer(struct http_response *r, void *data)
{
	struct imds *m = data;
	struct s3_credentials c;
	char why[S3_SOURCE_WHY_MAX];
	int rc = 0;

	m->req = NULL;
	memset(&c, 0, sizeof(c));
	if (r->result == -ECANCELED) {
		finish(m, -ECANCELED, NULL, "cancelled");
		return;
	}
	if (next_step(m, r, &rc, &c, why, sizeof(why)) == 1) {
		finish(m, rc, rc == 0 ? &c : NULL, why);
		return;
	}
	if ((rc = imds_send(m)) != 0)
		finish(m, rc, NULL, m->base.why);
}

static int imds_fetch(struct s3_source *s)
{
	struct imds *m = (struct imds *)s;

	m->step = IMDS_TOKEN;
	return imds_send(m);
}

static void imds_cancel(struct s3_source *s)
{
	struct imds *m = (struct imds *)s;

	if (m->req != NULL)
		http_request_cancel(m->req);
}

static void imds_free(struct s3_source *s)
{
	struct imds *m = (struct imds *)s;

	s3_source_wipe_free(m->token);
	free(m->endpoint);
	free(m);
}

static const struct s3_source_ops imds_ops = {imds_fetch, imds_cancel, imds_free};

int s3_source_imds_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
		       size_t n)
{
	const char *off = s3_source_env("AWS_EC2_METADATA_DISABLED");
	const char *ep = s3_source_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	struct imds *m;
	size_t len;

	if (off != NULL && strcasecmp(off, "true") == 0) {
		snprintf(why, n, "AWS_EC2_METADATA_DISABLED is true");
		return 1;
	}
	if (ep == NULL)
		ep = IMDS_DEFAULT_ENDPOINT;
	if (strncasecmp(ep, "http://", 7) != 0 && strncasecmp(ep, "https://", 8) != 0) {
		snprintf(why, n, "AWS_EC2_METADATA_SERVICE_ENDPOINT \"%.200s\" is not an http:// URL",
			 ep);
		return -EINVAL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL || (m->endpoint = strdup(ep)) == NULL) {
		free(m);
		return -ENOMEM;
	}
	len = strlen(m->endpoint);
	while (len > 0 && m->endpoint[len - 1] == '/')
		m->endpoint[--len] = '\0';
	m->base.ops = &imds_ops;
	m->base.ctx = ctx;
	snprintf(m->base.name, sizeof(m->base.name), "instance metadata (IMDSv2) %.200s",
		 m->endpoint);
	snprintf(m->base.label, sizeof(m->base.label), "IMDSv2 %.140s", m->endpoint);
	*out = &m->base;
	return 0;
}
