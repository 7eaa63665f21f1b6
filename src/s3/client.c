/*
 * S3 requests on the loop; see client.h for the contract.
 *
 * Who owns what is in client_internal.h; building, signing and sending
 * one attempt of a call is client_call.c's.
 *
 * Nothing is sent from inside s3_client_request(): it queues the call and
 * arms the timer at 0, so that a request refused by http_client (a bad
 * URL, say) is still answered from the loop. The timer's callback moves
 * calls whose backoff is over to the ready list, sends what the bound
 * allows, and re-arms itself for the next due call. A finished attempt
 * frees a slot, so completions send the next ready call at once.
 *
 * Closing: the ready and waiting calls move to the cancelled list, the
 * timer is closed and the http client closed (which answers every call on
 * the wire with -ECANCELED, from the loop). Once both close callbacks have
 * run, the cancelled calls are answered, the client is freed and the
 * user's close callback runs.
 *
 * What an answer means (retry or not, errno, hint) is s3/policy.c's.
 */
#include "s3/client_internal.h"

#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- lists ---- */

static void list_push(struct call_list *l, struct s3_call *k)
{
	k->next = NULL;
	k->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = k;
	else
		l->head = k;
	l->tail = k;
}

static void list_remove(struct call_list *l, struct s3_call *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		l->head = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
}

static void list_move_all(struct call_list *from, struct call_list *to)
{
	struct s3_call *k;

	while ((k = from->head) != NULL) {
		list_remove(from, k);
		list_push(to, k);
	}
}

static uint64_t next_random(struct s3_client *c)
{
	/* xorshift64: jitter only, nothing secret depends on it. */
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

static void pump(struct s3_client *c);

static void on_timer(uv_timer_t *t)
{
	struct s3_client *c = t->data;
	uint64_t now = uv_now(c->loop), due = UINT64_MAX;
	struct s3_call *k, *next;

	for (k = c->waiting.head; k != NULL; k = next) {
		next = k->next;
		if (k->due_ms <= now) {
			list_remove(&c->waiting, k);
			list_push(&c->ready, k);
		}
	}
	pump(c);
	if (c->state != CLIENT_RUNNING)
		return;
	for (k = c->waiting.head; k != NULL; k = k->next)
		if (k->due_ms < due)
			due = k->due_ms;
	if (due != UINT64_MAX)
		uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Fails every ready call with the provider's error (rc, why). */
static void fail_ready(struct s3_client *c, int rc, const char *why)
{
	struct call_list now = {NULL, NULL};
	struct s3_call *k;
	char msg[S3_CLIENT_MESSAGE_MAX];

	/* Only those ready now: a callback may queue new calls, which get their own turn. */
	snprintf(msg, sizeof(msg), "%s", why);
	list_move_all(&c->ready, &now);
	while ((k = now.head) != NULL) {
		list_remove(&now, k);
		if (c->state == CLIENT_RUNNING)
			s3_call_fail(k, rc, msg);
		else
			list_push(&c->cancelled, k);
	}
}

/*
 * Sends ready calls while the bound allows and the provider has
 * credentials; while it fetches them the calls wait (its listener pumps
 * again), and when it has none they fail with its message.
 */
static void pump(struct s3_client *c)
{
	struct s3_call *k;

	while (c->state == CLIENT_RUNNING && c->in_flight < c->max_in_flight &&
	       (k = c->ready.head) != NULL) {
		const struct s3_credentials *creds = NULL;
		const char *why = NULL;
		unsigned gen = 0;
		int rc = s3_provider_get(c->provider, &creds, &gen, &why);

		if (rc == -EAGAIN)
			return;
		if (rc != 0) {
			fail_ready(c, rc, why != NULL ? why : strerror(-rc));
			return;
		}
		list_remove(&c->ready, k);
		k->attempts++;
		rc = s3_call_send(k, creds, gen, &why);
		if (rc == 0) {
			list_push(&c->sending, k);
			c->in_flight++;
		} else {
			s3_call_fail(k, rc, why);
		}
	}
}

static void on_provider(void *arg)
{
	pump(arg);
}

/* Appends ": MESSAGE" and " (notes)" to a title; notes are joined with "; ". */
static void compose(char *msg, size_t n, const char *title, const char *detail, const char *hint,
		    int gave_up)
{
	char notes[S3_CLIENT_MESSAGE_MAX] = "";

	if (hint != NULL && hint[0] != '\0')
		snprintf(notes, sizeof(notes), "%s", hint);
	if (gave_up > 1)
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
			 "%sgave up after %d attempts", notes[0] ? "; " : "", gave_up);
	snprintf(msg, n, "%s: %s%s%s%s", title, detail, notes[0] ? " (" : "", notes,
		 notes[0] ? ")" : "");
}

/*
 * An attempt ended. One function on purpose: every outcome (cancelled,
 * success, credentials to reload, retry, final failure) shares the title,
 * code, detail and hint worked out first, and they read top to bottom in
 * the order they are decided.
 */
static void on_http_closed(void *data);

void s3_client_on_http_done(struct http_response *hr, void *data)
{
	struct s3_call *k = data;
	struct s3_client *c = k->c;
	struct s3_response resp = {0};
	struct s3_error e;
	bool have_e = false;
	char title[S3_CLIENT_MESSAGE_MAX], detail[S3_CLIENT_MESSAGE_MAX], hint[S3_CLIENT_MESSAGE_MAX] = "", msg[S3_CLIENT_MESSAGE_MAX];
	const char *code = "", *bad;
	int rc = 0, result = hr->result;

	memset(&e, 0, sizeof(e));
	list_remove(&c->sending, k);
	c->in_flight--;
	k->http = NULL;
	resp.http = hr;
	resp.status = hr->status;
	s3_call_title(k, title, sizeof(title));
	if (c->state != CLIENT_RUNNING || hr->result == -ECANCELED) {
		snprintf(msg, sizeof(msg), "%s: cancelled: the replica's S3 client is closing", title);
		resp.rc = -ECANCELED;
		resp.code = "";
		resp.message = msg;
		s3_call_finish(k, &resp);
		if (c->state != CLIENT_RUNNING && c->in_flight == 0 && c->release_pending) {
			c->release_pending = false;
			http_client_release(c->http, on_http_closed, c);
		}
		return;
	}
	if (hr->result != 0) {
		rc = hr->result;
		snprintf(detail, sizeof(detail), "%s", hr->error ? hr->error : strerror(-rc));
	} else if (hr->status >= 200 && hr->status < 300) {
		if ((k->req.flags & S3_REQ_ERROR_IN_BODY) && hr->body != NULL &&
		    s3_xml_parse_error(hr->body, hr->body_len, &e) == 0) {
			have_e = true;
			code = e.code;
			rc = -EIO;
		} else if (k->req.check != NULL &&
			   (bad = k->req.check(hr, k->req.check_arg, detail, sizeof(detail))) != NULL) {
			rc = result = -EBADMSG;
			if (bad != detail)
				snprintf(detail, sizeof(detail), "%s", bad);
		}
	} else {
		have_e = hr->body != NULL && s3_xml_parse_error(hr->body, hr->body_len, &e) == 0;
		code = have_e && e.code[0] != '\0' ? e.code : http_response_header(hr, "x-ms-error-code");
		if (code == NULL || code[0] == '\0')
			code = s3_status_code(hr->status);
		rc = s3_status_errno(hr->status, code);
	}
	LOG_DEBUG(c->log_name, NULL, "%s: %ld%s%s in %" PRIu64 " ms (attempt %d)", title, hr->status,
		  code[0] ? " " : "", code, uv_now(c->loop) - k->sent_ms, k->attempts);
	if (rc == 0) {
		resp.rc = 0;
		resp.code = "";
		s3_call_finish(k, &resp);
		pump(c);
		return;
	}
	if (result == 0) {
		s3_hint(hr->status, code, have_e ? &e : NULL,
			http_response_header(hr, "x-amz-bucket-region"), c->region, c->bucket, hint,
			sizeof(hint));
		snprintf(detail, sizeof(detail), "%ld %s%s%s", hr->status, code[0] ? code : "error",
			 have_e && e.message[0] ? ": " : "", have_e ? e.message : "");
	}
	if (result == 0 && s3_creds_rejected(hr->status, code) && !k->creds_retried &&
	    s3_provider_rejected(c->provider, k->creds_gen)) {
		k->creds_retried = true;
		compose(msg, sizeof(msg), title, detail, hint, 0);
		LOG_WARN(c->log_name, NULL, "%s; sending again with new credentials", msg);
		k->due_ms = uv_now(c->loop);
		list_push(&c->waiting, k);
		uv_timer_start(&c->timer, on_timer, 0, 0);
		pump(c);
		return;
	}
	if (s3_retryable(result, hr->status, code) && k->attempts < c->max_attempts) {
		uint64_t delay = s3_backoff_ms(k->attempts, (double)(next_random(c) % 1000) / 999.0);

		compose(msg, sizeof(msg), title, detail, hint, 0);
		LOG_WARN(c->log_name, NULL, "%s; retrying in %" PRIu64 " ms (attempt %d of %d)", msg,
			 delay, k->attempts + 1, c->max_attempts);
		k->due_ms = uv_now(c->loop) + delay;
		list_push(&c->waiting, k);
		uv_timer_start(&c->timer, on_timer, 0, 0);
		pump(c);
		return;
	}
	/* Retryable but out of attempts: say so, the user then knows it was tried. */
	compose(msg, sizeof(msg), title, detail, hint,
		s3_retryable(result, hr->status, code) ? k->attempts : 0);
	resp.rc = rc;
	resp.code = code;
	resp.message = msg;
	resp.s3err = have_e ? &e : NULL;
	s3_call_finish(k, &resp);
	pump(c);
}

/* ---- public ---- */

int s3_client_request(struct s3_client *c, const struct s3_request *req, s3_request_cb cb,
		      void *arg)
{
	struct s3_call *k;

	if (c == NULL || c->state != CLIENT_RUNNING)
		return -ESHUTDOWN;
	if (cb == NULL || req->method == NULL ||
	    (req->body == S3_BODY_FD && req->payload_hash == NULL) ||
	    (req->body == S3_BODY_MEMORY && req->body_buf == NULL && req->body_len > 0) ||
	    (req->sink == S3_SINK_FD && (req->sink_fd < 0 || req->sink_offset < 0)) ||
	    req->n_headers > S3_REQ_MAX_HEADERS)
		return -EINVAL;
	k = s3_call_new(c, req);
	if (k == NULL)
		return -ENOMEM;
	k->cb = cb;
	k->arg = arg;
	list_push(&c->ready, k);
	/* Sent from the loop, never from inside this call. */
	uv_timer_start(&c->timer, on_timer, 0, 0);
	return 0;
}

static void client_free(struct s3_client *c)
{
	free(c->scheme);
	free(c->authority);
	free(c->base);
	free(c->bucket);
	free(c->region);
	free(c->ca_file);
	free(c->log_name);
	s3_sse_free(&c->sse);
	free(c);
}

static void close_part_done(struct s3_client *c)
{
	struct s3_call *k;
	void (*cb)(void *);
	void *arg;

	if (--c->closing_parts > 0)
		return;
	while ((k = c->cancelled.head) != NULL) {
		list_remove(&c->cancelled, k);
		s3_call_fail(k, -ECANCELED, "cancelled: the replica's S3 client is closing");
	}
	cb = c->close_cb;
	arg = c->close_arg;
	client_free(c);
	if (cb != NULL)
		cb(arg);
}

static void on_http_closed(void *data)
{
	close_part_done(data);
}

static void on_timer_closed(uv_handle_t *h)
{
	close_part_done(h->data);
}


static void on_provider_closed(void *data)
{
	close_part_done(data);
}

void s3_client_close(struct s3_client *c, void (*cb)(void *arg), void *arg)
{
	if (c->state != CLIENT_RUNNING)
		return;
	c->state = CLIENT_CLOSING;
	c->close_cb = cb;
	c->close_arg = arg;
	list_move_all(&c->ready, &c->cancelled);
	list_move_all(&c->waiting, &c->cancelled);
	c->closing_parts = 3;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	/* The HTTP client is the loop's, shared: only our own requests are
	 * cancelled, and the reference goes once their callbacks have run. */
	for (struct s3_call *k = c->sending.head; k != NULL; k = k->next)
		if (k->http != NULL)
			(void)http_request_cancel(k->http);
	if (c->in_flight == 0)
		http_client_release(c->http, on_http_closed, c);
	else
		c->release_pending = true;
	/* Last: a static provider calls back at once. */
	s3_provider_close(c->provider, on_provider_closed, c);
}

const char *s3_client_credentials_source(const struct s3_client *c)
{
	return s3_provider_source(c->provider);
}

/* c's scheme, authority, base and path style, from cfg's endpoint or region. */
static int client_endpoint(struct s3_client *c, const struct s3_client_config *cfg,
			   const char *region, char *err, size_t errlen)
{
	int rc;

	if (cfg->endpoint != NULL && cfg->endpoint[0] != '\0') {
		rc = s3_endpoint_split(cfg->endpoint, &c->scheme, &c->authority, &c->base);
		if (rc != 0) {
			if (rc == -EINVAL)
				snprintf(err, errlen, "invalid endpoint \"%s\"", cfg->endpoint);
			return rc;
		}
		c->path_style = cfg->force_path_style;
	} else {
		const char *suffix =
			strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";

		c->scheme = strdup("https");
		c->authority = malloc(strlen(region) + strlen(suffix) + 5);
		if (c->authority != NULL)
			sprintf(c->authority, "s3.%s.%s", region, suffix);
		c->base = strdup("");
		c->path_style = cfg->force_path_style;
	}
	/* A dotted bucket name breaks the wildcard certificate of a virtual host. */
	if (c->scheme != NULL && strcmp(c->scheme, "https") == 0 && strchr(cfg->bucket, '.') != NULL)
		c->path_style = true;
	return 0;
}

/* The rest of cfg into c, and its random seed. 0 or -ENOMEM. */
static int client_copy_config(struct s3_client *c, const struct s3_client_config *cfg,
			      const char *region)
{
	c->bucket = strdup(cfg->bucket);
	c->region = strdup(region);
	c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	c->log_name = cfg->log_name ? strdup(cfg->log_name) : NULL;
	c->insecure = cfg->skip_verify;
	c->sign = cfg->sign;
	c->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : S3_DEFAULT_MAX_IN_FLIGHT;
	c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : S3_DEFAULT_MAX_ATTEMPTS;
	c->stall_ms = cfg->stall_timeout_ms > 0 ? cfg->stall_timeout_ms : S3_DEFAULT_STALL_TIMEOUT_MS;
	if (c->stall_ms < 1000)
		c->stall_ms = 1000;
	c->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
	if (c->rng == 0)
		c->rng = 0x9e3779b97f4a7c15ull;
	if (c->scheme == NULL || c->authority == NULL || c->base == NULL || c->bucket == NULL ||
	    c->region == NULL || (cfg->ca_file && c->ca_file == NULL) ||
	    (cfg->log_name && c->log_name == NULL))
		return -ENOMEM;
	return 0;
}

/* cfg's provider (or a static one of cfg's credentials) and sse into c. */
static int client_take_creds(struct s3_client *c, uv_loop_t *loop,
			     const struct s3_client_config *cfg, char *err, size_t errlen)
{
	const struct s3_sse *e = cfg->sse;
	int rc;

	if (cfg->provider != NULL)
		c->provider = cfg->provider;
	else if ((rc = s3_provider_new_static(loop, cfg->creds, cfg->reload_creds, cfg->reload_arg,
					      cfg->log_name, &c->provider)) != 0)
		return rc;
	if (e != NULL && (rc = s3_sse_init(&c->sse, e->mode, e->kms_key_id, e->storage_class,
					   e->customer_key, err, errlen)) != 0)
		return rc;
	return 0;
}

int s3_client_new(uv_loop_t *loop, const struct s3_client_config *cfg, struct s3_client **out,
		  char *err, size_t errlen)
{
	struct s3_client *c;
	const char *region = cfg->region && cfg->region[0] ? cfg->region : S3_DEFAULT_REGION;
	int rc;

	if (cfg->bucket == NULL || cfg->bucket[0] == '\0' || strchr(cfg->bucket, '/') != NULL) {
		snprintf(err, errlen, "invalid bucket name \"%s\"", cfg->bucket ? cfg->bucket : "");
		return -EINVAL;
	}
	if (cfg->creds == NULL && cfg->provider == NULL) {
		snprintf(err, errlen, "no credentials");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		if (cfg->provider != NULL)
			s3_provider_close(cfg->provider, NULL, NULL);
		return -ENOMEM;
	}
	c->loop = loop;
	c->state = CLIENT_RUNNING;
	rc = client_take_creds(c, loop, cfg, err, errlen);
	if (rc == 0)
		rc = client_endpoint(c, cfg, region, err, errlen);
	if (rc == 0)
		rc = client_copy_config(c, cfg, region);
	if (rc == 0)
		rc = http_client_shared(loop, &c->http);
	if (rc != 0) {
		if (c->provider != NULL)
			s3_provider_close(c->provider, NULL, NULL);
		else if (cfg->provider != NULL)
			s3_provider_close(cfg->provider, NULL, NULL);
		client_free(c);
		return rc;
	}
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	s3_provider_listen(c->provider, on_provider, c);
	*out = c;
	return 0;
}
