/*
 * Restore from a replica; see restore.h.
 */
#include "restore.h"

#include "fsutil.h"
#include "log.h"
#include "lz4io.h"
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct segment {
	uint32_t index;
	uint64_t offset;
	enum segment_form form;
	char name[NAME_MAX_LEN];
};

struct plan {
	char generation[GENERATION_LEN + 1];
	int64_t updated_ms;
	bool have_snapshot;
	uint32_t snapshot_index;
	struct segment *segments;
	size_t n_segments;
};

struct restore {
	struct backend *b;
	const struct restore_opts *o;
	char *err;
	size_t errlen;
	char *tmp_db;   /* OUTPUT.tmp */
	char *tmp_wal;  /* OUTPUT.tmp-wal */
	char *tmp_shm;
	char *download; /* OUTPUT.tmp.download */
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

static void step_log(struct restore *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void step_log(struct restore *r, const char *fmt, ...)
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

static int cmp_segment(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

/* Lists a generation's snapshots and segments into p. */
static int scan_generation(struct restore *r, const char *gen, struct plan *p)
{
	struct backend_list l = {0};
	char dir[128];
	int rc;

	memset(p, 0, sizeof(*p));
	snprintf(p->generation, sizeof(p->generation), "%s", gen);
	snprintf(dir, sizeof(dir), "generations/%s/snapshots", gen);
	if ((rc = backend_list_wait(r->b, dir, &l, r->err, r->errlen)) != 0)
		return rc;
	for (size_t i = 0; i < l.n; i++) {
		uint32_t idx;
		if (snapshot_name_parse(l.v[i].name, &idx) != 0)
			continue;
		if (!p->have_snapshot || idx > p->snapshot_index)
			p->snapshot_index = idx;
		p->have_snapshot = true;
		if (l.v[i].mtime_ms > p->updated_ms)
			p->updated_ms = l.v[i].mtime_ms;
	}
	backend_list_free(&l);
	snprintf(dir, sizeof(dir), "generations/%s/wal", gen);
	if ((rc = backend_list_wait(r->b, dir, &l, r->err, r->errlen)) != 0)
		return rc;
	p->segments = calloc(l.n ? l.n : 1, sizeof(*p->segments));
	if (p->segments == NULL) {
		backend_list_free(&l);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct segment *s = &p->segments[p->n_segments];
		if (segment_name_parse(l.v[i].name, &s->index, &s->offset, &s->form) != 0)
			continue;
		snprintf(s->name, sizeof(s->name), "%s", l.v[i].name);
		p->n_segments++;
		if (l.v[i].mtime_ms > p->updated_ms)
			p->updated_ms = l.v[i].mtime_ms;
	}
	backend_list_free(&l);
	qsort(p->segments, p->n_segments, sizeof(*p->segments), cmp_segment);
	return 0;
}

static int choose(struct restore *r, struct plan *best)
{
	struct backend_list l = {0};
	bool found = false;
	int rc;

	if (r->o->generation != NULL) {
		if (!generation_valid(r->o->generation))
			return fail(r, -EINVAL, "invalid generation name \"%s\"", r->o->generation);
		if ((rc = scan_generation(r, r->o->generation, best)) != 0)
			return rc;
		if (!best->have_snapshot && best->n_segments == 0)
			return fail(r, -ENOENT, "generation %s not found in %s", r->o->generation,
				    r->b->describe);
		return 0;
	}
	if ((rc = backend_list_wait(r->b, "generations", &l, r->err, r->errlen)) != 0)
		return rc;
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		struct plan p;
		if (!generation_valid(l.v[i].name))
			continue;
		if ((rc = scan_generation(r, l.v[i].name, &p)) != 0)
			break;
		if (!p.have_snapshot) {
			free(p.segments);
			continue;
		}
		if (!found || p.updated_ms > best->updated_ms) {
			if (found)
				free(best->segments);
			*best = p;
			found = true;
		} else {
			free(p.segments);
		}
	}
	backend_list_free(&l);
	if (rc != 0)
		return rc;
	if (!found)
		return fail(r, -ENOENT, "no snapshots found in %s", r->b->describe);
	return 0;
}

/* Downloads key and decompresses it (or copies it, raw) onto out_fd. */
static int fetch(struct restore *r, const char *key, bool raw, int out_fd, uint64_t *n)
{
	char why[256] = "";
	int in, rc;

	if ((rc = backend_get_wait(r->b, key, r->download, r->err, r->errlen)) != 0)
		return rc;
	in = open(r->download, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(r, -errno, "open %s: %s", r->download, strerror(errno));
	if (raw) {
		struct stat st;
		rc = fstat(in, &st) == 0 ? fs_copy_range(in, 0, (uint64_t)st.st_size, out_fd) : -errno;
		*n = (uint64_t)st.st_size;
		if (rc != 0)
			fail(r, rc, "%s: %s", key, strerror(-rc));
	} else {
		rc = lz4io_decompress(in, out_fd, n, why, sizeof(why));
		if (rc != 0)
			fail(r, rc, "%s: %s", key, why[0] ? why : strerror(-rc));
	}
	close(in);
	unlink(r->download);
	return rc;
}

static int restore_snapshot(struct restore *r, const struct plan *p)
{
	char key[128], name[NAME_MAX_LEN];
	uint64_t n;
	int fd, rc;

	snapshot_name(name, sizeof(name), p->snapshot_index);
	snprintf(key, sizeof(key), "generations/%s/snapshots/%s", p->generation, name);
	step_log(r, "restoring snapshot %s/%08x", p->generation, p->snapshot_index);
	fd = open(r->tmp_db, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(r, -errno, "create %s: %s", r->tmp_db, strerror(errno));
	rc = fetch(r, key, false, fd, &n);
	if (rc == 0 && fsync(fd) != 0)
		rc = fail(r, -errno, "fsync %s: %s", r->tmp_db, strerror(errno));
	close(fd);
	return rc;
}

/* Checkpoints the -wal built for one index into the database. */
static int apply_wal(struct restore *r, uint32_t index)
{
	sqlite3 *db = NULL;
	int log_n = -1, ckpt_n = -1, rc;

	rc = sqlite3_open_v2(r->tmp_db, &db, SQLITE_OPEN_READWRITE, NULL);
	/* A first read makes SQLite open (and recover) the WAL. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "SELECT COUNT(*) FROM sqlite_master", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_n, &ckpt_n);
	if (rc == SQLITE_OK && log_n != ckpt_n) {
		fail(r, -EIO, "apply wal index %08x: only %d of %d frames checkpointed", index, ckpt_n, log_n);
		sqlite3_close(db);
		return -EIO;
	}
	if (rc != SQLITE_OK) {
		fail(r, -EIO, "apply wal index %08x: %s", index, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_close(db);
	unlink(r->tmp_wal);
	unlink(r->tmp_shm);
	return 0;
}

/* Builds each index's WAL from its segments and applies it, in order. */
static int restore_wal(struct restore *r, const struct plan *p)
{
	size_t i = 0;
	uint32_t expect = p->snapshot_index;

	while (i < p->n_segments && p->segments[i].index < p->snapshot_index)
		i++;
	while (i < p->n_segments) {
		uint32_t index = p->segments[i].index;
		uint64_t size = 0;
		int fd, rc = 0;

		if (index != expect)
			return fail(r, -EBADMSG, "generation %s: wal index %08x is missing (found %08x next)",
				    p->generation, expect, index);
		fd = open(r->tmp_wal, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return fail(r, -errno, "create %s: %s", r->tmp_wal, strerror(errno));
		for (; rc == 0 && i < p->n_segments && p->segments[i].index == index; i++) {
			const struct segment *s = &p->segments[i];
			char key[160];
			uint64_t n = 0;
			snprintf(key, sizeof(key), "generations/%s/wal/%s", p->generation, s->name);
			if (s->offset != size)
				rc = fail(r, -EBADMSG, "%s: expected a segment at offset %llu of wal index %08x, found %llu",
					  key, (unsigned long long)size, index, (unsigned long long)s->offset);
			else
				rc = fetch(r, key, s->form == SEGMENT_WHOLE_RAW, fd, &n);
			size += n;
		}
		if (rc == 0 && fsync(fd) != 0)
			rc = fail(r, -errno, "fsync %s: %s", r->tmp_wal, strerror(errno));
		close(fd);
		if (rc != 0)
			return rc;
		step_log(r, "applying wal index %08x (%llu bytes)", index, (unsigned long long)size);
		if ((rc = apply_wal(r, index)) != 0)
			return rc;
		expect = index + 1;
	}
	return 0;
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
	return 0;
}

static int install(struct restore *r)
{
	int fd = open(r->tmp_db, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0 || fsync(fd) != 0)
		rc = fail(r, -errno, "fsync %s: %s", r->tmp_db, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		return rc;
	rc = renameat2(AT_FDCWD, r->tmp_db, AT_FDCWD, r->o->output, RENAME_NOREPLACE);
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
	char *files[] = {r->tmp_db, r->tmp_wal, r->tmp_shm, r->download};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i] != NULL)
			unlink(files[i]);
		free(files[i]);
	}
}

int restore_run(struct backend *b, const struct restore_opts *opts, char *err, size_t errlen)
{
	struct restore r = {b, opts, err, errlen, NULL, NULL, NULL, NULL};
	struct plan p = {0};
	int rc;

	if (access(opts->output, F_OK) == 0)
		return snprintf(err, errlen, "output file already exists: %s", opts->output), -EEXIST;
	r.tmp_db = str_printf("%s.tmp", opts->output);
	r.tmp_wal = str_printf("%s.tmp-wal", opts->output);
	r.tmp_shm = str_printf("%s.tmp-shm", opts->output);
	r.download = str_printf("%s.tmp.download", opts->output);
	if (!r.tmp_db || !r.tmp_wal || !r.tmp_shm || !r.download) {
		cleanup(&r);
		return -ENOMEM;
	}
	/* Leftovers of an interrupted restore are ours to replace. */
	unlink(r.tmp_db);
	unlink(r.tmp_wal);
	unlink(r.tmp_shm);
	if ((rc = choose(&r, &p)) == 0) {
		step_log(&r, "restoring generation %s from %s", p.generation, b->describe);
		if (!p.have_snapshot)
			rc = fail(&r, -ENOENT, "generation %s has no snapshot", p.generation);
	}
	if (rc == 0)
		rc = restore_snapshot(&r, &p);
	if (rc == 0)
		rc = restore_wal(&r, &p);
	if (rc == 0)
		rc = integrity_check(&r);
	if (rc == 0)
		rc = install(&r);
	if (rc == 0)
		step_log(&r, "restore complete");
	free(p.segments);
	cleanup(&r);
	return rc;
}
