/*
 * HTTP/1.1 server on the loop; see http_server.h for the contract.
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
#include "net/http_server.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

const struct http_server_limits http_server_default_limits = {
	.max_head = 8192,
	.max_url = 2048,
	.max_body = 16384,
	.max_conns = 128,
	.idle_ms = 30000,
	.request_ms = 5000,
	.write_ms = 10000,
};

#define READ_BUF_SIZE 4096
#define LINGER_MS 2000
#define LISTEN_BACKLOG 1024

/* ---- the request parser -------------------------------------------------- */

static struct http_server_reader *reader_of(http_parser *p)
{
	return p->data;
}

static int fail(struct http_server_reader *r, int status, const char *msg)
{
	if (r->error_status == 0) {
		r->error_status = status;
		r->error_msg = msg;
	}
	return -1;
}

static int on_message_begin(http_parser *p)
{
	struct http_server_reader *r = reader_of(p);

	r->in_message = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_server_reader *r = reader_of(p);

	if (len > r->limits->max_url - r->target_len)
		return fail(r, 414, "request target too long");
	memcpy(r->target + r->target_len, at, len);
	r->target_len += len;
	r->target[r->target_len] = '\0';
	return 0;
}

/* The header just read in full: only Expect matters to us. */
static void header_done(struct http_server_reader *r)
{
	const char *v = r->value;
	size_t n = r->value_len;

	if (!r->field_expect)
		return;
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n == 12 && strncasecmp(v, "100-continue", 12) == 0)
		r->expect_continue = true;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_server_reader *r = reader_of(p);

	if (r->last_was_value) {
		header_done(r);
		r->field_len = 0;
		r->value_len = 0;
		r->last_was_value = false;
	}
	/* Keep at most the first bytes: enough to recognise "expect". */
	for (size_t i = 0; i < len && r->field_len < sizeof(r->field); i++)
		r->field[r->field_len++] = at[i];
	r->field_expect = r->field_len == 6 && strncasecmp(r->field, "expect", 6) == 0;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_server_reader *r = reader_of(p);

	r->last_was_value = true;
	if (r->field_expect)
		for (size_t i = 0; i < len && r->value_len < sizeof(r->value); i++)
			r->value[r->value_len++] = at[i];
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_server_reader *r = reader_of(p);

	if (r->last_was_value)
		header_done(r);
	r->headers_done = true;
	if (p->http_major != 1)
		return fail(r, 505, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->limits->max_body)
		return fail(r, 413, "request body too large");
	/*
	 * Stop here, so that the caller learns exactly how long the head was
	 * (http_parser_execute() returns just before its last byte, the LF).
	 */
	http_parser_pause(p, 1);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_server_reader *r = reader_of(p);

	if (len > r->limits->max_body - r->body_len)
		return fail(r, 413, "request body too large");
	if (r->body == NULL && (r->body = malloc(r->limits->max_body + 1)) == NULL)
		return fail(r, 500, "out of memory");
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_server_reader *r = reader_of(p);
	struct http_server_request *q = &r->req;
	char *qm;

	r->complete = true;
	memset(q, 0, sizeof(*q));
	q->method = (enum http_method)p->method;
	q->target = r->target;
	memcpy(r->path, r->target, r->target_len + 1);
	qm = strchr(r->path, '?');
	if (qm != NULL)
		*qm = '\0';
	q->path = r->path;
	q->query = qm ? r->target + (qm - r->path) + 1 : "";
	q->body = r->body;
	q->body_len = r->body_len;
	q->keep_alive = http_should_keep_alive(p) && !p->upgrade;
	/* Stop right after this request: the next one waits for our answer. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings reader_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

int http_server_reader_init(struct http_server_reader *r, const struct http_server_limits *limits)
{
	memset(r, 0, sizeof(*r));
	r->limits = limits;
	r->target = malloc(limits->max_url + 1);
	r->path = malloc(limits->max_url + 1);
	if (r->target == NULL || r->path == NULL) {
		http_server_reader_free(r);
		return -ENOMEM;
	}
	r->target[0] = r->path[0] = '\0';
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	return 0;
}

void http_server_reader_free(struct http_server_reader *r)
{
	free(r->target);
	free(r->path);
	free(r->body);
	r->target = r->path = r->body = NULL;
}

void http_server_reader_next(struct http_server_reader *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	r->target_len = 0;
	r->target[0] = '\0';
	r->in_message = r->headers_done = r->complete = r->expect_continue = false;
	r->head_bytes = 0;
	r->field_len = r->value_len = 0;
	r->field_expect = r->last_was_value = false;
	memset(&r->req, 0, sizeof(r->req));
	http_parser_pause(&r->parser, 0);
}

enum http_server_feed http_server_reader_feed(struct http_server_reader *r, const char *data,
					      size_t len, size_t *used)
{
	*used = 0;
	if (r->error_status != 0)
		return HTTP_SERVER_FEED_ERROR;
	if (r->complete)
		return HTTP_SERVER_FEED_REQUEST; /* http_server_reader_next() first */
	while (*used < len) { /* never zero bytes: that would mean end of stream to the parser */
		bool in_head = !r->headers_done;
		size_t n = http_parser_execute(&r->parser, &reader_settings, data + *used, len - *used);
		enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);

		*used += n;
		if (in_head) {
			/* All n bytes were head: execution stops at the end of the head. */
			r->head_bytes += n + (r->headers_done ? 1 : 0);
			if (r->head_bytes > r->limits->max_head)
				fail(r, 413, "request headers too large");
		}
		if (r->error_status != 0)
			return HTTP_SERVER_FEED_ERROR;
		if (r->complete)
			return HTTP_SERVER_FEED_REQUEST;
		if (e == HPE_PAUSED) { /* the end of the head: go on with the body */
			http_parser_pause(&r->parser, 0);
			continue;
		}
		if (e == HPE_HEADER_OVERFLOW) {
			fail(r, 413, "request headers too large");
			return HTTP_SERVER_FEED_ERROR;
		}
		if (e != HPE_OK) {
			fail(r, 400, http_errno_description(e));
			return HTTP_SERVER_FEED_ERROR;
		}
		if (n == 0) { /* an upgrade, or a parser that stopped for its own reasons */
			fail(r, 400, "malformed request");
			return HTTP_SERVER_FEED_ERROR;
		}
	}
	return HTTP_SERVER_FEED_MORE;
}

/* ---- connections --------------------------------------------------------- */

enum conn_state { CONN_READING, CONN_HANDLING, CONN_WRITING, CONN_LINGER, CONN_CLOSING };

struct http_server_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} u;
	uv_timer_t timer;
	struct http_server *server;
	struct http_server_listener *listener;
	struct http_server_conn *prev, *next;
	enum conn_state state;
	struct http_server_reader reader;
	bool reading;
	bool close_after;     /* end the connection once the response is out */
	bool continue_sent;
	uint64_t idle_since;  /* uv_now() when it last became idle */
	uint64_t checked_round; /* oldest_idle() saw unread bytes in this round */
	int open_handles;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	char *wbuf;
	size_t roff, rlen;    /* unparsed bytes waiting in rbuf */
	char rbuf[READ_BUF_SIZE];
};

static void conn_close(struct http_server_conn *c);
static void conn_parse(struct http_server_conn *c, const char *data, size_t len);
static void conn_respond(struct http_server_conn *c, int status, const char *content_type,
			 const char *extra_headers, const char *body, size_t len, int method);

static void server_handle_gone(struct http_server *s)
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
	server_handle_gone(s);
}

static void conn_close(struct http_server_conn *c)
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

static void read_start(struct http_server_conn *c)
{
	if (c->reading)
		return;
	if (uv_read_start(&c->u.stream, on_alloc, on_read) != 0) {
		conn_close(c);
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
			conn_close(c); /* idle */
		}
		break;
	case CONN_HANDLING:
		break; /* the owner bounds its own wait */
	default:
		conn_close(c); /* a response nobody takes, or the end of lingering */
		break;
	}
}

static void timer_set(struct http_server_conn *c, uint64_t ms)
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
	timer_set(c, c->server->limits.idle_ms);
	if (len > 0) {
		/* conn_parse reads from rbuf itself; nothing reads into it meanwhile. */
		conn_parse(c, c->rbuf + off, len);
		return;
	}
	read_start(c);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
	/* Nothing to do: the read side drains until EOF or the timer. */
}

static void conn_linger(struct http_server_conn *c)
{
	c->state = CONN_LINGER;
	c->roff = c->rlen = 0;
	timer_set(c, LINGER_MS);
	if (uv_shutdown(&c->sreq, &c->u.stream, on_linger_shutdown) != 0) {
		conn_close(c);
		return;
	}
	read_start(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct http_server_conn *c = req->data;

	free(c->wbuf);
	c->wbuf = NULL;
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
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
		conn_close(c);
		return;
	}
	if (method == HTTP_HEAD)
		len = 0; /* the headers announce the body; none follows */
	total = (size_t)hn + (extra_headers ? strlen(extra_headers) : 0) + 2 + len;
	c->wbuf = malloc(total);
	if (c->wbuf == NULL) {
		free(ebody);
		conn_close(c);
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
	timer_set(c, c->server->limits.write_ms);
	buf = uv_buf_init(c->wbuf, (unsigned)total);
	c->wreq.data = c;
	if (uv_write(&c->wreq, &c->u.stream, &buf, 1, on_write) != 0) {
		free(c->wbuf);
		c->wbuf = NULL;
		conn_close(c);
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
		timer_set(c, s->limits.request_ms); /* the clock for the whole request starts */
	switch (st) {
	case HTTP_SERVER_FEED_MORE:
		if (c->reader.headers_done && c->reader.expect_continue && !c->continue_sent) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
			c->continue_sent = true;
			(void)uv_try_write(&c->u.stream, &b, 1); /* best effort: clients go on without it */
		}
		read_start(c);
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
		conn_close(c); /* EOF or error; a partial request is dropped */
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
		conn_close(c);
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

/* ---- accepting ----------------------------------------------------------- */

static void on_rejected_closed(uv_handle_t *h)
{
	free(h);
}

static int stream_init(struct http_server_listener *l, uv_stream_t *st)
{
	if (l->is_unix)
		return uv_pipe_init(l->server->loop, (uv_pipe_t *)st, 0);
	return uv_tcp_init(l->server->loop, (uv_tcp_t *)st);
}

/* Accepts the pending connection only to close it at once. */
static void reject(struct http_server_listener *l)
{
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} *h = malloc(sizeof(*h));

	if (h == NULL)
		return; /* stays in the backlog; accepted later */
	if (stream_init(l, (uv_stream_t *)h) != 0) {
		free(h);
		return;
	}
	(void)uv_accept(&l->u.stream, (uv_stream_t *)h);
	uv_close((uv_handle_t *)h, on_rejected_closed);
}

/* Bytes the client sent that we have not read yet: a request about to start. */
static bool has_unread_bytes(struct http_server_conn *c)
{
	uv_os_fd_t fd;
	int n = 0;

	return uv_fileno(&c->u.handle, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/*
 * The connection idle for the longest time, or NULL. One whose request
 * has arrived but not been read yet is not idle: a few candidates are
 * checked for that, so a burst of new connections does not drop a client
 * whose request was simply not read yet.
 */
static struct http_server_conn *oldest_idle(struct http_server *s)
{
	s->evict_round++;
	for (int tries = 0; tries < 8; tries++) {
		struct http_server_conn *best = NULL;
		for (struct http_server_conn *c = s->conns; c != NULL; c = c->next)
			if (c->state == CONN_READING && !c->reader.in_message && c->rlen == 0 &&
			    c->checked_round != s->evict_round &&
			    (best == NULL || c->idle_since <= best->idle_since))
				best = c;
		if (best == NULL || !has_unread_bytes(best))
			return best;
		best->checked_round = s->evict_round;
	}
	return NULL;
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct http_server_listener *l = ls->data;
	struct http_server *s = l->server;
	struct http_server_conn *c;

	if (status < 0 || s->closing)
		return;
	if (s->n_conns >= s->limits.max_conns) {
		struct http_server_conn *victim = oldest_idle(s);
		if (victim == NULL) {
			s->rejected++;
			reject(l);
			return;
		}
		s->evicted++;
		conn_close(victim);
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		reject(l);
		return;
	}
	if (http_server_reader_init(&c->reader, &s->limits) != 0) {
		free(c);
		reject(l);
		return;
	}
	if (stream_init(l, &c->u.stream) != 0) {
		http_server_reader_free(&c->reader);
		free(c);
		reject(l);
		return;
	}
	c->u.handle.data = c;
	c->server = s;
	c->listener = l;
	c->open_handles = 2;
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	s->open_handles++;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	c->state = CONN_READING;
	if (uv_accept(ls, &c->u.stream) != 0) {
		conn_close(c);
		return;
	}
	c->idle_since = uv_now(s->loop);
	timer_set(c, s->limits.idle_ms);
	read_start(c);
}

/* ---- listening ----------------------------------------------------------- */

void http_server_init(struct http_server *s, uv_loop_t *loop, const struct http_server_limits *limits,
		      http_server_handler handler, http_server_abort abort, void *arg)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->limits = limits ? *limits : http_server_default_limits;
	s->handler = handler;
	s->abort = abort;
	s->arg = arg;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct http_server_listener *l = h->data;

	server_handle_gone(l->server);
}

/* Closes a listener (removing its socket file if it is still ours). */
static void listener_drop(struct http_server_listener *l)
{
	struct stat st;

	if (l->closed)
		return;
	l->closed = true;
	if (l->path != NULL && stat(l->path, &st) == 0 && (uint64_t)st.st_ino == l->ino &&
	    (uint64_t)st.st_dev == l->dev)
		unlink(l->path); /* ours still: another process may have replaced it since */
	free(l->path);
	l->path = NULL;
	uv_close(&l->u.handle, on_listener_closed);
}

/*
 * Is someone answering on the socket at path? 0 when nobody does (a stale
 * file), -EADDRINUSE when a process does, another -errno if we cannot tell.
 */
static int probe_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN ||
	    errno == EINPROGRESS)
		rc = -EADDRINUSE;
	else if (errno != ECONNREFUSED)
		rc = -errno;
	close(fd);
	return rc;
}

int http_server_listen_unix(struct http_server *s, const char *path, int mode, int tag, char *err,
			    size_t errlen)
{
	struct http_server_listener *l;
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int rc;

	if (s->n_listeners >= HTTP_SERVER_MAX_LISTENERS)
		return -ENOSPC;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long (at most %zu bytes)", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket", path);
			return -EEXIST;
		}
		rc = probe_unix(path);
		if (rc == -EADDRINUSE) {
			snprintf(err, errlen, "%s: another process is listening on this socket", path);
			return rc;
		}
		if (rc != 0) {
			snprintf(err, errlen, "%s: cannot tell whether the socket is in use: %s", path,
				 strerror(-rc));
			return rc;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot remove the stale socket: %s", path, strerror(errno));
			return rc;
		}
	}
	l = &s->listeners[s->n_listeners];
	memset(l, 0, sizeof(*l));
	l->server = s;
	l->tag = tag;
	l->is_unix = true;
	if ((rc = uv_pipe_init(s->loop, &l->u.pipe, 0)) != 0) {
		snprintf(err, errlen, "%s: %s", path, uv_strerror(rc));
		return rc;
	}
	l->u.handle.data = l;
	s->n_listeners++;
	s->open_handles++;
	/* Created with the mode at once (no moment with looser permissions), then made exact. */
	old = umask((mode_t)(~mode & 0777));
	rc = uv_pipe_bind(&l->u.pipe, path);
	umask(old);
	if (rc == 0 && chmod(path, (mode_t)mode) != 0)
		rc = -errno;
	if (rc == 0 && stat(path, &st) == 0) {
		l->path = strdup(path);
		l->ino = (uint64_t)st.st_ino;
		l->dev = (uint64_t)st.st_dev;
	}
	if (rc == 0)
		rc = uv_listen(&l->u.stream, LISTEN_BACKLOG, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", path, uv_strerror(rc));
		listener_drop(l);
		return rc;
	}
	return 0;
}

static int parse_hostport(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[256];
	const char *colon, *port_s;
	char *end;
	long port;
	size_t hl;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - addr - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, addr + 1, hl);
		port_s = rb + 2;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - addr);
		if (hl >= sizeof(host) || memchr(addr, ':', hl) != NULL)
			goto bad;
		memcpy(host, addr, hl);
		port_s = colon + 1;
	}
	host[hl] = '\0';
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (*port_s == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535)
		goto bad;
	memset(ss, 0, sizeof(*ss));
	if (hl == 0)
		return uv_ip4_addr("0.0.0.0", (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : -EINVAL;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	snprintf(err, errlen, "%s: the host must be an IP address or localhost", addr);
	return -EINVAL;
bad:
	snprintf(err, errlen, "%s: expected HOST:PORT, [IPV6]:PORT or :PORT", addr);
	return -EINVAL;
}

int http_server_listen_tcp(struct http_server *s, const char *addr, int tag, char *err, size_t errlen)
{
	struct http_server_listener *l;
	struct sockaddr_storage ss;
	int rc;

	if (s->n_listeners >= HTTP_SERVER_MAX_LISTENERS)
		return -ENOSPC;
	if ((rc = parse_hostport(addr, &ss, err, errlen)) != 0)
		return rc;
	l = &s->listeners[s->n_listeners];
	memset(l, 0, sizeof(*l));
	l->server = s;
	l->tag = tag;
	if ((rc = uv_tcp_init(s->loop, &l->u.tcp)) != 0) {
		snprintf(err, errlen, "%s: %s", addr, uv_strerror(rc));
		return rc;
	}
	l->u.handle.data = l;
	s->n_listeners++;
	s->open_handles++;
	rc = uv_tcp_bind(&l->u.tcp, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen(&l->u.stream, LISTEN_BACKLOG, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", addr, uv_strerror(rc));
		listener_drop(l);
		return rc;
	}
	return 0;
}

int http_server_local_port(const struct http_server *s, int tag)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		const struct http_server_listener *l = &s->listeners[i];
		struct sockaddr_storage ss;
		int n = sizeof(ss);

		if (l->tag != tag || l->is_unix || l->closed)
			continue;
		if (uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &n) != 0)
			return -1;
		if (ss.ss_family == AF_INET)
			return ntohs(((struct sockaddr_in *)&ss)->sin_port);
		if (ss.ss_family == AF_INET6)
			return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		return -1;
	}
	return -1;
}

void http_server_close(struct http_server *s, void (*cb)(struct http_server *s))
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	/* Counts as a handle until the end of this function, so cb runs once, last. */
	s->open_handles++;
	for (size_t i = 0; i < s->n_listeners; i++)
		listener_drop(&s->listeners[i]);
	while (s->conns != NULL)
		conn_close(s->conns);
	server_handle_gone(s);
}
