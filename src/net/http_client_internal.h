/*
 * Internal to the HTTP client: the types and functions its three files
 * share. Nothing outside src/net/http_client*.c includes this.
 *
 *   http_client.c           the client: curl multi on the libuv loop
 *                           (socket and timer callbacks, reading finished
 *                           transfers with curl_multi_info_read(), closing)
 *   http_client_request.c   request objects: checking and building a
 *                           request, completion, cancellation, delivery
 *   http_client_transfer.c  curl callbacks of one transfer: response
 *                           headers and body (with their caps), request
 *                           body
 *
 * Contract: everything runs on the loop thread. The client owns its
 * requests from http_client_request() until their callback has returned;
 * see http_client.c for the states of both. The functions below return
 * nothing or the curl callback values their names say; none of them runs a
 * user callback except http_request_deliver() (and, through it,
 * http_client_on_dispatch()).
 */
#ifndef LITESTREAM_HTTP_CLIENT_INTERNAL_H
#define LITESTREAM_HTTP_CLIENT_INTERNAL_H

#include "net/http_client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum client_state { CLIENT_RUNNING, CLIENT_CLOSING };

enum request_state { REQ_ACTIVE, REQ_DONE, REQ_DELIVERING };

struct sock_ctx {
	uv_poll_t poll;
	struct http_client *client;
	curl_socket_t fd;
	int events; /* UV_READABLE / UV_WRITABLE being watched */
	struct sock_ctx *prev, *next;
};

struct http_client {
	uv_loop_t *loop;
	CURLM *multi;
	CURLSH *share;
	uv_timer_t timer;    /* curl's next timeout */
	uv_timer_t dispatch; /* callbacks of cancelled requests */
	enum client_state state;
	struct sock_ctx *socks;       /* polls not yet closing */
	struct http_request *active;  /* attached to multi */
	struct http_request *done_head, *done_tail;
	size_t in_flight;
	unsigned closing_handles; /* uv_close() called, close callback not yet run */
	http_client_close_cb close_cb;
	void *close_data;
};

struct http_request {
	struct http_client *client;
	CURL *easy;
	struct curl_slist *req_headers;
	enum request_state state;
	struct http_request *prev, *next;
	http_request_cb cb;
	void *data;

	enum http_body_source source;
	const uint8_t *body;
	int body_fd;
	int64_t body_offset;
	uint64_t body_len;
	uint64_t body_pos;

	enum http_body_sink sink;
	size_t max_body;
	int sink_fd;
	int64_t sink_offset;
	uint64_t sink_written;
	size_t mem_cap; /* allocated bytes of resp.body, the NUL included */

	long status;
	struct http_header *hdrs;
	size_t n_hdrs, hdrs_cap, hdr_bytes;

	/* Set by our curl callbacks when they abort a transfer; wins over the
	 * CURLcode, which then only says "a callback refused". */
	int local_error;
	char local_msg[160];
	char errbuf[CURL_ERROR_SIZE];

	struct http_response resp;
};

/* --- http_client_transfer.c: the curl callbacks of one transfer ---------- */

/* CURLOPT_HEADERFUNCTION: one response header line per call. */
size_t http_request_on_header(char *buf, size_t size, size_t nitems, void *userdata);
/* CURLOPT_WRITEFUNCTION: response body bytes, to memory or the sink fd. */
size_t http_request_on_body(char *ptr, size_t size, size_t nmemb, void *userdata);
/* CURLOPT_READFUNCTION: the request body, from memory or a file. */
size_t http_request_on_send(char *buf, size_t size, size_t nitems, void *userdata);
/* CURLOPT_SEEKFUNCTION: rewinds the request body for a resend. */
int http_request_on_seek(void *userdata, curl_off_t offset, int origin);
/* Frees the response headers collected so far. */
void http_request_headers_clear(struct http_request *r);
/* The value of header name (case-insensitive) among h[0..n), or NULL. */
const char *http_headers_find(const struct http_header *h, size_t n, const char *name);
/* Content-Length of the response so far, or -1. */
int64_t http_request_content_length(const struct http_request *r);

/* --- http_client_request.c: request objects ------------------------------ */

/* Fills r->resp from what the transfer collected; code is curl's verdict. */
void http_request_finish(struct http_request *r, CURLcode code);
/* Lets curl forget the request: its easy handle and header list. */
void http_request_release_curl(struct http_request *r);
/* Takes an ACTIVE request off the multi handle and the active list. */
void http_request_detach(struct http_request *r);
/* Runs the request's callback, then frees the request. */
void http_request_deliver(struct http_request *r);

/* --- http_client.c: the client ------------------------------------------- */

/* The dispatch timer's callback: delivers the queued cancelled requests. */
void http_client_on_dispatch(uv_timer_t *t);

#endif
