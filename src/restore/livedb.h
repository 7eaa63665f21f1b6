/*
 * A database that other processes read while we change it: a follower's
 * copy (follower.h). Each change is one transaction as SQLite's rollback
 * journal mode makes it, through SQLite's own locks and SQLite's own crash
 * recovery, so a reader sees the state before it or the state after it,
 * never a mix, and a crash in the middle is rolled back by the next
 * connection that opens the file (ours at start-up included).
 *
 * The copy is kept in rollback-journal mode (header bytes 18 and 19 are
 * 1): WAL mode's readers find pages through the -shm index only its
 * writer can update, and SQLite 3.40 offers no way to write raw pages
 * through it. Page 1 is rewritten on every change with our own change
 * counter (offsets 24 and 92), the size in pages (28) and our SQLite
 * version (96), so every reader's page cache knows the file changed. The
 * rest of each page is the primary's, byte for byte.
 *
 * A change, livedb_begin() then livedb_commit():
 *
 *   1. Locks as SQLite's pager does, through the default VFS's own file
 *      (xLock SHARED, RESERVED, then EXCLUSIVE, retried while readers
 *      finish; the PENDING lock held meanwhile keeps new readers out, so
 *      the wait is bounded by the longest read already under way).
 *   2. Writes PATH-journal in SQLite's rollback journal format (one
 *      sector-sized header, then pgno, original page, checksum for every
 *      page that will change or be cut off) and fsyncs it: from here, a
 *      crash leaves a hot journal that SQLite plays back.
 *   3. (The caller records the position it is about to reach.)
 *   4. Writes the new pages and page 1, sets the size, fsyncs the file.
 *   5. Deletes the journal: the commit point, as in journal_mode=DELETE.
 *   6. Unlocks.
 *
 * Readers hold SHARED while they read and cannot get it from step 1 to
 * step 6, so no reader sees a page of step 4 before step 5 has happened.
 * A reader that opens the file after a crash in steps 2 to 5 rolls it back
 * if it may write; a read-only one gets SQLITE_READONLY_ROLLBACK until the
 * follower restarts and rolls back (livedb_open()).
 *
 * Blocking file I/O and lock waits: a threadpool job or a one-shot.
 * Errors return -errno with a message in err.
 */
#ifndef LITESTREAM_LIVEDB_H
#define LITESTREAM_LIVEDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct livedb;

/* Reads the new content of page pgno into buf (page_size bytes). */
typedef int (*livedb_page_fn)(void *arg, uint32_t pgno, uint8_t *buf, char *err, size_t errlen);

/* One change: the pages that change, and the size after it. */
struct livedb_txn {
	uint32_t new_size;      /* pages */
	const uint32_t *pgnos;  /* ascending, each at most new_size */
	size_t n;
	livedb_page_fn read;
	void *arg;
	/* Set by livedb_begin(): what page 1 will hold after the commit. */
	uint32_t counter;
	uint64_t page1_crc;     /* crc64 of the new page 1 */
};

/*
 * Opens path (it must exist) for changes. A hot journal left by a crash is
 * rolled back first (by SQLite, through a connection of its own). 0 or
 * -errno with err set; *out is the caller's to livedb_close().
 */
int livedb_open(const char *path, struct livedb **out, char *err, size_t errlen);
void livedb_close(struct livedb *d);

uint32_t livedb_page_size(const struct livedb *d);
uint32_t livedb_pages(const struct livedb *d);

/* Reads page pgno as it is now (outside a change). 0 or -errno with err. */
int livedb_read_page(struct livedb *d, uint32_t pgno, uint8_t *buf, char *err, size_t errlen);

/* The state as it is now, to check a saved position against. */
int livedb_state(struct livedb *d, uint32_t *counter, uint64_t *page1_crc, char *err, size_t errlen);

/* Steps 1 and 2 above; waits at most lock_timeout_ms for readers. */
int livedb_begin(struct livedb *d, struct livedb_txn *t, int lock_timeout_ms, char *err, size_t errlen);

/* Steps 4 to 6. On failure the change is rolled back (by livedb_abort()). */
int livedb_commit(struct livedb *d, struct livedb_txn *t, char *err, size_t errlen);

/* After a failed or unwanted begin: unlocks and rolls back whatever was written. */
void livedb_abort(struct livedb *d);

/*
 * Makes page 1 (buf, a database header) that of a follower's copy:
 * rollback mode, change counter `counter`, size `pages`.
 */
void livedb_patch_header(uint8_t *page1, uint32_t counter, uint32_t pages);

/*
 * A freshly restored database file at path, not open by anyone yet,
 * turned into a follower's copy (livedb_patch_header with counter 1) and
 * fsynced. *page1_crc gets its page 1's crc64.
 */
int livedb_prepare_file(const char *path, uint64_t *page1_crc, char *err, size_t errlen);

#endif
