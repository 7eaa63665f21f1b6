/*
 * Changing a database under its readers; see livedb.h for the protocol
 * and why readers never see a partial change.
 *
 * The database is opened through SQLite's default VFS (xOpen), not with
 * open(2): POSIX locks belong to a process and an inode, and closing any
 * descriptor of the file drops them all. The unix VFS shares one lock
 * state among every descriptor this process holds on the file (ours and
 * the connection livedb_open() uses to roll back) and never closes one
 * while a lock is held, so our locks are exactly the pager's.
 *
 * The journal is SQLite's rollback journal (sqlite.org/fileformat.html,
 * "The Rollback Journal"): a header of one sector (4096 bytes, what the
 * unix VFS reports) holding the magic d9d505f920a163d7, the record count,
 * the checksum nonce, the original size in pages, the sector size and the
 * page size (big-endian u32s); then per page its number, its original
 * bytes and a checksum (the nonce plus every 200th byte from the end).
 */
#include "restore/livedb.h"

#include "core/crc64.h"
#include "core/wal.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_SECTOR 4096u

static const uint8_t journal_magic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};

struct livedb {
	char *path;
	char *journal;
	sqlite3_filename name;   /* what xOpen was given; lives as long as f */
	sqlite3_file *f;         /* the VFS's, szOsFile bytes */
	bool open;
	int lock;                /* SQLITE_LOCK_* we hold */
	bool journal_hot;        /* pages may have been written since begin */
	uint32_t page_size;
	uint32_t pages;
	uint8_t *buf;            /* one page */
	uint8_t *rec;            /* one journal record */
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

/* Lets SQLite roll back a hot journal: any read does it. */
static int rollback_hot(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 10000);
		rc = sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		fail(err, errlen, -EIO, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -EIO;
}

static int read_geometry(struct livedb *d, char *err, size_t errlen)
{
	uint8_t hdr[100];
	sqlite3_int64 size;
	uint32_t ps;

	if (d->f->pMethods->xFileSize(d->f, &size) != SQLITE_OK)
		return fail(err, errlen, -EIO, "%s: cannot read its size", d->path);
	if (size < 512 || d->f->pMethods->xRead(d->f, hdr, sizeof(hdr), 0) != SQLITE_OK ||
	    memcmp(hdr, "SQLite format 3", 16) != 0)
		return fail(err, errlen, -EBADMSG, "%s is not a SQLite database", d->path);
	ps = (uint32_t)hdr[16] << 8 | hdr[17];
	if (ps == 1)
		ps = 65536;
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0 || size % ps != 0)
		return fail(err, errlen, -EBADMSG, "%s: invalid page size %u for %lld bytes", d->path, ps,
			    (long long)size);
	if (d->page_size != 0 && ps != d->page_size)
		return fail(err, errlen, -EBADMSG, "%s: page size changed from %u to %u", d->path,
			    d->page_size, ps);
	d->page_size = ps;
	d->pages = (uint32_t)(size / ps);
	return 0;
}

int livedb_open(const char *path, struct livedb **out, char *err, size_t errlen)
{
	sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
	struct livedb *d;
	int flags = 0, rc;

	if (vfs == NULL)
		return fail(err, errlen, -ENOSYS, "sqlite has no default vfs");
	if ((rc = rollback_hot(path, err, errlen)) != 0)
		return rc;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return fail(err, errlen, -ENOMEM, "out of memory");
	d->path = strdup(path);
	d->journal = str_printf("%s-journal", path);
	d->name = sqlite3_create_filename(path, "", "", 0, NULL);
	d->f = calloc(1, (size_t)vfs->szOsFile);
	if (d->path == NULL || d->journal == NULL || d->name == NULL || d->f == NULL) {
		livedb_close(d);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	rc = vfs->xOpen(vfs, d->name, d->f, SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE, &flags);
	if (rc != SQLITE_OK) {
		livedb_close(d);
		return fail(err, errlen, -EIO, "open %s: %s", path, sqlite3_errstr(rc));
	}
	d->open = true;
	if ((rc = read_geometry(d, err, errlen)) != 0) {
		livedb_close(d);
		return rc;
	}
	d->buf = malloc(d->page_size);
	d->rec = malloc((size_t)d->page_size + 8);
	if (d->buf == NULL || d->rec == NULL) {
		livedb_close(d);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}
	*out = d;
	return 0;
}

void livedb_close(struct livedb *d)
{
	if (d == NULL)
		return;
	if (d->open) {
		if (d->lock != SQLITE_LOCK_NONE)
			livedb_abort(d);
		d->f->pMethods->xClose(d->f);
	}
	sqlite3_free_filename(d->name);
	free(d->f);
	free(d->buf);
	free(d->rec);
	free(d->journal);
	free(d->path);
	free(d);
}

uint32_t livedb_page_size(const struct livedb *d)
{
	return d->page_size;
}

uint32_t livedb_pages(const struct livedb *d)
{
	return d->pages;
}

void livedb_patch_header(uint8_t *p, uint32_t counter, uint32_t pages)
{
	p[18] = 1; /* write version: legacy (rollback journal) */
	p[19] = 1; /* read version */
	wal_put_u32(p + 24, counter);
	wal_put_u32(p + 28, pages);
	wal_put_u32(p + 92, counter);
	wal_put_u32(p + 96, (uint32_t)SQLITE_VERSION_NUMBER);
}

int livedb_state(struct livedb *d, uint32_t *counter, uint64_t *page1_crc, char *err, size_t errlen)
{
	int rc;

	if ((rc = read_geometry(d, err, errlen)) != 0)
		return rc;
	if (d->f->pMethods->xRead(d->f, d->buf, (int)d->page_size, 0) != SQLITE_OK)
		return fail(err, errlen, -EIO, "%s: cannot read page 1", d->path);
	*counter = wal_get_u32(d->buf + 24);
	*page1_crc = crc64_update(0, d->buf, d->page_size);
	return 0;
}

int livedb_read_page(struct livedb *d, uint32_t pgno, uint8_t *buf, char *err, size_t errlen)
{
	if (pgno == 0 || pgno > d->pages ||
	    d->f->pMethods->xRead(d->f, buf, (int)d->page_size, (sqlite3_int64)(pgno - 1) * d->page_size) !=
		    SQLITE_OK)
		return fail(err, errlen, -EIO, "%s: cannot read page %u", d->path, pgno);
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* SHARED, RESERVED, EXCLUSIVE: the pager's way up, retried while busy. */
static int lock_exclusive(struct livedb *d, int timeout_ms, char *err, size_t errlen)
{
	static const int steps[] = {SQLITE_LOCK_SHARED, SQLITE_LOCK_RESERVED, SQLITE_LOCK_EXCLUSIVE};
	int waited = 0, delay = 1;

	for (size_t i = 0; i < 3;) {
		int rc = d->f->pMethods->xLock(d->f, steps[i]);
		if (rc == SQLITE_OK) {
			d->lock = steps[i++];
			continue;
		}
		if (rc != SQLITE_BUSY || waited >= timeout_ms) {
			d->f->pMethods->xUnlock(d->f, SQLITE_LOCK_NONE);
			d->lock = SQLITE_LOCK_NONE;
			if (rc == SQLITE_BUSY)
				return fail(err, errlen, -EBUSY,
					    "%s: readers held it locked for more than %d ms", d->path, timeout_ms);
			return fail(err, errlen, -EIO, "%s: lock: %s", d->path, sqlite3_errstr(rc));
		}
		sleep_ms(delay);
		waited += delay;
		if (delay < 10)
			delay++;
	}
	return 0;
}

static uint32_t journal_cksum(uint32_t nonce, const uint8_t *page, uint32_t ps)
{
	uint32_t c = nonce;

	for (int i = (int)ps - 200; i > 0; i -= 200)
		c += page[i];
	return c;
}

/* The pages whose originals go to the journal: changed or cut off, within the old size. */
static size_t journal_count(const struct livedb *d, const struct livedb_txn *t)
{
	size_t n = 0;
	bool has1 = false;

	for (size_t i = 0; i < t->n; i++) {
		if (t->pgnos[i] <= d->pages && t->pgnos[i] <= t->new_size)
			n++;
		has1 = has1 || t->pgnos[i] == 1;
	}
	if (!has1)
		n++;
	if (t->new_size < d->pages)
		n += d->pages - t->new_size;
	return n;
}

static int journal_page(struct livedb *d, int fd, uint32_t pgno, uint32_t nonce, char *err, size_t errlen)
{
	if (d->f->pMethods->xRead(d->f, d->rec + 4, (int)d->page_size,
				  (sqlite3_int64)(pgno - 1) * d->page_size) != SQLITE_OK)
		return fail(err, errlen, -EIO, "%s: read page %u", d->path, pgno);
	wal_put_u32(d->rec, pgno);
	wal_put_u32(d->rec + 4 + d->page_size, journal_cksum(nonce, d->rec + 4, d->page_size));
	if (fs_write_full(fd, d->rec, (size_t)d->page_size + 8) != 0)
		return fail(err, errlen, -errno, "write %s: %s", d->journal, strerror(errno));
	return 0;
}

static int write_journal(struct livedb *d, const struct livedb_txn *t, char *err, size_t errlen)
{
	uint8_t hdr[JOURNAL_SECTOR];
	uint32_t nonce;
	bool has1 = false;
	int fd, rc = 0;

	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = (uint32_t)time(NULL);
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, journal_magic, 8);
	wal_put_u32(hdr + 8, (uint32_t)journal_count(d, t));
	wal_put_u32(hdr + 12, nonce);
	wal_put_u32(hdr + 16, d->pages);
	wal_put_u32(hdr + 20, JOURNAL_SECTOR);
	wal_put_u32(hdr + 24, d->page_size);
	fd = open(d->journal, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(err, errlen, -errno, "create %s: %s", d->journal, strerror(errno));
	if (fs_write_full(fd, hdr, sizeof(hdr)) != 0)
		rc = fail(err, errlen, -errno, "write %s: %s", d->journal, strerror(errno));
	for (size_t i = 0; i < t->n && rc == 0; i++) {
		has1 = has1 || t->pgnos[i] == 1;
		if (t->pgnos[i] <= d->pages && t->pgnos[i] <= t->new_size)
			rc = journal_page(d, fd, t->pgnos[i], nonce, err, errlen);
	}
	if (rc == 0 && !has1)
		rc = journal_page(d, fd, 1, nonce, err, errlen);
	for (uint32_t p = t->new_size + 1; p <= d->pages && rc == 0; p++)
		rc = journal_page(d, fd, p, nonce, err, errlen);
	if (rc == 0 && fsync(fd) != 0)
		rc = fail(err, errlen, -errno, "fsync %s: %s", d->journal, strerror(errno));
	close(fd);
	if (rc == 0 && (rc = fs_fsync_parent(d->journal)) != 0)
		fail(err, errlen, rc, "fsync the directory of %s: %s", d->journal, strerror(-rc));
	if (rc != 0)
		unlink(d->journal);
	return rc;
}

/* The new page 1: the transaction's, or the current one, with our header fields. */
static int new_page1(struct livedb *d, struct livedb_txn *t, char *err, size_t errlen)
{
	uint32_t counter;
	int rc;

	if (d->f->pMethods->xRead(d->f, d->buf, (int)d->page_size, 0) != SQLITE_OK)
		return fail(err, errlen, -EIO, "%s: read page 1", d->path);
	counter = wal_get_u32(d->buf + 24) + 1;
	if (t->n > 0 && t->pgnos[0] == 1 && (rc = t->read(t->arg, 1, d->buf, err, errlen)) != 0)
		return rc;
	livedb_patch_header(d->buf, counter, t->new_size);
	t->counter = counter;
	t->page1_crc = crc64_update(0, d->buf, d->page_size);
	return 0;
}

int livedb_begin(struct livedb *d, struct livedb_txn *t, int lock_timeout_ms, char *err, size_t errlen)
{
	int rc;

	if (t->new_size == 0)
		return fail(err, errlen, -EINVAL, "%s: a database cannot shrink to no page", d->path);
	if ((rc = lock_exclusive(d, lock_timeout_ms, err, errlen)) != 0)
		return rc;
	if ((rc = read_geometry(d, err, errlen)) == 0 && (rc = new_page1(d, t, err, errlen)) == 0)
		rc = write_journal(d, t, err, errlen);
	if (rc != 0)
		livedb_abort(d);
	return rc;
}

static int write_page(struct livedb *d, uint32_t pgno, const uint8_t *buf, char *err, size_t errlen)
{
	int rc = d->f->pMethods->xWrite(d->f, buf, (int)d->page_size,
					(sqlite3_int64)(pgno - 1) * d->page_size);

	if (rc != SQLITE_OK)
		return fail(err, errlen, -EIO, "%s: write page %u: %s", d->path, pgno, sqlite3_errstr(rc));
	return 0;
}

/*
 * For the tests: LITESTREAM_TEST_FOLLOW_PAGE_DELAY_US=N sleeps after each
 * page written, widening the window in which a reader would see a partial
 * change if the locks did not keep it out.
 */
static void test_page_delay(void)
{
	static int delay_us = -1;

	if (delay_us < 0) {
		const char *v = getenv("LITESTREAM_TEST_FOLLOW_PAGE_DELAY_US");
		delay_us = v ? atoi(v) : 0;
	}
	if (delay_us > 0) {
		struct timespec ts = {0, (long)delay_us * 1000L};
		nanosleep(&ts, NULL);
	}
}

/*
 * For the tests: LITESTREAM_TEST_FOLLOW_CRASH=N kills the process during
 * its Nth change, the pages written and the journal not yet deleted (the
 * window a crash must be recovered from).
 */
static void test_crash_point(void)
{
	static int changes;
	const char *v = getenv("LITESTREAM_TEST_FOLLOW_CRASH");

	if (v != NULL && ++changes == atoi(v))
		raise(SIGKILL);
}

int livedb_commit(struct livedb *d, struct livedb_txn *t, char *err, size_t errlen)
{
	uint8_t *page = d->rec;
	int rc = 0;

	d->journal_hot = true;
	/* Page 1 (in d->buf since begin) first, then the others. */
	rc = write_page(d, 1, d->buf, err, errlen);
	for (size_t i = 0; i < t->n && rc == 0; i++) {
		if (t->pgnos[i] == 1)
			continue;
		if ((rc = t->read(t->arg, t->pgnos[i], page, err, errlen)) == 0)
			rc = write_page(d, t->pgnos[i], page, err, errlen);
		test_page_delay();
	}
	if (rc == 0 && t->new_size < d->pages &&
	    d->f->pMethods->xTruncate(d->f, (sqlite3_int64)t->new_size * d->page_size) != SQLITE_OK)
		rc = fail(err, errlen, -EIO, "%s: truncate to %u pages", d->path, t->new_size);
	if (rc == 0 && d->f->pMethods->xSync(d->f, SQLITE_SYNC_NORMAL) != SQLITE_OK)
		rc = fail(err, errlen, -EIO, "%s: fsync", d->path);
	if (rc == 0)
		test_crash_point();
	if (rc == 0 && unlink(d->journal) != 0)
		rc = fail(err, errlen, -errno, "delete %s: %s", d->journal, strerror(errno));
	if (rc != 0) {
		livedb_abort(d);
		return rc;
	}
	d->journal_hot = false;
	fs_fsync_parent(d->journal);
	d->f->pMethods->xUnlock(d->f, SQLITE_LOCK_NONE);
	d->lock = SQLITE_LOCK_NONE;
	d->pages = t->new_size;
	return 0;
}

void livedb_abort(struct livedb *d)
{
	char err[256];

	if (d->lock != SQLITE_LOCK_NONE)
		d->f->pMethods->xUnlock(d->f, SQLITE_LOCK_NONE);
	d->lock = SQLITE_LOCK_NONE;
	if (!d->journal_hot) {
		unlink(d->journal);
		return;
	}
	d->journal_hot = false;
	/* SQLite plays the journal back; until then it stays hot for any reader. */
	rollback_hot(d->path, err, sizeof(err));
}

int livedb_prepare_file(const char *path, uint64_t *page1_crc, char *err, size_t errlen)
{
	uint8_t hdr[100], *page = NULL;
	int64_t size;
	uint32_t ps;
	int fd, rc = 0;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "open %s: %s", path, strerror(errno));
	if (fs_pread_full(fd, hdr, sizeof(hdr), 0) != sizeof(hdr)) {
		close(fd);
		return fail(err, errlen, -EBADMSG, "%s is not a SQLite database", path);
	}
	ps = (uint32_t)hdr[16] << 8 | hdr[17];
	if (ps == 1)
		ps = 65536;
	size = fs_file_size(path);
	if (size <= 0 || ps < 512 || size % ps != 0 || (page = malloc(ps)) == NULL) {
		close(fd);
		return fail(err, errlen, -EBADMSG, "%s: unexpected size %lld", path, (long long)size);
	}
	if (fs_pread_full(fd, page, ps, 0) != (ssize_t)ps)
		rc = fail(err, errlen, -EIO, "read %s: %s", path, strerror(errno));
	if (rc == 0) {
		livedb_patch_header(page, 1, (uint32_t)(size / ps));
		*page1_crc = crc64_update(0, page, ps);
		if (pwrite(fd, page, ps, 0) != (ssize_t)ps || fsync(fd) != 0)
			rc = fail(err, errlen, -errno, "write %s: %s", path, strerror(errno));
	}
	free(page);
	close(fd);
	return rc;
}
