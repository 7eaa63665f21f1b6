/*
 * The dynamic sources of credentials behind the provider (provider.h):
 * one table of operations, one file per source.
 *
 *   source_web_identity.c  STS AssumeRoleWithWebIdentity with a token file
 *   source_process.c       credential_process of the AWS config file
 *   source_container.c     the container credentials endpoint
 *   source_imds.c          IMDSv2, the EC2 instance metadata service
 *   source.c               what they share: a token file, a request with
 *                          short timeouts, a message for an answer
 *
 * Each *_new() reads the environment (and the config file) once: 0 with
 * a source when it is configured; 1 when it is not (why says what is
 * missing, for the message that names every source tried); -EINVAL when
 * it is configured wrongly (why says what to fix); -ENOMEM.
 *
 * A fetch: fetch() returns 0 and the source calls done() exactly once,
 * from the loop and never from inside fetch(), with 0 and credentials
 * that done() takes, or a negative errno and a one-line reason (never a
 * secret). Or fetch() returns a negative errno with the reason in
 * s->why, and done() is not called. cancel() makes a fetch in flight end
 * soon, done() still called (with -ECANCELED). free() only without a
 * fetch in flight. Everything runs on the loop thread; HTTP goes through
 * the provider's http_client, which outlives every fetch.
 */
#ifndef LITESTREAM_S3_SOURCE_H
#define LITESTREAM_S3_SOURCE_H

#include "net/http_client.h"
#include "s3/credentials.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define S3_SOURCE_WHY_MAX 512

/* A metadata endpoint (container, IMDS) must answer quickly or not at all. */
#define S3_METADATA_CONNECT_TIMEOUT_MS 1000
#define S3_METADATA_TIMEOUT_MS 3000
/* STS and its identity provider may take longer. */
#define S3_STS_CONNECT_TIMEOUT_MS 3000
#define S3_STS_TIMEOUT_MS 10000
/* A token file or an Authorization token is at most this long. */
#define S3_TOKEN_FILE_MAX (16 * 1024)

struct s3_source;

/* What every source gets from the provider; borrowed for the source's life. */
struct s3_source_ctx {
	uv_loop_t *loop;
	struct http_client *http;
	const char *region; /* the replica's, for STS when AWS_REGION is unset */
	const char *log_name;
};

typedef void (*s3_source_done_fn)(struct s3_source *s, int rc, struct s3_credentials *creds,
				  const char *why);

struct s3_source_ops {
	int (*fetch)(struct s3_source *s);
	void (*cancel)(struct s3_source *s);
	void (*free)(struct s3_source *s);
};

struct s3_source {
	const struct s3_source_ops *ops;
	const struct s3_source_ctx *ctx;
	char name[256];      /* for logs and status: "container endpoint http://..." */
	char label[160];     /* short, for the list of every source tried: "IMDSv2 http://..." */
	s3_source_done_fn done; /* set by the provider */
	void *owner;
	char why[S3_SOURCE_WHY_MAX];
};

int s3_source_web_identity_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
			       size_t n);
int s3_source_process_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
			  size_t n);
int s3_source_container_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
			    size_t n);
int s3_source_imds_new(const struct s3_source_ctx *ctx, struct s3_source **out, char *why,
		       size_t n);

/* ---- source.c ---- */

/* getenv() that counts "" as unset (NULL). */
const char *s3_source_env(const char *name);

/*
 * Reads a token file (at most S3_TOKEN_FILE_MAX bytes, surrounding white
 * space dropped) into *out (malloc'd, wiped by the caller). 0, or a
 * negative errno with why naming the file ("empty", "too large", strerror).
 */
int s3_source_read_token(const char *path, const char *what, char **out, char *why, size_t n);

/*
 * Starts an HTTP request with a memory sink and the given timeouts; cb
 * runs as http_client's does. 0 or the refusal's errno (why set).
 */
int s3_source_request(struct s3_source *s, const struct http_request_opts *o, long connect_ms,
		      long total_ms, http_request_cb cb, void *data, struct http_request **out);

/*
 * A one-line account of an answer that brought no credentials: the
 * transport error, or "STATUS" plus what the body says (a JSON code and
 * message, or its first line when it is short text), prefixed by what.
 */
void s3_source_describe(const struct http_response *r, const char *what, char *buf, size_t n);

/* Wipes and frees a string (NULL is fine). */
void s3_source_wipe_free(char *s);

#endif
