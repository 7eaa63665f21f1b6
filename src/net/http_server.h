/*
 * A small HTTP/1.1 server on the loop, for the control socket and the
 * Prometheus endpoint (control.c). Requests are parsed with http-parser;
 * the owner answers each one, at once or later, with
 * http_server_respond().
 *
 * What a client can and cannot do to us:
 *
 * - Memory per connection is bounded: a fixed read buffer, the URL (at most
 *   max_url bytes), the body (at most max_body bytes, allocated only while
 *   a request with a body is read) and at most one response in flight.
 *   A connection reads nothing while its request is being answered, so
 *   pipelined requests wait in the kernel's socket buffer, not in ours,
 *   and are answered in order.
 * - The request line and headers together may not exceed max_head bytes,
 *   and the body max_body bytes (a Content-Length announcing more is
 *   refused before the body is read): 413. A URL longer than max_url: 414.
 *   An HTTP version other than 1.x: 505. Anything http-parser rejects: 400. Each error is answered with
 *   {"error": "..."} and the connection is closed.
 * - Timeouts, each on the connection's one timer: idle_ms between requests
 *   (keep-alive), request_ms from a request's first byte to its last (a
 *   client sending headers a byte a second gets 408 and is closed), and
 *   write_ms for a response to be taken by the client (else closed).
 *   While the owner works on a request, no timer of ours runs: the owner
 *   bounds its own wait.
 * - At most max_conns connections. A new connection beyond that evicts the
 *   connection that has been idle (between requests) the longest; if none
 *   is idle it is closed at once. So idle clients cannot lock others out,
 *   and slow ones hold a slot for at most request_ms.
 *
 * Nothing here blocks: every socket is non-blocking and driven by libuv.
 *
 * Ownership: struct http_server is the caller's (usually embedded) and must
 * stay put until the close callback. Connections and their handles are
 * the server's; each is freed in its last close callback. A request stays
 * valid until http_server_respond() is called on it or the abort callback
 * says it is gone (its connection was closed: only when the server
 * closes, since a connection whose request is pending is never timed out).
 */
#ifndef LITESTREAM_HTTP_SERVER_H
#define LITESTREAM_HTTP_SERVER_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_server_limits {
	size_t max_head;     /* request line and headers, bytes */
	size_t max_url;      /* the request target, bytes */
	size_t max_body;     /* request body, bytes */
	unsigned max_conns;  /* open connections */
	uint64_t idle_ms;    /* keep-alive: no request under way */
	uint64_t request_ms; /* from a request's first byte to its last */
	uint64_t write_ms;   /* for a response to leave */
};

/* 8 KiB head, 2 KiB URL, 16 KiB body, 128 connections, 30 s idle, 5 s request, 10 s write. */
extern const struct http_server_limits http_server_default_limits;

/* A parsed request; see the ownership note above. */
struct http_server_request {
	enum http_method method;
	char *target;        /* the request target as sent, NUL-terminated */
	const char *path;    /* target up to '?' (in its own copy), NUL-terminated */
	const char *query;   /* after '?', or "" */
	char *body;          /* NUL-terminated; NULL when there is none */
	size_t body_len;
	bool keep_alive;
	int listener;        /* the tag given to http_server_listen_*() */
	void *conn;          /* the server's */
};

/*
 * The incremental parser under each connection, on its own so that its
 * limits can be tested without sockets.
 */
enum http_server_feed {
	HTTP_SERVER_FEED_MORE,    /* everything consumed; no complete request yet */
	HTTP_SERVER_FEED_REQUEST, /* a request is complete (reader->req) */
	HTTP_SERVER_FEED_ERROR,   /* reader->error_status, reader->error_msg */
};

struct http_server_reader {
	http_parser parser;
	const struct http_server_limits *limits;
	bool in_message;     /* a request's first byte was seen */
	size_t head_bytes;   /* of the request line and headers, so far */
	bool headers_done;
	bool complete;
	bool expect_continue; /* "Expect: 100-continue" (valid after the head) */
	int error_status;
	const char *error_msg;
	char *target;        /* max_url + 1 bytes, owned */
	size_t target_len;
	char *path;          /* max_url + 1 bytes, owned */
	char *body;          /* max_body + 1 bytes while a body is read, owned */
	size_t body_len;
	char field[16];      /* the header name being read (only "expect" matters) */
	size_t field_len;
	bool field_expect;
	bool last_was_value;
	char value[32];
	size_t value_len;
	struct http_server_request req;
};

/* 0 or -ENOMEM. limits are borrowed. */
int http_server_reader_init(struct http_server_reader *r, const struct http_server_limits *limits);
void http_server_reader_free(struct http_server_reader *r);

/*
 * Parses up to len bytes. *used tells how many were consumed: all of them
 * for MORE; up to the end of the request for REQUEST (the rest belongs to
 * the next, pipelined, request: feed it after http_server_reader_next());
 * unspecified for ERROR, after which the reader only answers ERROR.
 */
enum http_server_feed http_server_reader_feed(struct http_server_reader *r, const char *data,
					      size_t len, size_t *used);

/* Forgets the request just returned and gets ready for the next one. */
void http_server_reader_next(struct http_server_reader *r);

/*
 * Called for each request, on the loop. It must call http_server_respond()
 * exactly once, now or later, unless abort is called first.
 */
typedef void (*http_server_handler)(struct http_server_request *req, void *arg);
/* The request's connection is being closed: forget req; do not respond. */
typedef void (*http_server_abort)(struct http_server_request *req, void *arg);

struct http_server_conn;

enum { HTTP_SERVER_MAX_LISTENERS = 2 };

struct http_server_listener {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} u;
	struct http_server *server;
	int tag;
	bool is_unix;
	bool closed;
	char *path;          /* the socket file we created, or NULL */
	uint64_t ino, dev;   /* its identity, to remove only our own file */
};

struct http_server {
	uv_loop_t *loop;
	struct http_server_limits limits;
	http_server_handler handler;
	http_server_abort abort;
	void *arg;
	struct http_server_listener listeners[HTTP_SERVER_MAX_LISTENERS];
	size_t n_listeners;
	struct http_server_conn *conns; /* doubly linked, newest first */
	unsigned n_conns;
	uint64_t rejected;   /* connections closed because of max_conns */
	uint64_t evicted;    /* idle connections closed for a new one */
	uint64_t evict_round;
	bool closing;
	int open_handles;
	void (*close_cb)(struct http_server *s);
};

/* Prepares the server; listens on nothing yet. */
void http_server_init(struct http_server *s, uv_loop_t *loop, const struct http_server_limits *limits,
		      http_server_handler handler, http_server_abort abort, void *arg);

/*
 * Listens on a Unix socket at path, created with exactly the given mode
 * (owned by the process's user). An existing socket file nobody answers
 * on (left by a dead process) is replaced; one a live process answers on,
 * or a file that is not a socket, is an error. 0 or -errno with a message
 * in err; on failure the server holds nothing more than before (a handle
 * it opened is being closed and still counts until then).
 */
int http_server_listen_unix(struct http_server *s, const char *path, int mode, int tag, char *err,
			    size_t errlen);

/*
 * Listens on TCP "host:port", "[v6]:port" or ":port" (all addresses).
 * Port 0 picks a free one; http_server_local_port() tells which.
 */
int http_server_listen_tcp(struct http_server *s, const char *addr, int tag, char *err, size_t errlen);

/* The port of the TCP listener with that tag, or -1. */
int http_server_local_port(const struct http_server *s, int tag);

/*
 * Answers req: status, a Content-Type and a body (copied). extra_headers,
 * if not NULL, are lines of "Name: value\r\n". After this, req is gone.
 */
void http_server_respond(struct http_server_request *req, int status, const char *content_type,
			 const char *extra_headers, const char *body, size_t len);

/*
 * Whether the client of a pending request went away: its connection is
 * closed or reset with nothing more to read. (A client that only shut
 * down its sending side after the request looks gone too; HTTP clients
 * do not do that.)
 */
bool http_server_request_gone(const struct http_server_request *req);

/* Closes the connection of a pending request; the abort callback runs. */
void http_server_drop(struct http_server_request *req);

/* Answers {"error": msg} with status. */
void http_server_respond_error(struct http_server_request *req, int status, const char *msg);

/* The standard reason phrase of a status code ("Not Found"). */
const char *http_server_reason(int status);

/*
 * Stops listening (removing our socket file) and closes every connection;
 * the abort callback runs for each request still pending. cb runs once
 * every handle is closed. Calling it twice does nothing the second time.
 */
void http_server_close(struct http_server *s, void (*cb)(struct http_server *s));

#endif
