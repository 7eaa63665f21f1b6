/*
 * libcurl's multi interface on a libuv loop; see http_client.h for the
 * contract. This file is the glue between the two (curl's socket and timer
 * callbacks, finished transfers, closing the client); the request objects
 * are in http_client_request.c, the callbacks of one transfer in
 * http_client_transfer.c, the shared types in http_client_internal.h.
 *
 * Who owns what:
 *
 *   struct http_client   the multi handle, a share handle (TLS sessions),
 *                        two timers (curl's timeout, and "dispatch", which
 *                        delivers the callbacks of cancelled requests from
 *                        the loop rather than from inside the cancelling
 *                        call), the list of polled sockets, the list of
 *                        requests attached to the multi handle and the
 *                        FIFO of cancelled requests whose callback is due.
 *   struct sock_ctx      one uv_poll per socket curl asked us to watch,
 *                        found again through curl_multi_assign(). It is
 *                        uv_close()d when curl says CURL_POLL_REMOVE, which
 *                        curl does before it closes the socket: the epoll
 *                        registration must go while the fd number still
 *                        names that socket, or a later socket reusing the
 *                        number would be unregistered by mistake.
 *   struct http_request  one easy handle, the copied header list, the
 *                        response being collected. Freed right after its
 *                        callback returns.
 *
 * Request states: ACTIVE (attached to the multi handle) -> DONE (detached,
 * callback queued; only cancelled requests wait here) -> DELIVERING
 * (callback running, then freed). A request that curl finishes goes from
 * ACTIVE straight to DELIVERING.
 *
 * Client states: RUNNING -> CLOSING. Closing cancels every request,
 * uv_close()s every poll while curl still has its sockets open, calls
 * curl_multi_cleanup() (curl's socket and timer callbacks are ignored from
 * then on), closes both timers, and counts close callbacks; when the last
 * one has run the queued request callbacks are delivered and the client
 * is freed.
 *
 * Re-entrancy: user callbacks never run inside a curl callback, only from
 * check_multi_info() and deliver_done(), both called straight from libuv
 * callbacks. A user callback may start requests, cancel them, or close the
 * client; check_multi_info() re-checks the client state before each
 * curl_multi_info_read() because a close in a callback has already freed
 * the multi handle.
 */
#include "net/http_client_internal.h"

#include "util/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>

/* Idle connections kept for reuse. curl's default scales with the transfers
 * attached at the moment, so after a burst of parallel uploads it would
 * close all but a few, and the next burst would reconnect (and redo TLS). */
#define HTTP_MAX_IDLE_CONNECTIONS 32L

static void deliver_done(struct http_client *c)
{
	struct http_request *r;

	while ((r = c->done_head) != NULL) {
		c->done_head = r->next;
		if (c->done_head == NULL)
			c->done_tail = NULL;
		r->next = NULL;
		http_request_deliver(r);
	}
}

void http_client_on_dispatch(uv_timer_t *t)
{
	deliver_done(t->data);
}

/* Reads every finished transfer; called after each curl_multi_socket_action(). */
static void check_multi_info(struct http_client *c)
{
	CURLMsg *msg;
	int left;

	while (c->state == CLIENT_RUNNING && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode code = msg->data.result;
		char *priv = NULL;
		struct http_request *r;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid once the handle is removed: everything needed
		 * was copied out above. */
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		r = (struct http_request *)(void *)priv;
		http_request_detach(r);
		http_request_finish(r, code);
		http_request_release_curl(r);
		http_request_deliver(r);
	}
}


/* --- sockets and timers -------------------------------------------------- */

static void maybe_finish(struct http_client *c);

static void on_sock_closed(uv_handle_t *h)
{
	struct sock_ctx *ctx = h->data;
	struct http_client *c = ctx->client;

	free(ctx);
	c->closing_handles--;
	maybe_finish(c);
}

static void sock_close(struct sock_ctx *ctx)
{
	struct http_client *c = ctx->client;

	if (ctx->prev != NULL)
		ctx->prev->next = ctx->next;
	else
		c->socks = ctx->next;
	if (ctx->next != NULL)
		ctx->next->prev = ctx->prev;
	ctx->prev = ctx->next = NULL;
	c->closing_handles++;
	uv_close((uv_handle_t *)&ctx->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock_ctx *ctx = h->data;
	struct http_client *c = ctx->client;
	int flags = 0, running;

	if (status < 0) {
		/* libuv stops the poll on an error. Also flag the directions
		 * being watched so curl goes on to read or write and reports
		 * the real errno (connection reset, refused) rather than a
		 * bare "poll error". */
		flags = CURL_CSELECT_ERR;
		events = ctx->events;
	}
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, ctx->fd, flags, &running);
	check_multi_info(c);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct sock_ctx *ctx = socketp;
	int events = 0, rc;

	if (what == CURL_POLL_REMOVE) {
		if (ctx != NULL && !uv_is_closing((uv_handle_t *)&ctx->poll)) {
			sock_close(ctx);
			curl_multi_assign(c->multi, s, NULL);
		}
		return 0;
	}
	/* During curl_multi_cleanup() nothing new is watched. */
	if (c->state != CLIENT_RUNNING)
		return 0;
	if (ctx == NULL) {
		ctx = calloc(1, sizeof(*ctx));
		if (ctx == NULL)
			return -1;
		rc = uv_poll_init_socket(c->loop, &ctx->poll, s);
		if (rc != 0) {
			LOG_ERROR_ERR(NULL, NULL, uv_strerror(rc), "http: cannot poll socket %d", (int)s);
			free(ctx);
			return -1;
		}
		ctx->poll.data = ctx;
		ctx->client = c;
		ctx->fd = s;
		ctx->next = c->socks;
		if (c->socks != NULL)
			c->socks->prev = ctx;
		c->socks = ctx;
		curl_multi_assign(c->multi, s, ctx);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	ctx->events = events;
	rc = events ? uv_poll_start(&ctx->poll, events, on_poll) : uv_poll_stop(&ctx->poll);
	if (rc != 0) {
		LOG_ERROR_ERR(NULL, NULL, uv_strerror(rc), "http: cannot poll socket %d", (int)s);
		return -1;
	}
	return 0;
}

static void on_timer(uv_timer_t *t)
{
	struct http_client *c = t->data;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	/* A transfer can end here (a timeout, or one that completed while
	 * curl ran its timers): read it now, not at the next socket event. */
	check_multi_info(c);
}

/*
 * curl asks to be called back after timeout_ms. 0 means "as soon as
 * possible, but not from inside this callback": a zero libuv timer runs on
 * the next loop iteration.
 */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;

	if (c->state != CLIENT_RUNNING)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* --- the client ------------------------------------------------------------- */

int http_client_new(uv_loop_t *loop, struct http_client **out)
{
	struct http_client *c;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	c->loop = loop;
	c->multi = curl_multi_init();
	c->share = curl_share_init();
	if (c->multi == NULL || c->share == NULL)
		goto fail;
	/* One thread only: no lock callbacks are needed. */
	if (curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		goto fail;
	if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, HTTP_MAX_IDLE_CONNECTIONS) != CURLM_OK)
		goto fail;
	/* Last, so that no failure above leaves a handle on the loop. */
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->dispatch);
	c->timer.data = c;
	c->dispatch.data = c;
	c->state = CLIENT_RUNNING;
	*out = c;
	return 0;
fail:
	if (c != NULL) {
		if (c->multi != NULL)
			curl_multi_cleanup(c->multi);
		if (c->share != NULL)
			curl_share_cleanup(c->share);
		free(c);
	}
	curl_global_cleanup();
	return -ENOMEM;
}

static void maybe_finish(struct http_client *c)
{
	http_client_close_cb cb;
	void *data;

	if (c->state != CLIENT_CLOSING || c->closing_handles > 0)
		return;
	deliver_done(c);
	/* Every easy handle is gone, so the share handle is no longer in use. */
	curl_share_cleanup(c->share);
	cb = c->close_cb;
	data = c->close_data;
	free(c);
	curl_global_cleanup();
	if (cb != NULL)
		cb(data);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct http_client *c = h->data;

	c->closing_handles--;
	maybe_finish(c);
}

void http_client_close(struct http_client *c, http_client_close_cb cb, void *data)
{
	if (c->state != CLIENT_RUNNING)
		return;
	c->close_cb = cb;
	c->close_data = data;
	http_client_cancel_all(c);
	c->state = CLIENT_CLOSING;
	/* Connections left in curl's cache still have polls, and
	 * curl_multi_cleanup() is about to close their fds: close the polls
	 * while the fds are open, and unassign them so that curl's
	 * CURL_POLL_REMOVE during cleanup finds nothing to do. */
	while (c->socks != NULL) {
		curl_socket_t fd = c->socks->fd;

		sock_close(c->socks);
		curl_multi_assign(c->multi, fd, NULL);
	}
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	c->closing_handles += 2;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	uv_close((uv_handle_t *)&c->dispatch, on_timer_closed);
}
