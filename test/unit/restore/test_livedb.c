/*
 * livedb (changes under readers) and the follower's position file, on
 * real SQLite files: a change is readable by SQLite afterwards, its
 * journal is one SQLite plays back after a crash, readers keep it out
 * while they read, and positions read back as written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "restore/follower_internal.h"
#include "restore/livedb.h"
#include "../lib/sqlite_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sqlite3 *open_rollback(const char *path)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	th_exec(db, "PRAGMA journal_mode=DELETE");
	return db;
}

static long long count_rows(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static char *integrity(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *out = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/* The new file's pages, read straight from it. */
struct src {
	int fd;
	uint32_t ps;
};

static int read_src(void *arg, uint32_t pgno, uint8_t *buf, char *err, size_t errlen)
{
	struct src *s = arg;

	(void)err;
	(void)errlen;
	return pread(s->fd, buf, s->ps, (off_t)(pgno - 1) * s->ps) == (ssize_t)s->ps ? 0 : -EIO;
}

struct fixture {
	char *dir, *live, *next;
	uint32_t ps, next_pages;
	uint32_t *pgnos;
	size_t n;
	struct src src;
};

/* live: 200 rows; next: live with 100 deleted and vacuumed (smaller), plus 5 new. */
static void make_pair(struct fixture *fx)
{
	sqlite3 *db;
	uint8_t *buf;
	size_t n;

	fx->dir = th_tmpdir();
	fx->live = th_path(fx->dir, "live.db");
	fx->next = th_path(fx->dir, "next.db");
	db = open_rollback(fx->live);
	th_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
	th_exec(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200) "
		    "INSERT INTO t SELECT i, randomblob(2000) FROM c");
	sqlite3_close(db);
	buf = th_read_file(fx->live, &n);
	th_write_file(fx->next, buf, n);
	free(buf);
	db = open_rollback(fx->next);
	th_exec(db, "DELETE FROM t WHERE id <= 100; VACUUM; INSERT INTO t (v) VALUES (1), (2), (3), (4), (5)");
	sqlite3_close(db);
	fx->ps = 4096;
	buf = th_read_file(fx->next, &n);
	fx->next_pages = (uint32_t)(n / fx->ps);
	free(buf);
	fx->pgnos = calloc(fx->next_pages, sizeof(*fx->pgnos));
	for (uint32_t p = 1; p <= fx->next_pages; p++)
		fx->pgnos[fx->n++] = p;
	fx->src.fd = open(fx->next, O_RDONLY);
	fx->src.ps = fx->ps;
}

static void free_pair(struct fixture *fx)
{
	close(fx->src.fd);
	free(fx->pgnos);
	th_rmrf(fx->dir);
	free(fx->live);
	free(fx->next);
	free(fx->dir);
}

static void txn_of(struct fixture *fx, struct livedb_txn *t)
{
	memset(t, 0, sizeof(*t));
	t->new_size = fx->next_pages;
	t->pgnos = fx->pgnos;
	t->n = fx->n;
	t->read = read_src;
	t->arg = &fx->src;
}

static void test_change_is_readable_and_cut(void **state)
{
	struct fixture fx = {0};
	struct livedb *d;
	struct livedb_txn t;
	char err[256], *ok;
	uint32_t counter;
	uint64_t crc;

	(void)state;
	make_pair(&fx);
	assert_int_equal(livedb_open(fx.live, &d, err, sizeof(err)), 0);
	assert_true(livedb_pages(d) > fx.next_pages);
	txn_of(&fx, &t);
	assert_int_equal(livedb_begin(d, &t, 1000, err, sizeof(err)), 0);
	assert_int_equal(access(strcat(strcpy(err, fx.live), "-journal"), F_OK), 0);
	assert_int_equal(livedb_commit(d, &t, err, sizeof(err)), 0);
	assert_int_equal(livedb_pages(d), fx.next_pages);
	assert_int_equal(livedb_state(d, &counter, &crc, err, sizeof(err)), 0);
	assert_int_equal(counter, t.counter);
	assert_true(crc == t.page1_crc);
	livedb_close(d);
	assert_int_equal(count_rows(fx.live), 105);
	ok = integrity(fx.live);
	assert_string_equal(ok, "ok");
	free(ok);
	free_pair(&fx);
}

/* The journal written at begin is one SQLite rolls back: put it back after the commit. */
static void test_journal_rolls_back(void **state)
{
	struct fixture fx = {0};
	struct livedb *d;
	struct livedb_txn t;
	char err[256], *journal, *saved, *ok;
	uint8_t *buf;
	size_t n;

	(void)state;
	make_pair(&fx);
	journal = th_path(fx.dir, "live.db-journal");
	saved = th_path(fx.dir, "saved-journal");
	assert_int_equal(livedb_open(fx.live, &d, err, sizeof(err)), 0);
	txn_of(&fx, &t);
	assert_int_equal(livedb_begin(d, &t, 1000, err, sizeof(err)), 0);
	buf = th_read_file(journal, &n);
	th_write_file(saved, buf, n);
	free(buf);
	assert_int_equal(livedb_commit(d, &t, err, sizeof(err)), 0);
	livedb_close(d);
	assert_int_equal(count_rows(fx.live), 105);
	assert_int_equal(rename(saved, journal), 0);
	/* A crash after the pages: the next read-write open plays the journal back. */
	assert_int_equal(livedb_open(fx.live, &d, err, sizeof(err)), 0);
	livedb_close(d);
	assert_int_equal(access(journal, F_OK), -1);
	assert_int_equal(count_rows(fx.live), 200);
	ok = integrity(fx.live);
	assert_string_equal(ok, "ok");
	free(ok);
	free(journal);
	free(saved);
	free_pair(&fx);
}

static void test_reader_keeps_change_out(void **state)
{
	struct fixture fx = {0};
	struct livedb *d;
	struct livedb_txn t;
	sqlite3 *reader;
	sqlite3_stmt *st;
	char err[256];

	(void)state;
	make_pair(&fx);
	assert_int_equal(livedb_open(fx.live, &d, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_open_v2(fx.live, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	th_exec(reader, "BEGIN");
	assert_int_equal(sqlite3_prepare_v2(reader, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	txn_of(&fx, &t);
	assert_int_equal(livedb_begin(d, &t, 50, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "readers held it locked"));
	sqlite3_finalize(st);
	th_exec(reader, "COMMIT");
	assert_int_equal(livedb_begin(d, &t, 50, err, sizeof(err)), 0);
	assert_int_equal(livedb_commit(d, &t, err, sizeof(err)), 0);
	/* The same connection sees the change: the change counter moved. */
	assert_int_equal(sqlite3_prepare_v2(reader, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), 105);
	sqlite3_finalize(st);
	sqlite3_close(reader);
	livedb_close(d);
	free_pair(&fx);
}

static void test_position_file(void **state)
{
	char *dir = th_tmpdir(), *path = th_path(dir, "copy.db.follow"), err[256];
	struct follow_pos a, b, got[2];
	size_t n;

	(void)state;
	memset(&a, 0, sizeof(a));
	snprintf(a.generation, sizeof(a.generation), "0123456789abcdef");
	a.index = 7;
	a.offset = 4152;
	a.counter = 3;
	a.page1_crc = 0xfeedfacecafebeefULL;
	a.applied_ms = 1796611119083LL;
	b = a;
	b.counter = 4;
	b.have_chain = true;
	b.hdr.magic = WAL_MAGIC_LE;
	b.hdr.version = WAL_VERSION;
	b.hdr.page_size = 4096;
	b.hdr.salt1 = 11;
	b.hdr.salt2 = 22;
	{
		uint8_t raw[WAL_HEADER_SIZE];
		wal_header_encode(&b.hdr, raw);
	}
	b.cksum[0] = 0xdeadbeef;
	b.cksum[1] = 0x01020304;
	assert_int_equal(follow_pos_save(path, "file:///r", &a, &b, err, sizeof(err)), 0);
	assert_int_equal(follow_pos_load(path, "file:///r", got, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(got[0].counter, 3);
	assert_false(got[0].have_chain);
	assert_true(got[0].page1_crc == a.page1_crc && got[0].applied_ms == a.applied_ms);
	assert_int_equal(got[1].offset, 4152);
	assert_true(got[1].have_chain);
	assert_int_equal(got[1].hdr.salt2, 22);
	assert_int_equal(got[1].cksum[0], 0xdeadbeef);
	assert_string_equal(got[1].generation, "0123456789abcdef");
	/* Another replica's position is refused, and so is a damaged file. */
	assert_int_equal(follow_pos_load(path, "file:///other", got, &n, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "follows file:///r"));
	th_write_file(path, (const uint8_t *)"litestream-follow 1\nentry 1 x\n", 30);
	assert_int_equal(follow_pos_load(path, "file:///r", got, &n, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "line 2"));
	unlink(path);
	assert_int_equal(follow_pos_load(path, "file:///r", got, &n, err, sizeof(err)), -ENOENT);
	th_rmrf(dir);
	free(path);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_change_is_readable_and_cut),
		cmocka_unit_test(test_journal_rolls_back),
		cmocka_unit_test(test_reader_keeps_change_out),
		cmocka_unit_test(test_position_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
