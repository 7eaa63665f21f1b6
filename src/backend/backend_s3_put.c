/*
 * The S3 backend's put: the protocol of the shared put pipeline
 * (backend_s3_upload.c) for S3.
 *
 * Up to part-size bytes it is one PutObject streamed from the file. Above
 * that it is a multipart upload: CreateMultipartUpload, then the parts,
 * then CompleteMultipartUpload, then a HEAD that must show the whole size
 * and an ETag of the "-N" form before the object counts as stored (rgw
 * answers the completion with an empty ETag). A failure after the upload
 * began aborts it, so no parts are left behind to pay for.
 */
#include "backend/backend_s3_internal.h"
#include "util/log.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 10000

static void fill_single(struct upload *up, struct s3_request *req)
{
	(void)up;
	req->flags = S3_REQ_NEW_OBJECT;
}

static size_t part_params(struct upload_part *p, struct sigv4_param *params, char num[16])
{
	snprintf(num, 16, "%zu", p->index + 1);
	params[0] = (struct sigv4_param){"partNumber", num};
	params[1] = (struct sigv4_param){"uploadId", p->up->upload_id};
	return 2;
}

static int part_stored(struct upload_part *p, const struct s3_response *r, char *msg, size_t len)
{
	if (r->http->etag == NULL || r->http->etag[0] == '\0') {
		snprintf(msg, len, "PUT %s (part %zu of %zu): the server sent no ETag", p->up->key,
			 p->index + 1, p->up->n_parts);
		return -EIO;
	}
	if ((p->tag = strdup(r->http->etag)) == NULL) {
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void on_aborted(void *arg, const struct s3_response *r)
{
	struct upload *up = arg;

	if (r->rc != 0)
		LOG_WARN(up->sb->name, NULL,
			 "%s; the incomplete upload stays until a lifecycle rule for incomplete multipart "
			 "uploads removes it",
			 r->message);
	upload_finish(up, up->fail_rc, up->fail_msg);
}

/* Gives up the upload: S3 drops the parts it holds, then the failure is reported. */
static void abort_upload(struct upload *up)
{
	struct sigv4_param params[1] = {{"uploadId", up->upload_id}};
	struct s3_request req = {0};
	int rc;

	req.method = "DELETE";
	req.key = up->full;
	req.label = up->key;
	req.what = "abort multipart upload";
	req.params = params;
	req.n_params = 1;
	rc = backend_s3_send(up->sb, &req, on_aborted, up);
	if (rc != 0) {
		LOG_WARN_ERR(up->sb->name, NULL, backend_s3_refused(rc), "DELETE %s (abort multipart upload)",
			     up->key);
		upload_finish(up, up->fail_rc, up->fail_msg);
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
	struct upload *up = arg;
	char msg[640];

	if (r->rc != 0) {
		upload_finish(up, r->rc, r->message);
		return;
	}
	if (r->http->content_length < 0 || (uint64_t)r->http->content_length != up->size) {
		snprintf(msg, sizeof(msg),
			 "HEAD %s: the completed multipart upload holds %lld bytes, not %llu", up->key,
			 (long long)r->http->content_length, (unsigned long long)up->size);
		upload_finish(up, -EIO, msg);
		return;
	}
	if (!multipart_etag_ok(r->http->etag, up->n_parts)) {
		snprintf(msg, sizeof(msg),
			 "HEAD %s: ETag %s is not that of a completed %zu-part upload", up->key,
			 r->http->etag ? r->http->etag : "(none)", up->n_parts);
		upload_finish(up, -EIO, msg);
		return;
	}
	LOG_DEBUG(up->sb->name, NULL, "stored %s in %zu parts (ETag %s)", up->key, up->n_parts,
		  r->http->etag);
	upload_finish(up, 0, NULL);
}

/* The completed object must be there, whole, before the upload counts. */
static void verify_upload(struct upload *up)
{
	struct s3_request req = {0};

	req.method = "HEAD";
	req.key = up->full;
	req.label = up->key;
	req.flags = S3_REQ_OBJECT_DATA;
	upload_send(up, &req, on_head);
}

static void on_completed(void *arg, const struct s3_response *r)
{
	struct upload *up = arg;

	free(up->body);
	up->body = NULL;
	if (r->rc == 0) {
		verify_upload(up);
		return;
	}
	/* An earlier attempt may have completed it before its answer was lost:
	 * the upload is then gone, and the object tells whether it is ours. */
	if (strcmp(r->code, "NoSuchUpload") == 0 && r->attempts > 1) {
		LOG_INFO(up->sb->name, NULL, "%s; checking whether an earlier attempt completed it",
			 r->message);
		verify_upload(up);
		return;
	}
	upload_fail(up, r->rc, r->message);
	if (r->rc == -ECANCELED || strcmp(r->code, "NoSuchUpload") == 0)
		upload_finish(up, up->fail_rc, up->fail_msg);
	else
		abort_upload(up);
}

static void complete_upload(struct upload *up)
{
	struct sigv4_param params[1] = {{"uploadId", up->upload_id}};
	struct s3_part *list = calloc(up->n_parts, sizeof(*list));
	struct s3_request req = {0};
	char md5[SIGV4_MD5_BASE64_LEN + 1], msg[512];
	size_t len = 0;
	int rc;

	if (list == NULL) {
		upload_fail(up, -ENOMEM, "out of memory");
		abort_upload(up);
		return;
	}
	for (size_t i = 0; i < up->n_parts; i++)
		list[i] = (struct s3_part){(int)i + 1, up->parts[i].tag};
	rc = s3_xml_complete_body(list, up->n_parts, &up->body, &len);
	free(list);
	if (rc == 0)
		rc = sigv4_md5_base64(up->body, len, md5);
	if (rc != 0) {
		upload_fail(up, rc, "building the CompleteMultipartUpload body");
		abort_upload(up);
		return;
	}
	req.method = "POST";
	req.key = up->full;
	req.label = up->key;
	req.what = "complete multipart upload";
	req.params = params;
	req.n_params = 1;
	req.content_md5 = md5;
	req.content_type = "application/xml";
	req.body = S3_BODY_MEMORY;
	req.body_buf = up->body;
	req.body_len = len;
	req.flags = S3_REQ_ERROR_IN_BODY;
	rc = backend_s3_send(up->sb, &req, on_completed, up);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "POST %s (complete multipart upload): %s", up->key,
			 backend_s3_refused(rc));
		upload_fail(up, rc, msg);
		abort_upload(up);
	}
}

static void on_initiated(void *arg, const struct s3_response *r)
{
	struct upload *up = arg;
	struct s3_error e;
	char why[256], msg[640];
	int rc;

	if (r->rc != 0) {
		upload_finish(up, r->rc, r->message);
		return;
	}
	rc = s3_xml_parse_initiate(r->http->body, r->http->body_len, &up->upload_id, &e, why,
				   sizeof(why));
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "POST %s (start multipart upload): %s", up->key,
			 rc == -EREMOTEIO ? e.code : why);
		upload_finish(up, rc == -EREMOTEIO ? -EIO : rc, msg);
		return;
	}
	upload_cut(up);
}

static void initiate_upload(struct upload *up)
{
	struct sigv4_param params[1] = {{"uploads", NULL}};
	struct s3_request req = {0};

	req.method = "POST";
	req.key = up->full;
	req.label = up->key;
	req.what = "start multipart upload";
	req.params = params;
	req.n_params = 1;
	req.flags = S3_REQ_NEW_OBJECT;
	req.sink = S3_SINK_MEMORY;
	upload_send(up, &req, on_initiated);
}

static const struct upload_protocol s3_protocol = {
	.unit = "part",
	.max_parts = MAX_PARTS,
	.part_flags = S3_REQ_OBJECT_DATA,
	.fill_single = fill_single,
	.begin = initiate_upload,
	.part_params = part_params,
	.part_stored = part_stored,
	.commit = complete_upload,
	.abort = abort_upload,
};

void backend_s3_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		    void *arg)
{
	upload_start(b, &s3_protocol, key, local_path, cb, arg);
}
