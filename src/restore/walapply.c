/*
 * Page-by-page WAL application; see walapply.h for what it computes.
 */
#include "restore/walapply.h"

#include "util/fsutil.h"
#include "core/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where a page's newest version is: ref.file 0 = unchanged, 1 = zeros. */
#define REF_SNAPSHOT 0u
#define REF_ZERO 1u
#define REF_FILE0 2u

struct page_ref {
	uint32_t file; /* REF_* or REF_FILE0 + index into files */
	uint64_t off;  /* offset of the page's bytes (after the frame header) */
};

struct frame_rec {
	uint32_t pgno;
	uint32_t commit; /* db size if a commit frame, else 0 */
	uint32_t file;
	uint64_t off;
};

struct walapply {
	int db_fd;
	uint32_t page_size;
	uint32_t size;          /* database size in pages */
	struct page_ref *map;   /* pages 1..cap, map[p - 1] */
	uint32_t cap;
	char **files;           /* segment paths */
	size_t n_files;
	/* the index being read */
	bool in_index;
	bool have_hdr;          /* hdr and cksum hold an index's chain */
	uint32_t index;
	uint64_t index_bytes;   /* bytes of the index seen so far */
	char last_name[128];    /* the index's last segment applied, for messages; "" at its start */
	struct wal_header hdr;
	uint32_t cksum[2];
	struct frame_rec *frames;
	size_t n_frames, frames_cap;
	uint8_t *buf;           /* one frame */
	int rd_fd;              /* walapply_read_page's open segment, or -1 */
	uint32_t rd_file;
	uint64_t frames_taken;
	uint64_t pages_written;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int grow_map(struct walapply *a, uint32_t pages)
{
	struct page_ref *m;
	uint32_t cap = a->cap ? a->cap : 1024;

	if (pages <= a->cap)
		return 0;
	while (cap < pages)
		cap = cap > UINT32_MAX / 2 ? pages : cap * 2;
	m = realloc(a->map, (size_t)cap * sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	memset(m + a->cap, 0, (size_t)(cap - a->cap) * sizeof(*m));
	a->map = m;
	a->cap = cap;
	return 0;
}

int walapply_new(int db_fd, struct walapply **out, char *err, size_t errlen)
{
	struct walapply *a;
	uint8_t hdr[100];
	struct stat st;
	uint32_t ps;

	if (fstat(db_fd, &st) != 0)
		return fail(err, errlen, -errno, "stat snapshot: %s", strerror(errno));
	if (st.st_size < 100 || fs_pread_full(db_fd, hdr, sizeof(hdr), 0) != sizeof(hdr) ||
	    memcmp(hdr, "SQLite format 3", 16) != 0)
		return fail(err, errlen, -EBADMSG, "snapshot is not a SQLite database");
	ps = (uint32_t)hdr[16] << 8 | hdr[17];
	if (ps == 1)
		ps = 65536;
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)
		return fail(err, errlen, -EBADMSG, "snapshot has an invalid page size %u", ps);
	if ((uint64_t)st.st_size % ps != 0)
		return fail(err, errlen, -EBADMSG, "snapshot size %lld is not a multiple of its page size %u",
			    (long long)st.st_size, ps);
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->buf = malloc(WAL_FRAME_HEADER_SIZE + ps)) == NULL) {
		free(a);
		return -ENOMEM;
	}
	a->db_fd = db_fd;
	a->rd_fd = -1;
	a->page_size = ps;
	a->size = (uint32_t)((uint64_t)st.st_size / ps);
	if (grow_map(a, a->size) != 0) {
		walapply_free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

int walapply_new_sized(uint32_t page_size, uint32_t n_pages, struct walapply **out, char *err,
		       size_t errlen)
{
	struct walapply *a;

	if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0)
		return fail(err, errlen, -EINVAL, "invalid page size %u", page_size);
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->buf = malloc(WAL_FRAME_HEADER_SIZE + page_size)) == NULL) {
		free(a);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	a->db_fd = -1;
	a->rd_fd = -1;
	a->page_size = page_size;
	a->size = n_pages;
	if (grow_map(a, a->size) != 0) {
		walapply_free(a);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	*out = a;
	return 0;
}

void walapply_index_resume(struct walapply *a, uint32_t index, uint64_t offset,
			   const struct wal_header *hdr, const uint32_t cksum[2])
{
	walapply_index_begin(a, index);
	a->index_bytes = offset;
	a->hdr = *hdr;
	a->cksum[0] = cksum[0];
	a->cksum[1] = cksum[1];
	a->have_hdr = true;
}

bool walapply_chain(const struct walapply *a, uint32_t *index, uint64_t *bytes, struct wal_header *hdr,
		    uint32_t cksum[2])
{
	if (!a->have_hdr)
		return false;
	*index = a->index;
	*bytes = a->index_bytes;
	*hdr = a->hdr;
	cksum[0] = a->cksum[0];
	cksum[1] = a->cksum[1];
	return true;
}

uint32_t walapply_size(const struct walapply *a)
{
	return a->size;
}

int walapply_changes(const struct walapply *a, uint32_t **pgnos, size_t *n)
{
	uint32_t *v = malloc(((size_t)a->size + 1) * sizeof(*v));
	size_t k = 0;

	if (v == NULL)
		return -ENOMEM;
	for (uint32_t p = 1; p <= a->size; p++)
		if (a->map[p - 1].file != REF_SNAPSHOT)
			v[k++] = p;
	*pgnos = v;
	*n = k;
	return 0;
}

int walapply_read_page(struct walapply *a, uint32_t pgno, uint8_t *buf, char *err, size_t errlen)
{
	const struct page_ref *ref;
	const char *path;
	int fd;
	ssize_t got;

	if (pgno == 0 || pgno > a->size || a->map[pgno - 1].file == REF_SNAPSHOT)
		return fail(err, errlen, -EINVAL, "page %u did not change", pgno);
	ref = &a->map[pgno - 1];
	if (ref->file == REF_ZERO) {
		memset(buf, 0, a->page_size);
		return 0;
	}
	path = a->files[ref->file - REF_FILE0];
	if (a->rd_fd >= 0 && a->rd_file != ref->file) {
		close(a->rd_fd);
		a->rd_fd = -1;
	}
	if (a->rd_fd < 0) {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return fail(err, errlen, -errno, "open %s: %s", path, strerror(errno));
		a->rd_fd = fd;
		a->rd_file = ref->file;
	}
	got = fs_pread_full(a->rd_fd, buf, a->page_size, ref->off);
	if (got != (ssize_t)a->page_size)
		return fail(err, errlen, -EIO, "read %s: short read", path);
	return 0;
}

int walapply_index_begin(struct walapply *a, uint32_t index)
{
	a->in_index = true;
	a->index = index;
	a->index_bytes = 0;
	a->last_name[0] = '\0';
	a->n_frames = 0;
	return 0;
}

static int add_frame(struct walapply *a, const struct frame_rec *f)
{
	if (a->n_frames == a->frames_cap) {
		size_t cap = a->frames_cap ? a->frames_cap * 2 : 1024;
		struct frame_rec *v = realloc(a->frames, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		a->frames = v;
		a->frames_cap = cap;
	}
	a->frames[a->n_frames++] = *f;
	return 0;
}

int walapply_segment(struct walapply *a, const char *path, uint64_t offset, uint64_t limit,
		     const char *name, char *err, size_t errlen)
{
	uint8_t raw[WAL_HEADER_SIZE];
	struct stat st;
	const char *why;
	uint64_t pos = 0, size;
	size_t fsz = WAL_FRAME_HEADER_SIZE + a->page_size;
	uint32_t file_id;
	char **files;
	int fd, rc = 0;

	/* Name both sides: a segment of the wrong length (damaged, or another generation's) shows here. */
	if (offset != a->index_bytes && a->last_name[0] != '\0')
		return fail(err, errlen, -EBADMSG,
			    "%s: expected a segment at offset %llu of wal index %08x (where %s ends), found "
			    "%llu: one of the two is damaged or foreign, or a segment between them is missing",
			    name, (unsigned long long)a->index_bytes, a->index, a->last_name,
			    (unsigned long long)offset);
	if (offset != a->index_bytes)
		return fail(err, errlen, -EBADMSG, "%s: expected a segment at offset %llu of wal index %08x, found %llu",
			    name, (unsigned long long)a->index_bytes, a->index, (unsigned long long)offset);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: open %s: %s", name, path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = fail(err, errlen, -errno, "%s: stat: %s", name, strerror(errno));
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (limit != 0 && limit < size)
		size = limit;
	if (offset == 0) {
		if (size < WAL_HEADER_SIZE || fs_pread_full(fd, raw, sizeof(raw), 0) != sizeof(raw)) {
			rc = fail(err, errlen, -EBADMSG, "%s: too short for a wal header (%llu bytes)", name,
				  (unsigned long long)size);
			goto out;
		}
		if (wal_header_decode(raw, &a->hdr, &why) != 0) {
			rc = fail(err, errlen, -EBADMSG, "%s: %s", name, why);
			goto out;
		}
		if (a->hdr.page_size != a->page_size) {
			rc = fail(err, errlen, -EBADMSG, "%s: wal page size %u differs from the database's %u",
				  name, a->hdr.page_size, a->page_size);
			goto out;
		}
		a->cksum[0] = a->hdr.cksum1;
		a->cksum[1] = a->hdr.cksum2;
		a->have_hdr = true;
		pos = WAL_HEADER_SIZE;
	}
	if ((size - pos) % fsz != 0) {
		rc = fail(err, errlen, -EBADMSG, "%s: %llu bytes is not a whole number of %zu-byte frames (truncated?)",
			  name, (unsigned long long)(size - pos), fsz);
		goto out;
	}
	files = realloc(a->files, (a->n_files + 1) * sizeof(*files));
	if (files == NULL || (files[a->n_files] = strdup(path)) == NULL) {
		if (files)
			a->files = files;
		rc = -ENOMEM;
		goto out;
	}
	a->files = files;
	file_id = REF_FILE0 + (uint32_t)a->n_files++;
	for (uint64_t k = 0; pos < size; pos += fsz, k++) {
		struct frame_rec f;
		if (fs_pread_full(fd, a->buf, fsz, pos) != (ssize_t)fsz) {
			rc = fail(err, errlen, -EIO, "%s: read: %s", name, strerror(errno));
			goto out;
		}
		if (!wal_frame_verify(&a->hdr, a->buf, a->cksum)) {
			/* A segment's first frame that does not continue the one before:
			 * either object may be the bad one (a foreign segment that starts
			 * an index is self-consistent), so name both. */
			if (k == 0 && offset > 0 && a->last_name[0] != '\0')
				rc = fail(err, errlen, -EBADMSG,
					  "%s: frame at offset %llu of wal index %08x: salt or checksum mismatch: "
					  "does not continue %s (one of the two is damaged or foreign)",
					  name, (unsigned long long)(offset + pos), a->index, a->last_name);
			else
				rc = fail(err, errlen, -EBADMSG,
					  "%s: frame at offset %llu of wal index %08x: salt or checksum mismatch (corrupt)",
					  name, (unsigned long long)(offset + pos), a->index);
			goto out;
		}
		f.pgno = wal_get_u32(a->buf);
		f.commit = wal_get_u32(a->buf + 4);
		f.file = file_id;
		f.off = pos + WAL_FRAME_HEADER_SIZE;
		if ((rc = add_frame(a, &f)) != 0)
			goto out;
	}
	a->index_bytes += size;
	snprintf(a->last_name, sizeof(a->last_name), "%s", name);
out:
	close(fd);
	return rc;
}

int walapply_index_end(struct walapply *a, char *err, size_t errlen)
{
	size_t last = a->n_frames;
	uint32_t n_page;

	a->in_index = false;
	/* The last commit frame; frames after it are not committed. */
	while (last > 0 && a->frames[last - 1].commit == 0)
		last--;
	if (last == 0)
		return 0; /* nothing committed: SQLite would not touch the file */
	n_page = a->frames[last - 1].commit;
	if (grow_map(a, n_page) != 0)
		return fail(err, errlen, -ENOMEM, "out of memory");
	/* Growing the file: pages not written by this index read as zeros. */
	for (uint32_t p = a->size + 1; p <= n_page; p++)
		a->map[p - 1].file = REF_ZERO;
	for (size_t i = 0; i < last; i++) {
		const struct frame_rec *f = &a->frames[i];
		if (f->pgno > n_page)
			continue; /* SQLite skips pages beyond the final size */
		a->map[f->pgno - 1].file = f->file;
		a->map[f->pgno - 1].off = f->off;
	}
	a->frames_taken += last;
	a->size = n_page;
	return 0;
}

struct write_rec {
	uint32_t file;
	uint32_t pgno;
	uint64_t off;
};

static int cmp_write(const void *x, const void *y)
{
	const struct write_rec *a = x, *b = y;

	if (a->file != b->file)
		return a->file < b->file ? -1 : 1;
	return a->off < b->off ? -1 : a->off > b->off;
}

int walapply_finish(struct walapply *a, char *err, size_t errlen)
{
	struct write_rec *w;
	size_t n = 0;
	uint8_t *page = a->buf;
	int fd = -1, rc = 0;
	uint32_t open_file = 0;

	w = malloc(((size_t)a->size + 1) * sizeof(*w));
	if (w == NULL)
		return fail(err, errlen, -ENOMEM, "out of memory");
	for (uint32_t p = 1; p <= a->size; p++) {
		if (a->map[p - 1].file == REF_SNAPSHOT)
			continue;
		w[n].file = a->map[p - 1].file;
		w[n].pgno = p;
		w[n].off = a->map[p - 1].off;
		n++;
	}
	/* Read each segment file once, front to back. */
	qsort(w, n, sizeof(*w), cmp_write);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (w[i].file == REF_ZERO) {
			memset(page, 0, a->page_size);
		} else {
			if (w[i].file != open_file) {
				if (fd >= 0)
					close(fd);
				const char *path = a->files[w[i].file - REF_FILE0];
				fd = open(path, O_RDONLY | O_CLOEXEC);
				if (fd < 0) {
					rc = fail(err, errlen, -errno, "open %s: %s", path, strerror(errno));
					break;
				}
				open_file = w[i].file;
			}
			if (fs_pread_full(fd, page, a->page_size, w[i].off) != (ssize_t)a->page_size) {
				rc = fail(err, errlen, -EIO, "read %s: short read", a->files[w[i].file - REF_FILE0]);
				break;
			}
		}
		if (pwrite(a->db_fd, page, a->page_size, (off_t)(w[i].pgno - 1) * a->page_size) !=
		    (ssize_t)a->page_size) {
			rc = fail(err, errlen, -errno, "write database page %u: %s", w[i].pgno, strerror(errno));
			break;
		}
		a->pages_written++;
	}
	if (fd >= 0)
		close(fd);
	free(w);
	if (rc == 0 && ftruncate(a->db_fd, (off_t)a->size * a->page_size) != 0)
		rc = fail(err, errlen, -errno, "truncate database: %s", strerror(errno));
	return rc;
}

uint64_t walapply_frames(const struct walapply *a)
{
	return a->frames_taken;
}

uint64_t walapply_pages_written(const struct walapply *a)
{
	return a->pages_written;
}

void walapply_free(struct walapply *a)
{
	if (a == NULL)
		return;
	if (a->rd_fd >= 0)
		close(a->rd_fd);
	for (size_t i = 0; i < a->n_files; i++)
		free(a->files[i]);
	free(a->files);
	free(a->map);
	free(a->frames);
	free(a->buf);
	free(a);
}
