/*
 * The S3 backend's put: the local file becomes one object, whole or not at
 * all.
 *
 * Up to part-size bytes it is one PutObject streamed from the file. Above
 * that it is a multipart upload: CreateMultipartUpload, then the parts
 * (each digested on the threadpool, then sent; at most
 * MAX_PARTS_IN_FLIGHT at a time), then CompleteMultipartUpload, then a
 * HEAD that must show the whole size and an ETag of the "-N" form before
 * the object counts as stored (rgw answers the completion with an empty
 * ETag). A failure after the upload began aborts it, so no parts are left
 * behind to pay for.
 *
 * One put_op carries the whole upload; every path ends in put_finish(),
 * exactly once. Parts that fail record the first failure (parts_fail) and
 * the upload is aborted once no part is busy any more (part_over).
 */
#include "backend/backend_s3_internal.h"
#include "util/log.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PARTS_IN_FLIGHT 4
#define MAX_PARTS 10000
#define MIB (1024 * 1024)

struct put_op;

/* One part of a multipart upload: its bytes of the file, their digests, and its ETag once stored. */
struct part {
	struct put_op *op;
	uv_work_t work;
	int number;
	uint64_t offset, len;
	char sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	int rc;
	char *etag;
};

/* One put, from the threadpool step that opens the file to put_finish(). */
struct put_op {
	struct s3_backend *sb;
	uv_work_t work;
	char *key;   /* backend key, for messages */
	char *full;  /* object key */
	char *local;
	int fd;
	uint64_t size;
	bool multipart;
	char sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	int rc;      /* of the threadpool step */
	char err[512];
	backend_done_cb cb;
	void *arg;
	/* multipart */
	char *upload_id;
	struct part *parts;
	size_t n_parts, next_part, parts_busy, parts_done;
	bool failed;
	int fail_rc;
	char fail_msg[640];
	char *body; /* CompleteMultipartUpload's, while it is sent */
};

static void put_finish(struct put_op *op, int rc, const char *err)
{
	struct s3_backend *sb = op->sb;

	if (op->fd >= 0)
		close(op->fd);
	op->cb(op->arg, rc, rc ? (err ? err : strerror(-rc)) : NULL);
	for (size_t i = 0; i < op->n_parts; i++)
		free(op->parts[i].etag);
	free(op->parts);
	free(op->upload_id);
	free(op->body);
	free(op->key);
	free(op->full);
	free(op->local);
	free(op);
	backend_s3_op_end(sb);
}

/* Threadpool: open the file, learn its size, digest it when one PUT will do. */
static void put_prepare(uv_work_t *w)
{
	struct put_op *op = w->data;
	struct stat st;

	op->fd = open(op->local, O_RDONLY | O_CLOEXEC);
	if (op->fd < 0) {
		op->rc = -errno;
		snprintf(op->err, sizeof(op->err), "PUT %s: open %s: %s", op->key, op->local,
			 strerror(errno));
		return;
	}
	if (fstat(op->fd, &st) != 0) {
		op->rc = -errno;
		snprintf(op->err, sizeof(op->err), "PUT %s: stat %s: %s", op->key, op->local,
			 strerror(errno));
		return;
	}
	op->size = (uint64_t)st.st_size;
	op->multipart = op->size > op->sb->part_size;
	if (op->multipart)
		return;
	op->rc = sigv4_digest_fd(op->fd, 0, op->size, op->sha, op->md5);
	if (op->rc != 0)
		snprintf(op->err, sizeof(op->err), "PUT %s: reading %s: %s", op->key, op->local,
			 strerror(-op->rc));
}

static void on_single_put(void *arg, const struct s3_response *r)
{
	put_finish(arg, r->rc, r->message);
}

/* Sends one request of an upload; one the client refuses ends the upload. */
static void put_send(struct put_op *op, const struct s3_request *req, s3_request_cb cb,
		     const char *what)
{
	char msg[512];
	int rc = backend_s3_send(op->sb, req, cb, op);

	if (rc != 0) {
		snprintf(msg, sizeof(msg), "%s %s%s: %s", req->method, op->key, what, backend_s3_refused(rc));
		put_finish(op, rc, msg);
	}
}

static void put_single(struct put_op *op)
{
	struct s3_request req = {0};

	req.method = "PUT";
	req.key = op->full;
	req.label = op->key;
	req.flags = S3_REQ_NEW_OBJECT;
	req.content_md5 = op->md5;
	req.body = S3_BODY_FD;
	req.body_fd = op->fd;
	req.body_len = op->size;
	req.payload_hash = op->sha;
	put_send(op, &req, on_single_put, "");
}

/* -- multipart -- */

static void on_aborted(void *arg, const struct s3_response *r)
{
	struct put_op *op = arg;

	if (r->rc != 0)
		LOG_WARN(op->sb->name, NULL,
			 "%s; the incomplete upload stays until a lifecycle rule for incomplete multipart "
			 "uploads removes it",
			 r->message);
	put_finish(op, op->fail_rc, op->fail_msg);
}

/* Gives up the upload: S3 drops the parts it holds, then the failure is reported. */
static void put_abort(struct put_op *op)
{
	struct sigv4_param params[1] = {{"uploadId", op->upload_id}};
	struct s3_request req = {0};
	int rc;

	req.method = "DELETE";
	req.key = op->full;
	req.label = op->key;
	req.what = "abort multipart upload";
	req.params = params;
	req.n_params = 1;
	rc = backend_s3_send(op->sb, &req, on_aborted, op);
	if (rc != 0) {
		LOG_WARN_ERR(op->sb->name, NULL, backend_s3_refused(rc), "DELETE %s (abort multipart upload)",
			     op->key);
		put_finish(op, op->fail_rc, op->fail_msg);
	}
}

static void parts_fail(struct put_op *op, int rc, const char *msg)
{
	if (!op->failed) {
		op->failed = true;
		op->fail_rc = rc ? rc : -EIO;
		snprintf(op->fail_msg, sizeof(op->fail_msg), "%s", msg ? msg : strerror(-op->fail_rc));
	}
}

static void parts_launch(struct put_op *op);
static void put_complete(struct put_op *op);

/* One part is over (either way): go on, complete, or abort once all are over. */
static void part_over(struct put_op *op)
{
	op->parts_busy--;
	if (op->failed) {
		if (op->parts_busy == 0)
			put_abort(op);
		return;
	}
	if (op->parts_done == op->n_parts)
		put_complete(op);
	else
		parts_launch(op);
}

static void on_part_put(void *arg, const struct s3_response *r)
{
	struct part *p = arg;
	struct put_op *op = p->op;
	char msg[640];

	if (r->rc != 0) {
		parts_fail(op, r->rc, r->message);
	} else if (r->http->etag == NULL || r->http->etag[0] == '\0') {
		snprintf(msg, sizeof(msg), "PUT %s (part %d of %zu): the server sent no ETag", op->key,
			 p->number, op->n_parts);
		parts_fail(op, -EIO, msg);
	} else if ((p->etag = strdup(r->http->etag)) == NULL) {
		parts_fail(op, -ENOMEM, "out of memory");
	} else {
		op->parts_done++;
	}
	part_over(op);
}

static void part_digest(uv_work_t *w)
{
	struct part *p = w->data;

	p->rc = sigv4_digest_fd(p->op->fd, p->offset, p->len, p->sha, p->md5);
}

static void on_part_digested(uv_work_t *w, int status)
{
	struct part *p = w->data;
	struct put_op *op = p->op;
	char num[16], what[64], msg[640];
	struct sigv4_param params[2] = {{"partNumber", num}, {"uploadId", op->upload_id}};
	struct s3_request req = {0};
	int rc;

	if (status == UV_ECANCELED)
		p->rc = -ECANCELED;
	if (p->rc != 0 || op->failed) {
		if (p->rc != 0) {
			snprintf(msg, sizeof(msg), "PUT %s (part %d of %zu): reading %s: %s", op->key,
				 p->number, op->n_parts, op->local, strerror(-p->rc));
			parts_fail(op, p->rc, msg);
		}
		part_over(op);
		return;
	}
	snprintf(num, sizeof(num), "%d", p->number);
	snprintf(what, sizeof(what), "part %d of %zu", p->number, op->n_parts);
	req.method = "PUT";
	req.key = op->full;
	req.label = op->key;
	req.what = what;
	req.params = params;
	req.n_params = 2;
	req.flags = S3_REQ_OBJECT_DATA;
	req.content_md5 = p->md5;
	req.body = S3_BODY_FD;
	req.body_fd = op->fd;
	req.body_offset = (int64_t)p->offset;
	req.body_len = p->len;
	req.payload_hash = p->sha;
	rc = backend_s3_send(op->sb, &req, on_part_put, p);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "PUT %s (%s): %s", op->key, what, backend_s3_refused(rc));
		parts_fail(op, rc, msg);
		part_over(op);
	}
}

static void parts_launch(struct put_op *op)
{
	while (!op->failed && op->parts_busy < MAX_PARTS_IN_FLIGHT && op->next_part < op->n_parts) {
		struct part *p = &op->parts[op->next_part++];
		int rc;

		op->parts_busy++;
		p->work.data = p;
		rc = uv_queue_work(op->sb->base.loop, &p->work, part_digest, on_part_digested);
		if (rc != 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "PUT %s: queue digest: %s", op->key, uv_strerror(rc));
			parts_fail(op, rc, msg);
			part_over(op);
			return;
		}
	}
}

/* "ETAG-N" (quotes allowed) with 32 hex digits: what S3 gives a completed N-part upload. */
static bool multipart_etag_ok(const char *etag, size_t n_parts)
{
	char want[24];
	size_t len, i;

	if (etag == NULL)
		return false;
	if (etag[0] == '"')
		etag++;
	len = strlen(etag);
	if (len > 0 && etag[len - 1] == '"')
		len--;
	snprintf(want, sizeof(want), "-%zu", n_parts);
	if (len != 32 + strlen(want) || strncmp(etag + 32, want, strlen(want)) != 0)
		return false;
	for (i = 0; i < 32; i++) {
		char c = etag[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

static void on_head(void *arg, const struct s3_response *r)
{
	struct put_op *op = arg;
	char msg[640];

	if (r->rc != 0) {
		put_finish(op, r->rc, r->message);
		return;
	}
	if (r->http->content_length < 0 || (uint64_t)r->http->content_length != op->size) {
		snprintf(msg, sizeof(msg),
			 "HEAD %s: the completed multipart upload holds %lld bytes, not %llu", op->key,
			 (long long)r->http->content_length, (unsigned long long)op->size);
		put_finish(op, -EIO, msg);
		return;
	}
	if (!multipart_etag_ok(r->http->etag, op->n_parts)) {
		snprintf(msg, sizeof(msg),
			 "HEAD %s: ETag %s is not that of a completed %zu-part upload", op->key,
			 r->http->etag ? r->http->etag : "(none)", op->n_parts);
		put_finish(op, -EIO, msg);
		return;
	}
	LOG_DEBUG(op->sb->name, NULL, "stored %s in %zu parts (ETag %s)", op->key, op->n_parts,
		  r->http->etag);
	put_finish(op, 0, NULL);
}

/* The completed object must be there, whole, before the upload counts. */
static void put_verify(struct put_op *op)
{
	struct s3_request req = {0};

	req.method = "HEAD";
	req.key = op->full;
	req.label = op->key;
	req.flags = S3_REQ_OBJECT_DATA;
	put_send(op, &req, on_head, "");
}

static void on_completed(void *arg, const struct s3_response *r)
{
	struct put_op *op = arg;

	free(op->body);
	op->body = NULL;
	if (r->rc == 0) {
		put_verify(op);
		return;
	}
	/* An earlier attempt may have completed it before its answer was lost:
	 * the upload is then gone, and the object tells whether it is ours. */
	if (strcmp(r->code, "NoSuchUpload") == 0 && r->attempts > 1) {
		LOG_INFO(op->sb->name, NULL, "%s; checking whether an earlier attempt completed it",
			 r->message);
		put_verify(op);
		return;
	}
	parts_fail(op, r->rc, r->message);
	if (r->rc == -ECANCELED || strcmp(r->code, "NoSuchUpload") == 0)
		put_finish(op, op->fail_rc, op->fail_msg);
	else
		put_abort(op);
}

static void put_complete(struct put_op *op)
{
	struct sigv4_param params[1] = {{"uploadId", op->upload_id}};
	struct s3_part *list = calloc(op->n_parts, sizeof(*list));
	struct s3_request req = {0};
	char md5[SIGV4_MD5_BASE64_LEN + 1], msg[512];
	size_t len = 0;
	int rc;

	if (list == NULL) {
		parts_fail(op, -ENOMEM, "out of memory");
		put_abort(op);
		return;
	}
	for (size_t i = 0; i < op->n_parts; i++)
		list[i] = (struct s3_part){op->parts[i].number, op->parts[i].etag};
	rc = s3_xml_complete_body(list, op->n_parts, &op->body, &len);
	free(list);
	if (rc == 0)
		rc = sigv4_md5_base64(op->body, len, md5);
	if (rc != 0) {
		parts_fail(op, rc, "building the CompleteMultipartUpload body");
		put_abort(op);
		return;
	}
	req.method = "POST";
	req.key = op->full;
	req.label = op->key;
	req.what = "complete multipart upload";
	req.params = params;
	req.n_params = 1;
	req.content_md5 = md5;
	req.content_type = "application/xml";
	req.body = S3_BODY_MEMORY;
	req.body_buf = op->body;
	req.body_len = len;
	req.flags = S3_REQ_ERROR_IN_BODY;
	rc = backend_s3_send(op->sb, &req, on_completed, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "POST %s (complete multipart upload): %s", op->key,
			 backend_s3_refused(rc));
		parts_fail(op, rc, msg);
		put_abort(op);
	}
}

static void on_initiated(void *arg, const struct s3_response *r)
{
	struct put_op *op = arg;
	struct s3_error e;
	uint64_t part = op->sb->part_size;
	char why[256], msg[640];
	int rc;

	if (r->rc != 0) {
		put_finish(op, r->rc, r->message);
		return;
	}
	rc = s3_xml_parse_initiate(r->http->body, r->http->body_len, &op->upload_id, &e, why,
				   sizeof(why));
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "POST %s (start multipart upload): %s", op->key,
			 rc == -EREMOTEIO ? e.code : why);
		put_finish(op, rc == -EREMOTEIO ? -EIO : rc, msg);
		return;
	}
	/* S3 takes at most 10000 parts: larger files get larger parts. */
	if ((op->size + part - 1) / part > MAX_PARTS)
		part = ((op->size + MAX_PARTS - 1) / MAX_PARTS + MIB - 1) / MIB * MIB;
	op->n_parts = (size_t)((op->size + part - 1) / part);
	op->parts = calloc(op->n_parts, sizeof(*op->parts));
	if (op->parts == NULL) {
		op->n_parts = 0;
		parts_fail(op, -ENOMEM, "out of memory");
		put_abort(op);
		return;
	}
	for (size_t i = 0; i < op->n_parts; i++) {
		struct part *p = &op->parts[i];

		p->op = op;
		p->number = (int)i + 1;
		p->offset = (uint64_t)i * part;
		p->len = op->size - p->offset < part ? op->size - p->offset : part;
	}
	LOG_DEBUG(op->sb->name, NULL, "uploading %s (%llu bytes) in %zu parts", op->key,
		  (unsigned long long)op->size, op->n_parts);
	parts_launch(op);
}

static void put_initiate(struct put_op *op)
{
	struct sigv4_param params[1] = {{"uploads", NULL}};
	struct s3_request req = {0};

	req.method = "POST";
	req.key = op->full;
	req.label = op->key;
	req.what = "start multipart upload";
	req.params = params;
	req.n_params = 1;
	req.flags = S3_REQ_NEW_OBJECT;
	req.sink = S3_SINK_MEMORY;
	put_send(op, &req, on_initiated, " (start multipart upload)");
}

static void on_prepared(uv_work_t *w, int status)
{
	struct put_op *op = w->data;

	if (status == UV_ECANCELED && op->rc == 0) {
		op->rc = -ECANCELED;
		snprintf(op->err, sizeof(op->err), "PUT %s: cancelled", op->key);
	}
	if (op->rc != 0)
		put_finish(op, op->rc, op->err);
	else if (op->multipart)
		put_initiate(op);
	else
		put_single(op);
}

void backend_s3_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		   void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct put_op *op = calloc(1, sizeof(*op));
	int rc;

	if (op == NULL) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	op->sb = sb;
	op->fd = -1;
	op->cb = cb;
	op->arg = arg;
	op->work.data = op;
	op->key = strdup(key);
	op->full = backend_s3_key(sb, key);
	op->local = strdup(local_path);
	backend_s3_op_begin(sb);
	if (op->key == NULL || op->full == NULL || op->local == NULL) {
		put_finish(op, -ENOMEM, "out of memory");
		return;
	}
	rc = uv_queue_work(b->loop, &op->work, put_prepare, on_prepared);
	if (rc != 0) {
		snprintf(op->err, sizeof(op->err), "PUT %s: %s", key, uv_strerror(rc));
		put_finish(op, rc, op->err);
	}
}
