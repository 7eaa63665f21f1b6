/*
 * What client.c and client_call.c share; not part of client.h's contract.
 *
 *   client.c       the client: its lists and timer, the bound on calls in
 *                  flight, what a finished attempt leads to (answer, reload
 *                  the credentials, retry), closing, s3_client_new.
 *   client_call.c  one call: copying the request, signing and sending an
 *                  attempt, answering and freeing it.
 *
 * Everything here runs on the client's loop thread. Who owns what:
 *
 *   struct s3_client  the http client (one curl multi handle for this
 *                     replica), one timer, the credentials provider, the
 *                     server-side encryption settings, and
 *                     four lists of calls: ready (waiting for a slot under
 *                     max_in_flight, FIFO), sending (on the wire), waiting
 *                     (backing off until due_ms) and cancelled (closing).
 *   struct s3_call    one accepted request: its own copy of every string of
 *                     the request, the attempt count, the http request on
 *                     the wire. Freed right after its callback returns.
 */
#ifndef LITESTREAM_S3_CLIENT_INTERNAL_H
#define LITESTREAM_S3_CLIENT_INTERNAL_H

#include "s3/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_CLIENT_MESSAGE_MAX 1024

enum client_state { CLIENT_RUNNING, CLIENT_CLOSING };

struct call_list {
	struct s3_call *head, *tail;
};

struct s3_call {
	struct s3_client *c;
	struct s3_call *prev, *next;
	struct s3_request req; /* every string points into this call's copies */
	struct sigv4_param *params;
	struct sigv4_header headers[S3_REQ_MAX_HEADERS];
	int attempts;
	uint64_t due_ms;   /* waiting: loop time of the next attempt */
	uint64_t sent_ms;  /* loop time the current attempt started */
	unsigned creds_gen; /* the provider's generation the attempt was signed with */
	bool creds_retried; /* sent again once already after a rejection */
	struct http_request *http;
	s3_request_cb cb;
	void *arg;
};

struct s3_client {
	uv_loop_t *loop;
	struct http_client *http;      /* the loop's shared one (http_client_shared()) */
	bool release_pending;          /* closing: release http once in_flight is 0 */
	uv_timer_t timer;
	enum client_state state;
	char *scheme, *authority, *base, *bucket, *region, *ca_file, *log_name;
	bool path_style, insecure;
	struct s3_provider *provider; /* owned */
	struct s3_sse sse;
	unsigned max_in_flight, in_flight;
	int max_attempts;
	int64_t stall_ms;
	s3_sign_fn sign; /* NULL: sigv4_sign */
	struct call_list ready, sending, waiting, cancelled;
	uint64_t rng;
	int closing_parts;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* A copy of req for c (every string duplicated), or NULL when out of memory. */
struct s3_call *s3_call_new(struct s3_client *c, const struct s3_request *req);

/* Frees k and its copies; k must be on no list and have no http request. */
void s3_call_free(struct s3_call *k);

/* "PUT generations/x/wal/y (part 2 of 7)" into buf (n bytes). */
void s3_call_title(const struct s3_call *k, char *buf, size_t n);

/* Answers k with resp (its attempts filled in) and frees k. */
void s3_call_finish(struct s3_call *k, struct s3_response *resp);

/* Answers k with rc and "TITLE: why" (strerror(-rc) when why is NULL), frees k. */
void s3_call_fail(struct s3_call *k, int rc, const char *why);

/*
 * Signs and sends k's next attempt with creds (generation gen);
 * s3_client_on_http_done is called when it ends. 0, or a negative errno
 * with *why set (NULL when there is nothing to add to strerror).
 */
int s3_call_send(struct s3_call *k, const struct s3_credentials *creds, unsigned gen,
		 const char **why);

/* The end of an attempt (client.c): answer, retry or reload credentials. */
void s3_client_on_http_done(struct http_response *hr, void *data);

#endif
