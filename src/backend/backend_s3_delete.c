/*
 * The S3 backend's remove: DeleteObjects, at most DELETE_BATCH keys per
 * request, one batch after the other. A key already gone (NoSuchKey) is
 * what was wanted; any other per-key failure in the answer fails the
 * removal, naming that key.
 */
#include "backend/backend_s3_internal.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELETE_BATCH 1000

struct remove_op {
	struct s3_backend *sb;
	struct s3b_keys k;
	size_t next, batch;
	char *body;
	backend_done_cb cb;
	void *arg;
};

static void remove_finish(struct remove_op *op, int rc, const char *err)
{
	struct s3_backend *sb = op->sb;

	op->cb(op->arg, rc, rc ? (err ? err : strerror(-rc)) : NULL);
	backend_s3_keys_free(&op->k);
	free(op->body);
	free(op);
	backend_s3_op_end(sb);
}

static void remove_batch(struct remove_op *op);

static void on_removed(void *arg, const struct s3_response *r)
{
	struct remove_op *op = arg;
	struct s3_delete_result res;
	struct s3_error e;
	char why[256], msg[640];
	int rc;

	free(op->body);
	op->body = NULL;
	if (r->rc != 0) {
		remove_finish(op, r->rc, r->message);
		return;
	}
	rc = s3_xml_parse_delete(r->http->body, r->http->body_len, &res, &e, why, sizeof(why));
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "DELETE %s: %s", op->k.keys[op->next],
			 rc == -EREMOTEIO ? e.code : why);
		remove_finish(op, rc == -EREMOTEIO ? -EIO : rc, msg);
		return;
	}
	for (size_t i = 0; i < res.n_failures; i++) {
		const struct s3_delete_failure *f = &res.failures[i];

		/* Already gone is what was wanted. */
		if (strcmp(f->code, "NoSuchKey") == 0)
			continue;
		snprintf(msg, sizeof(msg), "DELETE %s: %s%s%s", f->key, f->code,
			 f->message[0] ? ": " : "", f->message);
		s3_delete_result_free(&res);
		remove_finish(op, -EIO, msg);
		return;
	}
	s3_delete_result_free(&res);
	op->next += op->batch;
	remove_batch(op);
}

static void remove_batch(struct remove_op *op)
{
	struct sigv4_param params[1] = {{"delete", NULL}};
	struct s3_request req = {0};
	char md5[SIGV4_MD5_BASE64_LEN + 1], label[512], msg[640];
	size_t len = 0;
	int rc;

	if (op->next >= op->k.n) {
		remove_finish(op, 0, NULL);
		return;
	}
	op->batch = op->k.n - op->next < DELETE_BATCH ? op->k.n - op->next : DELETE_BATCH;
	rc = s3_xml_delete_body((const char *const *)op->k.full + op->next, op->batch, &op->body, &len);
	if (rc == 0)
		rc = sigv4_md5_base64(op->body, len, md5);
	if (rc != 0) {
		remove_finish(op, rc, "building the DeleteObjects body");
		return;
	}
	if (op->batch > 1)
		snprintf(label, sizeof(label), "%s and %zu more", op->k.keys[op->next], op->batch - 1);
	else
		snprintf(label, sizeof(label), "%s", op->k.keys[op->next]);
	req.method = "POST";
	req.op = "DELETE";
	req.label = label;
	req.params = params;
	req.n_params = 1;
	req.content_md5 = md5;
	req.content_type = "application/xml";
	req.body = S3_BODY_MEMORY;
	req.body_buf = op->body;
	req.body_len = len;
	rc = backend_s3_send(op->sb, &req, on_removed, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "DELETE %s: %s", label, backend_s3_refused(rc));
		remove_finish(op, rc, msg);
	}
}

void backend_s3_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb,
		       void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct remove_op *op;

	if (n == 0) {
		cb(arg, 0, NULL);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL || backend_s3_keys_copy(sb, keys, n, &op->k) != 0) {
		free(op);
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	op->sb = sb;
	op->cb = cb;
	op->arg = arg;
	backend_s3_op_begin(sb);
	remove_batch(op);
}
