/*
 * The S3 backend: a replica in an S3 bucket (AWS or any S3-compatible
 * store), behind the same table of operations as the file backend. The
 * requests themselves (addressing, signing, the bound on requests in
 * flight, timeouts, retries) are s3/client.c's; this file turns the
 * backend's operations into them:
 *
 *   list    ListObjectsV2 with delimiter '/', page after page by
 *           continuation token: objects are entries, common prefixes are
 *           directories (is_dir), each named by its last path component.
 *   put     one PutObject streamed from the file, or, above part-size, a
 *           multipart upload: parts go up concurrently (at most
 *           MAX_PARTS_IN_FLIGHT at a time), then CompleteMultipartUpload,
 *           then a HEAD that must show the whole size and an ETag of the
 *           "-N" form before the object counts as stored (rgw answers the
 *           completion with an empty ETag). A failure after the upload
 *           began aborts it, so no parts are left behind to pay for.
 *   get     GetObject streamed into the local file, as ranged GETs of
 *           part-size bytes, several at a time for a large object.
 *   remove  DeleteObjects, at most 1000 keys per request.
 *
 * Objects appear whole (DESIGN.md, rule 4): S3 shows an object only once
 * its PUT or its multipart completion succeeded. Every body is signed with
 * its real SHA-256 and carries Content-MD5; the digests of a file are
 * computed on libuv's threadpool, never on the loop.
 *
 * Lifecycle: the backend holds loop handles (the client's timer and its
 * curl multi handle) until close(), which cancels whatever is in flight and
 * calls back once every operation has answered and the client is gone.
 * free() after close(); free() alone starts the client's close and lets
 * the loop finish it (the one-shot commands run the loop once more).
 */
#include "backend.h"
#include "duration.h"
#include "fsutil.h"
#include "log.h"
#include "s3/client.h"
#include "s3/credentials.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PARTS_IN_FLIGHT 4
#define MAX_RANGES_IN_FLIGHT 4
#define MAX_PARTS 10000
#define DELETE_BATCH 1000
#define LIST_MAX_BODY (8 * 1024 * 1024)
#define MAX_LIST_PAGES 1000000
#define MIB (1024 * 1024)
/* For tests and slow links: how long a request may move no byte. */
#define STALL_TIMEOUT_ENV "LITESTREAM_S3_STALL_TIMEOUT"
/* For tests: a smaller listing page (1..1000), so that a few objects take
 * several pages and the continuation tokens are exercised. */
#define MAX_KEYS_ENV "LITESTREAM_S3_MAX_KEYS"

struct s3_backend {
	struct backend base;
	struct s3_client *client; /* NULL once closed */
	char *name;               /* "replica NAME": how log lines name it */
	char *prefix;             /* key prefix: "" or "a/b", no trailing '/' */
	uint64_t part_size;
	char max_keys[8];         /* listing page size, "" for the server's (1000) */
	size_t n_ops;             /* operations not yet answered */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void maybe_closed(struct s3_backend *sb)
{
	void (*cb)(void *);

	if (!sb->closing || sb->client != NULL || sb->n_ops > 0 || sb->close_cb == NULL)
		return;
	cb = sb->close_cb;
	sb->close_cb = NULL;
	cb(sb->close_arg);
}

static void op_begin(struct s3_backend *sb)
{
	sb->n_ops++;
}

static void op_end(struct s3_backend *sb)
{
	sb->n_ops--;
	maybe_closed(sb);
}

static int sb_send(struct s3_backend *sb, const struct s3_request *req, s3_request_cb cb, void *arg)
{
	return sb->client != NULL ? s3_client_request(sb->client, req, cb, arg) : -ESHUTDOWN;
}

/* The object key for a backend key: the replica's prefix, then key. */
static char *full_key(const struct s3_backend *sb, const char *key)
{
	return str_printf("%s%s%s", sb->prefix, sb->prefix[0] && key[0] ? "/" : "", key);
}

static const char *refused(int rc)
{
	return rc == -ESHUTDOWN ? "the replica's S3 client is closing" : strerror(-rc);
}

/* ---- list ---------------------------------------------------------------- */

struct list_op {
	struct s3_backend *sb;
	char *dir;    /* as asked, for messages */
	char *prefix; /* of the object keys listed: "" or ending with '/' */
	char *token;  /* continuation token of the next page */
	long pages;
	/* The page the last answer held, parsed when it was checked. */
	struct s3_list_page page;
	struct s3_error page_err;
	int page_rc;
	char page_why[256];
	struct backend_list list;
	size_t cap;
	backend_list_cb cb;
	void *arg;
};

static void list_finish(struct list_op *op, int rc, const char *err)
{
	struct s3_backend *sb = op->sb;

	if (rc != 0)
		backend_list_free(&op->list);
	op->cb(op->arg, rc, rc ? err : NULL, &op->list);
	backend_list_free(&op->list);
	s3_list_page_free(&op->page);
	free(op->dir);
	free(op->prefix);
	free(op->token);
	free(op);
	op_end(sb);
}

static int list_add(struct list_op *op, const char *name, size_t len, uint64_t size, int64_t mtime,
		    bool is_dir)
{
	struct backend_entry *e;

	if (op->list.n == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 64;
		struct backend_entry *v = realloc(op->list.v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		op->list.v = v;
		op->cap = cap;
	}
	e = &op->list.v[op->list.n];
	e->name = strndup(name, len);
	if (e->name == NULL)
		return -ENOMEM;
	e->size = size;
	e->mtime_ms = mtime;
	e->is_dir = is_dir;
	op->list.n++;
	return 0;
}

/* Takes one page's entries; only names directly under the prefix count. */
static int list_take(struct list_op *op, const struct s3_list_page *p)
{
	size_t plen = strlen(op->prefix);
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < p->n_objects; i++) {
		const char *k = p->objects[i].key, *name = k + plen;

		/* A "dir/" marker object, or a key the delimiter should have folded. */
		if (strncmp(k, op->prefix, plen) != 0 || name[0] == '\0' || strchr(name, '/') != NULL)
			continue;
		rc = list_add(op, name, strlen(name), p->objects[i].size, p->objects[i].mtime_ms, false);
	}
	for (size_t i = 0; rc == 0 && i < p->n_prefixes; i++) {
		const char *k = p->prefixes[i], *name = k + plen;
		size_t len;

		if (strncmp(k, op->prefix, plen) != 0)
			continue;
		len = strlen(name);
		if (len > 0 && name[len - 1] == '/')
			len--;
		if (len == 0 || memchr(name, '/', len) != NULL)
			continue;
		rc = list_add(op, name, len, 0, 0, true);
	}
	return rc;
}

static void list_page(struct list_op *op);

/*
 * Parses an answer as it arrives: a ListBucketResult that does not parse
 * (cut short where HTTP could not tell) fails the attempt, which is then
 * retried. An <Error> document is kept for on_list_page() to report.
 */
static const char *check_list_page(const struct http_response *h, void *arg, char *buf, size_t n)
{
	struct list_op *op = arg;

	s3_list_page_free(&op->page);
	memset(&op->page, 0, sizeof(op->page));
	op->page_rc = s3_xml_parse_list(h->body, h->body_len, &op->page, &op->page_err,
					op->page_why, sizeof(op->page_why));
	if (op->page_rc == 0 || op->page_rc == -EREMOTEIO)
		return NULL;
	snprintf(buf, n, "%s", op->page_why);
	return buf;
}

static void on_list_page(void *arg, const struct s3_response *r)
{
	struct list_op *op = arg;
	struct s3_list_page *page = &op->page;
	char msg[640];
	int rc;

	if (r->rc != 0) {
		list_finish(op, r->rc, r->message);
		return;
	}
	if (op->page_rc != 0) {
		if (op->page_rc == -EREMOTEIO)
			snprintf(msg, sizeof(msg), "LIST %s/: %s %s", op->dir, op->page_err.code,
				 op->page_err.message);
		else
			snprintf(msg, sizeof(msg), "LIST %s/: %s", op->dir, op->page_why);
		list_finish(op, op->page_rc == -EREMOTEIO ? -EIO : op->page_rc, msg);
		return;
	}
	rc = list_take(op, page);
	if (rc != 0) {
		list_finish(op, rc, "out of memory");
		return;
	}
	if (!page->truncated) {
		list_finish(op, 0, NULL);
		return;
	}
	/* A server that hands back the same token would loop forever. */
	if (page->next_token == NULL ||
	    (op->token != NULL && strcmp(op->token, page->next_token) == 0) ||
	    ++op->pages >= MAX_LIST_PAGES) {
		snprintf(msg, sizeof(msg), "LIST %s/: the listing does not advance", op->dir);
		list_finish(op, -EIO, msg);
		return;
	}
	free(op->token);
	op->token = page->next_token;
	page->next_token = NULL;
	list_page(op);
}

static void list_page(struct list_op *op)
{
	struct sigv4_param params[5] = {
		{"list-type", "2"},
		{"prefix", op->prefix},
		{"delimiter", "/"},
		{"max-keys", op->sb->max_keys},
		{"continuation-token", op->token},
	};
	struct s3_request req = {0};
	char msg[512];
	int rc;

	req.method = "GET";
	req.op = "LIST";
	req.label = op->dir;
	/* Unused entries go to the end: max-keys when unset, then the token. */
	if (op->sb->max_keys[0] == '\0')
		params[3] = params[4];
	req.params = params;
	req.n_params = 3 + (op->sb->max_keys[0] != '\0') + (op->token != NULL);
	req.sink = S3_SINK_MEMORY;
	req.max_body = LIST_MAX_BODY;
	req.check = check_list_page;
	req.check_arg = op;
	rc = sb_send(op->sb, &req, on_list_page, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "LIST %s/: %s", op->dir, refused(rc));
		list_finish(op, rc, msg);
	}
}

static void s3_list(struct backend *b, const char *dir, backend_list_cb cb, void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct list_op *op = calloc(1, sizeof(*op));
	char *full = NULL;

	if (op != NULL) {
		op->sb = sb;
		op->cb = cb;
		op->arg = arg;
		op->dir = strdup(dir);
		full = full_key(sb, dir);
		if (full != NULL)
			op->prefix = full[0] == '\0' || full[strlen(full) - 1] == '/'
					     ? strdup(full)
					     : str_printf("%s/", full);
		free(full);
	}
	if (op == NULL || op->dir == NULL || op->prefix == NULL) {
		if (op != NULL) {
			free(op->dir);
			free(op->prefix);
			free(op);
		}
		cb(arg, -ENOMEM, "out of memory", NULL);
		return;
	}
	op_begin(sb);
	list_page(op);
}

/* ---- put ----------------------------------------------------------------- */

struct put_op;

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
	op_end(sb);
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
	int rc = sb_send(op->sb, req, cb, op);

	if (rc != 0) {
		snprintf(msg, sizeof(msg), "%s %s%s: %s", req->method, op->key, what, refused(rc));
		put_finish(op, rc, msg);
	}
}

static void put_single(struct put_op *op)
{
	struct s3_request req = {0};

	req.method = "PUT";
	req.key = op->full;
	req.label = op->key;
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
	rc = sb_send(op->sb, &req, on_aborted, op);
	if (rc != 0) {
		LOG_WARN(op->sb->name, NULL, "DELETE %s (abort multipart upload): %s", op->key,
			 refused(rc));
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
	req.content_md5 = p->md5;
	req.body = S3_BODY_FD;
	req.body_fd = op->fd;
	req.body_offset = (int64_t)p->offset;
	req.body_len = p->len;
	req.payload_hash = p->sha;
	rc = sb_send(op->sb, &req, on_part_put, p);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "PUT %s (%s): %s", op->key, what, refused(rc));
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
	rc = sb_send(op->sb, &req, on_completed, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "POST %s (complete multipart upload): %s", op->key,
			 refused(rc));
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

static void s3_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
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
	op->full = full_key(sb, key);
	op->local = strdup(local_path);
	op_begin(sb);
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

/* ---- get ----------------------------------------------------------------- */

/*
 * A download is a series of ranged GETs of part-size bytes. The first asks
 * for bytes 0..part-size-1: for most objects (segments) that is the whole
 * object and the only request. Its Content-Range names the object's size;
 * the rest of a larger object (a snapshot) then comes in further ranges,
 * up to MAX_RANGES_IN_FLIGHT at a time, each written at its own offset of
 * the file. Every range must answer with exactly the bytes asked for and
 * the ETag of the first, so an object replaced meanwhile is noticed rather
 * than spliced. A server that ignores Range answers the first request
 * with 200 and the whole object, which is just as good.
 */
struct get_op {
	struct s3_backend *sb;
	uv_fs_t fs;
	char *key, *full, *local;
	int fd;
	uint64_t chunk;      /* bytes per range */
	uint64_t size;       /* the object's size, once the first answer came */
	uint64_t next;       /* where the next range starts */
	char *etag;          /* the first answer's ETag, or NULL */
	unsigned in_flight;
	int rc;              /* the first failure */
	char err[640];
	/* get_follow(): which ranges are in, and how far the file is whole. */
	void (*ready)(void *arg, uint64_t n);
	uint8_t *range_in;   /* one per range, once the size is known */
	bool whole;          /* the first answer was the whole object (200) */
	uint64_t ready_bytes;
	backend_done_cb cb;
	void *arg;
};

struct get_range {
	struct get_op *op;
	uint64_t first, last;
};

static void get_finish(struct get_op *op)
{
	struct s3_backend *sb = op->sb;

	/* A first attempt that got more than its range (a server ignoring
	 * Range, then not) must not leave bytes past the object's end. */
	if (op->rc == 0 && op->fd >= 0 && ftruncate(op->fd, (off_t)op->size) != 0) {
		op->rc = -errno;
		snprintf(op->err, sizeof(op->err), "GET %s: truncate %s: %s", op->key, op->local,
			 strerror(errno));
	}
	if (op->fd >= 0)
		close(op->fd);
	op->cb(op->arg, op->rc, op->rc ? (op->err[0] ? op->err : strerror(-op->rc)) : NULL);
	free(op->key);
	free(op->full);
	free(op->local);
	free(op->etag);
	free(op->range_in);
	free(op);
	op_end(sb);
}

static void get_fail(struct get_op *op, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first failure; later ones add nothing the user needs. */
static void get_fail(struct get_op *op, int rc, const char *fmt, ...)
{
	va_list ap;

	if (op->rc != 0)
		return;
	op->rc = rc;
	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
}

/*
 * A range's answer must hold exactly the bytes asked for, of an object no
 * smaller than the first answer said; anything else (a body cut short
 * where HTTP could not tell, a proxy mangling ranges) fails the attempt,
 * which is then retried. A 200 to the first range is the whole object.
 */
static const char *check_range(const struct http_response *h, void *arg, char *buf, size_t n)
{
	const struct get_range *g = arg;
	const char *cr = http_response_header(h, "Content-Range");
	uint64_t first, last, total;

	if (h->status == 200 && g->first == 0)
		return NULL;
	if (h->status == 206 && s3_parse_content_range(cr, &first, &last, &total) == 0 &&
	    first == g->first && h->body_bytes == last - first + 1 &&
	    (g->op->size == 0 ? last == g->last || last + 1 == total
			      : last == g->last && total == g->op->size))
		return NULL;
	snprintf(buf, n, "answer %ld with Content-Range \"%s\" and %" PRIu64 " bytes for bytes %" PRIu64
		 "-%" PRIu64, h->status, cr ? cr : "", h->body_bytes, g->first, g->last);
	return buf;
}

static void on_range(void *arg, const struct s3_response *r);

static int send_range(struct get_op *op, uint64_t first, uint64_t last)
{
	struct get_range *g = malloc(sizeof(*g));
	struct s3_request req = {0};
	char range[64], what[64];
	int rc;

	if (g == NULL)
		return -ENOMEM;
	g->op = op;
	g->first = first;
	g->last = last;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, first, last);
	req.method = "GET";
	req.key = op->full;
	req.label = op->key;
	if (first > 0) { /* a later range: say which */
		snprintf(what, sizeof(what), "bytes %" PRIu64 "-%" PRIu64 " of %" PRIu64, first, last,
			 op->size);
		req.what = what;
	}
	req.range = range;
	req.sink = S3_SINK_FD;
	req.sink_fd = op->fd;
	req.sink_offset = (int64_t)first;
	req.check = check_range;
	req.check_arg = g;
	rc = sb_send(op->sb, &req, on_range, g);
	if (rc != 0) {
		free(g);
		return rc;
	}
	op->in_flight++;
	return 0;
}

/* Sends ranges until enough are in flight or the object is covered. */
static void get_fill(struct get_op *op)
{
	while (op->rc == 0 && op->next < op->size && op->in_flight < MAX_RANGES_IN_FLIGHT) {
		uint64_t last = op->size - op->next > op->chunk ? op->next + op->chunk - 1
								: op->size - 1;
		int rc = send_range(op, op->next, last);

		if (rc != 0) {
			get_fail(op, rc, "GET %s: %s", op->key, refused(rc));
			break;
		}
		op->next = last + 1;
	}
	if (op->in_flight == 0)
		get_finish(op);
}

/* A failed range; a local write failing (a full disk) names the file. */
static void get_failed(struct get_op *op, const struct s3_response *r)
{
	if (r->http != NULL && r->http->sink_failed)
		get_fail(op, r->rc, "%s (into %s)", r->message, op->local);
	else
		get_fail(op, r->rc, "%s", r->message);
}

/* The first answer: the object's size and ETag. */
static void first_answer(struct get_op *op, const struct s3_response *r)
{
	const struct http_response *h = r->http;
	const char *cr = h != NULL ? http_response_header(h, "Content-Range") : NULL;
	uint64_t first, last, total;

	if (r->rc != 0 && h != NULL && r->status == 416 &&
	    s3_parse_content_range(cr, &first, &last, &total) == 0 && total == 0) {
		/* bytes=0-N of an empty object: there is nothing to fetch. */
		op->size = 0;
		return;
	}
	if (r->rc != 0) {
		get_failed(op, r);
		return;
	}
	op->etag = h->etag ? strdup(h->etag) : NULL;
	if (h->status == 200) { /* Range ignored: the whole object came */
		op->size = op->next = h->body_bytes;
		op->whole = true;
		return;
	}
	(void)s3_parse_content_range(cr, &first, &last, &total); /* checked already */
	op->size = total;
	op->next = last + 1;
}

/* A later answer must come from the same object as the first. */
static void later_answer(struct get_op *op, const struct s3_response *r)
{
	const char *etag;

	if (r->rc != 0) {
		get_failed(op, r);
		return;
	}
	etag = r->http->etag ? r->http->etag : "";
	if (op->etag != NULL && strcmp(etag, op->etag) != 0)
		get_fail(op, -EIO, "GET %s: the object changed while it was downloaded (ETag %s, then %s)",
			 op->key, op->etag, etag);
}

/* get_follow(): a range is in; tell how far the file is now whole. */
static void range_in(struct get_op *op, const struct get_range *g)
{
	uint64_t n_ranges, k, ready;

	if (op->ready == NULL || op->rc != 0 || op->ready_bytes >= op->size)
		return;
	if (op->whole) {
		op->ready_bytes = op->size;
		op->ready(op->arg, op->size);
		return;
	}
	n_ranges = (op->size + op->chunk - 1) / op->chunk;
	if (op->range_in == NULL && (op->range_in = calloc(n_ranges, 1)) == NULL)
		return; /* no progress reported: the reader waits for the end */
	op->range_in[g->first / op->chunk] = 1;
	for (k = op->ready_bytes / op->chunk; k < n_ranges && op->range_in[k]; k++)
		;
	ready = k * op->chunk < op->size ? k * op->chunk : op->size;
	if (ready > op->ready_bytes) {
		op->ready_bytes = ready;
		op->ready(op->arg, ready);
	}
}

static void on_range(void *arg, const struct s3_response *r)
{
	struct get_range *g = arg;
	struct get_op *op = g->op;

	op->in_flight--;
	if (g->first == 0)
		first_answer(op, r);
	else
		later_answer(op, r);
	if (r->rc == 0)
		range_in(op, g);
	free(g);
	get_fill(op);
}

static void on_get_open(uv_fs_t *fs)
{
	struct get_op *op = fs->data;
	int rc = (int)fs->result;

	uv_fs_req_cleanup(fs);
	if (rc < 0) {
		get_fail(op, rc, "GET %s: create %s: %s", op->key, op->local, uv_strerror(rc));
		get_finish(op);
		return;
	}
	op->fd = rc;
	rc = send_range(op, 0, op->chunk - 1);
	if (rc != 0) {
		get_fail(op, rc, "GET %s: %s", op->key, refused(rc));
		get_finish(op);
	}
}

static void s3_get_follow(struct backend *b, const char *key, const char *local_path,
			  void (*ready)(void *arg, uint64_t n), backend_done_cb cb, void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct get_op *op = calloc(1, sizeof(*op));
	int rc;

	if (op == NULL) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	op->ready = ready;
	op->sb = sb;
	op->fd = -1;
	op->chunk = sb->part_size;
	op->cb = cb;
	op->arg = arg;
	op->fs.data = op;
	op->key = strdup(key);
	op->full = full_key(sb, key);
	op->local = strdup(local_path);
	op_begin(sb);
	if (op->key == NULL || op->full == NULL || op->local == NULL) {
		get_fail(op, -ENOMEM, "out of memory");
		get_finish(op);
		return;
	}
	/* Opened on the threadpool: a slow disk does not stall the loop. */
	rc = uv_fs_open(b->loop, &op->fs, op->local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600,
			on_get_open);
	if (rc != 0) {
		get_fail(op, rc, "GET %s: create %s: %s", key, local_path, uv_strerror(rc));
		get_finish(op);
	}
}

static void s3_get(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		   void *arg)
{
	s3_get_follow(b, key, local_path, NULL, cb, arg);
}

/* ---- remove -------------------------------------------------------------- */

struct remove_op {
	struct s3_backend *sb;
	char **keys;  /* backend keys, for messages */
	char **full;  /* object keys */
	size_t n, next, batch;
	char *body;
	backend_done_cb cb;
	void *arg;
};

static void remove_finish(struct remove_op *op, int rc, const char *err)
{
	struct s3_backend *sb = op->sb;

	op->cb(op->arg, rc, rc ? (err ? err : strerror(-rc)) : NULL);
	for (size_t i = 0; i < op->n; i++) {
		free(op->keys[i]);
		free(op->full[i]);
	}
	free(op->keys);
	free(op->full);
	free(op->body);
	free(op);
	op_end(sb);
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
		snprintf(msg, sizeof(msg), "DELETE %s: %s", op->keys[op->next],
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

	if (op->next >= op->n) {
		remove_finish(op, 0, NULL);
		return;
	}
	op->batch = op->n - op->next < DELETE_BATCH ? op->n - op->next : DELETE_BATCH;
	rc = s3_xml_delete_body((const char *const *)op->full + op->next, op->batch, &op->body, &len);
	if (rc == 0)
		rc = sigv4_md5_base64(op->body, len, md5);
	if (rc != 0) {
		remove_finish(op, rc, "building the DeleteObjects body");
		return;
	}
	if (op->batch > 1)
		snprintf(label, sizeof(label), "%s and %zu more", op->keys[op->next], op->batch - 1);
	else
		snprintf(label, sizeof(label), "%s", op->keys[op->next]);
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
	rc = sb_send(op->sb, &req, on_removed, op);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "DELETE %s: %s", label, refused(rc));
		remove_finish(op, rc, msg);
	}
}

static void s3_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb, void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;
	struct remove_op *op;
	bool ok;

	if (n == 0) {
		cb(arg, 0, NULL);
		return;
	}
	op = calloc(1, sizeof(*op));
	ok = op != NULL && (op->keys = calloc(n, sizeof(char *))) != NULL &&
	     (op->full = calloc(n, sizeof(char *))) != NULL;
	if (ok) {
		op->sb = sb;
		op->cb = cb;
		op->arg = arg;
		for (size_t i = 0; i < n; i++) {
			op->n = i + 1;
			op->keys[i] = strdup(keys[i]);
			op->full[i] = full_key(sb, keys[i]);
			if (op->keys[i] == NULL || op->full[i] == NULL) {
				ok = false;
				break;
			}
		}
	}
	if (!ok) {
		if (op != NULL) {
			for (size_t i = 0; i < op->n; i++) {
				free(op->keys[i]);
				free(op->full[i]);
			}
			free(op->keys);
			free(op->full);
			free(op);
		}
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	op_begin(sb);
	remove_batch(op);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void on_client_closed(void *arg)
{
	struct s3_backend *sb = arg;

	sb->client = NULL;
	maybe_closed(sb);
}

static void s3_close(struct backend *b, void (*cb)(void *arg), void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;

	if (sb->closing)
		return;
	sb->closing = true;
	sb->close_cb = cb;
	sb->close_arg = arg;
	if (sb->client != NULL)
		s3_client_close(sb->client, on_client_closed, sb);
	else
		maybe_closed(sb);
}

static void s3_free(struct backend *b)
{
	struct s3_backend *sb = (struct s3_backend *)b;

	/* Not closed: the client closes itself as the loop runs on. */
	if (sb->client != NULL && !sb->closing)
		s3_client_close(sb->client, NULL, NULL);
	free(sb->name);
	free(sb->prefix);
	free(b->describe);
	free(sb);
}

static const struct backend_ops s3_ops = {
	.type = "s3",
	.list = s3_list,
	.put = s3_put,
	.get = s3_get,
	.get_follow = s3_get_follow,
	.remove = s3_remove,
	.close = s3_close,
	.free = s3_free,
};

/*
 * The credentials again, from the environment and the shared credentials
 * file (set only when the configuration names none, which cannot change).
 */
static int reload_creds(void *arg, struct s3_credentials *out)
{
	struct s3_backend *sb = arg;
	char why[640];
	int rc = s3_credentials_resolve(NULL, NULL, out, why, sizeof(why));

	if (rc != 0)
		LOG_WARN(sb->name, NULL, "reloading credentials: %s", why);
	return rc;
}

int backend_s3_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		   char *err, size_t errlen)
{
	struct s3_credentials creds;
	struct s3_client_config cc;
	struct s3_backend *sb;
	const char *stall_env = getenv(STALL_TIMEOUT_ENV);
	const char *keys_env = getenv(MAX_KEYS_ENV);
	int64_t stall_ms = 0;
	char why[640];
	int rc;

	if (cfg->bucket == NULL || cfg->bucket[0] == '\0') {
		snprintf(err, errlen, "replica %s: no bucket", cfg->name);
		return -EINVAL;
	}
	if (stall_env != NULL && stall_env[0] != '\0' &&
	    (duration_parse(stall_env, &stall_ms) != 0 || stall_ms < 1000)) {
		snprintf(err, errlen, "replica %s: %s=\"%s\": want a duration of at least 1s", cfg->name,
			 STALL_TIMEOUT_ENV, stall_env);
		return -EINVAL;
	}
	if (keys_env != NULL && keys_env[0] != '\0' &&
	    (strspn(keys_env, "0123456789") != strlen(keys_env) || strlen(keys_env) > 4 ||
	     atoi(keys_env) < 1 || atoi(keys_env) > 1000)) {
		snprintf(err, errlen, "replica %s: %s=\"%s\": want 1 to 1000", cfg->name, MAX_KEYS_ENV,
			 keys_env);
		return -EINVAL;
	}
	rc = s3_credentials_resolve(cfg->access_key_id, cfg->secret_access_key, &creds, why,
				    sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "replica %s: %s", cfg->name,
			 rc == -ENOMEM ? strerror(ENOMEM) : why);
		return rc;
	}
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL) {
		s3_credentials_free(&creds);
		return -ENOMEM;
	}
	sb->base.ops = &s3_ops;
	sb->base.loop = loop;
	sb->name = str_printf("replica %s", cfg->name);
	sb->prefix = strdup(cfg->path ? cfg->path : "");
	if (keys_env != NULL && keys_env[0] != '\0')
		snprintf(sb->max_keys, sizeof(sb->max_keys), "%d", atoi(keys_env));
	sb->part_size = cfg->part_size >= CONFIG_PART_SIZE_MIN ? (uint64_t)cfg->part_size
							       : CONFIG_PART_SIZE_DEFAULT;
	/* What logs, status and metrics show: never a key or a secret. */
	sb->base.describe =
		str_printf("s3://%s%s%s%s%s%s", cfg->bucket, sb->prefix && sb->prefix[0] ? "/" : "",
			   sb->prefix ? sb->prefix : "", cfg->endpoint ? " (endpoint " : "",
			   cfg->endpoint ? cfg->endpoint : "", cfg->endpoint ? ")" : "");
	if (sb->name == NULL || sb->prefix == NULL || sb->base.describe == NULL) {
		s3_credentials_free(&creds);
		s3_free(&sb->base);
		return -ENOMEM;
	}
	memset(&cc, 0, sizeof(cc));
	cc.endpoint = cfg->endpoint;
	cc.bucket = cfg->bucket;
	cc.region = cfg->region;
	cc.force_path_style = cfg->force_path_style;
	cc.skip_verify = cfg->skip_verify;
	cc.ca_file = cfg->ca_file;
	cc.creds = &creds;
	cc.log_name = sb->name;
	cc.stall_timeout_ms = stall_ms;
	if (cfg->access_key_id == NULL || cfg->access_key_id[0] == '\0') {
		cc.reload_creds = reload_creds;
		cc.reload_arg = sb;
	}
	rc = s3_client_new(loop, &cc, &sb->client, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "replica %s: %s", cfg->name,
			 rc == -ENOMEM ? strerror(ENOMEM) : why);
		s3_credentials_free(&creds);
		s3_free(&sb->base);
		return rc;
	}
	LOG_DEBUG(sb->name, NULL, "s3 credentials from %s", creds.source);
	s3_credentials_free(&creds);
	if (cfg->skip_verify)
		LOG_WARN(sb->name, NULL,
			 "skip-verify is set: the TLS certificate of %s is not checked, so anyone on the "
			 "path can read and alter this replica",
			 cfg->endpoint ? cfg->endpoint : "S3");
	*out = &sb->base;
	return 0;
}
