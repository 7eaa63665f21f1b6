/*
 * Restore from replicas; see restore.h.
 *
 * Three phases: choose (list every candidate replica, pick the generation,
 * snapshot and segments), fetch (download and decompress every object into
 * a scratch directory beside the output, up to `parallelism` at a time),
 * and build (walapply over the segments in order, then integrity_check and
 * the rename into place).
 */
#include "restore.h"

#include "catalog.h"
#include "clock.h"
#include "follow.h"
#include "fsutil.h"
#include "log.h"
#include "lz4io.h"
#include "names.h"
#include "timefmt.h"
#include "walapply.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Objects this large (more than one ranged GET at the default part-size)
 * are decompressed while they download. */
#define FOLLOW_MIN_BYTES (8 * 1024 * 1024)

/* One object to fetch: the snapshot (item 0) or a segment. */
struct item {
	uv_work_t work;
	struct restore *r;
	char key[160];
	bool snapshot;
	bool raw;             /* an uncompressed IIIIIIII.wal */
	uint32_t index;
	uint64_t offset;
	uint64_t stored;      /* bytes as stored */
	char *src;            /* the compressed object on local disk */
	bool src_is_tmp;      /* downloaded by us: remove after use */
	char *out;            /* decompressed */
	uint64_t out_size;
	bool done;            /* fetched and decompressed */
	int rc;
	char err[320];
	/*
	 * A snapshot decompressed while it downloads (get_follow): both must
	 * end, in either order, before the item does; a failed download is
	 * the item's error, the reader's then only follows from it.
	 */
	struct follow *follow;
	int follow_pending;
	int dl_rc;
	char dl_err[320];
};

struct restore {
	const struct restore_opts *o;
	char *err;
	size_t errlen;
	struct backend *b;
	uv_loop_t *loop;
	char *tmp_db;         /* OUTPUT.tmp */
	char *scratch;        /* OUTPUT.tmp.d/ */
	struct item *items;
	size_t n_items;
	size_t next;          /* next item to start */
	size_t in_flight;
	size_t done;
	int rc;               /* first error */
	uint64_t bytes_total, bytes_done;
	int64_t started_ms, last_progress_ms;
	/* Applying, in order, as objects arrive (the download goes on). */
	struct walapply *a;
	int db_fd;
	size_t applied;       /* items applied so far */
};

static int fail(struct restore *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct restore *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static void say(struct restore *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct restore *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!r->o->verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	LOG_INFO(r->o->output, NULL, "%s", line);
}

/* ---- choosing -------------------------------------------------------- */

struct choice {
	size_t source;
	const struct catalog_generation *gen;
	const struct catalog_snapshot *snap;
	size_t first, last; /* segments [first, last) of gen */
};

static bool better_generation(const struct restore_opts *o, const struct catalog_generation *g,
			      const struct catalog_generation *best)
{
	if (g->n_snapshots == 0)
		return false;
	if (o->timestamp_ms >= 0) {
		if (g->created_ms > o->timestamp_ms)
			return false;
		/* The timeline at T is the generation begun last before it. */
		return best == NULL || g->created_ms > best->created_ms ||
		       (g->created_ms == best->created_ms && g->updated_ms > best->updated_ms);
	}
	return best == NULL || g->updated_ms > best->updated_ms;
}

static const struct catalog_snapshot *pick_snapshot(const struct restore_opts *o,
						    const struct catalog_generation *g)
{
	const struct catalog_snapshot *best = NULL;

	for (size_t i = 0; i < g->n_snapshots; i++) {
		const struct catalog_snapshot *s = &g->snapshots[i];
		if (o->index >= 0 && s->index > (uint64_t)o->index)
			continue;
		if (o->timestamp_ms >= 0 && s->created_ms > o->timestamp_ms)
			continue;
		if (best == NULL || s->index >= best->index)
			best = s;
	}
	return best;
}

/*
 * Segments from the snapshot's index to the target, checked for a missing
 * index (offsets within an index are checked as they are applied).
 */
static int pick_segments(struct restore *r, struct choice *c)
{
	const struct catalog_generation *g = c->gen;
	const struct restore_opts *o = r->o;
	size_t i = 0;

	while (i < g->n_segments && g->segments[i].index < c->snap->index)
		i++;
	c->first = i;
	for (; i < g->n_segments; i++) {
		const struct catalog_segment *s = &g->segments[i];
		uint32_t want;
		if (o->index >= 0 && s->index > (uint64_t)o->index)
			break;
		if (o->timestamp_ms >= 0 && s->created_ms > o->timestamp_ms)
			break;
		if (i == c->first)
			want = c->snap->index;
		else if (s->index != g->segments[i - 1].index)
			want = g->segments[i - 1].index + 1;
		else
			continue;
		if (s->index != want)
			return fail(r, -EBADMSG, "generation %s: wal index %08x is missing (found %s next)",
				    g->name, want, s->name);
	}
	c->last = i;
	if (o->index >= 0) {
		bool found = c->snap->index == (uint64_t)o->index;
		for (size_t k = c->first; k < c->last && !found; k++)
			found = g->segments[k].index == (uint64_t)o->index;
		if (!found)
			return fail(r, -ENOENT, "wal index %08llx not found in generation %s",
				    (unsigned long long)o->index, g->name);
	}
	return 0;
}

static int choose(struct restore *r, const struct restore_source *src, size_t n, struct catalog *cats,
		  struct choice *c)
{
	const struct restore_opts *o = r->o;
	int rc;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		char err[512];
		if ((rc = catalog_load(src[i].backend, o->generation, &cats[i], err, sizeof(err))) != 0)
			return fail(r, rc, "replica %s: %s", src[i].name, err);
		for (size_t k = 0; k < cats[i].n_gens; k++) {
			const struct catalog_generation *g = &cats[i].gens[k];
			if (better_generation(o, g, c->gen)) {
				c->gen = g;
				c->source = i;
			}
		}
	}
	if (c->gen == NULL) {
		if (o->generation != NULL)
			return fail(r, -ENOENT, "generation %s not found (or it has no snapshot)", o->generation);
		if (o->timestamp_ms >= 0) {
			char t[40];
			timefmt_format(o->timestamp_ms, t, sizeof(t));
			return fail(r, -ENOENT, "no backup found at or before %s", t);
		}
		return fail(r, -ENOENT, "no matching backups found");
	}
	c->snap = pick_snapshot(o, c->gen);
	if (c->snap == NULL)
		return fail(r, -ENOENT, "generation %s has no snapshot at or before the target", c->gen->name);
	return pick_segments(r, c);
}

/* ---- fetching -------------------------------------------------------- */

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
				rc = fail(r, -errno, "open %s: %s", r->tmp_db, strerror(errno));
			else if ((rc = walapply_new(r->db_fd, &r->a, err, sizeof(err))) != 0)
				fail(r, rc, "%s: %s", it->key, err);
		} else {
			size_t i = r->applied;
			if (i == 1 || r->items[i - 1].index != it->index)
				walapply_index_begin(r->a, it->index);
			rc = walapply_segment(r->a, it->out, it->offset, 0, it->key, err, sizeof(err));
			if (rc == 0 && (i + 1 == r->n_items || r->items[i + 1].index != it->index)) {
				rc = walapply_index_end(r->a, err, sizeof(err));
				if (rc == 0)
					say(r, "verified wal index %08x", it->index);
			}
			if (rc != 0)
				fail(r, rc, "%s", err);
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
		r->rc = fail(r, it->rc, "%s", it->err);
	} else if (it->rc == 0) {
		it->done = true;
		say(r, "fetched %s (%llu bytes)", it->key, (unsigned long long)it->out_size);
		apply_ready(r);
	}
	progress(r, false);
	start_items(r);
}

/* Decompresses (or copies, raw) src into out. 0, or -errno with err. */
static int decompress_file(const char *key, const char *src, bool raw, struct follow *follow,
			   const char *out, uint64_t *size, char *err, size_t errlen)
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
		rc = lz4io_decompress_from(follow_read, follow, fd, size, why, sizeof(why));
	} else {
		rc = lz4io_decompress(in, fd, size, why, sizeof(why));
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

	it->rc = decompress_file(it->key, it->src, it->raw, it->follow, it->out, &it->out_size, it->err,
				 sizeof(it->err));
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
	say(r, "decompressing %s as it downloads", it->key);
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

static int fetch_all(struct restore *r)
{
	r->started_ms = clock_mono_ms();
	start_items(r);
	while (r->in_flight > 0)
		uv_run(r->loop, UV_RUN_ONCE);
	progress(r, true);
	return r->rc;
}

static int plan_items(struct restore *r, const struct choice *c)
{
	const struct catalog_generation *g = c->gen;

	r->n_items = 1 + (c->last - c->first);
	r->items = calloc(r->n_items, sizeof(*r->items));
	if (r->items == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_items; i++) {
		struct item *it = &r->items[i];
		it->r = r;
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

/* ---- building -------------------------------------------------------- */

int restore_apply(const char *db_path, const struct restore_segment *segs, size_t n, bool verbose,
		  char *err, size_t errlen)
{
	struct walapply *a = NULL;
	int fd, rc;

	fd = open(db_path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", db_path, strerror(errno));
		return -errno;
	}
	if ((rc = walapply_new(fd, &a, err, errlen)) != 0) {
		close(fd);
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct restore_segment *sg = &segs[i];
		if (i == 0 || segs[i - 1].index != sg->index)
			rc = walapply_index_begin(a, sg->index);
		if (rc == 0)
			rc = walapply_segment(a, sg->path, sg->offset, sg->limit, sg->name, err, errlen);
		if (rc == 0 && (i + 1 == n || segs[i + 1].index != sg->index)) {
			rc = walapply_index_end(a, err, errlen);
			if (rc == 0 && verbose)
				LOG_INFO(db_path, NULL, "verified wal index %08x", sg->index);
		}
	}
	if (rc == 0)
		rc = walapply_finish(a, err, errlen);
	if (rc == 0) {
		if (verbose)
			LOG_INFO(db_path, NULL, "applied %llu frames as %llu page writes",
				 (unsigned long long)walapply_frames(a),
				 (unsigned long long)walapply_pages_written(a));
		if (fsync(fd) != 0) {
			rc = -errno;
			snprintf(err, errlen, "fsync %s: %s", db_path, strerror(errno));
		}
	}
	walapply_free(a);
	close(fd);
	return rc;
}

/* Every object is applied: write the pages and make the file durable. */
static int finish(struct restore *r)
{
	char err[512];
	int rc;

	if (r->applied != r->n_items || r->a == NULL)
		return fail(r, -EIO, "restore: %zu of %zu objects applied", r->applied, r->n_items);
	if ((rc = walapply_finish(r->a, err, sizeof(err))) != 0)
		return fail(r, rc, "%s", err);
	say(r, "applied %llu frames as %llu page writes", (unsigned long long)walapply_frames(r->a),
	    (unsigned long long)walapply_pages_written(r->a));
	if (fsync(r->db_fd) != 0)
		return fail(r, -errno, "fsync %s: %s", r->tmp_db, strerror(errno));
	return 0;
}

int restore_build_local(const struct restore_object *objs, size_t n, const char *out_path,
			const char *scratch, char *err, size_t errlen)
{
	struct restore_segment *segs;
	char **paths;
	uint64_t size;
	int rc = 0;

	if (n == 0 || !objs[0].snapshot) {
		snprintf(err, errlen, "no snapshot to build from");
		return -EINVAL;
	}
	segs = calloc(n, sizeof(*segs));
	paths = calloc(n, sizeof(*paths));
	if (segs == NULL || paths == NULL) {
		free(segs);
		free(paths);
		return -ENOMEM;
	}
	rc = decompress_file(objs[0].key, objs[0].local, false, NULL, out_path, &size, err, errlen);
	for (size_t i = 1; i < n && rc == 0; i++) {
		paths[i] = str_printf("%s/%zu.wal", scratch, i);
		if (paths[i] == NULL) {
			rc = -ENOMEM;
			break;
		}
		rc = decompress_file(objs[i].key, objs[i].local, objs[i].raw, NULL, paths[i], &size, err,
				     errlen);
		segs[i - 1].path = paths[i];
		segs[i - 1].name = objs[i].key;
		segs[i - 1].index = objs[i].index;
		segs[i - 1].offset = objs[i].offset;
		segs[i - 1].limit = objs[i].limit;
	}
	if (rc == 0)
		rc = restore_apply(out_path, segs, n - 1, false, err, errlen);
	for (size_t i = 1; i < n; i++) {
		if (paths[i] != NULL)
			unlink(paths[i]);
		free(paths[i]);
	}
	free(paths);
	free(segs);
	return rc;
}

static int integrity_check(struct restore *r)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char result[256] = "";
	int rc;

	rc = sqlite3_open_v2(r->tmp_db, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		snprintf(result, sizeof(result), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (strcmp(result, "ok") != 0)
		return fail(r, -EBADMSG, "restored database failed integrity check: %s",
			    result[0] ? result : "cannot read it");
	say(r, "integrity check ok");
	return 0;
}

static int install(struct restore *r)
{
	int rc = renameat2(AT_FDCWD, r->tmp_db, AT_FDCWD, r->o->output, RENAME_NOREPLACE);

	if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
		/* No RENAME_NOREPLACE here: link() never replaces either. */
		rc = link(r->tmp_db, r->o->output);
		if (rc == 0)
			unlink(r->tmp_db);
	}
	if (rc != 0) {
		if (errno == EEXIST)
			return fail(r, -EEXIST, "output file already exists: %s", r->o->output);
		return fail(r, -errno, "rename %s to %s: %s", r->tmp_db, r->o->output, strerror(errno));
	}
	return fs_fsync_parent(r->o->output);
}

static void cleanup(struct restore *r)
{
	walapply_free(r->a);
	r->a = NULL;
	if (r->db_fd >= 0)
		close(r->db_fd);
	r->db_fd = -1;
	for (size_t i = 0; i < r->n_items; i++) {
		struct item *it = &r->items[i];
		if (it->out != NULL && !it->snapshot)
			unlink(it->out);
		free(it->out);
		free(it->src);
	}
	free(r->items);
	if (r->tmp_db != NULL) {
		char *wal = str_printf("%s-wal", r->tmp_db), *shm = str_printf("%s-shm", r->tmp_db);
		unlink(r->tmp_db);
		if (wal)
			unlink(wal);
		if (shm)
			unlink(shm);
		free(wal);
		free(shm);
	}
	if (r->scratch != NULL)
		fs_remove_tree(r->scratch);
	free(r->tmp_db);
	free(r->scratch);
}

int restore_run(const struct restore_source *sources, size_t n_sources, const struct restore_opts *opts,
		char *err, size_t errlen)
{
	struct restore r;
	struct catalog *cats;
	struct choice c;
	int rc;

	memset(&r, 0, sizeof(r));
	r.db_fd = -1;
	r.o = opts;
	r.err = err;
	r.errlen = errlen;
	if (n_sources == 0)
		return fail(&r, -EINVAL, "no replica to restore from");
	if (opts->index >= 0 && opts->generation == NULL)
		return fail(&r, -EINVAL, "must specify a generation when restoring to an index");
	if (opts->index >= 0 && opts->timestamp_ms >= 0)
		return fail(&r, -EINVAL, "cannot specify both an index and a timestamp");
	if (access(opts->output, F_OK) == 0)
		return fail(&r, -EEXIST, "output file already exists: %s", opts->output);
	cats = calloc(n_sources, sizeof(*cats));
	if (cats == NULL)
		return -ENOMEM;
	rc = choose(&r, sources, n_sources, cats, &c);
	if (rc == 0) {
		r.b = sources[c.source].backend;
		r.loop = r.b->loop;
		r.tmp_db = str_printf("%s.tmp", opts->output);
		r.scratch = str_printf("%s.tmp.d", opts->output);
		if (r.tmp_db == NULL || r.scratch == NULL)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		/* Leftovers of an interrupted restore are ours to replace. */
		unlink(r.tmp_db);
		fs_remove_tree(r.scratch);
		if ((rc = fs_mkdir_p(r.scratch, 0700)) != 0)
			fail(&r, rc, "mkdir %s: %s", r.scratch, strerror(-rc));
	}
	if (rc == 0) {
		say(&r, "restoring generation %s from replica %s (%s): snapshot %08x, %zu segments",
		    c.gen->name, sources[c.source].name, r.b->describe, c.snap->index, c.last - c.first);
		rc = plan_items(&r, &c);
	}
	if (rc == 0)
		rc = fetch_all(&r);
	if (rc == 0)
		rc = finish(&r);
	if (rc == 0)
		rc = integrity_check(&r);
	if (rc == 0)
		rc = install(&r);
	if (rc == 0)
		say(&r, "restore complete");
	cleanup(&r);
	for (size_t i = 0; i < n_sources; i++)
		catalog_free(&cats[i]);
	free(cats);
	return rc;
}
