/*
 * The request objects of the HTTP client: checking and building a request
 * (its curl options and header list), turning curl's verdict into the
 * response's result and message, cancelling, and completion: detaching
 * from the multi handle, delivering the callback and freeing. See
 * http_client.c for the states and http_client_internal.h for the types.
 */
#include "net/http_client_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sent unless the caller's headers carry their own User-Agent. */
#define HTTP_USER_AGENT "litestream"

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
void http_request_finish(struct http_request *r, CURLcode code)
{
	struct http_response *resp = &r->resp;

	resp->curl_code = (int)code;
	resp->status = r->status;
	resp->headers = r->hdrs;
	resp->n_headers = r->n_hdrs;
	resp->content_length = http_request_content_length(r);
	resp->etag = http_headers_find(r->hdrs, r->n_hdrs, "etag");
	resp->request_id = http_headers_find(r->hdrs, r->n_hdrs, "x-amz-request-id");
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
void http_request_release_curl(struct http_request *r)
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
	http_request_release_curl(r);
	http_request_headers_clear(r);
	free(r->hdrs);
	free(r->resp.body);
	free(r);
}

/* Takes an ACTIVE request off the multi handle and the active list. */
void http_request_detach(struct http_request *r)
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

void http_request_deliver(struct http_request *r)
{
	struct http_client *c = r->client;

	r->state = REQ_DELIVERING;
	c->in_flight--;
	r->cb(&r->resp, r->data);
	request_free(r);
}

int http_request_cancel(struct http_request *r)
{
	struct http_client *c = r->client;

	if (r->state != REQ_ACTIVE)
		return -EALREADY;
	http_request_detach(r);
	http_request_finish(r, CURLE_OK);
	r->resp.result = -ECANCELED;
	r->resp.error = "request cancelled";
	http_request_release_curl(r);
	r->state = REQ_DONE;
	if (c->done_tail != NULL)
		c->done_tail->next = r;
	else
		c->done_head = r;
	c->done_tail = r;
	if (c->state == CLIENT_RUNNING)
		uv_timer_start(&c->dispatch, http_client_on_dispatch, 0, 0);
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

/*
 * Sets every curl option of a request; 0 or a negative errno. Long on
 * purpose: one curl_easy_setopt() a line, in the order curl's manual
 * groups them, reads better as one list than scattered over helpers.
 */
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
	SET(CURLOPT_HEADERFUNCTION, http_request_on_header);
	SET(CURLOPT_HEADERDATA, (void *)r);
	SET(CURLOPT_WRITEFUNCTION, http_request_on_body);
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
		SET(CURLOPT_READFUNCTION, http_request_on_send);
		SET(CURLOPT_READDATA, (void *)r);
		SET(CURLOPT_SEEKFUNCTION, http_request_on_seek);
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
