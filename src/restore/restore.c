/*
 * Restore from replicas; see restore.h.
 *
 * Three phases: choose (restore_choose.c: list every candidate replica,
 * pick the generation, snapshot and segments), fetch (restore_fetch.c:
 * download and decompress every object into a scratch directory beside
 * the output, up to `parallelism` at a time, applying each as it comes),
 * and build (this file: write the pages, integrity_check beside the
 * fsync, and the rename into place). This file also runs the whole and
 * owns the cleanup.
 */
#include "restore/restore_internal.h"

#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int restore_fail(struct restore *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

void restore_say(struct restore *r, const char *fmt, ...)
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

/* Every object is applied: write the pages. */
static int finish(struct restore *r)
{
	char err[512];
	int rc;

	if (r->applied != r->n_items || r->a == NULL)
		return restore_fail(r, -EIO, "restore: %zu of %zu objects applied", r->applied, r->n_items);
	if ((rc = walapply_finish(r->a, err, sizeof(err))) != 0)
		return restore_fail(r, rc, "%s", err);
	restore_say(r, "applied %llu frames as %llu page writes",
		    (unsigned long long)walapply_frames(r->a),
		    (unsigned long long)walapply_pages_written(r->a));
	return 0;
}

/* Where the restore ended, for opts->result. */
static void note_result(struct restore *r, const struct choice *c)
{
	struct restore_result *res = r->o->result;
	const struct item *last = &r->items[r->n_items - 1];
	uint64_t bytes;
	uint32_t index;

	if (res == NULL)
		return;
	memset(res, 0, sizeof(*res));
	snprintf(res->generation, sizeof(res->generation), "%s", c->gen->name);
	res->index = last->index;
	res->applied_ms = c->snap->created_ms;
	if (c->last > c->first)
		res->applied_ms = c->gen->segments[c->last - 1].created_ms;
	if (!last->snapshot && walapply_chain(r->a, &index, &bytes, &res->hdr, res->cksum)) {
		res->have_chain = true;
		res->index = index;
		res->offset = bytes;
	}
}

int restore_build_local(const struct restore_object *objs, size_t n, const struct age_keys *age,
			const char *out_path, const char *scratch, char *err, size_t errlen)
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
	rc = restore_decompress_file(objs[0].key, objs[0].local, false, NULL, age, out_path, &size, err,
				     errlen);
	for (size_t i = 1; i < n && rc == 0; i++) {
		paths[i] = str_printf("%s/%zu.wal", scratch, i);
		if (paths[i] == NULL) {
			rc = -ENOMEM;
			break;
		}
		rc = restore_decompress_file(objs[i].key, objs[i].local, objs[i].raw, NULL, age, paths[i],
					     &size, err, errlen);
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

/* The fsync of the restored file, run beside the integrity check. */
struct flush {
	pthread_t thread;
	int fd;
	int rc; /* 0 or errno */
};

static void *flush_main(void *arg)
{
	struct flush *f = arg;

	f->rc = fsync(f->fd) == 0 ? 0 : errno;
	return NULL;
}

static int integrity_check(struct restore *r)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char result[256] = "";
	int rc;

	rc = sqlite3_open_v2(r->tmp_db, &db, SQLITE_OPEN_READONLY, NULL);
	/* Mapped, the check reads the pages the restore just wrote straight
	 * from the page cache, without one pread per page: about twice as
	 * fast on a large database. SQLite caps the size at its build's limit. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA mmap_size = 1099511627776", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		snprintf(result, sizeof(result), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (strcmp(result, "ok") != 0)
		return restore_fail(r, -EBADMSG, "restored database failed integrity check: %s",
				    result[0] ? result : "cannot read it");
	restore_say(r, "integrity check ok");
	return 0;
}

/*
 * Makes the file durable and checks it, the two at once: the check reads
 * what is in the page cache, which is what the fsync writes, so neither
 * has to wait for the other; the file is installed only once both ended
 * well. Without a thread (it could not start) they run one after the other.
 */
static int check_and_flush(struct restore *r)
{
	struct flush f = { .fd = r->db_fd };
	bool threaded = pthread_create(&f.thread, NULL, flush_main, &f) == 0;
	int rc;

	if (!threaded)
		flush_main(&f);
	rc = integrity_check(r);
	if (threaded)
		pthread_join(f.thread, NULL);
	if (rc == 0 && f.rc != 0)
		rc = restore_fail(r, -f.rc, "fsync %s: %s", r->tmp_db, strerror(f.rc));
	return rc;
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
			return restore_fail(r, -EEXIST, "output file already exists: %s", r->o->output);
		return restore_fail(r, -errno, "rename %s to %s: %s", r->tmp_db, r->o->output,
				    strerror(errno));
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
		return restore_fail(&r, -EINVAL, "no replica to restore from");
	if (opts->index >= 0 && opts->generation == NULL)
		return restore_fail(&r, -EINVAL, "must specify a generation when restoring to an index");
	if (opts->index >= 0 && opts->timestamp_ms >= 0)
		return restore_fail(&r, -EINVAL, "cannot specify both an index and a timestamp");
	if (access(opts->output, F_OK) == 0)
		return restore_fail(&r, -EEXIST, "output file already exists: %s", opts->output);
	cats = calloc(n_sources, sizeof(*cats));
	if (cats == NULL)
		return -ENOMEM;
	rc = restore_choose(&r, sources, n_sources, cats, &c);
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
			restore_fail(&r, rc, "mkdir %s: %s", r.scratch, strerror(-rc));
	}
	if (rc == 0) {
		restore_say(&r, "restoring generation %s from replica %s (%s): snapshot %08x, %zu segments",
			    c.gen->name, sources[c.source].name, r.b->describe, c.snap->index, c.last - c.first);
		rc = restore_plan_items(&r, &c);
	}
	if (rc == 0)
		rc = restore_fetch_all(&r);
	if (rc == 0)
		rc = finish(&r);
	if (rc == 0)
		note_result(&r, &c);
	if (rc == 0)
		rc = check_and_flush(&r);
	if (rc == 0)
		rc = install(&r);
	if (rc == 0)
		restore_say(&r, "restore complete");
	cleanup(&r);
	for (size_t i = 0; i < n_sources; i++)
		catalog_free(&cats[i]);
	free(cats);
	return rc;
}
