/*
 * The abs backend's put: the local file becomes one block blob, whole or
 * not at all.
 *
 * Up to part-size bytes it is one Put Blob (x-ms-blob-type: BlockBlob)
 * streamed from the file. Above that it is staged in blocks of part-size
 * bytes (Put Block, each digested on the threadpool, then sent; at most
 * MAX_BLOCKS_IN_FLIGHT at a time), then committed by Put Block List:
 * Azure shows the blob only once that succeeded, and its answer is the
 * commit. Blocks of a failed upload are not visible and Azure drops
 * uncommitted blocks on its own (within a week, or at the next commit of
 * that name), so there is nothing to abort.
 *
 * Every body carries its Content-MD5, which Azure checks. The SHA-256 the
 * client's contract asks for with a file body is computed with it in the
 * same pass (sigv4_digest_fd), though Shared Key does not sign it.
 *
 * One put_op carries the whole upload; every path ends in put_finish(),
 * exactly once. Blocks that fail record the first failure; the upload ends
 * once no block is busy any more.
 */
#include "backend/backend_s3_internal.h"
#include "azure/blob_xml.h"
#include "util/log.h"
#include "s3/sigv4.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BLOCKS_IN_FLIGHT 4
#define MAX_BLOCKS 50000
#define MIB (1024 * 1024)
#define BLOCK_ID_LEN 20 /* base64 of "lsblock-NNNNNN" (14 bytes) */

static const struct sigv4_header block_blob = {"x-ms-blob-type", "BlockBlob"};

struct put_op;

struct block {
	struct put_op *op;
	uv_work_t work;
	size_t index;
	uint64_t offset, len;
	char id[BLOCK_ID_LEN + 1];
	char sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	int rc;
};

struct put_op {
	struct s3_backend *sb;
	uv_work_t work;
	char *key, *full, *local;
	int fd;
	uint64_t size;
	bool blocks_mode;
	char sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	int rc;
	char err[512];
	backend_done_cb cb;
	void *arg;
	struct block *blocks;
	size_t n_blocks, next, busy, done;
	bool failed;
	int fail_rc;
	char fail_msg[640];
	char *body; /* Put Block List's, while it is sent */
};

static void put_finish(struct put_op *op, int rc, const char *err)
{
	struct s3_backend *sb = op->sb;

	if (op->fd >= 0)
		close(op->fd);
	op->cb(op->arg, rc, rc ? (err ? err : strerror(-rc)) : NULL);
	free(op->blocks);
	free(op->body);
	free(op->key);
	free(op->full);
	free(op->local);
	free(op);
	backend_s3_op_end(sb);
}

/* Threadpool: open the file, learn its size, digest it when one Put Blob will do. */
static void put_prepare(uv_work_t *w)
{
	struct put_op *op = w->data;
	struct stat st;

	op->fd = open(op->local, O_RDONLY | O_CLOEXEC);
	if (op->fd < 0 || fstat(op->fd, &st) != 0) {
		op->rc = -errno;
		snprintf(op->err, sizeof(op->err), "PUT %s: %s %s: %s", op->key,
			 op->fd < 0 ? "open" : "stat", op->local, strerror(errno));
		return;
	}
	op->size = (uint64_t)st.st_size;
	op->blocks_mode = op->size > op->sb->part_size;
	if (op->blocks_mode)
		return;
	op->rc = sigv4_digest_fd(op->fd, 0, op->size, op->sha, op->md5);
	if (op->rc != 0)
		snprintf(op->err, sizeof(op->err), "PUT %s: reading %s: %s", op->key, op->local,
			 strerror(-op->rc));
}

static void on_put_answer(void *arg, const struct s3_response *r)
{
	put_finish(arg, r->rc, r->message);
}

static void put_single(struct put_op *op)
{
	struct s3_request req = {0};
	char msg[512];
	int rc;

	req.method = "PUT";
	req.key = op->full;
	req.label = op->key;
	req.headers = &block_blob;
	req.n_headers = 1;
	req.content_md5 = op->md5;
	req.body = S3_BODY_FD;
	req.body_fd = op->fd;
	req.body_len = op->size;
	req.payload_hash = op->sha;
	rc = backend_s3_send(op->sb, &req, on_put_answer, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "PUT %s: %s", op->key, backend_s3_refused(rc));
		put_finish(op, rc, msg);
	}
}

static void blocks_fail(struct put_op *op, int rc, const char *msg)
{
	if (!op->failed) {
		op->failed = true;
		op->fail_rc = rc ? rc : -EIO;
		snprintf(op->fail_msg, sizeof(op->fail_msg), "%s", msg ? msg : strerror(-op->fail_rc));
	}
}

static void blocks_launch(struct put_op *op);

/* Put Block List: the blob appears, made of the blocks in order. */
static void put_commit(struct put_op *op)
{
	struct sigv4_param params[1] = {{"comp", "blocklist"}};
	const char **ids = calloc(op->n_blocks, sizeof(*ids));
	struct s3_request req = {0};
	char md5[SIGV4_MD5_BASE64_LEN + 1], msg[512];
	size_t len = 0;
	int rc = ids == NULL ? -ENOMEM : 0;

	for (size_t i = 0; rc == 0 && i < op->n_blocks; i++)
		ids[i] = op->blocks[i].id;
	if (rc == 0)
		rc = abs_xml_block_list(ids, op->n_blocks, &op->body, &len);
	free(ids);
	if (rc == 0)
		rc = sigv4_md5_base64(op->body, len, md5);
	if (rc != 0) {
		put_finish(op, rc, "PUT (block list): building the body: out of memory");
		return;
	}
	req.method = "PUT";
	req.key = op->full;
	req.label = op->key;
	req.what = "block list";
	req.params = params;
	req.n_params = 1;
	req.content_md5 = md5;
	req.content_type = "application/xml";
	req.body = S3_BODY_MEMORY;
	req.body_buf = op->body;
	req.body_len = len;
	rc = backend_s3_send(op->sb, &req, on_put_answer, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "PUT %s (block list): %s", op->key, backend_s3_refused(rc));
		put_finish(op, rc, msg);
	}
}

/* One block is over (either way): go on, commit, or end once none is busy. */
static void block_over(struct put_op *op)
{
	op->busy--;
	if (op->failed) {
		if (op->busy == 0)
			put_finish(op, op->fail_rc, op->fail_msg);
		return;
	}
	if (op->done == op->n_blocks)
		put_commit(op);
	else
		blocks_launch(op);
}

static void on_block_put(void *arg, const struct s3_response *r)
{
	struct block *k = arg;

	if (r->rc != 0)
		blocks_fail(k->op, r->rc, r->message);
	else
		k->op->done++;
	block_over(k->op);
}

static void block_digest(uv_work_t *w)
{
	struct block *k = w->data;

	k->rc = sigv4_digest_fd(k->op->fd, k->offset, k->len, k->sha, k->md5);
}

static void on_block_digested(uv_work_t *w, int status)
{
	struct block *k = w->data;
	struct put_op *op = k->op;
	struct sigv4_param params[2] = {{"comp", "block"}, {"blockid", k->id}};
	struct s3_request req = {0};
	char what[64], msg[640];
	int rc;

	if (status == UV_ECANCELED)
		k->rc = -ECANCELED;
	if (k->rc != 0 || op->failed) {
		if (k->rc != 0) {
			snprintf(msg, sizeof(msg), "PUT %s (block %zu of %zu): reading %s: %s", op->key,
				 k->index + 1, op->n_blocks, op->local, strerror(-k->rc));
			blocks_fail(op, k->rc, msg);
		}
		block_over(op);
		return;
	}
	snprintf(what, sizeof(what), "block %zu of %zu", k->index + 1, op->n_blocks);
	req.method = "PUT";
	req.key = op->full;
	req.label = op->key;
	req.what = what;
	req.params = params;
	req.n_params = 2;
	req.content_md5 = k->md5;
	req.body = S3_BODY_FD;
	req.body_fd = op->fd;
	req.body_offset = (int64_t)k->offset;
	req.body_len = k->len;
	req.payload_hash = k->sha;
	rc = backend_s3_send(op->sb, &req, on_block_put, k);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "PUT %s (%s): %s", op->key, what, backend_s3_refused(rc));
		blocks_fail(op, rc, msg);
		block_over(op);
	}
}

static void blocks_launch(struct put_op *op)
{
	while (!op->failed && op->busy < MAX_BLOCKS_IN_FLIGHT && op->next < op->n_blocks) {
		struct block *k = &op->blocks[op->next++];
		int rc;

		op->busy++;
		k->work.data = k;
		rc = uv_queue_work(op->sb->base.loop, &k->work, block_digest, on_block_digested);
		if (rc != 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "PUT %s: queue digest: %s", op->key, uv_strerror(rc));
			blocks_fail(op, rc, msg);
			block_over(op);
			return;
		}
	}
}

/* Cuts the file into blocks, each with its ID (same length for all, as Azure wants). */
static void put_blocks(struct put_op *op)
{
	uint64_t part = op->sb->part_size;

	if ((op->size + part - 1) / part > MAX_BLOCKS)
		part = ((op->size + MAX_BLOCKS - 1) / MAX_BLOCKS + MIB - 1) / MIB * MIB;
	op->n_blocks = (size_t)((op->size + part - 1) / part);
	op->blocks = calloc(op->n_blocks, sizeof(*op->blocks));
	if (op->blocks == NULL) {
		put_finish(op, -ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < op->n_blocks; i++) {
		struct block *k = &op->blocks[i];
		char raw[16];

		k->op = op;
		k->index = i;
		k->offset = (uint64_t)i * part;
		k->len = op->size - k->offset < part ? op->size - k->offset : part;
		snprintf(raw, sizeof(raw), "lsblock-%06zu", i);
		EVP_EncodeBlock((unsigned char *)k->id, (const unsigned char *)raw, 14);
	}
	LOG_DEBUG(op->sb->name, NULL, "uploading %s (%llu bytes) in %zu blocks", op->key,
		  (unsigned long long)op->size, op->n_blocks);
	op->busy = 1; /* held while launching, so that a quick failure cannot end the op under us */
	blocks_launch(op);
	block_over(op);
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
	else if (op->blocks_mode)
		put_blocks(op);
	else
		put_single(op);
}

void backend_abs_put(struct backend *b, const char *key, const char *local_path,
		     backend_done_cb cb, void *arg)
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
