/*
 * WAL parsing against WAL files written by the real SQLite library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lib/sqlite_helpers.h"
#include "core/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fixture {
	char *dir;
	char *db_path;
	char *wal_path;
	sqlite3 *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = th_tmpdir();
	f->db_path = th_path(f->dir, "test.db");
	f->wal_path = th_path(f->dir, "test.db-wal");
	f->db = th_open(f->db_path, 4096);
	th_exec(f->db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sqlite3_close(f->db);
	th_rmrf(f->dir);
	free(f->dir);
	free(f->db_path);
	free(f->wal_path);
	free(f);
	return 0;
}

static void insert_rows(sqlite3 *db, int n, int blob_size)
{
	char sql[128];

	for (int i = 0; i < n; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO t (v) VALUES (randomblob(%d))", blob_size);
		th_exec(db, sql);
	}
}

/* Scans the WAL at path from just after its header. */
static struct wal_scan_result scan_file(const char *path, struct wal_header *h)
{
	uint8_t hdr[WAL_HEADER_SIZE];
	const char *why = NULL;
	struct wal_scan_result r;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), WAL_HEADER_SIZE);
	assert_int_equal(wal_header_decode(hdr, h, &why), 0);
	/* An odd buffer size: three frames and a bit per read. */
	size_t len = 3 * wal_frame_size(h) + 100;
	buf = malloc(len);
	uint32_t ck[2] = {h->cksum1, h->cksum2};
	assert_int_equal(wal_scan(fd, h, WAL_HEADER_SIZE, ck, buf, len, &r), 0);
	free(buf);
	close(fd);
	return r;
}

static void test_header_real(void **state)
{
	struct fixture *f = *state;
	struct wal_header h;
	uint8_t *buf;
	size_t n;
	const char *why;

	insert_rows(f->db, 1, 10);
	buf = th_read_file(f->wal_path, &n);
	assert_true(n > WAL_HEADER_SIZE);
	assert_int_equal(wal_header_decode(buf, &h, &why), 0);
	assert_true(h.magic == WAL_MAGIC_LE || h.magic == WAL_MAGIC_BE);
	assert_int_equal(h.version, WAL_VERSION);
	assert_int_equal(h.page_size, 4096);

	/* Re-encoding gives the same bytes, checksum included. */
	uint8_t again[WAL_HEADER_SIZE];
	wal_header_encode(&h, again);
	assert_memory_equal(again, buf, WAL_HEADER_SIZE);

	/* Any flipped byte in 0..23 breaks the header checksum or a field. */
	for (int i = 0; i < 24; i++) {
		buf[i] ^= 0x40;
		assert_int_equal(wal_header_decode(buf, &h, &why), -EINVAL);
		assert_non_null(why);
		buf[i] ^= 0x40;
	}
	free(buf);
}

static void test_scan_all_committed(void **state)
{
	struct fixture *f = *state;
	struct wal_header h;
	struct wal_scan_result r;
	size_t n;
	uint8_t *buf;

	insert_rows(f->db, 50, 300);
	buf = th_read_file(f->wal_path, &n);
	r = scan_file(f->wal_path, &h);
	assert_int_equal(r.commit_end, n);
	assert_int_equal((n - WAL_HEADER_SIZE) % wal_frame_size(&h), 0);
	assert_int_equal(r.frames, (n - WAL_HEADER_SIZE) / wal_frame_size(&h));
	assert_true(r.db_size >= 2);

	/* The running checksum is the last frame's stored checksum. */
	assert_int_equal(r.cksum[0], wal_get_u32(buf + n - wal_frame_size(&h) + 16));
	assert_int_equal(r.cksum[1], wal_get_u32(buf + n - wal_frame_size(&h) + 20));
	free(buf);
}

/* A corrupt page in the last transaction: the scan stops before it. */
static void test_scan_stops_at_corruption(void **state)
{
	struct fixture *f = *state;
	struct wal_header h;
	struct wal_scan_result before, after;
	size_t n;
	uint8_t *buf;

	insert_rows(f->db, 5, 100);
	before = scan_file(f->wal_path, &h);
	insert_rows(f->db, 1, 100);
	buf = th_read_file(f->wal_path, &n);
	assert_true(n > before.commit_end);
	buf[n - 100] ^= 1;
	th_write_file(f->wal_path, buf, n);
	after = scan_file(f->wal_path, &h);
	assert_int_equal(after.commit_end, before.commit_end);
	assert_memory_equal(after.cksum, before.cksum, sizeof(after.cksum));
	free(buf);
}

/* A torn write: a half-written last frame is not committed data. */
static void test_scan_stops_at_truncation(void **state)
{
	struct fixture *f = *state;
	struct wal_header h;
	struct wal_scan_result before, after;
	size_t n;
	uint8_t *buf;

	insert_rows(f->db, 3, 100);
	before = scan_file(f->wal_path, &h);
	insert_rows(f->db, 1, 100);
	buf = th_read_file(f->wal_path, &n);
	th_write_file(f->wal_path, buf, n - 10);
	after = scan_file(f->wal_path, &h);
	assert_int_equal(after.commit_end, before.commit_end);
	free(buf);
}

/*
 * A transaction larger than one frame cut after its first frames: those
 * frames are valid but not committed, so they are not counted.
 */
static void test_scan_uncommitted_tail(void **state)
{
	struct fixture *f = *state;
	struct wal_header h;
	struct wal_scan_result before, after;
	size_t n, fsz;
	uint8_t *buf;

	insert_rows(f->db, 2, 100);
	before = scan_file(f->wal_path, &h);
	fsz = wal_frame_size(&h);
	th_exec(f->db, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20) "
			"INSERT INTO t (v) SELECT randomblob(3000) FROM s");
	buf = th_read_file(f->wal_path, &n);
	assert_true((n - before.commit_end) / fsz > 5);
	/* Keep three frames of the big transaction: all valid, none a commit. */
	th_write_file(f->wal_path, buf, before.commit_end + 3 * fsz);
	after = scan_file(f->wal_path, &h);
	assert_int_equal(after.commit_end, before.commit_end);
	free(buf);
}

/*
 * After a checkpoint that reaches the end, SQLite restarts the WAL with new
 * salts and overwrites from offset 32; the old frames behind the new ones
 * carry the old salts and must not be taken.
 */
static void test_scan_after_restart(void **state)
{
	struct fixture *f = *state;
	struct wal_header h1, h2;
	struct wal_scan_result r1, r2;
	size_t n;
	uint8_t *buf;

	insert_rows(f->db, 30, 500);
	r1 = scan_file(f->wal_path, &h1);
	th_exec(f->db, "PRAGMA wal_checkpoint(RESTART)");
	insert_rows(f->db, 1, 10);
	buf = th_read_file(f->wal_path, &n);
	assert_int_equal(n, r1.commit_end); /* the file did not shrink */
	r2 = scan_file(f->wal_path, &h2);
	assert_true(h1.salt1 != h2.salt1 || h1.salt2 != h2.salt2);
	assert_true(r2.commit_end < n);
	assert_true(r2.frames >= 1);
	free(buf);
}

/* Verifying a frame against the wrong chain fails and leaves it untouched. */
static void test_frame_verify_chain(void **state)
{
	struct fixture *f = *state;
	struct wal_header h;
	size_t n;
	uint8_t *buf;
	const char *why;

	insert_rows(f->db, 2, 10);
	buf = th_read_file(f->wal_path, &n);
	assert_int_equal(wal_header_decode(buf, &h, &why), 0);
	uint32_t ck[2] = {h.cksum1 + 1, h.cksum2};
	assert_false(wal_frame_verify(&h, buf + WAL_HEADER_SIZE, ck));
	assert_int_equal(ck[0], h.cksum1 + 1);
	ck[0] = h.cksum1;
	assert_true(wal_frame_verify(&h, buf + WAL_HEADER_SIZE, ck));
	/* The second frame verifies only when seeded with the first one's. */
	uint32_t wrong[2] = {h.cksum1, h.cksum2};
	assert_false(wal_frame_verify(&h, buf + WAL_HEADER_SIZE + wal_frame_size(&h), wrong));
	assert_true(wal_frame_verify(&h, buf + WAL_HEADER_SIZE + wal_frame_size(&h), ck));
	free(buf);
}

/* Big-endian words: s0 += x0 + s1; s1 += x1 + s0, by hand. */
static void test_checksum_by_hand(void **state)
{
	const uint8_t data[16] = {0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
	uint32_t s[2] = {0, 0};

	wal_checksum(true, data, 16, s);
	/* (1, 1+2=3) then (1+3+3=7, 3+4+7=14) */
	assert_int_equal(s[0], 7);
	assert_int_equal(s[1], 14);
	s[0] = s[1] = 0;
	wal_checksum(false, data, 8, s);
	assert_int_equal(s[0], 0x01000000u);
	assert_int_equal(s[1], 0x03000000u);
}

static void test_page_sizes(void **state)
{
	static const int sizes[] = {512, 65536};
	char *dir = th_tmpdir();

	for (size_t i = 0; i < 2; i++) {
		char name[32];
		snprintf(name, sizeof(name), "p%d.db", sizes[i]);
		char *path = th_path(dir, name);
		char *wal = malloc(strlen(path) + 5);
		sprintf(wal, "%s-wal", path);
		sqlite3 *db = th_open(path, sizes[i]);
		th_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
		insert_rows(db, 5, 2000);
		struct wal_header h;
		size_t n;
		uint8_t *buf = th_read_file(wal, &n);
		struct wal_scan_result r = scan_file(wal, &h);
		assert_int_equal(h.page_size, sizes[i]);
		assert_int_equal(r.commit_end, n);
		free(buf);
		sqlite3_close(db);
		free(wal);
		free(path);
	}
	th_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_header_real, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_all_committed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_stops_at_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_stops_at_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_uncommitted_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_verify_chain, setup, teardown),
		cmocka_unit_test(test_checksum_by_hand),
		cmocka_unit_test(test_page_sizes),
	};
	return cmocka_run_group_tests_name("wal", tests, NULL, NULL);
}
