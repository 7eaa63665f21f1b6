/*
 * HTTP client on the loop: one libcurl multi handle driven by libuv, so that
 * many requests are in flight at once and none blocks the loop (DESIGN.md,
 * rule 7). The S3 backend is its user.
 *
 * How curl is driven: curl tells us which sockets to watch for what
 * (CURLMOPT_SOCKETFUNCTION, one uv_poll per socket) and when it next wants
 * to run its timeouts (CURLMOPT_TIMERFUNCTION, one uv_timer). Every event
 * is handed back with curl_multi_socket_action() and every such call is
 * followed by a drain of curl_multi_info_read(), so a transfer finished on
 * any path (socket or timer) is reported at once.
 *
 * Contract:
 *
 * - Everything runs on the loop thread; no function here may be called from
 *   another thread.
 * - A request that http_client_request() accepted (returned 0) gets its
 *   completion callback exactly once, always from the loop and never from
 *   inside an http_client_* call: when it finishes, fails, is cancelled or
 *   its client is closed. Until that callback returns, the request keeps
 *   using what the caller lent it (a body buffer, file descriptors).
 * - A request refused by http_client_request() (negative return) never gets
 *   a callback and has touched nothing.
 * - Request bodies from a file are streamed in chunks with pread(), never
 *   loaded whole; response bodies go to memory under a hard cap or are
 *   streamed to a file descriptor.
 * - Connections are kept alive and reused through the multi handle's
 *   connection cache. HTTP/1.1 only.
 * - TLS peers are verified unless a request says insecure.
 *
 * Lifecycle: http_client_new() ... http_client_close(). Close cancels every
 * request (their callbacks run with -ECANCELED), calls curl_multi_cleanup()
 * and uv_close()s every handle; the client's memory is freed, and the
 * optional close callback runs, once the loop has run the last close
 * callback. After that the loop holds nothing of the client, so
 * uv_loop_close() can return 0.
 */
#ifndef LITESTREAM_HTTP_CLIENT_H
#define LITESTREAM_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* A memory sink with max_body == 0 holds at most this much. */
#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)
/* With an fd sink, a non-2xx body (S3's error XML) goes to memory instead,
 * truncated to this many bytes, so an error document never lands in the
 * caller's file. */
#define HTTP_ERROR_BODY_MAX (64 * 1024)
/* Limits on what a server may send as response headers. */
#define HTTP_MAX_HEADERS 128
#define HTTP_MAX_HEADER_BYTES (64 * 1024)

struct http_client;
struct http_request;

enum http_body_source {
	HTTP_BODY_NONE,   /* no body (a PUT or POST still sends Content-Length: 0) */
	HTTP_BODY_MEMORY, /* body[0 .. body_len) */
	HTTP_BODY_FD,     /* body_len bytes of body_fd from body_offset, by pread() */
};

enum http_body_sink {
	HTTP_SINK_MEMORY, /* into http_response.body, at most max_body bytes */
	HTTP_SINK_FD,     /* a 2xx body to sink_fd; any other body to memory */
};

/*
 * What to send. Zero-initialise and fill in; zero means "default" or "off"
 * for every number. Strings and the header lines are copied by
 * http_client_request(); the body buffer and the file descriptors are
 * borrowed until the completion callback returns.
 */
struct http_request_opts {
	const char *method;          /* "GET", "HEAD", "PUT", "POST", "DELETE", ... */
	const char *url;             /* http:// or https://; checked further by curl */
	const char *const *headers;  /* NULL-terminated "Name: value" lines, or NULL */

	enum http_body_source body_source;
	const void *body;            /* HTTP_BODY_MEMORY */
	int body_fd;                 /* HTTP_BODY_FD */
	int64_t body_offset;         /* HTTP_BODY_FD: where in body_fd the body starts */
	uint64_t body_len;           /* bytes to send: becomes Content-Length */

	enum http_body_sink sink;
	size_t max_body;             /* HTTP_SINK_MEMORY: cap, 0 = HTTP_DEFAULT_MAX_BODY */
	int sink_fd;                 /* HTTP_SINK_FD */
	int64_t sink_offset;         /* HTTP_SINK_FD: pwrite() from here; < 0: write() */

	long timeout_ms;             /* whole request; 0 = no limit */
	long connect_timeout_ms;     /* 0 = curl's default (300 s) */
	long low_speed_limit;        /* bytes per second ... */
	long low_speed_time;         /* ... for this many seconds fails it; 0 = off */

	const char *ca_file;         /* PEM bundle to verify the server; NULL = system */
	bool insecure;               /* do not verify the server's certificate or name */
	bool expect_continue;        /* send Expect: 100-continue with a body */
};

struct http_header {
	const char *name;  /* as the server spelled it */
	const char *value; /* surrounding whitespace removed */
};

/*
 * What came back, handed to the completion callback; valid until it
 * returns.
 *
 * result is 0 when a whole HTTP response was received (whatever its
 * status: 404 and 503 are results for the caller to judge), or a negative
 * errno saying why there is no usable response:
 *
 *   -ECONNREFUSED, -ENETUNREACH, ...  could not connect (curl's OS errno)
 *   -ECONNRESET, -EPIPE             connection broken while sending or
 *                                   receiving, or closed without a reply
 *   -ETIMEDOUT                      timeout_ms, connect_timeout_ms or the
 *                                   low-speed limit was hit
 *   -EHOSTUNREACH                   the host name did not resolve
 *   -EPROTO                         TLS: handshake or certificate failed
 *   -EBADMSG                        the server's reply was not valid HTTP
 *   -EFBIG                          the body exceeded max_body
 *   -EIO or another -errno          reading the body file or writing sink_fd
 *                                   failed (or the file was shorter than
 *                                   body_len)
 *   -ECANCELED                      cancelled, or the client was closed
 *   -EINVAL, -ENOMEM                malformed URL, out of memory
 *
 * error is then a one-line message (curl's own wording for transport
 * failures) and curl_code the CURLcode (0 when curl was not at fault).
 * status, headers and body may still hold what arrived before a failure.
 */
struct http_response {
	int result;
	int curl_code;
	const char *error;        /* NULL when result == 0 */
	long status;              /* final HTTP status, 0 if none arrived */

	/* Memory sink (or a non-2xx body with an fd sink): NUL-terminated, the
	 * NUL not counted; NULL when no body came. The callback may take it:
	 * set body to NULL and free() it later. */
	char *body;
	size_t body_len;
	uint64_t body_bytes;      /* body bytes received, wherever they went */

	/* Headers of the final response (those of a 100 Continue are dropped). */
	const struct http_header *headers;
	size_t n_headers;
	int64_t content_length;   /* Content-Length, -1 when absent */
	bool sink_failed;         /* result is writing to sink_fd failing (a full disk) */
	const char *etag;         /* ETag as sent (quotes included), or NULL */
	const char *request_id;   /* x-amz-request-id, or NULL */
};

typedef void (*http_request_cb)(struct http_response *resp, void *data);
typedef void (*http_client_close_cb)(void *data);

/*
 * Creates a client on loop. 0, or -ENOMEM (*out untouched, nothing
 * registered with the loop).
 */
int http_client_new(uv_loop_t *loop, struct http_client **out);

/*
 * Starts a request; cb(resp, data) runs when it ends (see above). *out
 * (when out is not NULL) identifies the request for http_request_cancel()
 * and stays valid until cb returns. Returns 0, -EINVAL for bad options (a
 * scheme other than http or https among them), -ENOMEM, or -ESHUTDOWN once
 * the client is closing.
 */
int http_client_request(struct http_client *c, const struct http_request_opts *opts,
			http_request_cb cb, void *data, struct http_request **out);

/*
 * Stops a request at once: curl lets go of its connection, its body buffer
 * and its file descriptors before this returns. Its callback runs later
 * from the loop with -ECANCELED. Returns 0, or -EALREADY when the request
 * had already finished (its callback is due or running; it then reports
 * how it ended).
 */
int http_request_cancel(struct http_request *r);

/* http_request_cancel() on every request in flight. */
void http_client_cancel_all(struct http_client *c);

/* Requests accepted whose callback has not started yet. */
size_t http_client_in_flight(const struct http_client *c);

/*
 * Cancels everything and releases curl and every libuv handle; see the
 * lifecycle above. cb (may be NULL) runs last: after every request
 * callback, once the client's memory is freed. Calling it again while
 * closing does nothing. Safe to call from a completion callback.
 */
void http_client_close(struct http_client *c, http_client_close_cb cb, void *data);

/*
 * The loop's shared client (http_client_shared.c): the first call makes
 * it, later ones take a reference. Its users cancel their own requests
 * (http_request_cancel()) and, once their callbacks have run, release
 * their reference with http_client_release(): cb runs at once while
 * others hold it, or when the last one's release has closed it. 0 or
 * -ENOMEM.
 */
int http_client_shared(uv_loop_t *loop, struct http_client **out);
void http_client_release(struct http_client *c, http_client_close_cb cb, void *data);

/* The value of the first header called name (any case), or NULL. */
const char *http_response_header(const struct http_response *resp, const char *name);

#endif
