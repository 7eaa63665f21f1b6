/*
 * Helpers for unit tests that need real SQLite files: a scratch directory,
 * a WAL-mode database whose WAL survives close, and whole-file reads.
 * Every helper fails the test (cmocka fail_msg) on error.
 */
#ifndef LITESTREAM_TEST_SQLITE_HELPERS_H
#define LITESTREAM_TEST_SQLITE_HELPERS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* mkdtemp under $TMPDIR; caller frees and removes with th_rmrf(). */
char *th_tmpdir(void);
void th_rmrf(const char *dir);

/* dir/name, malloc'd. */
char *th_path(const char *dir, const char *name);

/*
 * Opens (creating) a WAL-mode database with the given page size (0 keeps
 * the default), automatic checkpoints off, and no checkpoint on close, so
 * the -wal file stays as the writes left it.
 */
sqlite3 *th_open(const char *path, int page_size);
void th_exec(sqlite3 *db, const char *sql);

/* Reads a whole file; *n gets its size. Caller frees. */
uint8_t *th_read_file(const char *path, size_t *n);
void th_write_file(const char *path, const uint8_t *buf, size_t n);

#endif
