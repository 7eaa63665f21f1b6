/*
 * S3 requests on the loop: addressing, Signature V4, a bound on requests in
 * flight, timeouts and retries. The S3 backend (backend_s3*.c) builds its
 * operations (list, put, multipart, get, delete) from these requests.
 *
 * Addressing. With an endpoint ("http(s)://host[:port][/base]") requests go
 * to it, path style (host/BUCKET/KEY) when force_path_style, virtual-host
 * style (BUCKET.host/KEY) otherwise. Without one they go to AWS over https:
 * BUCKET.s3.REGION.amazonaws.com (s3.REGION.amazonaws.com/BUCKET when path
 * style is forced, and for a bucket name with dots, which no wildcard
 * certificate covers). The region defaults to us-east-1.
 *
 * One request, many attempts. Each attempt is signed afresh (the signing
 * time moves on) and sent through http_client. An attempt that fails in a
 * way that may pass on its own is retried after a capped exponential
 * backoff with jitter, up to max_attempts in all:
 *
 *   - no response: connection refused or reset, a timeout, a garbled
 *     reply, a name that did not resolve;
 *   - HTTP 500, 502, 503, 504, 408, 429;
 *   - S3 codes SlowDown, RequestTimeout, InternalError, ServiceUnavailable
 *     (also inside a 200 body for CompleteMultipartUpload), Azure's
 *     ServerBusy and OperationTimedOut.
 *
 * The error code of an answer is its <Error><Code>, else Azure's
 * x-ms-error-code header (HEAD has no body), else one the status implies.
 *
 * Everything else (403, 404, other 4xx) is answered at once. A file sink is
 * truncated before a retry, so a retried download never holds the bytes of
 * two attempts; a ranged download (range set) writes its range again over
 * the same bytes instead, leaving the rest of the file to the other ranges.
 *
 * Timeouts, per attempt: no byte moving in either direction for longer
 * than the stall timeout (curl averages the speed over a few seconds, so a
 * very short stall timeout acts after about five); connecting for longer
 * than the stall timeout or 10 s, whichever is less; and a total of ten
 * stall timeouts plus the body's size at 32 KiB/s (uploads) or plus 30
 * minutes (downloads, whose size is not known beforehand).
 *
 * Contract (like http_client's): a request accepted by s3_client_request()
 * (0) gets its callback exactly once, from the loop and never from inside
 * an s3_client_* call; one refused (negative) never does. The request's
 * strings are copied; body buffers and file descriptors are borrowed until
 * the callback returns. Everything runs on the loop thread.
 *
 * Credentials come from a provider (provider.h): each attempt is signed
 * with what it holds at that moment, and calls wait (in the ready list,
 * holding no slot) while it fetches them. When it has none to give, the
 * calls waiting fail with its message (naming every source tried). An
 * answer that rejects the credentials (s3_creds_rejected()) is sent again,
 * once per call and at once, when the provider has newer ones or is
 * fetching them (after a renewal, a key rotated in the credentials file);
 * otherwise it is the call's answer.
 *
 * Server-side encryption (sse): a request flagged S3_REQ_NEW_OBJECT
 * (PutObject, CreateMultipartUpload) carries x-amz-server-side-encryption
 * (+ -aws-kms-key-id), x-amz-storage-class and the SSE-C headers; one
 * flagged S3_REQ_OBJECT_DATA (UploadPart, GetObject, HeadObject) carries
 * the SSE-C headers only. All are signed.
 *
 * Lifecycle: s3_client_new() ... s3_client_close(). Close cancels every
 * request (queued, backing off or on the wire: their callbacks run with
 * -ECANCELED), closes the http client and the timer, frees the client and
 * then runs the close callback; the provider is closed with it. Secrets
 * (credentials, the SSE-C key) are wiped when they are freed and never
 * appear in a message or log line.
 */
#ifndef LITESTREAM_S3_CLIENT_H
#define LITESTREAM_S3_CLIENT_H

#include "net/http_client.h"
#include "s3/credentials.h"
#include "s3/provider.h"
#include "s3/sse.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define S3_DEFAULT_REGION "us-east-1"
#define S3_DEFAULT_MAX_IN_FLIGHT 8
#define S3_DEFAULT_STALL_TIMEOUT_MS 30000
#define S3_DEFAULT_MAX_ATTEMPTS 5
#define S3_BACKOFF_BASE_MS 250
#define S3_BACKOFF_MAX_MS 4000

struct s3_client;

/*
 * Signs one attempt instead of Signature V4: sigv4_sign()'s contract, the
 * body's length in content_length (sr->body_len is 0 for a body from a
 * file). Azure Blob Storage's Shared Key and SAS (azure/shared_key.h) are
 * one; the credentials then hold what that signer says.
 */
typedef int (*s3_sign_fn)(const struct sigv4_request *sr, uint64_t content_length,
			  struct sigv4_signed **out, const char **why);

/* Headers of a request beside the ones struct s3_request names. */
#define S3_REQ_MAX_HEADERS 4

struct s3_client_config {
	const char *endpoint; /* "http(s)://host[:port][/base]", or NULL for AWS */
	const char *bucket;
	const char *region;   /* NULL or "": S3_DEFAULT_REGION */
	bool force_path_style;
	bool skip_verify;     /* do not verify the server's certificate */
	const char *ca_file;  /* PEM bundle instead of the system's CAs, or NULL */
	/* Where credentials come from: provider is taken (even when
	 * s3_client_new() fails) and closed with the client; without one, a
	 * static provider is made of creds (copied) and reload_creds. */
	struct s3_provider *provider;
	const struct s3_credentials *creds;
	const struct s3_sse *sse; /* copied; NULL: none */
	const char *log_name; /* what log lines start with ("replica s3"), or NULL */
	unsigned max_in_flight;   /* 0: S3_DEFAULT_MAX_IN_FLIGHT */
	int64_t stall_timeout_ms; /* 0: S3_DEFAULT_STALL_TIMEOUT_MS; at least 1000 */
	int max_attempts;         /* 0: S3_DEFAULT_MAX_ATTEMPTS */
	/*
	 * With creds only, optional: looks the credentials up again (a key
	 * rotated in the shared credentials file). Called when an answer
	 * rejects them, at most once per S3_CREDS_RELOAD_MIN_MS; 0 with *out
	 * filled (taken), or a negative errno (see s3_provider_new_static()).
	 */
	int (*reload_creds)(void *arg, struct s3_credentials *out);
	void *reload_arg;
	s3_sign_fn sign; /* NULL: Signature V4 for S3 */
};

enum s3_body { S3_BODY_NONE, S3_BODY_MEMORY, S3_BODY_FD };
enum s3_sink { S3_SINK_MEMORY, S3_SINK_FD };

enum s3_request_flags {
	/* A 2xx whose body is an <Error> document failed (CompleteMultipartUpload). */
	S3_REQ_ERROR_IN_BODY = 1u << 0,
	/* Creates an object: every sse header and the storage class. */
	S3_REQ_NEW_OBJECT = 1u << 1,
	/* Reads or writes an object's data: the SSE-C headers. */
	S3_REQ_OBJECT_DATA = 1u << 2,
};

/*
 * Judges a 2xx answer before it counts as a success: NULL when it is good,
 * else what is wrong with it (in buf, n bytes, or a constant). The attempt
 * then failed like a garbled reply (-EBADMSG) and is retried. It catches
 * what HTTP cannot: a body delimited by the connection's close and cut
 * short, a range that is not the one asked for.
 */
typedef const char *(*s3_check_fn)(const struct http_response *h, void *arg, char *buf, size_t n);

struct s3_request {
	const char *method;   /* GET, HEAD, PUT, POST, DELETE */
	const char *op;       /* the verb messages use ("LIST"), NULL: method */
	const char *key;      /* the object's full key; NULL for a bucket request */
	const char *label;    /* what messages call it (the key under the replica root) */
	const char *what;     /* optional note after the label: "part 2 of 7" */
	const struct sigv4_param *params;
	size_t n_params;
	const char *content_md5;  /* base64, or NULL */
	const char *content_type; /* or NULL */
	const char *range;        /* Range header ("bytes=0-1023"), or NULL */
	const struct sigv4_header *headers; /* more, signed (x-ms-blob-type), copied */
	size_t n_headers;                   /* at most S3_REQ_MAX_HEADERS */

	enum s3_body body;
	const void *body_buf;     /* S3_BODY_MEMORY: hashed here when signing */
	int body_fd;              /* S3_BODY_FD: body_len bytes from body_offset */
	int64_t body_offset;
	uint64_t body_len;
	const char *payload_hash; /* S3_BODY_FD: the hex SHA-256, computed off the loop */

	enum s3_sink sink;
	int sink_fd;              /* S3_SINK_FD: written from sink_offset */
	int64_t sink_offset;      /* S3_SINK_FD: where the body's first byte goes */
	size_t max_body;          /* S3_SINK_MEMORY cap; 0: HTTP_DEFAULT_MAX_BODY */
	unsigned flags;           /* enum s3_request_flags */
	s3_check_fn check;        /* or NULL */
	void *check_arg;          /* borrowed, like the body */
};

/* What the callback gets; valid until it returns. */
struct s3_response {
	int rc;              /* 0 for a 2xx; otherwise a negative errno (below) */
	long status;         /* HTTP status of the last attempt, 0 without one */
	const char *code;    /* S3's error code, "" when none */
	const char *message; /* rc != 0: one line naming the operation, key, status,
				code and a hint; never a secret */
	int attempts;
	/* The last attempt's response (headers, body), or NULL when no attempt
	 * got as far as being sent. The callback may take resp->body. */
	struct http_response *http;
	const struct s3_error *s3err; /* the parsed <Error>, or NULL */
};

/*
 * rc for S3 answers: -EACCES (401, 403), -ENOENT (404 but NoSuchBucket),
 * -ENXIO (NoSuchBucket, Azure's ContainerNotFound), -EINVAL (wrong region or endpoint: 301, 307,
 * AuthorizationHeaderMalformed), -EIO (anything else, 5xx once retries
 * are exhausted); for transport failures http_client's errno.
 */
typedef void (*s3_request_cb)(void *arg, const struct s3_response *r);

/* 0, or -EINVAL (bad endpoint or bucket, no credentials) / -ENOMEM with a message in err. */
int s3_client_new(uv_loop_t *loop, const struct s3_client_config *cfg, struct s3_client **out,
		  char *err, size_t errlen);

/* 0 (accepted), -ESHUTDOWN (closing), -EINVAL or -ENOMEM (refused). */
int s3_client_request(struct s3_client *c, const struct s3_request *req, s3_request_cb cb,
		      void *arg);

/* The name of the credentials' source (provider.h: never a secret), "" before one answered. */
const char *s3_client_credentials_source(const struct s3_client *c);

/* See the lifecycle above; cb may be NULL. Calling it again does nothing. */
void s3_client_close(struct s3_client *c, void (*cb)(void *arg), void *arg);

/* ---- the policy (s3/policy.c), exposed for tests ---- */

/* Whether an attempt that ended so may pass when tried again. */
bool s3_retryable(int result, long status, const char *code);

/*
 * A hint for the user about an S3 error, written to buf ("" when there is
 * none): wrong credentials, wrong region (naming the right one when the
 * answer says it: e->region or bucket_region), missing bucket, clock
 * skew, expired token, a part below the server's minimum.
 */
void s3_hint(long status, const char *code, const struct s3_error *e, const char *bucket_region,
	     const char *region, const char *bucket, char *buf, size_t n);

/* The errno for an S3 error answer (see above). */
int s3_status_errno(long status, const char *code);

/* The S3 code an answer without an <Error> body stands for (HEAD has none), or "". */
const char *s3_status_code(long status);

/* Whether an answer says the credentials are wrong or expired. */
bool s3_creds_rejected(long status, const char *code);

/* The delay before attempt `attempt` + 1 (attempt >= 1), jitter from r (0..1). */
uint64_t s3_backoff_ms(int attempt, double r);

/*
 * Parses a Content-Range header: "bytes FIRST-LAST/TOTAL" (a 206's) or a
 * 416's, which has '*' for FIRST-LAST (*first and *last are then set to
 * UINT64_MAX). 0, or -EINVAL for anything else, a '*' TOTAL included.
 */
int s3_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total);

/*
 * Splits an endpoint into scheme ("http"/"https"), authority (host[:port],
 * a default port dropped, as curl drops it from Host) and base path ("" or
 * "/base" without a trailing '/'); each malloc'd. 0, -EINVAL or -ENOMEM.
 */
int s3_endpoint_split(const char *endpoint, char **scheme, char **authority, char **base);

#endif
