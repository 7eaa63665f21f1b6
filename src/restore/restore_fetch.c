/*
 * Restore, phase two: fetch. Every chosen object (an item) is downloaded
 * into the scratch directory, up to `parallelism` at a time, and
 * decompressed on the threadpool; an object in a file replica is read
 * where it is. A large snapshot from a backend with get_follow is
 * decompressed while it downloads (follow.h). As soon as an item and all
 * before it are in, it is verified and mapped into the database being
 * built (apply_ready, walapply.h), so checking overlaps the download.
 */
#include "restore/restore_internal.h"

#include "util/clock.h"
#include "util/fsutil.h"
#include "core/object_codec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Objects this large (more than one ranged GET at the default part-size)
 * are decompressed while they download. */
#define FOLLOW_MIN_BYTES (8 * 1024 * 1024)

static void start_items(struct restore *r);

static void progress(struct restore *r, bool last)
{
	int64_t now = clock_mono_ms();
	double secs, rate;

	if (!r->o->progress || r->o->verbose || (!last && now - r->last_progress_ms < 200))
		return;
	r->last_progress_ms = now;
	secs = (double)(now - r->started_ms) / 1000.0;
	rate = secs > 0 ? (double)r->bytes_done / secs : 0;
	fprintf(stderr, "\rrestoring: %zu/%zu objects, %.1f/%.1f MB, %.1f MB/s, ETA %.0fs   %s",
		r->done, r->n_items, (double)r->bytes_done / 1e6, (double)r->bytes_total / 1e6, rate / 1e6,
		rate > 0 ? (double)(r->bytes_total - r->bytes_done) / rate : 0.0, last ? "\n" : "");
	fflush(stderr);
}

/*
 * Verifies and maps, in order, every object that has arrived since the
 * last call (walapply.h), while later ones are still downloading; pages
 * are written once, at the end (finish()).
 */
static void apply_ready(struct restore *r)
{
	char err[512];
	int rc = 0;

	while (r->rc == 0 && r->applied < r->n_items && r->items[r->applied].done) {
		struct item *it = &r->items[r->applied];
		if (it->snapshot) {
			r->db_fd = open(r->tmp_db, O_RDWR | O_CLOEXEC);
			if (r->db_fd < 0)
				rc = restore_fail(r, -errno, "open %s: %s", r->tmp_db, strerror(errno));
			else if ((rc = walapply_new(r->db_fd, &r->a, err, sizeof(err))) != 0)
				restore_fail(r, rc, "%s: %s", it->key, err);
		} else {
			size_t i = r->applied;
			if (i == 1 || r->items[i - 1].index != it->index)
				walapply_index_begin(r->a, it->index);
			rc = walapply_segment(r->a, it->out, it->offset, 0, it->key, err, sizeof(err));
			if (rc == 0 && (i + 1 == r->n_items || r->items[i + 1].index != it->index)) {
				rc = walapply_index_end(r->a, err, sizeof(err));
				if (rc == 0)
					restore_say(r, "verified wal index %08x", it->index);
			}
			if (rc != 0)
				restore_fail(r, rc, "%s", err);
		}
		if (rc != 0) {
			r->rc = rc;
			return;
		}
		r->applied++;
	}
}

static void on_decompressed(uv_work_t *req, int status)
{
	struct item *it = req->data;
	struct restore *r = it->r;

	if (status == UV_ECANCELED && it->rc == 0) {
		it->rc = -ECANCELED;
		snprintf(it->err, sizeof(it->err), "%s: cancelled", it->key);
	}
	if (it->src_is_tmp)
		unlink(it->src);
	r->in_flight--;
	r->done++;
	r->bytes_done += it->stored;
	if (it->rc != 0 && r->rc == 0) {
		r->rc = restore_fail(r, it->rc, "%s", it->err);
	} else if (it->rc == 0) {
		it->done = true;
		restore_say(r, "fetched %s (%llu bytes)", it->key, (unsigned long long)it->out_size);
		apply_ready(r);
	}
	progress(r, false);
	start_items(r);
}

/* Decompresses (or copies, raw) src into out. 0, or -errno with err. */
int restore_decompress_file(const char *key, const char *src, bool raw, struct follow *follow,
			    const struct age_keys *age, const char *out, uint64_t *size, char *err,
			    size_t errlen)
{
	char why[256] = "";
	int in = -1, fd, rc;

	if (follow == NULL && (in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: open %s: %s", key, src, strerror(errno));
		return rc;
	}
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "create %s: %s", out, strerror(errno));
		if (in >= 0)
			close(in);
		return rc;
	}
	if (raw) {
		struct stat st;
		rc = fstat(in, &st) == 0 ? fs_copy_range(in, 0, (uint64_t)st.st_size, fd) : -errno;
		*size = (uint64_t)st.st_size;
		if (rc != 0)
			snprintf(err, errlen, "%s: copy to %s: %s", key, out, strerror(-rc));
	} else if (follow != NULL) {
		rc = object_decode_from(follow_read, follow, fd, age, size, why, sizeof(why));
	} else {
		rc = object_decode(in, fd, age, size, why, sizeof(why));
	}
	if (!raw) {
		/* Name the local file when it is the one at fault (a full disk). */
		if (rc != 0 && strncmp(why, "write: ", 7) == 0)
			snprintf(err, errlen, "%s: decompress into %s: %s", key, out, why + 7);
		else if (rc != 0)
			snprintf(err, errlen, "%s: %s", key, why[0] ? why : strerror(-rc));
	}
	if (in >= 0)
		close(in);
	if (close(fd) != 0 && rc == 0) {
		rc = -errno;
		snprintf(err, errlen, "write %s: %s", out, strerror(errno));
	}
	return rc;
}

/* Threadpool: decompress (or copy) the object into its output file. */
static void decompress_work(uv_work_t *req)
{
	struct item *it = req->data;

	it->rc = restore_decompress_file(it->key, it->src, it->raw, it->follow, it->age, it->out,
					 &it->out_size, it->err, sizeof(it->err));
}

static void queue_decompress(struct restore *r, struct item *it)
{
	int rc = uv_queue_work(r->loop, &it->work, decompress_work, on_decompressed);

	if (rc != 0) {
		it->rc = rc;
		snprintf(it->err, sizeof(it->err), "%s: %s", it->key, uv_strerror(rc));
		on_decompressed(&it->work, 0);
	}
}

static void on_downloaded(void *arg, int rc, const char *err)
{
	struct item *it = arg;

	if (rc != 0) {
		it->rc = rc;
		snprintf(it->err, sizeof(it->err), "%s", err ? err : strerror(-rc));
		on_decompressed(&it->work, 0);
		return;
	}
	queue_decompress(it->r, it);
}

/* A followed item: one of its two halves (download, decompression) ended. */
static void follow_half_done(struct item *it)
{
	if (--it->follow_pending > 0)
		return;
	if (it->dl_rc != 0) {
		it->rc = it->dl_rc;
		snprintf(it->err, sizeof(it->err), "%s", it->dl_err);
	}
	follow_destroy(it->follow);
	free(it->follow);
	it->follow = NULL;
	on_decompressed(&it->work, 0);
}

static void on_follow_decompressed(uv_work_t *req, int status)
{
	struct item *it = req->data;

	if (status == UV_ECANCELED && it->rc == 0) {
		it->rc = -ECANCELED;
		snprintf(it->err, sizeof(it->err), "%s: cancelled", it->key);
	}
	follow_half_done(it);
}

static void on_follow_ready(void *arg, uint64_t n)
{
	struct item *it = arg;

	follow_ready(it->follow, n);
}

static void on_follow_downloaded(void *arg, int rc, const char *err)
{
	struct item *it = arg;

	follow_end(it->follow, rc);
	if (rc != 0) {
		it->dl_rc = rc;
		snprintf(it->dl_err, sizeof(it->dl_err), "%s", err ? err : strerror(-rc));
	}
	follow_half_done(it);
}

/*
 * A large object from a backend that can say how far a download is: its
 * decompression starts at once and follows the download, instead of
 * waiting for the end of it. false when that cannot be set up (the
 * caller then fetches it the plain way).
 */
static bool start_followed(struct restore *r, struct item *it)
{
	if (r->b->ops->get_follow == NULL || it->raw || it->stored < FOLLOW_MIN_BYTES ||
	    !follow_possible() || (it->follow = malloc(sizeof(*it->follow))) == NULL)
		return false;
	if (follow_init(it->follow, it->src) != 0) {
		free(it->follow);
		it->follow = NULL;
		return false;
	}
	it->follow_pending = 2;
	if (uv_queue_work(r->loop, &it->work, decompress_work, on_follow_decompressed) != 0) {
		follow_destroy(it->follow);
		free(it->follow);
		it->follow = NULL;
		return false;
	}
	restore_say(r, "decompressing %s as it downloads", it->key);
	r->b->ops->get_follow(r->b, it->key, it->src, on_follow_ready, on_follow_downloaded, it);
	return true;
}

static void start_item(struct restore *r, struct item *it)
{
	char *local = r->b->ops->local_path ? r->b->ops->local_path(r->b, it->key) : NULL;

	r->in_flight++;
	it->work.data = it;
	if (local != NULL) {
		/* A file replica: read the object where it is. */
		it->src = local;
		queue_decompress(r, it);
		return;
	}
	it->src = str_printf("%s/%zu.fetch", r->scratch, (size_t)(it - r->items));
	it->src_is_tmp = true;
	if (it->src == NULL) {
		it->rc = -ENOMEM;
		snprintf(it->err, sizeof(it->err), "out of memory");
		on_decompressed(&it->work, 0);
		return;
	}
	if (!start_followed(r, it))
		r->b->ops->get(r->b, it->key, it->src, on_downloaded, it);
}

static void start_items(struct restore *r)
{
	size_t limit = r->o->parallelism > 0 ? (size_t)r->o->parallelism : 8;

	while (r->rc == 0 && r->next < r->n_items && r->in_flight < limit)
		start_item(r, &r->items[r->next++]);
}

int restore_fetch_all(struct restore *r)
{
	r->started_ms = clock_mono_ms();
	start_items(r);
	while (r->in_flight > 0)
		uv_run(r->loop, UV_RUN_ONCE);
	progress(r, true);
	return r->rc;
}

int restore_plan_items(struct restore *r, const struct choice *c)
{
	const struct catalog_generation *g = c->gen;

	r->n_items = 1 + (c->last - c->first);
	r->items = calloc(r->n_items, sizeof(*r->items));
	if (r->items == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_items; i++) {
		struct item *it = &r->items[i];
		it->r = r;
		it->age = r->b->age;
		if (i == 0) {
			it->snapshot = true;
			it->index = c->snap->index;
			it->stored = c->snap->size;
			catalog_snapshot_key(it->key, sizeof(it->key), g->name, c->snap->index);
			it->out = strdup(r->tmp_db);
		} else {
			const struct catalog_segment *s = &g->segments[c->first + i - 1];
			it->index = s->index;
			it->offset = s->offset;
			it->stored = s->size;
			it->raw = s->form == SEGMENT_WHOLE_RAW;
			catalog_segment_key(it->key, sizeof(it->key), g->name, s);
			it->out = str_printf("%s/%zu.wal", r->scratch, i);
		}
		if (it->out == NULL)
			return -ENOMEM;
		r->bytes_total += it->stored;
	}
	return 0;
}
