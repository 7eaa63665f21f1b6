/*
 * The curl callbacks of one transfer: collecting the response headers,
 * the response body (in memory under its cap, or into the caller's fd with
 * a small capped error body), and sending the request body from memory or
 * from a file. They run inside curl_multi_socket_action(); on a failure
 * they record the cause in the request (the first one wins) and make curl
 * abort the transfer. See http_client_internal.h for the types.
 */
#include "net/http_client_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

void http_request_headers_clear(struct http_request *r)
{
	for (size_t i = 0; i < r->n_hdrs; i++)
		free((void *)r->hdrs[i].name);
	r->n_hdrs = 0;
	r->hdr_bytes = 0;
}

const char *http_headers_find(const struct http_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	}
	return NULL;
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
	return http_headers_find(resp->headers, resp->n_headers, name);
}

/* Content-Length of the response so far, or -1. */
int64_t http_request_content_length(const struct http_request *r)
{
	const char *v = http_headers_find(r->hdrs, r->n_hdrs, "content-length");
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
size_t http_request_on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_request *r = userdata;
	size_t n = size * nitems, len = n;
	const char *colon;
	char *line, *value, *end;

	if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		const char *p = memchr(buf, ' ', n);
		long status = 0;
		int digits = 0;

		http_request_headers_clear(r);
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
		int64_t cl = http_request_content_length(r);

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

size_t http_request_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
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

size_t http_request_on_send(char *buf, size_t size, size_t nitems, void *userdata)
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
int http_request_on_seek(void *userdata, curl_off_t offset, int origin)
{
	struct http_request *r = userdata;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->body_pos = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}
