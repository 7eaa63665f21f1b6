/*
 * The HTTP/1.1 request reader: http-parser callbacks that collect one
 * request (target, the Expect header, body) within the limits (head,
 * target and body sizes), pausing the parser at the end of the head and
 * at the end of each request so that pipelined bytes stay unparsed. See
 * http_server.h for the contract; it knows nothing of sockets.
 */
#include "net/http_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
