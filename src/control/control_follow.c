/*
 * The follower's control socket; see control_follow.h. The HTTP server
 * (net/http_server.h), the JSON answers (control_respond_json) and the
 * Prometheus exposition (metrics.h) are replicate's; only the bodies are
 * the follower's.
 */
#include "control/control_follow.h"

#include "control/control_internal.h"
#include "control/metrics.h"
#include "restore/follower.h"
#include "util/timefmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct control_follow {
	struct http_server http;
	const struct follower *f;
};

static cJSON *status_json(const struct follower *f)
{
	cJSON *o = cJSON_CreateObject(), *pos;
	char t[40], idx[16];

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "path", f->o.output);
	cJSON_AddStringToObject(o, "replica", f->src.backend->describe);
	cJSON_AddStringToObject(o, "state", follower_state_name(f->state));
	if (f->have_pos) {
		pos = cJSON_AddObjectToObject(o, "position");
		snprintf(idx, sizeof(idx), "%08x", f->pos.index);
		cJSON_AddStringToObject(pos, "generation", f->pos.generation);
		cJSON_AddStringToObject(pos, "index", idx);
		cJSON_AddNumberToObject(pos, "offset", (double)f->pos.offset);
	} else {
		cJSON_AddNullToObject(o, "position");
	}
	cJSON_AddNumberToObject(o, "lag_seconds", f->stats.lag_seconds);
	if (f->stats.last_apply_ms > 0) {
		timefmt_format(f->stats.last_apply_ms, t, sizeof(t));
		cJSON_AddStringToObject(o, "last_apply", t);
	} else {
		cJSON_AddNullToObject(o, "last_apply");
	}
	cJSON_AddNumberToObject(o, "applies", (double)f->stats.applies);
	cJSON_AddNumberToObject(o, "segments", (double)f->stats.segments);
	cJSON_AddNumberToObject(o, "generation_switches", (double)f->stats.switches);
	cJSON_AddNumberToObject(o, "poll_errors", (double)f->stats.poll_errors);
	control_add_string_or_null(o, "last_error", f->last_error);
	return o;
}

static void write_metrics(struct metrics_buf *b, const struct follower *f)
{
	const struct metrics_label l = {"db", f->o.output};
	const struct {
		const char *name, *type, *help;
		double v;
	} fams[] = {
		{"litestream_follow_wal_index", "gauge", "WAL index the follower has applied up to.",
		 (double)f->pos.index},
		{"litestream_follow_wal_offset", "gauge", "Bytes of that WAL index applied.", (double)f->pos.offset},
		{"litestream_follow_lag_seconds", "gauge",
		 "The replica's newest object minus the newest applied, 0 when caught up.", f->stats.lag_seconds},
		{"litestream_follow_applies_total", "counter", "Changes applied to the local copy.",
		 (double)f->stats.applies},
		{"litestream_follow_segments_total", "counter", "WAL segments applied.", (double)f->stats.segments},
		{"litestream_follow_pages_total", "counter", "Pages written into the local copy.",
		 (double)f->stats.pages},
		{"litestream_follow_polls_total", "counter", "Polls of the replica.", (double)f->stats.polls},
		{"litestream_follow_poll_errors_total", "counter", "Polls that failed and were retried.",
		 (double)f->stats.poll_errors},
		{"litestream_follow_generation_switches_total", "counter",
		 "Times the follower moved to a new generation.", (double)f->stats.switches},
		{"litestream_follow_apply_seconds_total", "counter", "Time spent applying changes.",
		 f->stats.apply_seconds},
	};
	struct metrics_process proc;

	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		metrics_family(b, fams[i].name, fams[i].type, fams[i].help);
		metrics_sample(b, fams[i].name, &l, 1, fams[i].v);
	}
	metrics_process_read(&proc);
	metrics_write_process(b, &proc);
}

static void on_request(struct http_server_request *req, void *arg)
{
	struct control_follow *c = arg;
	struct metrics_buf b;

	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		static const char body[] = "{\"error\":\"method not allowed (use GET)\"}";
		http_server_respond(req, 405, "application/json", "Allow: GET, HEAD\r\n", body,
				    sizeof(body) - 1);
		return;
	}
	if (strcmp(req->path, "/v1/status") == 0) {
		control_respond_json(req, 200, status_json(c->f));
	} else if (strcmp(req->path, "/metrics") == 0) {
		metrics_buf_init(&b);
		write_metrics(&b, c->f);
		if (b.failed)
			http_server_respond_error(req, 500, "out of memory");
		else
			http_server_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data,
					    b.len);
		metrics_buf_free(&b);
	} else {
		control_respond_errorf(req, 404, "no such path: %s", req->path);
	}
}

static void on_abort(struct http_server_request *req, void *arg)
{
	(void)req;
	(void)arg; /* every answer is immediate: nothing waits */
}

static void on_closed(struct http_server *s)
{
	free((struct control_follow *)s->arg);
}

int control_follow_start(uv_loop_t *loop, const struct follower *f, const char *socket_path,
			 struct control_follow **out, char *err, size_t errlen)
{
	struct control_follow *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (c == NULL)
		return snprintf(err, errlen, "out of memory"), -ENOMEM;
	c->f = f;
	http_server_init(&c->http, loop, NULL, on_request, on_abort, c);
	if ((rc = http_server_listen_unix(&c->http, socket_path, 0600, CONTROL_LISTENER_SOCKET, err, errlen)) != 0) {
		http_server_close(&c->http, on_closed);
		return rc;
	}
	*out = c;
	return 0;
}

void control_follow_close(struct control_follow *c)
{
	if (c != NULL)
		http_server_close(&c->http, on_closed);
}
