#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "net/http_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the parser ------------------------------------------------------------ */

static const struct http_server_limits small = {
	.max_head = 256,
	.max_url = 64,
	.max_body = 32,
	.max_conns = 4,
	.idle_ms = 1000,
	.request_ms = 300,
	.write_ms = 1000,
};

/* Feeds all of s, in pieces of step bytes (0: at once), until a request or an error. */
static enum http_server_feed feed_all(struct http_server_reader *r, const char *s, size_t step,
				      size_t *consumed)
{
	size_t len = strlen(s), off = 0;
	enum http_server_feed st = HTTP_SERVER_FEED_MORE;

	while (off < len) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off, used;
		st = http_server_reader_feed(r, s + off, n, &used);
		off += used;
		if (st != HTTP_SERVER_FEED_MORE)
			break;
		assert_int_equal(used, n);
	}
	if (consumed)
		*consumed = off;
	return st;
}

static void test_simple_get(void **state)
{
	static const size_t steps[] = {0, 1, 2, 7};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct http_server_reader r;
		const char *req = "GET /v1/dbs/a%2Fb/sync?wait=1&timeout=10s HTTP/1.1\r\nHost: x\r\n\r\n";
		size_t used;

		assert_int_equal(http_server_reader_init(&r, &small), 0);
		assert_int_equal(feed_all(&r, req, steps[i], &used), HTTP_SERVER_FEED_REQUEST);
		assert_int_equal(used, strlen(req));
		assert_int_equal(r.req.method, HTTP_GET);
		assert_string_equal(r.req.path, "/v1/dbs/a%2Fb/sync");
		assert_string_equal(r.req.query, "wait=1&timeout=10s");
		assert_string_equal(r.req.target, "/v1/dbs/a%2Fb/sync?wait=1&timeout=10s");
		assert_null(r.req.body);
		assert_true(r.req.keep_alive);
		http_server_reader_free(&r);
	}
}

static void test_pipelined(void **state)
{
	struct http_server_reader r;
	const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
			  "POST /b?x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
			  "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n";
	size_t len = strlen(two), off = 0, used;

	assert_int_equal(http_server_reader_init(&r, &small), 0);
	assert_int_equal(http_server_reader_feed(&r, two, len, &used), HTTP_SERVER_FEED_REQUEST);
	assert_string_equal(r.req.path, "/a");
	assert_true(used < len);
	off += used;
	/* Until next(), the reader keeps answering with the same request. */
	assert_int_equal(http_server_reader_feed(&r, two + off, len - off, &used), HTTP_SERVER_FEED_REQUEST);
	assert_int_equal(used, 0);
	http_server_reader_next(&r);
	assert_int_equal(http_server_reader_feed(&r, two + off, len - off, &used), HTTP_SERVER_FEED_REQUEST);
	off += used;
	assert_int_equal(r.req.method, HTTP_POST);
	assert_string_equal(r.req.path, "/b");
	assert_string_equal(r.req.query, "x");
	assert_int_equal(r.req.body_len, 5);
	assert_string_equal(r.req.body, "hello");
	http_server_reader_next(&r);
	assert_int_equal(http_server_reader_feed(&r, two + off, len - off, &used), HTTP_SERVER_FEED_REQUEST);
	off += used;
	assert_int_equal(off, len);
	assert_string_equal(r.req.path, "/c");
	assert_false(r.req.keep_alive);
	http_server_reader_free(&r);
}

static void test_chunked_body(void **state)
{
	struct http_server_reader r;
	const char *req = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";

	assert_int_equal(http_server_reader_init(&r, &small), 0);
	assert_int_equal(feed_all(&r, req, 3, NULL), HTTP_SERVER_FEED_REQUEST);
	assert_string_equal(r.req.body, "{\"a\":1}");
	http_server_reader_free(&r);
}

static void test_keep_alive_rules(void **state)
{
	static const struct {
		const char *req;
		bool keep;
	} cases[] = {
		{"GET / HTTP/1.1\r\n\r\n", true},
		{"GET / HTTP/1.0\r\n\r\n", false},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_server_reader r;
		assert_int_equal(http_server_reader_init(&r, &small), 0);
		assert_int_equal(feed_all(&r, cases[i].req, 0, NULL), HTTP_SERVER_FEED_REQUEST);
		assert_int_equal(r.req.keep_alive, cases[i].keep);
		http_server_reader_free(&r);
	}
}

static void expect_error(const struct http_server_limits *l, const char *req, size_t step, int status)
{
	struct http_server_reader r;
	size_t used;

	assert_int_equal(http_server_reader_init(&r, l), 0);
	if (feed_all(&r, req, step, NULL) != HTTP_SERVER_FEED_ERROR)
		fail_msg("no error for step %zu: %.60s", step, req);
	if (r.error_status != status)
		fail_msg("status %d (%s), expected %d, step %zu: %.60s", r.error_status, r.error_msg, status,
			 step, req);
	assert_non_null(r.error_msg);
	/* Once failed, always failed. */
	assert_int_equal(http_server_reader_feed(&r, "GET / HTTP/1.1\r\n\r\n", 18, &used), HTTP_SERVER_FEED_ERROR);
	http_server_reader_free(&r);
}

static void test_errors(void **state)
{
	static const size_t steps[] = {0, 1, 5};
	char big_header[600], long_url[200], many[512];

	snprintf(big_header, sizeof(big_header), "GET / HTTP/1.1\r\nX-Big: %0400d\r\n\r\n", 0);
	snprintf(long_url, sizeof(long_url), "GET /%0100d HTTP/1.1\r\n\r\n", 0);
	strcpy(many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 50; i++)
		strcat(many, "A: b\r\n");
	strcat(many, "\r\n");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t st = steps[i];
		expect_error(&small, "GARBAGE\r\n\r\n", st, 400);
		expect_error(&small, "GET / HTTP/9.x\r\n\r\n", st, 400);
		expect_error(&small, "GET / HTTP/2.0\r\n\r\n", st, 505);
		expect_error(&small, "GET / FOO/1.1\r\n\r\n", st, 400);
		expect_error(&small, "GET\r\n\r\n", st, 400);
		expect_error(&small, "\x01\x02\x03\r\n", st, 400);
		expect_error(&small, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", st, 400);
		expect_error(&small, "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", st, 400);
		expect_error(&small, big_header, st, 413);
		expect_error(&small, many, st, 413);
		expect_error(&small, long_url, st, 414);
		/* The announced length is refused before any of the body is read. */
		expect_error(&small, "POST / HTTP/1.1\r\nContent-Length: 33\r\n\r\n", st, 413);
		expect_error(&small, "POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n", st, 413);
		expect_error(&small,
			     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "20\r\n0123456789abcdef0123456789abcdef\r\n1\r\nx\r\n0\r\n\r\n",
			     st, 413);
	}
}

static void test_limits_are_exact(void **state)
{
	struct http_server_reader r;
	char body_req[200];

	/* A body of exactly max_body bytes is fine. */
	snprintf(body_req, sizeof(body_req), "POST / HTTP/1.1\r\nContent-Length: 32\r\n\r\n%032d", 0);
	assert_int_equal(http_server_reader_init(&r, &small), 0);
	assert_int_equal(feed_all(&r, body_req, 0, NULL), HTTP_SERVER_FEED_REQUEST);
	assert_int_equal(r.req.body_len, 32);
	http_server_reader_free(&r);
}

static void test_expect_continue(void **state)
{
	struct http_server_reader r;
	size_t used;
	const char *head = "POST / HTTP/1.1\r\nEXPECT:  100-Continue \r\nContent-Length: 2\r\n\r\n";

	assert_int_equal(http_server_reader_init(&r, &small), 0);
	assert_int_equal(http_server_reader_feed(&r, head, strlen(head), &used), HTTP_SERVER_FEED_MORE);
	assert_true(r.headers_done);
	assert_true(r.expect_continue);
	assert_int_equal(http_server_reader_feed(&r, "{}", 2, &used), HTTP_SERVER_FEED_REQUEST);
	http_server_reader_next(&r);
	assert_false(r.expect_continue);
	http_server_reader_free(&r);
}

static void test_in_message(void **state)
{
	struct http_server_reader r;
	size_t used;

	assert_int_equal(http_server_reader_init(&r, &small), 0);
	assert_false(r.in_message);
	assert_int_equal(http_server_reader_feed(&r, "G", 1, &used), HTTP_SERVER_FEED_MORE);
	assert_true(r.in_message);
	http_server_reader_free(&r);
}

/* ---- the server on a real socket ---------------------------------------------- */

struct harness {
	uv_loop_t loop;
	struct http_server server;
	uv_async_t done;
	char dir[64];
	char path[128];
	int requests;
	int aborts;
	struct http_server_request *held; /* answered only when the client says so */
	pthread_t thread;
	int result;           /* the client thread's verdict: 0 ok */
	char failure[256];
};

static void on_req(struct http_server_request *req, void *arg)
{
	struct harness *h = arg;

	h->requests++;
	if (strcmp(req->path, "/hold") == 0) {
		h->held = req;
		return;
	}
	if (strcmp(req->path, "/big") == 0) {
		static char big[65536];
		memset(big, 'x', sizeof(big));
		http_server_respond(req, 200, "text/plain", NULL, big, sizeof(big));
		return;
	}
	if (strcmp(req->path, "/hello") == 0) {
		http_server_respond(req, 200, "text/plain", NULL, "hi", 2);
		return;
	}
	http_server_respond_error(req, 404, "nope");
}

static void on_abort_req(struct http_server_request *req, void *arg)
{
	struct harness *h = arg;

	if (req == h->held)
		h->held = NULL;
	h->aborts++;
}

static void on_done(uv_async_t *a)
{
	struct harness *h = a->data;

	http_server_close(&h->server, NULL);
	uv_close((uv_handle_t *)&h->done, NULL);
}

static int client_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {5, 0};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads until the peer closes or n bytes; returns the count. */
static size_t client_read_all(int fd, char *buf, size_t n)
{
	size_t off = 0;
	ssize_t r;

	while (off + 1 < n && (r = recv(fd, buf + off, n - 1 - off, 0)) > 0)
		off += (size_t)r;
	buf[off] = '\0';
	return off;
}

#define CHECK(h, cond)                                                                         \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			snprintf((h)->failure, sizeof((h)->failure), "%s:%d: %s", __FILE__, __LINE__, \
				 #cond);                                                       \
			(h)->result = -1;                                                      \
			goto out;                                                              \
		}                                                                              \
	} while (0)

static void *client_thread(void *arg)
{
	struct harness *h = arg;
	char buf[4096];
	int fd = -1, fds[6];
	const char *pipelined = "GET /hello HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\n"
				"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n";

	/* Pipelined requests, answered in order on one connection, then closed. */
	fd = client_connect(h->path);
	CHECK(h, fd >= 0);
	CHECK(h, send(fd, pipelined, strlen(pipelined), 0) == (ssize_t)strlen(pipelined));
	client_read_all(fd, buf, sizeof(buf));
	{
		char *a = strstr(buf, "HTTP/1.1 200 OK"), *b = strstr(buf, "HTTP/1.1 404 Not Found"),
		     *c = a ? strstr(a + 1, "HTTP/1.1 200 OK") : NULL;
		CHECK(h, a != NULL && b != NULL && c != NULL && a < b && b < c);
		CHECK(h, strstr(buf, "{\"error\":\"nope\"}") != NULL);
		CHECK(h, strstr(c, "Connection: close") != NULL);
	}
	close(fd);

	/* A slow request gets 408 after request_ms and the connection closes. */
	fd = client_connect(h->path);
	CHECK(h, fd >= 0);
	CHECK(h, send(fd, "GET /hel", 8, 0) == 8);
	client_read_all(fd, buf, sizeof(buf));
	CHECK(h, strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
	CHECK(h, strstr(buf, "Connection: close") != NULL);
	close(fd);

	/* Malformed: 400 with a JSON error, then closed. */
	fd = client_connect(h->path);
	CHECK(h, fd >= 0);
	CHECK(h, send(fd, "BLAH\r\n\r\n", 8, 0) == 8);
	client_read_all(fd, buf, sizeof(buf));
	CHECK(h, strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
	CHECK(h, strstr(buf, "{\"error\":") != NULL);
	close(fd);

	/* A body larger than allowed, sent whole: 413 reaches the client anyway. */
	fd = client_connect(h->path);
	CHECK(h, fd >= 0);
	{
		char big[20000];
		int n = snprintf(big, sizeof(big), "POST /hello HTTP/1.1\r\nContent-Length: 16000\r\n\r\n");
		memset(big + n, 'x', 16000);
		CHECK(h, send(fd, big, (size_t)n + 16000, MSG_NOSIGNAL) > 0);
	}
	client_read_all(fd, buf, sizeof(buf));
	CHECK(h, strncmp(buf, "HTTP/1.1 413 ", 13) == 0);
	close(fd);

	/*
	 * A client that pipelines requests and never reads: one response at a
	 * time is pending, and after write_ms the connection is closed.
	 */
	fd = client_connect(h->path);
	CHECK(h, fd >= 0);
	{
		char reqs[20 * 22 + 1] = "";
		size_t total = 0;
		char *sink = malloc(20 * 70000);
		for (int i = 0; i < 20; i++)
			strcat(reqs, "GET /big HTTP/1.1\r\n\r\n");
		CHECK(h, sink != NULL);
		CHECK(h, send(fd, reqs, strlen(reqs), 0) == (ssize_t)strlen(reqs));
		usleep(2500000); /* more than write_ms without reading */
		total = client_read_all(fd, sink, 20 * 70000);
		free(sink);
		CHECK(h, total > 0 && total < 20 * 65536); /* cut off, not all twenty */
	}
	close(fd);
	fd = -1;

	/*
	 * max_conns is 4: a held request and three idle connections fill it;
	 * a fifth evicts the oldest idle one, never the busy one.
	 */
	fds[0] = client_connect(h->path);
	CHECK(h, fds[0] >= 0);
	CHECK(h, send(fds[0], "GET /hold HTTP/1.1\r\n\r\n", 22, 0) == 22);
	for (int i = 1; i < 5; i++) {
		usleep(20000);
		fds[i] = client_connect(h->path);
		CHECK(h, fds[i] >= 0);
	}
	usleep(100000);
	/* fds[1] was the oldest idle one: the server closed it. */
	CHECK(h, recv(fds[1], buf, sizeof(buf), 0) == 0);
	/* The newest works. */
	CHECK(h, send(fds[4], "GET /hello HTTP/1.1\r\n\r\n", 23, 0) == 23);
	CHECK(h, recv(fds[4], buf, sizeof(buf), 0) > 0);
	CHECK(h, strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	h->result = 0;
out:
	if (fd >= 0)
		close(fd);
	uv_async_send(&h->done);
	return NULL;
}

static void test_server(void **state)
{
	struct harness h;
	char err[256];
	struct stat st;

	memset(&h, 0, sizeof(h));
	strcpy(h.dir, "/tmp/ls-http-XXXXXX");
	assert_non_null(mkdtemp(h.dir));
	snprintf(h.path, sizeof(h.path), "%s/ctl.sock", h.dir);
	assert_int_equal(uv_loop_init(&h.loop), 0);
	http_server_init(&h.server, &h.loop, &small, on_req, on_abort_req, &h);
	if (http_server_listen_unix(&h.server, h.path, 0640, 0, err, sizeof(err)) != 0)
		fail_msg("listen: %s", err);
	assert_int_equal(stat(h.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0640);
	uv_async_init(&h.loop, &h.done, on_done);
	h.done.data = &h;
	h.result = -1;
	assert_int_equal(pthread_create(&h.thread, NULL, client_thread, &h), 0);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	pthread_join(h.thread, NULL);
	if (h.result != 0)
		fail_msg("client: %s", h.failure);
	/* The held request was aborted when the server closed; nothing is left. */
	assert_null(h.held);
	assert_true(h.aborts >= 1);
	assert_true(h.server.evicted >= 1);
	assert_int_equal(uv_loop_close(&h.loop), 0);
	/* Our socket file is removed on close. */
	assert_int_not_equal(stat(h.path, &st), 0);
	rmdir(h.dir);
}

static void on_closed_flag(struct http_server *s)
{
	*(int *)s->arg = 1;
}

static void test_stale_and_live_sockets(void **state)
{
	char dir[64] = "/tmp/ls-http-XXXXXX", path[128], err[256];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uv_loop_t loop;
	struct http_server a, b;
	int fd, closed_a = 0, closed_b = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	/* A socket file nobody listens on, as a killed process leaves it. */
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(uv_loop_init(&loop), 0);
	http_server_init(&a, &loop, NULL, on_req, NULL, &closed_a);
	if (http_server_listen_unix(&a, path, 0600, 0, err, sizeof(err)) != 0)
		fail_msg("stale socket not replaced: %s", err);
	/* Now a live one: a second server must refuse, and leave the file alone. */
	http_server_init(&b, &loop, NULL, on_req, NULL, &closed_b);
	assert_int_equal(http_server_listen_unix(&b, path, 0600, 0, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "another process"));
	/* A path too long for a socket, and a file that is not a socket. */
	{
		char longp[200];
		memset(longp, 'a', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = '\0';
		assert_int_equal(http_server_listen_unix(&b, longp, 0600, 0, err, sizeof(err)), -ENAMETOOLONG);
	}
	{
		char file[160];
		FILE *f;
		snprintf(file, sizeof(file), "%s/plain", dir);
		f = fopen(file, "w");
		fclose(f);
		assert_int_equal(http_server_listen_unix(&b, file, 0600, 0, err, sizeof(err)), -EEXIST);
		unlink(file);
	}
	assert_int_equal(http_server_listen_tcp(&b, "nonsense", 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(http_server_listen_tcp(&b, "127.0.0.1:0", 1, err, sizeof(err)), 0);
	assert_true(http_server_local_port(&b, 1) > 0);
	http_server_close(&a, on_closed_flag);
	http_server_close(&b, on_closed_flag);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(closed_a, 1);
	assert_int_equal(closed_b, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_chunked_body),
		cmocka_unit_test(test_keep_alive_rules),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits_are_exact),
		cmocka_unit_test(test_expect_continue),
		cmocka_unit_test(test_in_message),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_stale_and_live_sockets),
	};
	return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
