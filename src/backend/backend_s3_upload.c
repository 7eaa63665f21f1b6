/*
 * The put pipeline the S3 and abs backends share: a local file becomes one
 * object, whole or not at all. What differs between the two protocols (the
 * requests' names and parameters, how parts are named, committed and given
 * up) is in their upload_protocol (backend_s3_put.c, backend_abs_put.c);
 * the order of the steps, the threadpool work and the accounting of parts
 * in flight are here, once.
 *
 *   upload_start     threadpool: open, fstat, and for one request digest
 *   fill_single      one request with the whole file (up to part-size)
 *   begin, cut       the parts: offsets, names; launched
 *   part             threadpool digest, then its request (at most
 *                    MAX_PARTS_IN_FLIGHT at a time)
 *   commit           the protocol makes the object of the parts
 *
 * A part that fails records the first failure (upload_fail); the upload
 * is given up (upload_abort) once no part is busy any more (part_over).
 */
#include "backend/backend_s3_internal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PARTS_IN_FLIGHT 4
#define MIB (1024 * 1024)

void upload_finish(struct upload *up, int rc, const char *err)
{
	struct s3_backend *sb = up->sb;

	if (up->fd >= 0)
		close(up->fd);
	up->cb(up->arg, rc, rc ? (err ? err : strerror(-rc)) : NULL);
	for (size_t i = 0; i < up->n_parts; i++)
		free(up->parts[i].tag);
	free(up->parts);
	free(up->upload_id);
	free(up->body);
	free(up->key);
	free(up->full);
	free(up->local);
	free(up);
	backend_s3_op_end(sb);
}

void upload_fail(struct upload *up, int rc, const char *msg)
{
	if (!up->failed) {
		up->failed = true;
		up->fail_rc = rc ? rc : -EIO;
		snprintf(up->fail_msg, sizeof(up->fail_msg), "%s", msg ? msg : strerror(-up->fail_rc));
	}
}

void upload_abort(struct upload *up)
{
	if (up->proto->abort != NULL)
		up->proto->abort(up);
	else
		upload_finish(up, up->fail_rc, up->fail_msg);
}

static void on_answer(void *arg, const struct s3_response *r)
{
	upload_finish(arg, r->rc, r->message);
}

void upload_send(struct upload *up, const struct s3_request *req, s3_request_cb cb)
{
	char msg[512];
	int rc = backend_s3_send(up->sb, req, cb ? cb : on_answer, up);

	if (rc != 0) {
		snprintf(msg, sizeof(msg), "%s %s%s%s%s: %s", req->method, up->key,
			 req->what ? " (" : "", req->what ? req->what : "", req->what ? ")" : "",
			 backend_s3_refused(rc));
		upload_finish(up, rc, msg);
	}
}

/* Threadpool: open the file, learn its size, digest it when one request will do. */
static void upload_prepare(uv_work_t *w)
{
	struct upload *up = w->data;
	struct stat st;

	up->fd = open(up->local, O_RDONLY | O_CLOEXEC);
	if (up->fd < 0 || fstat(up->fd, &st) != 0) {
		up->rc = -errno;
		snprintf(up->err, sizeof(up->err), "PUT %s: %s %s: %s", up->key,
			 up->fd < 0 ? "open" : "stat", up->local, strerror(errno));
		return;
	}
	up->size = (uint64_t)st.st_size;
	up->in_parts = up->size > up->sb->part_size;
	if (up->in_parts)
		return;
	up->rc = sigv4_digest_fd(up->fd, 0, up->size, up->sha, up->md5);
	if (up->rc != 0)
		snprintf(up->err, sizeof(up->err), "PUT %s: reading %s: %s", up->key, up->local,
			 strerror(-up->rc));
}

static void upload_single(struct upload *up)
{
	struct s3_request req = {0};

	req.method = "PUT";
	req.key = up->full;
	req.label = up->key;
	req.content_md5 = up->md5;
	req.body = S3_BODY_FD;
	req.body_fd = up->fd;
	req.body_len = up->size;
	req.payload_hash = up->sha;
	up->proto->fill_single(up, &req);
	upload_send(up, &req, NULL);
}

/* -- parts -- */

static void parts_launch(struct upload *up);

/* One part is over (either way): go on, commit, or give up once none is busy. */
static void part_over(struct upload *up)
{
	up->parts_busy--;
	if (up->failed) {
		if (up->parts_busy == 0)
			upload_abort(up);
		return;
	}
	if (up->parts_done == up->n_parts)
		up->proto->commit(up);
	else
		parts_launch(up);
}

static void on_part_put(void *arg, const struct s3_response *r)
{
	struct upload_part *p = arg;
	struct upload *up = p->up;
	char msg[640];
	int rc;

	if (r->rc != 0) {
		upload_fail(up, r->rc, r->message);
	} else if (up->proto->part_stored != NULL &&
		   (rc = up->proto->part_stored(p, r, msg, sizeof(msg))) != 0) {
		upload_fail(up, rc, msg);
	} else {
		up->parts_done++;
	}
	part_over(up);
}

static void part_digest(uv_work_t *w)
{
	struct upload_part *p = w->data;

	p->rc = sigv4_digest_fd(p->up->fd, p->offset, p->len, p->sha, p->md5);
}

static void on_part_digested(uv_work_t *w, int status)
{
	struct upload_part *p = w->data;
	struct upload *up = p->up;
	struct sigv4_param params[2];
	struct s3_request req = {0};
	char num[16], what[64], msg[640];
	int rc;

	if (status == UV_ECANCELED)
		p->rc = -ECANCELED;
	if (p->rc != 0 || up->failed) {
		if (p->rc != 0) {
			snprintf(msg, sizeof(msg), "PUT %s (%s %zu of %zu): reading %s: %s", up->key,
				 up->proto->unit, p->index + 1, up->n_parts, up->local, strerror(-p->rc));
			upload_fail(up, p->rc, msg);
		}
		part_over(up);
		return;
	}
	snprintf(what, sizeof(what), "%s %zu of %zu", up->proto->unit, p->index + 1, up->n_parts);
	req.method = "PUT";
	req.key = up->full;
	req.label = up->key;
	req.what = what;
	req.params = params;
	req.n_params = up->proto->part_params(p, params, num);
	req.flags = up->proto->part_flags;
	req.content_md5 = p->md5;
	req.body = S3_BODY_FD;
	req.body_fd = up->fd;
	req.body_offset = (int64_t)p->offset;
	req.body_len = p->len;
	req.payload_hash = p->sha;
	rc = backend_s3_send(up->sb, &req, on_part_put, p);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "PUT %s (%s): %s", up->key, what, backend_s3_refused(rc));
		upload_fail(up, rc, msg);
		part_over(up);
	}
}

static void parts_launch(struct upload *up)
{
	while (!up->failed && up->parts_busy < MAX_PARTS_IN_FLIGHT && up->next_part < up->n_parts) {
		struct upload_part *p = &up->parts[up->next_part++];
		int rc;

		up->parts_busy++;
		p->work.data = p;
		rc = uv_queue_work(up->sb->base.loop, &p->work, part_digest, on_part_digested);
		if (rc != 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "PUT %s: queue digest: %s", up->key, uv_strerror(rc));
			upload_fail(up, rc, msg);
			part_over(up);
			return;
		}
	}
}

void upload_cut(struct upload *up)
{
	uint64_t part = up->sb->part_size;
	uint64_t most = up->proto->max_parts;

	/* A bounded number of parts: larger files get larger parts. */
	if ((up->size + part - 1) / part > most)
		part = ((up->size + most - 1) / most + MIB - 1) / MIB * MIB;
	up->n_parts = (size_t)((up->size + part - 1) / part);
	up->parts = calloc(up->n_parts, sizeof(*up->parts));
	if (up->parts == NULL) {
		up->n_parts = 0;
		upload_fail(up, -ENOMEM, "out of memory");
		upload_abort(up);
		return;
	}
	for (size_t i = 0; i < up->n_parts; i++) {
		struct upload_part *p = &up->parts[i];

		p->up = up;
		p->index = i;
		p->offset = (uint64_t)i * part;
		p->len = up->size - p->offset < part ? up->size - p->offset : part;
		if (up->proto->name_part != NULL && up->proto->name_part(p) != 0) {
			upload_fail(up, -ENOMEM, "out of memory");
			upload_abort(up);
			return;
		}
	}
	LOG_DEBUG(up->sb->name, NULL, "uploading %s (%llu bytes) in %zu %ss", up->key,
		  (unsigned long long)up->size, up->n_parts, up->proto->unit);
	up->parts_busy = 1; /* held while launching, so that a quick failure cannot end the upload under us */
	parts_launch(up);
	part_over(up);
}

static void on_prepared(uv_work_t *w, int status)
{
	struct upload *up = w->data;

	if (status == UV_ECANCELED && up->rc == 0) {
		up->rc = -ECANCELED;
		snprintf(up->err, sizeof(up->err), "PUT %s: cancelled", up->key);
	}
	if (up->rc != 0)
		upload_finish(up, up->rc, up->err);
	else if (!up->in_parts)
		upload_single(up);
	else if (up->proto->begin != NULL)
		up->proto->begin(up);
	else
		upload_cut(up);
}

void upload_start(struct backend *b, const struct upload_protocol *proto, const char *key,
		  const char *local_path, backend_done_cb cb, void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct upload *up = calloc(1, sizeof(*up));
	int rc;

	if (up == NULL) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	up->sb = sb;
	up->proto = proto;
	up->fd = -1;
	up->cb = cb;
	up->arg = arg;
	up->work.data = up;
	up->key = strdup(key);
	up->full = backend_s3_key(sb, key);
	up->local = strdup(local_path);
	backend_s3_op_begin(sb);
	if (up->key == NULL || up->full == NULL || up->local == NULL) {
		upload_finish(up, -ENOMEM, "out of memory");
		return;
	}
	rc = uv_queue_work(b->loop, &up->work, upload_prepare, on_prepared);
	if (rc != 0) {
		snprintf(up->err, sizeof(up->err), "PUT %s: %s", key, uv_strerror(rc));
		upload_finish(up, rc, up->err);
	}
}
