/*
 * The abs backend's remove: one Delete Blob per key (Azure's batch API is
 * a multipart body of its own, and retention removes few objects at a
 * time), at most MAX_DELETES_IN_FLIGHT at once. A blob already gone
 * (BlobNotFound) is what was wanted; the first other failure fails the
 * removal, naming that key, once every request sent has answered.
 */
#include "backend/backend_s3_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DELETES_IN_FLIGHT 4

struct remove_op {
	struct s3_backend *sb;
	struct s3b_keys k;
	size_t next, busy;
	int rc;
	char err[640];
	backend_done_cb cb;
	void *arg;
};

static void remove_finish(struct remove_op *op)
{
	struct s3_backend *sb = op->sb;

	op->cb(op->arg, op->rc, op->rc ? (op->err[0] ? op->err : strerror(-op->rc)) : NULL);
	backend_s3_keys_free(&op->k);
	free(op);
	backend_s3_op_end(sb);
}

static void remove_fail(struct remove_op *op, int rc, const char *msg)
{
	if (op->rc == 0) {
		op->rc = rc;
		snprintf(op->err, sizeof(op->err), "%s", msg);
	}
}

static void remove_pump(struct remove_op *op);

static void on_removed(void *arg, const struct s3_response *r)
{
	struct remove_op *op = arg;

	op->busy--;
	if (r->rc != 0 && r->rc != -ENOENT)
		remove_fail(op, r->rc, r->message);
	remove_pump(op);
}

/* Sends what the bound allows; ends the removal once nothing is left or busy. */
static void remove_pump(struct remove_op *op)
{
	while (op->rc == 0 && op->busy < MAX_DELETES_IN_FLIGHT && op->next < op->k.n) {
		struct s3_request req = {0};
		size_t i = op->next++;
		char msg[512];
		int rc;

		req.method = "DELETE";
		req.key = op->k.full[i];
		req.label = op->k.keys[i];
		rc = backend_s3_send(op->sb, &req, on_removed, op);
		if (rc != 0) {
			snprintf(msg, sizeof(msg), "DELETE %s: %s", op->k.keys[i], backend_s3_refused(rc));
			remove_fail(op, rc, msg);
		} else {
			op->busy++;
		}
	}
	if (op->busy == 0 && (op->rc != 0 || op->next == op->k.n))
		remove_finish(op);
}

void backend_abs_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb,
			void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct remove_op *op = calloc(1, sizeof(*op));

	if (op == NULL || backend_s3_keys_copy(sb, keys, n, &op->k) != 0) {
		free(op);
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	op->sb = sb;
	op->cb = cb;
	op->arg = arg;
	backend_s3_op_begin(sb);
	remove_pump(op);
}
