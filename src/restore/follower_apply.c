/*
 * The follower's changes to PATH, on the threadpool: a batch of new
 * segments (follow_apply_segments) or a whole new generation
 * (follow_install_generation), each one livedb transaction. Around the
 * transaction the position file is written twice: before the pages, with
 * the entries for the state before and after (so a crash in between
 * resumes from whichever PATH holds), and after the commit with the new
 * entry alone.
 */
#include "restore/follower_internal.h"

#include "util/clock.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- one change, with the position around it -------------------------- */

static int change(struct follower *f, struct livedb_txn *t, struct follow_pos *next, char *err,
		  size_t errlen)
{
	int64_t t0 = clock_mono_us();
	int rc;

	if ((rc = livedb_begin(f->live, t, f->o.lock_timeout_ms, err, errlen)) != 0)
		return rc;
	next->counter = t->counter;
	next->page1_crc = t->page1_crc;
	rc = follow_pos_save(f->pos_path, f->src.backend->describe, &f->pos, next, err, errlen);
	if (rc != 0) {
		livedb_abort(f->live);
		return rc;
	}
	if ((rc = livedb_commit(f->live, t, err, errlen)) != 0)
		return rc;
	f->job.pos = *next;
	f->job.moved = true;
	f->job.pages += t->n;
	f->job.seconds += (double)(clock_mono_us() - t0) / 1e6;
	/* A failure here is harmless: the file still holds this entry. */
	follow_pos_save(f->pos_path, f->src.backend->describe, next, NULL, err, errlen);
	return 0;
}

/* ---- segments ------------------------------------------------------------- */

/* Whether a decompressed segment ends with a commit frame (or holds none). */
static int ends_committed(const struct follow_seg *sg, uint32_t ps, bool *yes, char *err, size_t errlen)
{
	uint64_t fsz = WAL_FRAME_HEADER_SIZE + (uint64_t)ps, start = sg->s.offset == 0 ? WAL_HEADER_SIZE : 0;
	uint8_t fh[WAL_FRAME_HEADER_SIZE];
	int64_t size = fs_file_size(sg->out);
	int fd;

	if (size < 0)
		return snprintf(err, errlen, "%s: stat: %s", sg->key, strerror((int)-size)), (int)size;
	*yes = true;
	if ((uint64_t)size <= start || ((uint64_t)size - start) % fsz != 0)
		return 0; /* no frame, or walapply names the damage */
	if ((fd = open(sg->out, O_RDONLY | O_CLOEXEC)) < 0)
		return snprintf(err, errlen, "%s: open: %s", sg->key, strerror(errno)), -errno;
	if (fs_pread_full(fd, fh, sizeof(fh), (uint64_t)size - fsz) == sizeof(fh))
		*yes = wal_get_u32(fh + 4) != 0;
	close(fd);
	return 0;
}

/* How many of segs form whole transactions: up to the last that ends one. */
static int usable_prefix(struct follower *f, struct follow_seg *segs, size_t n, size_t *used, char *err,
			 size_t errlen)
{
	uint32_t ps = livedb_page_size(f->live);

	*used = 0;
	for (size_t i = 0; i < n; i++) {
		bool whole = false;
		int rc = ends_committed(&segs[i], ps, &whole, err, errlen);
		if (rc != 0)
			return rc;
		/* An index followed by the next one is complete whatever its tail. */
		if (whole || (i + 1 < n && segs[i + 1].s.index != segs[i].s.index))
			*used = i + 1;
	}
	return 0;
}

static int read_from_walapply(void *arg, uint32_t pgno, uint8_t *buf, char *err, size_t errlen)
{
	return walapply_read_page(arg, pgno, buf, err, errlen);
}

/* Maps segs into a; *bad is the index of the segment that failed. */
static int map_segments(struct follower *f, struct walapply *a, struct follow_seg *segs, size_t n,
			size_t *bad, char *err, size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct catalog_segment *s = &segs[i].s;
		*bad = i;
		if (i == 0 && s->index == f->pos.index && f->pos.offset > 0) {
			if (!f->pos.have_chain)
				return snprintf(err, errlen, "%s: no checksum chain to continue wal index %08x",
						segs[i].key, s->index), -EBADMSG;
			walapply_index_resume(a, s->index, f->pos.offset, &f->pos.hdr, f->pos.cksum);
		} else if (i == 0 || segs[i - 1].s.index != s->index) {
			walapply_index_begin(a, s->index);
		}
		rc = walapply_segment(a, segs[i].out, s->offset, 0, segs[i].key, err, errlen);
		if (rc == 0 && (i + 1 == n || segs[i + 1].s.index != s->index))
			rc = walapply_index_end(a, err, errlen);
	}
	return rc;
}

/* The change for segs[0..n) (all verified), applied. */
static int apply_mapped(struct follower *f, struct walapply *a, const struct follow_seg *last,
			char *err, size_t errlen)
{
	struct livedb_txn t;
	struct follow_pos next;
	uint32_t *pgnos = NULL;
	size_t n_pg = 0;
	int rc;

	if ((rc = walapply_changes(a, &pgnos, &n_pg)) != 0)
		return snprintf(err, errlen, "out of memory"), rc;
	memset(&t, 0, sizeof(t));
	t.new_size = walapply_size(a);
	t.pgnos = pgnos;
	t.n = n_pg;
	t.read = read_from_walapply;
	t.arg = a;
	next = f->pos;
	next.have_chain = walapply_chain(a, &next.index, &next.offset, &next.hdr, next.cksum);
	next.applied_ms = last->s.created_ms;
	rc = change(f, &t, &next, err, errlen);
	free(pgnos);
	return rc;
}

/* Verifies and applies segs[0..*n); on damage, the good ones before it, then the error. */
static int map_and_apply(struct follower *f, struct follow_seg *segs, size_t *n, char *err, size_t errlen)
{
	char bad_err[1024] = "";
	int bad_rc = 0, rc;

	for (int attempt = 0; attempt < 2; attempt++) {
		struct walapply *a = NULL;
		size_t bad = 0;
		rc = walapply_new_sized(livedb_page_size(f->live), livedb_pages(f->live), &a, err, errlen);
		if (rc == 0 && (rc = map_segments(f, a, segs, *n, &bad, err, errlen)) != 0 && attempt == 0 &&
		    rc == -EBADMSG) {
			/* Apply what came before the damage, then report it. */
			bad_rc = rc;
			snprintf(bad_err, sizeof(bad_err), "%s", err);
			walapply_free(a);
			if ((*n = bad) == 0)
				break;
			continue;
		}
		if (rc == 0)
			rc = apply_mapped(f, a, &segs[*n - 1], err, errlen);
		walapply_free(a);
		break;
	}
	if (rc == 0 && bad_rc != 0) {
		snprintf(err, errlen, "%s", bad_err);
		rc = bad_rc;
	}
	return rc;
}

int follow_apply_segments(struct follower *f, struct follow_seg *segs, size_t n, size_t *used,
			  char *err, size_t errlen)
{
	char bad_err[1024] = "";
	int bad_rc = 0, rc = 0;
	size_t good = n;

	*used = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t size;
		rc = restore_decompress_file(segs[i].key, segs[i].src, segs[i].s.form == SEGMENT_WHOLE_RAW,
					     NULL, f->src.backend->age, segs[i].out, &size, err, errlen);
		if (rc != 0) {
			/* The segments before a damaged one still apply. */
			bad_rc = rc;
			snprintf(bad_err, sizeof(bad_err), "%s", err);
			good = i;
			break;
		}
	}
	rc = usable_prefix(f, segs, good, used, err, errlen);
	if (rc == 0 && *used > 0) {
		rc = map_and_apply(f, segs, used, err, errlen);
		if (rc != 0 && rc != -EBADMSG)
			return rc;
		if (rc != 0)
			bad_rc = 0; /* err already holds the damage map_and_apply found */
	}
	if (rc == 0 && bad_rc != 0) {
		snprintf(err, errlen, "%s", bad_err);
		rc = bad_rc;
	}
	return rc;
}

/* ---- a new generation --------------------------------------------------- */

struct newfile {
	int fd;
	uint32_t ps;
};

static int read_from_file(void *arg, uint32_t pgno, uint8_t *buf, char *err, size_t errlen)
{
	struct newfile *nf = arg;

	if (fs_pread_full(nf->fd, buf, nf->ps, (uint64_t)(pgno - 1) * nf->ps) != (ssize_t)nf->ps)
		return snprintf(err, errlen, "read page %u of the new generation: short read", pgno), -EIO;
	return 0;
}

/* Pages of the new file that differ from PATH's (all of them beyond its end). */
static int diff_pages(struct follower *f, struct newfile *nf, uint32_t pages, uint32_t **out, size_t *n,
		      char *err, size_t errlen)
{
	uint32_t *v = malloc(((size_t)pages + 1) * sizeof(*v));
	uint8_t *a = malloc(nf->ps), *b = malloc(nf->ps);
	size_t k = 0;
	int rc = 0;

	if (v == NULL || a == NULL || b == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	for (uint32_t p = 1; p <= pages && rc == 0; p++) {
		if ((rc = read_from_file(nf, p, a, err, errlen)) != 0)
			break;
		if (p > livedb_pages(f->live)) {
			v[k++] = p;
			continue;
		}
		if ((rc = livedb_read_page(f->live, p, b, err, errlen)) != 0)
			break;
		if (memcmp(a, b, nf->ps) != 0)
			v[k++] = p;
	}
	free(a);
	free(b);
	if (rc != 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = k;
	return 0;
}

int follow_install_generation(struct follower *f, const struct restore_result *res, char *err,
			      size_t errlen)
{
	struct newfile nf = {-1, livedb_page_size(f->live)};
	struct livedb_txn t;
	struct follow_pos next;
	uint32_t *pgnos = NULL;
	size_t n = 0;
	int64_t size = fs_file_size(f->new_path);
	int rc;

	if (size <= 0 || size % nf.ps != 0)
		return snprintf(err, errlen, "generation %s: its page size differs from %s's %u (restore it anew with -force)",
				res->generation, f->o.output, nf.ps), -EBADMSG;
	if ((nf.fd = open(f->new_path, O_RDONLY | O_CLOEXEC)) < 0)
		return snprintf(err, errlen, "open %s: %s", f->new_path, strerror(errno)), -errno;
	rc = diff_pages(f, &nf, (uint32_t)(size / nf.ps), &pgnos, &n, err, errlen);
	if (rc == 0) {
		memset(&t, 0, sizeof(t));
		t.new_size = (uint32_t)(size / nf.ps);
		t.pgnos = pgnos;
		t.n = n;
		t.read = read_from_file;
		t.arg = &nf;
		memset(&next, 0, sizeof(next));
		snprintf(next.generation, sizeof(next.generation), "%s", res->generation);
		next.index = res->index;
		next.offset = res->offset;
		next.have_chain = res->have_chain;
		next.hdr = res->hdr;
		next.cksum[0] = res->cksum[0];
		next.cksum[1] = res->cksum[1];
		next.applied_ms = res->applied_ms;
		rc = change(f, &t, &next, err, errlen);
	}
	free(pgnos);
	close(nf.fd);
	return rc;
}

/* ---- running on the threadpool ----------------------------------------------- */

struct blocking {
	uv_work_t work;
	struct follower *f;
	int (*fn)(struct follower *f, void *arg);
	void *arg;
	int rc;
	bool done;
};

static void blocking_work(uv_work_t *req)
{
	struct blocking *b = req->data;

	b->rc = b->fn(b->f, b->arg);
}

static void blocking_after(uv_work_t *req, int status)
{
	struct blocking *b = req->data;

	if (status == UV_ECANCELED)
		b->rc = -ECANCELED;
	b->done = true;
}

int follower_blocking(struct follower *f, int (*fn)(struct follower *f, void *arg), void *arg)
{
	struct blocking b = {.f = f, .fn = fn, .arg = arg};
	int rc;

	memset(&f->job, 0, sizeof(f->job));
	b.work.data = &b;
	if ((rc = uv_queue_work(f->loop, &b.work, blocking_work, blocking_after)) != 0) {
		snprintf(f->job.err, sizeof(f->job.err), "queue work: %s", uv_strerror(rc));
		return rc;
	}
	while (!b.done)
		uv_run(f->loop, UV_RUN_ONCE);
	if (f->job.moved) {
		f->pos = f->job.pos;
		f->have_pos = true;
	}
	f->stats.pages += f->job.pages;
	f->stats.apply_seconds += f->job.seconds;
	return b.rc;
}
