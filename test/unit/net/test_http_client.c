/*
 * The HTTP client against a real HTTP/1.1 server on 127.0.0.1, written
 * here on the same libuv loop (uv_tcp), so each test runs one loop with
 * both ends and ends with uv_loop_close() == 0: every handle of the
 * client and of the server was closed.
 *
 * The server records what it saw (connections, request line, body,
 * Content-Length, chosen headers) and answers by path:
 *
 *   /hello            13-byte body, ETag, x-amz-request-id, X-Custom-Thing
 *   /bytes/N          N bytes of pattern(i), with Content-Length
 *   /chunked/N        the same, chunked (no Content-Length)
 *   /slow/MS/TAG      "slow TAG" after MS milliseconds
 *   /status/404       an S3-style error document
 *   /stall            never answers
 *   /stall-body       headers for 100000 bytes, 100 bytes, then nothing
 *   /close            answers with Connection: close and closes
 *   /reset            resets the connection (RST) instead of answering
 *   /hangup           closes the connection without answering
 *   /hangup-once      the first time as /hangup, then as "anything else"
 *   /many-headers     200 with more header lines than the client keeps
 *   /garbage          a reply that is not HTTP
 *   anything else     200 with an empty body (PUT/POST targets)
 *
 * A TLS ClientHello gets a plain-text 400, so https:// to this server
 * fails fast with a TLS error.
 *
 * Callbacks never assert (a cmocka failure longjmps, which would leave
 * libuv mid-callback); they record, and the test body asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "net/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_SEEN 64
#define RUN_TIMEOUT_MS 10000

/* --- the server --------------------------------------------------------------- */

struct seen_req {
	char method[16];
	char path[256];
	char *body;
	size_t body_len;
	long content_length; /* -1 when the header was absent */
	bool expect;         /* Expect: 100-continue */
	char x_test[64];     /* X-Test header */
	int conn_id;
};

struct server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	int port;
	int connections;    /* accepted */
	int closed_by_peer; /* connections the client closed */
	int n_seen;
	struct seen_req seen[MAX_SEEN];
	bool hung_up_once;
	struct conn *conns;
	bool closing;
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t delay;
	uv_shutdown_t shutdown;
	struct server *s;
	int id;
	char *buf;
	size_t len, cap;
	bool sent_continue;
	bool busy; /* stalling or delaying: parse nothing more */
	bool closing;
	int open_handles;
	char slow_tag[32];
	struct conn *prev, *next;
};

struct wreq {
	uv_write_t req;
	char data[];
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i % 251);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *cn = h->data;

	if (--cn->open_handles == 0) {
		free(cn->buf);
		free(cn);
	}
}

static void conn_close(struct conn *cn, bool reset)
{
	struct server *s = cn->s;

	if (cn->closing)
		return;
	cn->closing = true;
	if (cn->prev != NULL)
		cn->prev->next = cn->next;
	else
		s->conns = cn->next;
	if (cn->next != NULL)
		cn->next->prev = cn->prev;
	if (reset)
		uv_tcp_close_reset(&cn->tcp, on_conn_handle_closed);
	else
		uv_close((uv_handle_t *)&cn->tcp, on_conn_handle_closed);
	uv_close((uv_handle_t *)&cn->delay, on_conn_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
	free(req);
}

static void conn_send(struct conn *cn, const void *data, size_t len)
{
	struct wreq *w;
	uv_buf_t b;

	if (cn->closing || len == 0)
		return;
	w = malloc(sizeof(*w) + len);
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&cn->tcp, &b, 1, on_written) != 0)
		free(w);
}

static void respond(struct conn *cn, const char *method, int code, const char *reason,
		    const char *extra, const void *body, size_t len)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", code,
			 reason, len);

	conn_send(cn, line, (size_t)n);
	if (extra != NULL)
		conn_send(cn, extra, strlen(extra));
	conn_send(cn, "\r\n", 2);
	if (strcmp(method, "HEAD") != 0)
		conn_send(cn, body, len);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	conn_close(req->data, false);
}

static void on_delay(uv_timer_t *t)
{
	struct conn *cn = t->data;
	char body[64];
	int n = snprintf(body, sizeof(body), "slow %s", cn->slow_tag);

	respond(cn, "GET", 200, "OK", NULL, body, (size_t)n);
	cn->busy = false;
}

static void route(struct conn *cn, const struct seen_req *q)
{
	const char *p = q->path;
	size_t n;

	if (strcmp(p, "/hello") == 0) {
		respond(cn, q->method, 200, "OK",
			"ETag: \"0123abcd\"\r\nx-amz-request-id: TX0001\r\n"
			"X-Custom-Thing:   spaced value  \r\n",
			"hello, world\n", 13);
	} else if (sscanf(p, "/bytes/%zu", &n) == 1) {
		uint8_t *b = malloc(n + 1);

		for (size_t i = 0; i < n; i++)
			b[i] = pattern(i);
		respond(cn, q->method, 200, "OK", NULL, b, n);
		free(b);
	} else if (sscanf(p, "/chunked/%zu", &n) == 1) {
		const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
		char line[32];
		uint8_t chunk[1000];

		conn_send(cn, h, strlen(h));
		for (size_t off = 0; off < n; off += sizeof(chunk)) {
			size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);
			int m = snprintf(line, sizeof(line), "%zx\r\n", k);

			for (size_t i = 0; i < k; i++)
				chunk[i] = pattern(off + i);
			conn_send(cn, line, (size_t)m);
			conn_send(cn, chunk, k);
			conn_send(cn, "\r\n", 2);
		}
		conn_send(cn, "0\r\n\r\n", 5);
	} else if (strncmp(p, "/slow/", 6) == 0) {
		unsigned ms = 0;

		sscanf(p, "/slow/%u/%31s", &ms, cn->slow_tag);
		cn->busy = true;
		uv_timer_start(&cn->delay, on_delay, ms, 0);
	} else if (strcmp(p, "/status/404") == 0) {
		const char *x = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>";

		respond(cn, q->method, 404, "Not Found", "Content-Type: application/xml\r\n", x,
			strlen(x));
	} else if (strcmp(p, "/stall") == 0) {
		cn->busy = true;
	} else if (strcmp(p, "/stall-body") == 0) {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
		uint8_t b[100] = {0};

		conn_send(cn, h, strlen(h));
		conn_send(cn, b, sizeof(b));
		cn->busy = true;
	} else if (strcmp(p, "/close") == 0) {
		respond(cn, q->method, 200, "OK", "Connection: close\r\n", "bye", 3);
		cn->busy = true;
		cn->shutdown.data = cn;
		uv_shutdown(&cn->shutdown, (uv_stream_t *)&cn->tcp, on_shutdown);
	} else if (strcmp(p, "/reset") == 0) {
		conn_close(cn, true);
	} else if (strcmp(p, "/hangup") == 0) {
		conn_close(cn, false);
	} else if (strcmp(p, "/hangup-once") == 0 && !cn->s->hung_up_once) {
		cn->s->hung_up_once = true;
		conn_close(cn, false);
	} else if (strcmp(p, "/many-headers") == 0) {
		char *h = malloc(200 * 32), *w = h;

		for (int i = 0; i < 200; i++)
			w += sprintf(w, "X-Filler-%d: %d\r\n", i, i);
		respond(cn, q->method, 200, "OK", h, "", 0);
		free(h);
	} else if (strcmp(p, "/garbage") == 0) {
		const char *g = "SPDY/9 what\r\n\r\n";

		conn_send(cn, g, strlen(g));
	} else {
		respond(cn, q->method, 200, "OK", "ETag: \"put-etag\"\r\n", "", 0);
	}
}

static char *find_crlfcrlf(char *b, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(b + i, "\r\n\r\n", 4) == 0)
			return b + i;
	return NULL;
}

/* Parses and answers every complete request in cn->buf. */
static void conn_process(struct conn *cn)
{
	struct server *s = cn->s;

	while (!cn->busy && !cn->closing && cn->len > 0) {
		struct seen_req q = {.content_length = -1, .conn_id = cn->id};
		char *end, *head, *line, *save = NULL;
		size_t head_len, need;

		if ((uint8_t)cn->buf[0] == 0x16) { /* a TLS handshake record */
			const char *r = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
					"Connection: close\r\n\r\n";

			conn_send(cn, r, strlen(r));
			cn->busy = true;
			cn->shutdown.data = cn;
			uv_shutdown(&cn->shutdown, (uv_stream_t *)&cn->tcp, on_shutdown);
			return;
		}
		end = find_crlfcrlf(cn->buf, cn->len);
		if (end == NULL)
			return;
		head_len = (size_t)(end - cn->buf) + 4;
		head = strndup(cn->buf, head_len - 4);
		line = strtok_r(head, "\r\n", &save);
		if (line == NULL || sscanf(line, "%15s %255s", q.method, q.path) != 2) {
			free(head);
			conn_close(cn, false);
			return;
		}
		while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
			char *colon = strchr(line, ':');
			char *v;

			if (colon == NULL)
				continue;
			*colon = '\0';
			for (v = colon + 1; *v == ' '; v++)
				;
			if (strcasecmp(line, "Content-Length") == 0)
				q.content_length = atol(v);
			else if (strcasecmp(line, "Expect") == 0)
				q.expect = strcasecmp(v, "100-continue") == 0;
			else if (strcasecmp(line, "X-Test") == 0)
				snprintf(q.x_test, sizeof(q.x_test), "%s", v);
		}
		free(head);
		need = head_len + (q.content_length > 0 ? (size_t)q.content_length : 0);
		if (cn->len < need) {
			if (q.expect && !cn->sent_continue) {
				const char *c = "HTTP/1.1 100 Continue\r\n\r\n";

				conn_send(cn, c, strlen(c));
				cn->sent_continue = true;
			}
			return;
		}
		q.body_len = need - head_len;
		q.body = malloc(q.body_len + 1);
		memcpy(q.body, cn->buf + head_len, q.body_len);
		memmove(cn->buf, cn->buf + need, cn->len - need);
		cn->len -= need;
		cn->sent_continue = false;
		if (s->n_seen < MAX_SEEN)
			s->seen[s->n_seen++] = q;
		else
			free(q.body);
		route(cn, &q);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *cn = h->data;

	if (cn->cap - cn->len < 65536) {
		cn->cap = cn->cap * 2 + 65536;
		cn->buf = realloc(cn->buf, cn->cap);
	}
	*buf = uv_buf_init(cn->buf + cn->len, (unsigned)(cn->cap - cn->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *cn = st->data;

	if (nread < 0) {
		cn->s->closed_by_peer++;
		conn_close(cn, false);
		return;
	}
	cn->len += (size_t)nread;
	conn_process(cn);
}

static void on_connection(uv_stream_t *l, int status)
{
	struct server *s = l->data;
	struct conn *cn;

	if (status != 0)
		return;
	cn = calloc(1, sizeof(*cn));
	cn->s = s;
	cn->id = ++s->connections;
	uv_tcp_init(s->loop, &cn->tcp);
	uv_timer_init(s->loop, &cn->delay);
	cn->tcp.data = cn;
	cn->delay.data = cn;
	cn->open_handles = 2;
	cn->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = cn;
	s->conns = cn;
	if (uv_accept(l, (uv_stream_t *)&cn->tcp) != 0) {
		conn_close(cn, false);
		return;
	}
	uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
}

static void server_start(struct server *s, uv_loop_t *loop)
{
	struct sockaddr_in addr;
	struct sockaddr_storage got;
	int len = sizeof(got);

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
	s->listener.data = s;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
	assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len), 0);
	s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void server_close(struct server *s)
{
	while (s->conns != NULL)
		conn_close(s->conns, false);
	uv_close((uv_handle_t *)&s->listener, NULL);
	for (int i = 0; i < s->n_seen; i++)
		free(s->seen[i].body);
}

/* --- the test environment --------------------------------------------------- */

struct env {
	uv_loop_t loop;
	struct server srv;
	struct http_client *client;
	uv_timer_t tick; /* bounds each uv_run(UV_RUN_ONCE) */
	int done;        /* completion callbacks run */
	int closed;      /* client close callbacks run */
	int done_at_close; /* value of done when the close callback ran */
	char base[64];
};

/*
 * What one completion callback saw. Tests keep these in static storage: a
 * failed assertion longjmps out of the test, and teardown then closes the
 * client, whose callbacks must still find live memory.
 */
struct result {
	struct env *env;
	bool done;
	int result;
	int curl_code;
	long status;
	char error[512];
	char *body;
	size_t body_len;
	uint64_t body_bytes;
	int64_t content_length;
	char etag[64];
	char request_id[64];
	char custom[64];
	bool has_custom;
	uint64_t finished_ns;
	size_t in_flight_during;
};

static void on_tick(uv_timer_t *t)
{
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_int_equal(uv_loop_init(&e->loop), 0);
	server_start(&e->srv, &e->loop);
	snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%d", e->srv.port);
	assert_int_equal(http_client_new(&e->loop, &e->client), 0);
	uv_timer_init(&e->loop, &e->tick);
	uv_timer_start(&e->tick, on_tick, 20, 20);
	*state = e;
	return 0;
}

static void on_client_closed(void *data)
{
	struct env *e = data;

	e->closed++;
	e->done_at_close = e->done;
}

/* Closes everything and checks that the loop holds nothing any more. */
static int teardown(void **state)
{
	struct env *e = *state;

	if (e->client != NULL)
		http_client_close(e->client, on_client_closed, e);
	server_close(&e->srv);
	uv_close((uv_handle_t *)&e->tick, NULL);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	if (e->client != NULL)
		assert_int_equal(e->closed, 1);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	free(e);
	return 0;
}

/* Runs the loop until *counter reaches target; fails after RUN_TIMEOUT_MS. */
static void run_until(struct env *e, const int *counter, int target)
{
	uint64_t deadline = uv_hrtime() + (uint64_t)RUN_TIMEOUT_MS * 1000000;

	while (*counter < target) {
		if (uv_hrtime() > deadline)
			fail_msg("timed out waiting: %d of %d", *counter, target);
		uv_run(&e->loop, UV_RUN_ONCE);
	}
}

static void on_done(struct http_response *resp, void *data)
{
	struct result *r = data;
	const char *v;

	r->done = true;
	r->result = resp->result;
	r->curl_code = resp->curl_code;
	r->status = resp->status;
	snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
	r->body = resp->body; /* taken: the test frees it */
	resp->body = NULL;
	r->body_len = resp->body_len;
	r->body_bytes = resp->body_bytes;
	r->content_length = resp->content_length;
	snprintf(r->etag, sizeof(r->etag), "%s", resp->etag ? resp->etag : "");
	snprintf(r->request_id, sizeof(r->request_id), "%s", resp->request_id ? resp->request_id : "");
	v = http_response_header(resp, "x-custom-thing");
	r->has_custom = v != NULL;
	snprintf(r->custom, sizeof(r->custom), "%s", v ? v : "");
	r->finished_ns = uv_hrtime();
	r->in_flight_during = http_client_in_flight(r->env->client);
	r->env->done++;
}

static void start(struct env *e, struct http_request_opts *o, const char *path,
		  struct result *r, struct http_request **out)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", e->base, path);
	if (o->url == NULL)
		o->url = url;
	if (o->method == NULL)
		o->method = "GET";
	memset(r, 0, sizeof(*r));
	r->env = e;
	assert_int_equal(http_client_request(e->client, o, on_done, r, out), 0);
	o->url = NULL; /* url was local */
}

/* One request, run to completion. */
static void fetch(struct env *e, struct http_request_opts *o, const char *path, struct result *r)
{
	int target = e->done + 1;

	start(e, o, path, r, NULL);
	run_until(e, &e->done, target);
}

static char *tmpfile_path(void)
{
	char *p = strdup("/tmp/litestream-http-XXXXXX");
	int fd = mkstemp(p);

	assert_true(fd >= 0);
	close(fd);
	return p;
}

static void fill_file(int fd, size_t n)
{
	uint8_t *b = malloc(n);

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 7 + 3) & 0xff);
	assert_int_equal(pwrite(fd, b, n, 0), (ssize_t)n);
	free(b);
}

static bool is_pattern(const uint8_t *b, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(from + i))
			return false;
	return true;
}

/* A port on 127.0.0.1 with nothing listening. */
static int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* --- tests --------------------------------------------------------------------- */

static void test_get_memory(void **state)
{
	struct env *e = *state;
	const char *hdrs[] = {"X-Test: abc 123", NULL};
	struct http_request_opts o = {.headers = hdrs};
	static struct result r;

	fetch(e, &o, "/hello", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.curl_code, 0);
	assert_string_equal(r.error, "");
	assert_int_equal(r.body_len, 13);
	assert_int_equal(r.body_bytes, 13);
	assert_string_equal(r.body, "hello, world\n");
	assert_int_equal(r.in_flight_during, 0);
	assert_int_equal(http_client_in_flight(e->client), 0);

	assert_int_equal(e->srv.n_seen, 1);
	assert_string_equal(e->srv.seen[0].method, "GET");
	assert_string_equal(e->srv.seen[0].path, "/hello");
	assert_string_equal(e->srv.seen[0].x_test, "abc 123");
	free(r.body);

	/* A big body, announced and then chunked. */
	fetch(e, &o, "/bytes/300000", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.body_len, 300000);
	assert_true(is_pattern((uint8_t *)r.body, r.body_len, 0));
	free(r.body);
	fetch(e, &o, "/chunked/123457", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.content_length, -1);
	assert_int_equal(r.body_len, 123457);
	assert_true(is_pattern((uint8_t *)r.body, r.body_len, 0));
	free(r.body);
}

static void test_response_headers(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	static struct result r;

	fetch(e, &o, "/hello", &r);
	assert_int_equal(r.result, 0);
	assert_string_equal(r.etag, "\"0123abcd\"");
	assert_string_equal(r.request_id, "TX0001");
	assert_int_equal(r.content_length, 13);
	assert_true(r.has_custom);
	assert_string_equal(r.custom, "spaced value");
	free(r.body);

	/* HEAD: the length of what a GET would send, no body. */
	o.method = "HEAD";
	fetch(e, &o, "/bytes/5000", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.content_length, 5000);
	assert_int_equal(r.body_bytes, 0);
	assert_null(r.body);
	assert_string_equal(e->srv.seen[1].method, "HEAD");

	/* An error status is a result, with its body. */
	o.method = "GET";
	fetch(e, &o, "/status/404", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "<Code>NoSuchKey</Code>"));
	assert_false(r.has_custom);
	free(r.body);
}

static void test_get_file(void **state)
{
	struct env *e = *state;
	char *path = tmpfile_path();
	int fd = open(path, O_RDWR);
	struct http_request_opts o = {.sink = HTTP_SINK_FD, .sink_fd = fd, .sink_offset = 100};
	static struct result r;
	uint8_t *b = malloc(400000);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	fetch(e, &o, "/bytes/300000", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	assert_null(r.body);
	assert_int_equal(r.body_bytes, 300000);
	/* Bytes before sink_offset are untouched; the body follows exactly. */
	assert_int_equal(pread(fd, b, 400000, 0), 300100);
	assert_memory_equal(b, "0123456789", 10);
	assert_true(is_pattern(b + 100, 300000, 0));

	/* A 404's document goes to memory, not into the file. */
	assert_int_equal(ftruncate(fd, 0), 0);
	o.sink_offset = 0;
	fetch(e, &o, "/status/404", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "NoSuchKey"));
	assert_int_equal(pread(fd, b, 10, 0), 0);
	free(r.body);

	/* sink_offset < 0 writes at the fd's position. */
	assert_int_equal(lseek(fd, 5, SEEK_SET), 5);
	o.sink_offset = -1;
	fetch(e, &o, "/chunked/2500", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(pread(fd, b, 10000, 0), 2505);
	assert_true(is_pattern(b + 5, 2500, 0));

	/* A write error on the sink fails the request with its errno. */
	o.sink_fd = open("/dev/full", O_WRONLY);
	assert_true(o.sink_fd >= 0);
	fetch(e, &o, "/bytes/1000", &r);
	assert_int_equal(r.result, -ENOSPC);
	assert_non_null(strstr(r.error, "writing the response body"));
	close(o.sink_fd);

	free(b);
	close(fd);
	unlink(path);
	free(path);
}

static void test_put_memory(void **state)
{
	struct env *e = *state;
	const char *body = "exact bytes\0with a NUL";
	struct http_request_opts o = {
		.method = "PUT", .body_source = HTTP_BODY_MEMORY, .body = body, .body_len = 22,
	};
	static struct result r;
	struct seen_req *q;

	fetch(e, &o, "/put/a", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.etag, "\"put-etag\"");
	q = &e->srv.seen[0];
	assert_string_equal(q->method, "PUT");
	assert_string_equal(q->path, "/put/a");
	assert_int_equal(q->content_length, 22);
	assert_int_equal(q->body_len, 22);
	assert_memory_equal(q->body, body, 22);
	assert_false(q->expect);
	free(r.body);

	/* No body: a PUT still says Content-Length: 0. */
	o.body_source = HTTP_BODY_NONE;
	fetch(e, &o, "/put/empty", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(e->srv.seen[1].content_length, 0);
	free(r.body);

	/* Other methods with a body (S3's POST for multipart). */
	o.method = "POST";
	o.body_source = HTTP_BODY_MEMORY;
	o.body = "<Complete/>";
	o.body_len = 11;
	fetch(e, &o, "/post?uploadId=1", &r);
	assert_int_equal(r.result, 0);
	q = &e->srv.seen[2];
	assert_string_equal(q->method, "POST");
	assert_string_equal(q->path, "/post?uploadId=1");
	assert_int_equal(q->content_length, 11);
	assert_memory_equal(q->body, "<Complete/>", 11);
	free(r.body);

	o = (struct http_request_opts){.method = "DELETE"};
	fetch(e, &o, "/obj", &r);
	assert_int_equal(r.result, 0);
	assert_string_equal(e->srv.seen[3].method, "DELETE");
	free(r.body);
}

static void test_put_file_range(void **state)
{
	struct env *e = *state;
	char *path = tmpfile_path();
	int fd = open(path, O_RDWR);
	uint8_t *file = malloc(3000000);
	struct http_request_opts o = {
		.method = "PUT", .body_source = HTTP_BODY_FD, .body_fd = fd,
		.body_offset = 12345, .body_len = 150000,
	};
	static struct result r;
	struct seen_req *q;

	assert_true(fd >= 0);
	fill_file(fd, 3000000);
	assert_int_equal(pread(fd, file, 3000000, 0), 3000000);

	fetch(e, &o, "/put/range", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	q = &e->srv.seen[0];
	assert_int_equal(q->content_length, 150000);
	assert_int_equal(q->body_len, 150000);
	assert_memory_equal(q->body, file + 12345, 150000);
	free(r.body);

	/* Larger, with Expect: 100-continue answered by the server. */
	o.body_offset = 1;
	o.body_len = 2999999;
	o.expect_continue = true;
	fetch(e, &o, "/put/big", &r);
	assert_int_equal(r.result, 0);
	q = &e->srv.seen[1];
	assert_true(q->expect);
	assert_int_equal(q->content_length, 2999999);
	assert_int_equal(q->body_len, 2999999);
	assert_memory_equal(q->body, file + 1, 2999999);
	free(r.body);

	/* A file shorter than the range promised fails the request. */
	o.expect_continue = false;
	o.body_offset = 2990000;
	o.body_len = 20000;
	fetch(e, &o, "/put/short", &r);
	assert_int_equal(r.result, -EIO);
	assert_non_null(strstr(r.error, "request body file ends at 10000 of 20000 bytes"));
	free(r.body);

	free(file);
	close(fd);
	unlink(path);
	free(path);
}

static void test_memory_cap(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {.max_body = 1000};
	static struct result r;

	/* Exactly the cap is fine. */
	fetch(e, &o, "/bytes/1000", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.body_len, 1000);
	free(r.body);

	/* Announced too large: refused before any byte is stored. */
	fetch(e, &o, "/bytes/1001", &r);
	assert_int_equal(r.result, -EFBIG);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.error, "response body of 1001 bytes exceeds the limit of 1000 bytes");
	free(r.body);

	/* Not announced (chunked): fails when the cap is crossed. */
	fetch(e, &o, "/chunked/100000", &r);
	assert_int_equal(r.result, -EFBIG);
	assert_string_equal(r.error, "response body exceeds the limit of 1000 bytes");
	assert_true(r.body_bytes <= 1000);
	free(r.body);

	/* The client is still usable. */
	fetch(e, &o, "/hello", &r);
	assert_int_equal(r.result, 0);
	free(r.body);
}

static void test_connection_refused(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	char url[64];
	static struct result r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", closed_port());
	o.url = url;
	fetch(e, &o, "", &r);
	assert_int_equal(r.result, -ECONNREFUSED);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.curl_code, 7); /* CURLE_COULDNT_CONNECT */
	assert_non_null(strstr(r.error, "127.0.0.1"));
}

static void test_broken_connections(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	static struct result r;

	fetch(e, &o, "/reset", &r);
	assert_int_equal(r.result, -ECONNRESET);
	assert_non_null(strstr(r.error, "reset"));

	fetch(e, &o, "/hangup", &r);
	assert_int_equal(r.result, -ECONNRESET);
	assert_int_equal(r.curl_code, 52); /* CURLE_GOT_NOTHING */
	assert_string_equal(r.error, "Empty reply from server");

	/* The server closes after answering: the next request reconnects. */
	fetch(e, &o, "/close", &r);
	assert_int_equal(r.result, 0);
	assert_string_equal(r.body, "bye");
	free(r.body);
	fetch(e, &o, "/hello", &r);
	assert_int_equal(r.result, 0);
	free(r.body);
	assert_int_equal(e->srv.connections, 4);
}

static void test_bad_replies(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	static struct result r;

	fetch(e, &o, "/many-headers", &r);
	assert_int_equal(r.result, -EBADMSG);
	assert_string_equal(r.error, "response headers exceed 128 lines or 65536 bytes");

	fetch(e, &o, "/garbage", &r);
	assert_int_equal(r.result, -EBADMSG);
	assert_int_equal(r.curl_code, 1); /* CURLE_UNSUPPORTED_PROTOCOL: HTTP/0.9 */
}

/*
 * A kept-alive connection the server drops on receiving a PUT: curl
 * resends on a new connection, rewinding the file body through the seek
 * callback.
 */
static void test_resend_rewinds_body(void **state)
{
	struct env *e = *state;
	char *path = tmpfile_path();
	int fd = open(path, O_RDWR);
	uint8_t *file = malloc(200000);
	struct http_request_opts o = {0};
	static struct result r;

	assert_true(fd >= 0);
	fill_file(fd, 200000);
	assert_int_equal(pread(fd, file, 200000, 0), 200000);
	fetch(e, &o, "/hello", &r);
	assert_int_equal(r.result, 0);
	free(r.body);

	o = (struct http_request_opts){.method = "PUT", .body_source = HTTP_BODY_FD,
				       .body_fd = fd, .body_offset = 777, .body_len = 150000};
	fetch(e, &o, "/hangup-once", &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	free(r.body);
	assert_int_equal(e->srv.connections, 2);
	assert_int_equal(e->srv.n_seen, 3);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(e->srv.seen[i].conn_id, i);
		assert_int_equal(e->srv.seen[i].body_len, 150000);
		assert_memory_equal(e->srv.seen[i].body, file + 777, 150000);
	}
	free(file);
	close(fd);
	unlink(path);
	free(path);
}

static void test_timeouts(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {.timeout_ms = 300};
	static struct result r;
	uint64_t t0, ms;

	t0 = uv_hrtime();
	fetch(e, &o, "/stall", &r);
	ms = (r.finished_ns - t0) / 1000000;
	assert_int_equal(r.result, -ETIMEDOUT);
	assert_int_equal(r.curl_code, 28); /* CURLE_OPERATION_TIMEDOUT */
	assert_non_null(strstr(r.error, "timed out"));
	assert_true(ms >= 290 && ms < 1500);

	/* Headers arrive, then the body stops: the low-speed limit fires.
	 * curl averages speed over its last few seconds, so the limit is set
	 * above what the first burst makes the average. */
	o = (struct http_request_opts){.low_speed_limit = 1000, .low_speed_time = 1};
	t0 = uv_hrtime();
	fetch(e, &o, "/stall-body", &r);
	ms = (r.finished_ns - t0) / 1000000;
	assert_int_equal(r.result, -ETIMEDOUT);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_bytes, 100);
	assert_true(ms >= 900 && ms < 3000);
	free(r.body);
}

static void test_concurrent(void **state)
{
	struct env *e = *state;
	static struct result r[20];
	char path[64];
	uint64_t t0 = uv_hrtime(), ms;

	for (int i = 0; i < 20; i++) {
		struct http_request_opts o = {0};

		snprintf(path, sizeof(path), "/slow/200/%d", i);
		start(e, &o, path, &r[i], NULL);
	}
	assert_int_equal(http_client_in_flight(e->client), 20);
	run_until(e, &e->done, 20);
	ms = (uv_hrtime() - t0) / 1000000;
	for (int i = 0; i < 20; i++) {
		char want[32];

		snprintf(want, sizeof(want), "slow %d", i);
		assert_int_equal(r[i].result, 0);
		assert_string_equal(r[i].body, want);
		free(r[i].body);
	}
	/* In parallel: 20 requests of 200 ms each took well under 20 x 200 ms. */
	assert_true(ms < 2000);
	assert_int_equal(e->srv.n_seen, 20);
	assert_int_equal(e->srv.connections, 20);
	assert_int_equal(http_client_in_flight(e->client), 0);

	/* A second burst finds all twenty connections kept alive. */
	for (int i = 0; i < 20; i++) {
		struct http_request_opts o = {0};

		snprintf(path, sizeof(path), "/slow/10/%d", i);
		start(e, &o, path, &r[i], NULL);
	}
	run_until(e, &e->done, 40);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(r[i].result, 0);
		free(r[i].body);
	}
	assert_int_equal(e->srv.n_seen, 40);
	assert_int_equal(e->srv.connections, 20);
}

/* Starts the next request of a chain from the previous one's callback. */
struct chain {
	struct env *e;
	int left;
	int ok;
};

static void on_chain(struct http_response *resp, void *data)
{
	struct chain *ch = data;
	struct http_request_opts o = {.method = "GET"};
	char url[128];

	if (resp->result == 0 && resp->status == 200)
		ch->ok++;
	ch->e->done++;
	if (--ch->left == 0)
		return;
	snprintf(url, sizeof(url), "%s/hello", ch->e->base);
	o.url = url;
	if (http_client_request(ch->e->client, &o, on_chain, ch, NULL) != 0)
		ch->left = 0;
}

static void test_keepalive(void **state)
{
	struct env *e = *state;
	static struct chain ch;
	struct http_request_opts o = {.method = "GET"};
	char url[128];
	static struct result r[5];

	ch = (struct chain){.e = e, .left = 10};
	snprintf(url, sizeof(url), "%s/hello", e->base);
	o.url = url;
	assert_int_equal(http_client_request(e->client, &o, on_chain, &ch, NULL), 0);
	run_until(e, &e->done, 10);
	assert_int_equal(ch.ok, 10);
	assert_int_equal(e->srv.n_seen, 10);
	assert_int_equal(e->srv.connections, 1);

	/* PUTs reuse it too. */
	for (int i = 0; i < 5; i++) {
		struct http_request_opts p = {.method = "PUT", .body_source = HTTP_BODY_MEMORY,
					      .body = "x", .body_len = 1};

		fetch(e, &p, "/put/k", &r[i]);
		assert_int_equal(r[i].result, 0);
		free(r[i].body);
	}
	assert_int_equal(e->srv.connections, 1);
	assert_int_equal(e->srv.seen[10].conn_id, e->srv.seen[14].conn_id);
}

static void test_cancel(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	struct http_request *req, *reqs[5];
	static struct result r, rs[5];

	/* Once the server holds the request: cancel drops the connection. */
	start(e, &o, "/stall", &r, &req);
	run_until(e, &e->srv.n_seen, 1);
	assert_int_equal(http_request_cancel(req), 0);
	assert_false(r.done); /* the callback comes later, from the loop */
	assert_int_equal(http_client_in_flight(e->client), 1);
	run_until(e, &e->done, 1);
	assert_int_equal(r.result, -ECANCELED);
	assert_string_equal(r.error, "request cancelled");
	assert_int_equal(http_client_in_flight(e->client), 0);
	run_until(e, &e->srv.closed_by_peer, 1);

	/* Cancelled before the loop ever ran it. */
	start(e, &o, "/hello", &r, &req);
	assert_int_equal(http_request_cancel(req), 0);
	assert_int_equal(http_request_cancel(req), -EALREADY);
	run_until(e, &e->done, 2);
	assert_int_equal(r.result, -ECANCELED);

	/* All at once, next to one that completes. */
	for (int i = 0; i < 5; i++)
		start(e, &o, "/stall", &rs[i], &reqs[i]);
	start(e, &o, "/hello", &r, &req);
	run_until(e, &e->done, 3);
	assert_int_equal(r.result, 0);
	free(r.body);
	http_client_cancel_all(e->client);
	run_until(e, &e->done, 8);
	for (int i = 0; i < 5; i++)
		assert_int_equal(rs[i].result, -ECANCELED);
	assert_int_equal(http_client_in_flight(e->client), 0);

	/* The client works after all that. */
	fetch(e, &o, "/hello", &r);
	assert_int_equal(r.result, 0);
	free(r.body);
}

static void test_close_in_flight(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	static struct result r, rs[5];

	/* Five stalled requests, and an idle kept-alive connection. */
	for (int i = 0; i < 5; i++)
		start(e, &o, "/stall", &rs[i], NULL);
	run_until(e, &e->srv.n_seen, 5);
	fetch(e, &o, "/hello", &r);
	free(r.body);
	assert_int_equal(e->srv.connections, 6);
	http_client_close(e->client, on_client_closed, e);
	http_client_close(e->client, on_client_closed, e); /* ignored */
	o.url = "http://127.0.0.1:1/";
	o.method = "GET";
	assert_int_equal(http_client_request(e->client, &o, on_done, &r, NULL), -ESHUTDOWN);
	run_until(e, &e->closed, 1);
	e->client = NULL;
	/* Every request got its callback, before the close callback. */
	assert_int_equal(e->done_at_close, 6);
	for (int i = 0; i < 5; i++)
		assert_int_equal(rs[i].result, -ECANCELED);
	/* The server sees all six connections go. */
	run_until(e, &e->srv.closed_by_peer, 6);
}

static void on_done_then_close(struct http_response *resp, void *data)
{
	struct result *r = data;

	on_done(resp, data);
	http_client_close(r->env->client, on_client_closed, r->env);
}

static void test_close_from_callback(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {.method = "GET"};
	char url[128];
	static struct result first, stalled;

	start(e, &o, "/stall", &stalled, NULL);
	snprintf(url, sizeof(url), "%s/hello", e->base);
	o.url = url;
	memset(&first, 0, sizeof(first));
	first.env = e;
	assert_int_equal(http_client_request(e->client, &o, on_done_then_close, &first, NULL), 0);
	run_until(e, &e->closed, 1);
	e->client = NULL;
	assert_int_equal(first.result, 0);
	assert_int_equal(stalled.result, -ECANCELED);
	assert_int_equal(e->done_at_close, 2);
	free(first.body);
}

static void test_tls_errors(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	char url[128];
	static struct result r;

	/* https:// to a plain-text server: the handshake fails. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", e->srv.port);
	o.url = url;
	fetch(e, &o, "", &r);
	assert_int_equal(r.result, -EPROTO);
	assert_int_equal(r.curl_code, 35); /* CURLE_SSL_CONNECT_ERROR */
	assert_true(strlen(r.error) > 0);

	/* A CA file that does not exist is reported, not ignored. */
	o.url = url;
	o.ca_file = "/nonexistent/ca.pem";
	fetch(e, &o, "", &r);
	assert_int_equal(r.result, -EPROTO);
	assert_int_equal(r.curl_code, 77); /* CURLE_SSL_CACERT_BADFILE */
}

static void test_bad_requests(void **state)
{
	struct env *e = *state;
	struct http_request_opts o = {0};
	static struct result r;

	memset(&r, 0, sizeof(r));
	r.env = e;
	/* Refused up front: no callback. */
	assert_int_equal(http_client_request(e->client, &o, on_done, &r, NULL), -EINVAL);
	o.method = "GET";
	o.url = "http://127.0.0.1:1/";
	o.body_source = HTTP_BODY_FD;
	o.body_fd = -1;
	assert_int_equal(http_client_request(e->client, &o, on_done, &r, NULL), -EINVAL);
	o.body_source = HTTP_BODY_NONE;
	o.sink = HTTP_SINK_FD;
	o.sink_fd = -1;
	assert_int_equal(http_client_request(e->client, &o, on_done, &r, NULL), -EINVAL);
	assert_int_equal(e->done, 0);
	assert_int_equal(http_client_in_flight(e->client), 0);

	o = (struct http_request_opts){.method = "GET", .url = "ftp://127.0.0.1/x"};
	assert_int_equal(http_client_request(e->client, &o, on_done, &r, NULL), -EINVAL);

	/* Caught by curl: reported through the callback. */
	o = (struct http_request_opts){.url = "http://[::1/x"};
	fetch(e, &o, "", &r);
	assert_int_equal(r.result, -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_get_memory),
		T(test_response_headers),
		T(test_get_file),
		T(test_put_memory),
		T(test_put_file_range),
		T(test_memory_cap),
		T(test_connection_refused),
		T(test_broken_connections),
		T(test_bad_replies),
		T(test_resend_rewinds_body),
		T(test_timeouts),
		T(test_concurrent),
		T(test_keepalive),
		T(test_cancel),
		T(test_close_in_flight),
		T(test_close_from_callback),
		T(test_tls_errors),
		T(test_bad_requests),
	};
#undef T
	return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
