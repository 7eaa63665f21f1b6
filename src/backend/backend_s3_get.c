/*
 * The S3 backend's get and get_follow: GetObject streamed into the local
 * file.
 *
 * A download is a series of ranged GETs of part-size bytes. The first asks
 * for bytes 0..part-size-1: for most objects (segments) that is the whole
 * object and the only request. Its Content-Range names the object's size;
 * the rest of a larger object (a snapshot) then comes in further ranges,
 * up to MAX_RANGES_IN_FLIGHT at a time, each written at its own offset of
 * the file. Every range must answer with exactly the bytes asked for and
 * the ETag of the first, so an object replaced meanwhile is noticed rather
 * than spliced. A server that ignores Range answers the first request
 * with 200 and the whole object, which is just as good.
 *
 * get_follow() is the same download that also tells, as ranges come in,
 * how many leading bytes of the file are final (range_in), so a reader
 * (restore decompressing a snapshot) can follow it; get() is get_follow()
 * with nobody to tell.
 */
#include "backend/backend_s3_internal.h"
#include "net/http_client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RANGES_IN_FLIGHT 4

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
	backend_s3_op_end(sb);
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
	req.flags = S3_REQ_OBJECT_DATA;
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
	rc = backend_s3_send(op->sb, &req, on_range, g);
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
			get_fail(op, rc, "GET %s: %s", op->key, backend_s3_refused(rc));
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
		get_fail(op, rc, "GET %s: %s", op->key, backend_s3_refused(rc));
		get_finish(op);
	}
}

void backend_s3_get_follow(struct backend *b, const char *key, const char *local_path,
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
	op->full = backend_s3_key(sb, key);
	op->local = strdup(local_path);
	backend_s3_op_begin(sb);
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

void backend_s3_get(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		   void *arg)
{
	backend_s3_get_follow(b, key, local_path, NULL, cb, arg);
}
