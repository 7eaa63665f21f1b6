/*
 * libcurl's multi interface on a libuv loop; see http_client.h for the
 * contract.
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
#include "net/http_client.h"

#include "util/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Sent unless the caller's headers carry their own User-Agent. */
#define HTTP_USER_AGENT "litestream"
/* Idle connections kept for reuse. curl's default scales with the transfers
 * attached at the moment, so after a burst of parallel uploads it would
 * close all but a few, and the next burst would reconnect (and redo TLS). */
#define HTTP_MAX_IDLE_CONNECTIONS 32L

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

/* --- small helpers ------------------------------------------------------ */

static void request_fail(struct http_request *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void request_fail(struct http_request *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->local_error != 0)
		return; /* the first failure is the cause; later ones follow from it */
	r->local_error = err;
	va_start(ap, fmt);
	vsnprintf(r->local_msg, sizeof(r->local_msg), fmt, ap);
	va_end(ap);
}

static void headers_clear(struct http_request *r)
{
	for (size_t i = 0; i < r->n_hdrs; i++)
		free((void *)r->hdrs[i].name);
	r->n_hdrs = 0;
	r->hdr_bytes = 0;
}

static const char *headers_find(const struct http_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	}
	return NULL;
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
	return headers_find(resp->headers, resp->n_headers, name);
}

/* Content-Length of the response so far, or -1. */
static int64_t content_length(const struct http_request *r)
{
	const char *v = headers_find(r->hdrs, r->n_hdrs, "content-length");
	char *end;
	long long n;

	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return (int64_t)n;
}

/* --- curl callbacks for one transfer -------------------------------------- */

/*
 * One header line per call, CRLF included, not NUL-terminated. A status
 * line starts a new response (after a 100 Continue, say), so the headers
 * collected so far belong to an interim response and are dropped.
 */
static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_request *r = userdata;
	size_t n = size * nitems, len = n;
	const char *colon;
	char *line, *value, *end;

	if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		const char *p = memchr(buf, ' ', n);
		long status = 0;
		int digits = 0;

		headers_clear(r);
		/* curl has already checked the line; at most three digits. */
		for (p = p ? p + 1 : buf + n; p < buf + n && digits < 3 && *p >= '0' && *p <= '9'; p++) {
			status = status * 10 + (*p - '0');
			digits++;
		}
		r->status = status;
		return n;
	}
	while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
		len--;
	/* The blank line ending the headers, or an obsolete folded line. */
	if (len == 0 || buf[0] == ' ' || buf[0] == '\t')
		return n;
	colon = memchr(buf, ':', len);
	if (colon == NULL || colon == buf)
		return n;
	if (r->n_hdrs >= HTTP_MAX_HEADERS || r->hdr_bytes + len > HTTP_MAX_HEADER_BYTES) {
		request_fail(r, -EBADMSG, "response headers exceed %d lines or %d bytes",
			     HTTP_MAX_HEADERS, HTTP_MAX_HEADER_BYTES);
		return 0;
	}
	if (r->n_hdrs == r->hdrs_cap) {
		size_t cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
		struct http_header *h = realloc(r->hdrs, cap * sizeof(*h));

		if (h == NULL)
			goto oom;
		r->hdrs = h;
		r->hdrs_cap = cap;
	}
	line = malloc(len + 1);
	if (line == NULL)
		goto oom;
	memcpy(line, buf, len);
	line[len] = '\0';
	line[colon - buf] = '\0';
	value = line + (colon - buf) + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	end = line + len;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	r->hdrs[r->n_hdrs].name = line;
	r->hdrs[r->n_hdrs].value = value;
	r->n_hdrs++;
	r->hdr_bytes += len;
	return n;
oom:
	request_fail(r, -ENOMEM, "out of memory storing response headers");
	return 0;
}

/*
 * Appends to the in-memory body, keeping it NUL-terminated. With truncate
 * (an error body beside an fd sink) bytes beyond max are dropped; without,
 * going beyond max fails the request. The first call sizes the buffer from
 * Content-Length, and refuses at once a body announced too large.
 */
static int body_append(struct http_request *r, const char *p, size_t n, size_t max, bool truncate)
{
	struct http_response *resp = &r->resp;
	size_t need, cap;
	char *b;

	if (resp->body == NULL) {
		int64_t cl = content_length(r);

		if (cl >= 0 && (uint64_t)cl > max && !truncate) {
			request_fail(r, -EFBIG,
				     "response body of %" PRId64 " bytes exceeds the limit of %zu bytes",
				     cl, max);
			return -EFBIG;
		}
		if (cl >= 0)
			cap = ((uint64_t)cl < max ? (size_t)cl : max) + 1;
		else
			cap = (max < 4096 ? max : 4096) + 1;
		resp->body = malloc(cap);
		if (resp->body == NULL)
			goto oom;
		r->mem_cap = cap;
		resp->body_len = 0;
		resp->body[0] = '\0';
	}
	if (n > max - resp->body_len) {
		if (!truncate) {
			request_fail(r, -EFBIG, "response body exceeds the limit of %zu bytes", max);
			return -EFBIG;
		}
		n = max - resp->body_len;
	}
	need = resp->body_len + n + 1;
	if (need > r->mem_cap) {
		cap = r->mem_cap * 2 > need ? r->mem_cap * 2 : need;
		if (cap > max + 1)
			cap = max + 1;
		b = realloc(resp->body, cap);
		if (b == NULL)
			goto oom;
		resp->body = b;
		r->mem_cap = cap;
	}
	memcpy(resp->body + resp->body_len, p, n);
	resp->body_len += n;
	resp->body[resp->body_len] = '\0';
	return 0;
oom:
	request_fail(r, -ENOMEM, "out of memory holding the response body");
	return -ENOMEM;
}

static int sink_write(struct http_request *r, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (r->sink_offset >= 0)
			w = pwrite(r->sink_fd, p, n, (off_t)(r->sink_offset + (int64_t)r->sink_written));
		else
			w = write(r->sink_fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			request_fail(r, -errno, "writing the response body: %s", strerror(errno));
			r->resp.sink_failed = true;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		r->sink_written += (uint64_t)w;
	}
	return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_request *r = userdata;
	size_t n = size * nmemb;
	bool success = r->status >= 200 && r->status < 300;

	if (r->sink == HTTP_SINK_FD && success) {
		if (sink_write(r, ptr, n) != 0)
			return 0;
	} else if (r->sink == HTTP_SINK_FD) {
		if (body_append(r, ptr, n, HTTP_ERROR_BODY_MAX, true) != 0)
			return 0;
	} else if (body_append(r, ptr, n, r->max_body, false) != 0) {
		return 0;
	}
	r->resp.body_bytes += n;
	return n;
}

static size_t on_send(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_request *r = userdata;
	size_t want = size * nitems, got = 0;
	uint64_t left = r->body_len - r->body_pos;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (r->source == HTTP_BODY_MEMORY) {
		memcpy(buf, r->body + r->body_pos, want);
		r->body_pos += want;
		return want;
	}
	/* A file body is read chunk by chunk as the socket drains, so memory
	 * stays bounded whatever the size; the pages are usually cached. */
	while (got < want) {
		ssize_t n = pread(r->body_fd, buf + got, want - got,
				  (off_t)(r->body_offset + (int64_t)(r->body_pos + got)));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			request_fail(r, -errno, "reading the request body: %s", strerror(errno));
			return CURL_READFUNC_ABORT;
		}
		if (n == 0) {
			request_fail(r, -EIO,
				     "request body file ends at %" PRIu64 " of %" PRIu64 " bytes",
				     r->body_pos + got, r->body_len);
			return CURL_READFUNC_ABORT;
		}
		got += (size_t)n;
	}
	r->body_pos += got;
	return got;
}

/*
 * curl rewinds the body when it resends a request, e.g. when a kept-alive
 * connection turned out to be closed by the server; without this it would
 * fail such a request instead.
 */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
	struct http_request *r = userdata;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->body_pos = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* --- requests --------------------------------------------------------------- */

static int result_from_curl(CURLcode code, long os_errno)
{
	switch (code) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		return os_errno > 0 ? -(int)os_errno : -ECONNRESET;
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return -EPROTO;
	case CURLE_WEIRD_SERVER_REPLY:
	/* The scheme was checked up front, so this is a reply with no status
	 * line, which curl reports as HTTP/0.9. */
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING:
		return -EBADMSG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* Fills r->resp from what the transfer collected; code is curl's verdict. */
static void request_finish(struct http_request *r, CURLcode code)
{
	struct http_response *resp = &r->resp;

	resp->curl_code = (int)code;
	resp->status = r->status;
	resp->headers = r->hdrs;
	resp->n_headers = r->n_hdrs;
	resp->content_length = content_length(r);
	resp->etag = headers_find(r->hdrs, r->n_hdrs, "etag");
	resp->request_id = headers_find(r->hdrs, r->n_hdrs, "x-amz-request-id");
	if (r->local_error != 0) {
		resp->result = r->local_error;
		resp->error = r->local_msg;
	} else if (code != CURLE_OK) {
		long os_errno = 0;

		if (r->easy != NULL)
			curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
		resp->result = result_from_curl(code, os_errno);
		resp->error = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(code);
	} else {
		resp->result = 0;
		resp->error = NULL;
	}
}

/* Lets curl forget the request: its connection, buffers and fds. */
static void request_release_curl(struct http_request *r)
{
	if (r->easy != NULL) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	curl_slist_free_all(r->req_headers);
	r->req_headers = NULL;
}

static void request_free(struct http_request *r)
{
	request_release_curl(r);
	headers_clear(r);
	free(r->hdrs);
	free(r->resp.body);
	free(r);
}

/* Takes an ACTIVE request off the multi handle and the active list. */
static void request_detach(struct http_request *r)
{
	struct http_client *c = r->client;

	if (c->multi != NULL)
		curl_multi_remove_handle(c->multi, r->easy);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		c->active = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void deliver(struct http_request *r)
{
	struct http_client *c = r->client;

	r->state = REQ_DELIVERING;
	c->in_flight--;
	r->cb(&r->resp, r->data);
	request_free(r);
}

static void deliver_done(struct http_client *c)
{
	struct http_request *r;

	while ((r = c->done_head) != NULL) {
		c->done_head = r->next;
		if (c->done_head == NULL)
			c->done_tail = NULL;
		r->next = NULL;
		deliver(r);
	}
}

static void on_dispatch(uv_timer_t *t)
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
		request_detach(r);
		request_finish(r, code);
		request_release_curl(r);
		deliver(r);
	}
}

int http_request_cancel(struct http_request *r)
{
	struct http_client *c = r->client;

	if (r->state != REQ_ACTIVE)
		return -EALREADY;
	request_detach(r);
	request_finish(r, CURLE_OK);
	r->resp.result = -ECANCELED;
	r->resp.error = "request cancelled";
	request_release_curl(r);
	r->state = REQ_DONE;
	if (c->done_tail != NULL)
		c->done_tail->next = r;
	else
		c->done_head = r;
	c->done_tail = r;
	if (c->state == CLIENT_RUNNING)
		uv_timer_start(&c->dispatch, on_dispatch, 0, 0);
	return 0;
}

void http_client_cancel_all(struct http_client *c)
{
	while (c->active != NULL)
		http_request_cancel(c->active);
}

size_t http_client_in_flight(const struct http_client *c)
{
	return c->in_flight;
}

static bool has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);

	for (; headers != NULL && *headers != NULL; headers++) {
		if (strncasecmp(*headers, name, n) == 0 &&
		    ((*headers)[n] == ':' || (*headers)[n] == ';'))
			return true;
	}
	return false;
}

static int validate(const struct http_request_opts *o)
{
	if (o->method == NULL || o->method[0] == '\0' || o->url == NULL)
		return -EINVAL;
	if (strncasecmp(o->url, "http://", 7) != 0 && strncasecmp(o->url, "https://", 8) != 0)
		return -EINVAL;
	switch (o->body_source) {
	case HTTP_BODY_NONE:
		break;
	case HTTP_BODY_MEMORY:
		if (o->body == NULL && o->body_len > 0)
			return -EINVAL;
		break;
	case HTTP_BODY_FD:
		if (o->body_fd < 0 || o->body_offset < 0 || o->body_len > INT64_MAX)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	switch (o->sink) {
	case HTTP_SINK_MEMORY:
		if (o->max_body >= SIZE_MAX)
			return -EINVAL;
		break;
	case HTTP_SINK_FD:
		if (o->sink_fd < 0)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (o->timeout_ms < 0 || o->connect_timeout_ms < 0 || o->low_speed_limit < 0 ||
	    o->low_speed_time < 0)
		return -EINVAL;
	return 0;
}

/* Sets every curl option of a request; 0 or a negative errno. */
static int request_setup(struct http_request *r, const struct http_request_opts *o)
{
	CURL *e = r->easy;
	CURLcode rc = CURLE_OK;
	bool upload = o->body_source != HTTP_BODY_NONE || strcmp(o->method, "PUT") == 0 ||
		      strcmp(o->method, "POST") == 0;

/* Keeps the first failure; later calls are skipped. */
#define SET(opt, val)                                       \
	do {                                                \
		if (rc == CURLE_OK)                         \
			rc = curl_easy_setopt(e, opt, val); \
	} while (0)

	for (const char *const *h = o->headers; h != NULL && *h != NULL; h++) {
		struct curl_slist *l = curl_slist_append(r->req_headers, *h);

		if (l == NULL)
			return -ENOMEM;
		r->req_headers = l;
	}
	/* curl would otherwise add Expect: 100-continue to every PUT with a
	 * body, and wait up to a second for a server that never answers it. */
	if (!o->expect_continue && !has_header(o->headers, "Expect")) {
		struct curl_slist *l = curl_slist_append(r->req_headers, "Expect:");

		if (l == NULL)
			return -ENOMEM;
		r->req_headers = l;
	} else if (o->expect_continue && r->body_len > 0 && !has_header(o->headers, "Expect")) {
		struct curl_slist *l = curl_slist_append(r->req_headers, "Expect: 100-continue");

		if (l == NULL)
			return -ENOMEM;
		r->req_headers = l;
	}

	SET(CURLOPT_URL, o->url);
	SET(CURLOPT_PRIVATE, (void *)r);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* S3 speaks HTTP/1.1; one connection per transfer also keeps large
	 * uploads from sharing one TCP window. */
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_USERAGENT, HTTP_USER_AGENT);
	SET(CURLOPT_HTTPHEADER, r->req_headers);
	SET(CURLOPT_SHARE, r->client->share);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, (void *)r);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)r);
	SET(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
	if (o->ca_file != NULL)
		SET(CURLOPT_CAINFO, o->ca_file);
	if (o->timeout_ms > 0)
		SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
	if (o->connect_timeout_ms > 0)
		SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	if (o->low_speed_limit > 0 && o->low_speed_time > 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, o->low_speed_limit);
		SET(CURLOPT_LOW_SPEED_TIME, o->low_speed_time);
	}

	if (upload) {
		/* CURLOPT_UPLOAD sends the body from the read callback with a
		 * Content-Length; CUSTOMREQUEST only renames the method. */
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		SET(CURLOPT_READFUNCTION, on_send);
		SET(CURLOPT_READDATA, (void *)r);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, (void *)r);
		if (strcmp(o->method, "PUT") != 0)
			SET(CURLOPT_CUSTOMREQUEST, o->method);
	} else if (strcmp(o->method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (strcmp(o->method, "GET") != 0) {
		SET(CURLOPT_CUSTOMREQUEST, o->method);
	}
#undef SET

	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EINVAL;
	}
}

int http_client_request(struct http_client *c, const struct http_request_opts *opts,
			http_request_cb cb, void *data, struct http_request **out)
{
	struct http_request *r;
	int rc;

	if (c->state != CLIENT_RUNNING)
		return -ESHUTDOWN;
	if (cb == NULL)
		return -EINVAL;
	rc = validate(opts);
	if (rc != 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->client = c;
	r->cb = cb;
	r->data = data;
	r->source = opts->body_source;
	r->body = opts->body;
	r->body_fd = opts->body_fd;
	r->body_offset = opts->body_offset;
	r->body_len = opts->body_source == HTTP_BODY_NONE ? 0 : opts->body_len;
	r->sink = opts->sink;
	r->max_body = opts->max_body ? opts->max_body : HTTP_DEFAULT_MAX_BODY;
	r->sink_fd = opts->sink_fd;
	r->sink_offset = opts->sink_offset;
	r->resp.content_length = -1;

	r->easy = curl_easy_init();
	if (r->easy == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = request_setup(r, opts);
	if (rc != 0)
		goto fail;
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		rc = -ENOMEM;
		goto fail;
	}
	r->state = REQ_ACTIVE;
	r->next = c->active;
	if (c->active != NULL)
		c->active->prev = r;
	c->active = r;
	c->in_flight++;
	if (out != NULL)
		*out = r;
	return 0;
fail:
	request_free(r);
	return rc;
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
			LOG_ERROR(NULL, NULL, "http: cannot poll socket %d: %s", (int)s,
				  uv_strerror(rc));
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
		LOG_ERROR(NULL, NULL, "http: cannot poll socket %d: %s", (int)s, uv_strerror(rc));
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
