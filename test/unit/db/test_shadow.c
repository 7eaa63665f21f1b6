/*
 * The shadow WAL's sync decisions, on WAL files written by real SQLite:
 * commit-boundary copies, restart detection, and every reason to start a
 * new generation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/fsutil.h"
#include "db/shadow.h"
#include "lib/sqlite_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
	char *dir;
	char *db_path;
	char *wal_path;
	sqlite3 *db;
	struct shadow s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = th_tmpdir();
	f->db_path = th_path(f->dir, "app.db");
	f->wal_path = th_path(f->dir, "app.db-wal");
	f->db = th_open(f->db_path, 4096);
	th_exec(f->db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
	assert_int_equal(shadow_init(&f->s, f->db_path), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	shadow_close(&f->s);
	sqlite3_close(f->db);
	th_rmrf(f->dir);
	free(f->dir);
	free(f->db_path);
	free(f->wal_path);
	free(f);
	return 0;
}

static void insert(sqlite3 *db, int rows, int size)
{
	char sql[128];

	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d) "
		 "INSERT INTO t (v) SELECT randomblob(%d) FROM s",
		 rows, size);
	th_exec(db, sql);
}

static struct shadow_sync_result sync_ok(struct fixture *f)
{
	struct shadow_sync_result r;

	assert_int_equal(shadow_sync(&f->s, &r), 0);
	return r;
}

/* The shadow file holds exactly the real WAL's bytes up to size. */
static void assert_mirrors_wal(struct fixture *f)
{
	size_t wn, sn;
	char *path = shadow_file_path(&f->s, f->s.generation, f->s.index);
	uint8_t *wal = th_read_file(f->wal_path, &wn);
	uint8_t *sh = th_read_file(path, &sn);

	assert_int_equal(sn, f->s.size);
	assert_true(wn >= sn);
	assert_memory_equal(wal, sh, sn);
	free(wal);
	free(sh);
	free(path);
}

static void test_first_sync_starts_generation(void **state)
{
	struct fixture *f = *state;
	struct shadow_sync_result r;
	char buf[64];
	size_t n;
	uint8_t *wal;

	insert(f->db, 10, 100);
	r = sync_ok(f);
	assert_true(r.new_generation);
	assert_string_equal(r.reason, "no generation exists");
	assert_true(generation_valid(f->s.generation));
	assert_int_equal(f->s.index, 0);
	wal = th_read_file(f->wal_path, &n);
	assert_int_equal(f->s.size, n);
	free(wal);
	assert_mirrors_wal(f);
	char *gen_path = path_join(f->s.meta_dir, "generation");
	assert_int_equal(fs_read_small(gen_path, buf, sizeof(buf)), 0);
	assert_int_equal(strncmp(buf, f->s.generation, 16), 0);
	free(gen_path);

	/* Nothing new: nothing copied, no decision. */
	r = sync_ok(f);
	assert_false(r.new_generation);
	assert_false(r.restarted);
	assert_int_equal(r.copied, 0);
}

static void test_copies_only_whole_transactions(void **state)
{
	struct fixture *f = *state;
	uint64_t before;
	size_t n;
	uint8_t *wal;

	insert(f->db, 5, 100);
	sync_ok(f);
	before = f->s.size;
	insert(f->db, 20, 3000); /* one transaction, many frames */
	wal = th_read_file(f->wal_path, &n);
	/* Cut the WAL inside the last transaction, as a torn write would. */
	th_write_file(f->wal_path, wal, before + 3 * (4096 + 24) + 100);
	sync_ok(f);
	assert_int_equal(f->s.size, before);
	/* The whole transaction arrives: all of it is copied. */
	th_write_file(f->wal_path, wal, n);
	assert_int_equal(sync_ok(f).copied, n - before);
	assert_int_equal(f->s.size, n);
	assert_mirrors_wal(f);
	free(wal);
}

static void test_restart_starts_next_index(void **state)
{
	struct fixture *f = *state;
	struct shadow_sync_result r;
	char gen[17];

	insert(f->db, 30, 500);
	sync_ok(f);
	snprintf(gen, sizeof(gen), "%s", f->s.generation);
	insert(f->db, 3, 500); /* not yet copied when the WAL restarts */
	th_exec(f->db, "PRAGMA wal_checkpoint(RESTART)");
	insert(f->db, 1, 10);
	r = sync_ok(f);
	assert_true(r.restarted);
	assert_false(r.new_generation);
	assert_string_equal(f->s.generation, gen);
	assert_int_equal(f->s.index, 1);
	assert_mirrors_wal(f);
	/* The old index got the frames written before the restart. */
	char *old = shadow_file_path(&f->s, gen, 0);
	int64_t old_size = fs_file_size(old);
	free(old);
	assert_true(old_size > 32 + 30 * (4096 + 24) / 8);
}

static void test_two_restarts_lose_continuity(void **state)
{
	struct fixture *f = *state;
	struct shadow_sync_result r;
	char gen[17];

	insert(f->db, 30, 500);
	sync_ok(f);
	snprintf(gen, sizeof(gen), "%s", f->s.generation);
	th_exec(f->db, "PRAGMA wal_checkpoint(RESTART)");
	insert(f->db, 1, 10);
	th_exec(f->db, "PRAGMA wal_checkpoint(RESTART)");
	insert(f->db, 1, 10);
	r = sync_ok(f);
	assert_true(r.new_generation);
	assert_string_equal(r.reason, "wal restarted more than once since the last sync");
	assert_string_not_equal(f->s.generation, gen);
	assert_int_equal(f->s.index, 0);
	assert_mirrors_wal(f);
}

static void test_truncated_wal(void **state)
{
	struct fixture *f = *state;
	struct shadow_sync_result r;

	insert(f->db, 30, 500);
	sync_ok(f);
	th_exec(f->db, "PRAGMA wal_checkpoint(TRUNCATE)");
	insert(f->db, 1, 10);
	r = sync_ok(f);
	assert_true(r.new_generation);
	assert_string_equal(r.reason, "wal truncated by another process");
}

static void test_overwritten_wal(void **state)
{
	struct fixture *f = *state;
	struct shadow_sync_result r;
	size_t n;
	uint8_t *wal;

	insert(f->db, 5, 100);
	sync_ok(f);
	wal = th_read_file(f->wal_path, &n);
	wal[n - 100] ^= 0xff;
	th_write_file(f->wal_path, wal, n);
	free(wal);
	r = sync_ok(f);
	assert_true(r.new_generation);
	assert_string_equal(r.reason, "wal overwritten by another process");
}

static void test_missing_shadow(void **state)
{
	struct fixture *f = *state;
	struct shadow_sync_result r;
	char *path;

	insert(f->db, 5, 100);
	sync_ok(f);
	path = shadow_file_path(&f->s, f->s.generation, f->s.index);
	unlink(path);
	free(path);
	insert(f->db, 1, 100);
	r = sync_ok(f);
	assert_true(r.new_generation);
	assert_string_equal(r.reason, "shadow wal missing or truncated");
}

/* A restart of the process: the same generation goes on, a torn tail is cut. */
static void test_reload_after_crash(void **state)
{
	struct fixture *f = *state;
	struct shadow again;
	struct shadow_sync_result r;
	char gen[17], *path;
	uint64_t size;
	int fd;

	insert(f->db, 5, 100);
	sync_ok(f);
	snprintf(gen, sizeof(gen), "%s", f->s.generation);
	size = f->s.size;
	path = shadow_file_path(&f->s, gen, f->s.index);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "torn frame", 10), 10);
	close(fd);
	insert(f->db, 2, 100);

	assert_int_equal(shadow_init(&again, f->db_path), 0);
	assert_int_equal(shadow_sync(&again, &r), 0);
	assert_false(r.new_generation);
	assert_string_equal(again.generation, gen);
	assert_true(again.size > size);
	assert_int_equal(r.copied, again.size - size);
	shadow_close(&again);
	free(path);
}

static void test_header_only_mismatch(void **state)
{
	struct fixture *f = *state;
	struct shadow again;
	struct shadow_sync_result r;
	char *path;

	insert(f->db, 5, 100);
	sync_ok(f);
	path = shadow_file_path(&f->s, f->s.generation, f->s.index);
	assert_int_equal(truncate(path, 32), 0);
	free(path);
	th_exec(f->db, "PRAGMA wal_checkpoint(RESTART)");
	insert(f->db, 1, 10);
	assert_int_equal(shadow_init(&again, f->db_path), 0);
	assert_int_equal(shadow_sync(&again, &r), 0);
	assert_true(r.new_generation);
	assert_string_equal(r.reason, "wal header only, mismatched");
	shadow_close(&again);
}

static void test_remove_shipped(void **state)
{
	struct fixture *f = *state;
	char old_gen[17], *p0, *p1;

	insert(f->db, 5, 100);
	sync_ok(f);
	snprintf(old_gen, sizeof(old_gen), "%s", f->s.generation);
	th_exec(f->db, "PRAGMA wal_checkpoint(RESTART)");
	insert(f->db, 1, 10);
	sync_ok(f);
	p0 = shadow_file_path(&f->s, f->s.generation, 0);
	p1 = shadow_file_path(&f->s, f->s.generation, 1);
	assert_int_equal(shadow_remove_shipped(&f->s, 0, NULL, 0), 0);
	assert_true(fs_file_size(p0) > 0);
	assert_int_equal(shadow_remove_shipped(&f->s, 1, NULL, 0), 0);
	assert_true(fs_file_size(p0) < 0);
	assert_true(fs_file_size(p1) > 0);
	free(p0);
	free(p1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_sync_starts_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copies_only_whole_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_starts_next_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_restarts_lose_continuity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overwritten_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_shadow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_only_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_shipped, setup, teardown),
	};
	return cmocka_run_group_tests_name("shadow", tests, NULL, NULL);
}
