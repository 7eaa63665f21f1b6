/*
 * The connections of the HTTP server: reading and parsing requests,
 * handing them to the owner, writing responses, the idle, request and
 * write timeouts, pipelining and lingering. Accepting and listening are in
 * http_server.c, parsing in http_server_reader.c, the shared types in
 * http_server_internal.h; see http_server.h for the contract.
 *
 * A connection is always in one state:
 *
 *   READING   reading and parsing; its timer is idle_ms between requests
 *             and request_ms once a request's first byte arrived;
 *   HANDLING  a complete request is with the owner; nothing is read, no
 *             timer runs; unparsed bytes that followed the request
 *             (pipelining) wait in the read buffer;
 *   WRITING   one response is being written; timer write_ms. When it is
 *             written, the connection parses what waits in the buffer
 *             and then reads again (READING), or lingers (LINGER);
 *   LINGER    after a response that ends the connection: our side is shut
 *             down and whatever the client still sends is read and
 *             dropped, for at most LINGER_MS, so that closing with unread
 *             bytes does not reset the connection before the client has
 *             read our answer (a 413 sent before a large body is read);
 *   CLOSING   uv_close() was called on both handles; freed in the last
 *             close callback.
 *
 * The read buffer is handed to libuv only while the connection is READING
 * or LINGER and holds no unparsed bytes, so the two never collide.
 */
#include "net/http_server_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define LINGER_MS 2000

/* ---- connections --------------------------------------------------------- */

static void conn_parse(struct http_server_conn *c, const char *data, size_t len);
static void conn_respond(struct http_server_conn *c, int status, const char *content_type,
			 const char *extra_headers, const char *body, size_t len, int method);

void http_server_handle_gone(struct http_server *s)
{
	if (--s->open_handles == 0 && s->closing && s->close_cb != NULL) {
		void (*cb)(struct http_server *) = s->close_cb;
		s->close_cb = NULL;
		cb(s);
	}
}

static void on_conn_closed(uv_handle_t *h)
{
	struct http_server_conn *c = h->data;
	struct http_server *s = c->server;

	if (--c->open_handles > 0)
		return;
	http_server_reader_free(&c->reader);
	free(c->wbuf);
	free(c);
	http_server_handle_gone(s);
}

void http_server_conn_close(struct http_server_conn *c)
{
	struct http_server *s = c->server;
	enum conn_state was = c->state;

	if (was == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->n_conns--;
	if (was == CONN_HANDLING && s->abort != NULL)
		s->abort(&c->reader.req, s->arg);
	uv_close(&c->u.handle, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct http_server_conn *c = h->data;

	buf->base = c->rbuf;
	buf->len = sizeof(c->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

void http_server_conn_read_start(struct http_server_conn *c)
{
	if (c->reading)
		return;
	if (uv_read_start(&c->u.stream, on_alloc, on_read) != 0) {
		http_server_conn_close(c);
		return;
	}
	c->reading = true;
}

static void read_stop(struct http_server_conn *c)
{
	if (c->reading)
		uv_read_stop(&c->u.stream);
	c->reading = false;
}

static void on_timer(uv_timer_t *t)
{
	struct http_server_conn *c = t->data;

	switch (c->state) {
	case CONN_READING:
		if (c->reader.in_message) {
			read_stop(c);
			c->close_after = true;
			conn_respond(c, 408, NULL, NULL, NULL, 0, HTTP_GET);
		} else {
			http_server_conn_close(c); /* idle */
		}
		break;
	case CONN_HANDLING:
		break; /* the owner bounds its own wait */
	default:
		http_server_conn_close(c); /* a response nobody takes, or the end of lingering */
		break;
	}
}

void http_server_conn_timer_set(struct http_server_conn *c, uint64_t ms)
{
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Back to READING after a response: parse what waited, else read more. */
static void conn_next(struct http_server_conn *c)
{
	size_t off = c->roff, len = c->rlen;

	http_server_reader_next(&c->reader);
	c->continue_sent = false;
	c->state = CONN_READING;
	c->roff = c->rlen = 0;
	c->idle_since = uv_now(c->server->loop);
	http_server_conn_timer_set(c, c->server->limits.idle_ms);
	if (len > 0) {
		/* conn_parse reads from rbuf itself; nothing reads into it meanwhile. */
		conn_parse(c, c->rbuf + off, len);
		return;
	}
	http_server_conn_read_start(c);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
	/* Nothing to do: the read side drains until EOF or the timer. */
}

static void conn_linger(struct http_server_conn *c)
{
	c->state = CONN_LINGER;
	c->roff = c->rlen = 0;
	http_server_conn_timer_set(c, LINGER_MS);
	if (uv_shutdown(&c->sreq, &c->u.stream, on_linger_shutdown) != 0) {
		http_server_conn_close(c);
		return;
	}
	http_server_conn_read_start(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct http_server_conn *c = req->data;

	free(c->wbuf);
	c->wbuf = NULL;
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		http_server_conn_close(c);
		return;
	}
	if (c->close_after || c->server->closing)
		conn_linger(c);
	else
		conn_next(c);
}

static void http_date(char *buf, size_t n)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static char *error_json(const char *msg, size_t *len)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;

	if (o != NULL && cJSON_AddStringToObject(o, "error", msg) != NULL)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	*len = s ? strlen(s) : 0;
	return s;
}

static void conn_respond(struct http_server_conn *c, int status, const char *content_type,
			 const char *extra_headers, const char *body, size_t len, int method)
{
	char head[512], date[64];
	char *ebody = NULL;
	int hn;
	size_t total;
	uv_buf_t buf;

	if (body == NULL && status >= 400) {
		ebody = error_json(http_server_reason(status), &len);
		body = ebody;
	}
	if (content_type == NULL)
		content_type = "application/json";
	if (body == NULL)
		len = 0;
	if (status >= 400 && c->reader.error_status != 0)
		c->close_after = true; /* the stream cannot be trusted after a parse error */
	if (c->server->closing)
		c->close_after = true;
	http_date(date, sizeof(date));
	hn = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Cache-Control: no-store\r\nConnection: %s\r\n",
		      status, http_server_reason(status), date, content_type, len,
		      c->close_after ? "close" : "keep-alive");
	if (hn < 0 || (size_t)hn >= sizeof(head)) {
		free(ebody);
		http_server_conn_close(c);
		return;
	}
	if (method == HTTP_HEAD)
		len = 0; /* the headers announce the body; none follows */
	total = (size_t)hn + (extra_headers ? strlen(extra_headers) : 0) + 2 + len;
	c->wbuf = malloc(total);
	if (c->wbuf == NULL) {
		free(ebody);
		http_server_conn_close(c);
		return;
	}
	memcpy(c->wbuf, head, (size_t)hn);
	total = (size_t)hn;
	if (extra_headers != NULL) {
		memcpy(c->wbuf + total, extra_headers, strlen(extra_headers));
		total += strlen(extra_headers);
	}
	memcpy(c->wbuf + total, "\r\n", 2);
	total += 2;
	if (len > 0)
		memcpy(c->wbuf + total, body, len);
	total += len;
	free(ebody);
	c->state = CONN_WRITING;
	http_server_conn_timer_set(c, c->server->limits.write_ms);
	buf = uv_buf_init(c->wbuf, (unsigned)total);
	c->wreq.data = c;
	if (uv_write(&c->wreq, &c->u.stream, &buf, 1, on_write) != 0) {
		free(c->wbuf);
		c->wbuf = NULL;
		http_server_conn_close(c);
	}
}

static void conn_error(struct http_server_conn *c, int status, const char *msg)
{
	size_t len;
	char *body = error_json(msg, &len);

	read_stop(c);
	c->close_after = true;
	conn_respond(c, status, "application/json", NULL, body, body ? len : 0, HTTP_GET);
	free(body);
}

static void conn_parse(struct http_server_conn *c, const char *data, size_t len)
{
	struct http_server *s = c->server;
	bool was_in = c->reader.in_message;
	size_t used;
	enum http_server_feed st;

	st = http_server_reader_feed(&c->reader, data, len, &used);
	if (!was_in && c->reader.in_message)
		http_server_conn_timer_set(c, s->limits.request_ms); /* the clock for the whole request starts */
	switch (st) {
	case HTTP_SERVER_FEED_MORE:
		if (c->reader.headers_done && c->reader.expect_continue && !c->continue_sent) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
			c->continue_sent = true;
			(void)uv_try_write(&c->u.stream, &b, 1); /* best effort: clients go on without it */
		}
		http_server_conn_read_start(c);
		break;
	case HTTP_SERVER_FEED_REQUEST:
		read_stop(c);
		uv_timer_stop(&c->timer);
		/* Keep the rest (pipelined requests) where it is, in rbuf. */
		c->roff = (size_t)(data + used - c->rbuf);
		c->rlen = len - used;
		c->state = CONN_HANDLING;
		c->reader.req.listener = c->listener->tag;
		c->reader.req.conn = c;
		s->handler(&c->reader.req, s->arg);
		break;
	case HTTP_SERVER_FEED_ERROR:
		conn_error(c, c->reader.error_status, c->reader.error_msg);
		break;
	}
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct http_server_conn *c = st->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		http_server_conn_close(c); /* EOF or error; a partial request is dropped */
		return;
	}
	if (c->state == CONN_LINGER)
		return; /* dropped */
	if (c->state != CONN_READING)
		return; /* cannot happen: reading stops outside READING */
	conn_parse(c, buf->base, (size_t)nread);
}

void http_server_respond(struct http_server_request *req, int status, const char *content_type,
			 const char *extra_headers, const char *body, size_t len)
{
	struct http_server_conn *c = req->conn;

	if (c == NULL || c->state != CONN_HANDLING)
		return;
	if (!req->keep_alive)
		c->close_after = true;
	conn_respond(c, status, content_type, extra_headers, body, len, (int)req->method);
}

bool http_server_request_gone(const struct http_server_request *req)
{
	struct http_server_conn *c = req->conn;
	uv_os_fd_t fd;
	char b;
	ssize_t n;

	if (c == NULL || c->state != CONN_HANDLING || uv_fileno(&c->u.handle, &fd) != 0)
		return false;
	n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void http_server_drop(struct http_server_request *req)
{
	struct http_server_conn *c = req->conn;

	if (c != NULL && c->state == CONN_HANDLING)
		http_server_conn_close(c);
}

void http_server_respond_error(struct http_server_request *req, int status, const char *msg)
{
	size_t len;
	char *body = error_json(msg, &len);

	if (body == NULL) {
		http_server_respond(req, 500, "application/json", NULL, NULL, 0);
		return;
	}
	http_server_respond(req, status, "application/json", NULL, body, len);
	free(body);
}

const char *http_server_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
	}
}
