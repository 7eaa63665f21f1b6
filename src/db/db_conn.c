/*
 * Our SQLite connections to one watched database; see db_conn.h.
 *
 * Three connections: two that take the read transaction in turns (so that
 * the next one begins before the last one ends) and one for the forced
 * checkpoint's write lock. A checkpoint runs on whichever read connection
 * has no transaction at the moment: SQLite refuses to checkpoint from a
 * connection with an open transaction, and the checkpoint then stops at
 * our own read mark, which is what keeps it behind the shadow WAL. That
 * spare connection is opened (spare()) when a read transaction or a
 * checkpoint first needs it and closed while the database is idle; SQLite keeps
 * the file's POSIX locks across the close (its descriptor waits for reuse
 * while another connection of ours holds a lock), so the read transaction
 * on the other one is never let go.
 */
#include "db/db_conn.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * SQLite's own busy handler sleeps a millisecond or more between tries, and
 * a writer that never pauses frees its lock only for microseconds between
 * two transactions: it would win every time. So spin on the (cheap,
 * non-blocking) lock attempt first, then back off; give up at the deadline.
 */
/*
 * The longest spin on the WAL-index between two tries at the write lock:
 * longer than one commit of a writer that never pauses (an fsync), short
 * enough that a writer holding one long transaction costs little CPU.
 */
#define WRITE_SPIN_US 20000

static int on_busy(void *arg, int count)
{
	struct db_conn *c = arg;
	struct timespec ts = {0, count < 4000 ? 20000 : 1000000};

	if (c->write_waiting) {
		/* Try when a writer lets go: right after its commit. */
		if (clock_mono_ms() >= c->busy_deadline_ms)
			return 0;
		if (!commit_watch_wait(&c->watch, WRITE_SPIN_US)) {
			struct timespec pause = {0, 1000000};
			nanosleep(&pause, NULL);
		}
		return 1;
	}
	if (count % 64 == 0 && clock_mono_ms() >= c->busy_deadline_ms)
		return 0;
	if (count >= 2000)
		nanosleep(&ts, NULL);
	return 1;
}

void db_conn_busy_for(struct db_conn *c, int64_t ms)
{
	c->busy_deadline_ms = clock_mono_ms() + ms;
}

static int sqlite_rc(int rc)
{
	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? -EBUSY : -EIO;
}

static int exec_sql(sqlite3 *conn, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(conn, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return sqlite_rc(rc);
	}
	return 0;
}

static int query_text(sqlite3 *conn, const char *sql, char *out, size_t n, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(conn));
		sqlite3_finalize(st);
		return sqlite_rc(rc);
	}
	snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return 0;
}

void db_conn_init(struct db_conn *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->path = path;
	c->reader = c->next = -1;
	c->file_fd = -1;
	commit_watch_init(&c->watch);
}

bool db_conn_is_open(const struct db_conn *c)
{
	return c->rconn[0] != NULL || c->rconn[1] != NULL;
}

static int open_one(struct db_conn *c, sqlite3 **out, char *err, size_t errlen)
{
	sqlite3 *s = NULL;
	int rc = sqlite3_open_v2(c->path, &s, SQLITE_OPEN_READWRITE, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "open %s: %s", c->path, s ? sqlite3_errmsg(s) : sqlite3_errstr(rc));
		sqlite3_close(s);
		return -EIO;
	}
	/* Never checkpoint (or delete the WAL) when our connection closes. */
	sqlite3_db_config(s, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/*
	 * Our connections read a page or two (the schema, for the read
	 * transaction): no lookaside memory (120 KB a connection by default)
	 * and a small page cache, so that a thousand databases fit in a few
	 * tens of megabytes.
	 */
	sqlite3_db_config(s, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
	sqlite3_busy_handler(s, on_busy, c);
	*out = s;
	return exec_sql(s, "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -64", err, errlen);
}

/*
 * The database must be in WAL mode. Asking for it when it already is
 * would be harmless, but reading the mode first keeps our start-up free of
 * anything that could look like a write to the application.
 */
static int ensure_wal(struct db_conn *c, char *err, size_t errlen)
{
	char mode[16] = "";
	int rc;

	if ((rc = query_text(c->rconn[0], "PRAGMA journal_mode", mode, sizeof(mode), err, errlen)) != 0)
		return rc;
	if (strcmp(mode, "wal") == 0)
		return 0;
	if ((rc = query_text(c->rconn[0], "PRAGMA journal_mode = wal", mode, sizeof(mode), err, errlen)) != 0)
		return rc;
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "cannot enable wal mode (journal_mode is \"%s\": %s)", mode,
			 sqlite3_errmsg(c->rconn[0]));
		return -EBUSY;
	}
	return 0;
}

static int read_begin(struct db_conn *c, int i, char *err, size_t errlen)
{
	int rc = exec_sql(c->rconn[i], "BEGIN; SELECT 1 FROM sqlite_master LIMIT 1", err, errlen);

	if (rc != 0)
		sqlite3_exec(c->rconn[i], "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void read_end(struct db_conn *c, int i)
{
	sqlite3_exec(c->rconn[i], "ROLLBACK", NULL, NULL, NULL);
}

/*
 * rconn[i], opened if it is the spare and closed. For a checkpoint
 * (see_wal), a fresh one reads once first: a connection that never read
 * has not opened the WAL and would not see it. A read transaction begun
 * right after opens it anyway.
 */
static int spare(struct db_conn *c, int i, bool see_wal, char *err, size_t errlen)
{
	int rc;

	if (c->rconn[i] != NULL)
		return 0;
	if ((rc = open_one(c, &c->rconn[i], err, errlen)) != 0 ||
	    (see_wal && (rc = read_begin(c, i, err, errlen)) != 0)) {
		sqlite3_close(c->rconn[i]);
		c->rconn[i] = NULL;
		return rc;
	}
	if (see_wal)
		read_end(c, i);
	return 0;
}

void db_conn_spare_close(struct db_conn *c)
{
	int i = 1 - c->reader;

	if (c->reader < 0 || c->next >= 0 || c->rconn[i] == NULL)
		return;
	sqlite3_close(c->rconn[i]);
	c->rconn[i] = NULL;
}

bool db_conn_spare_open(const struct db_conn *c)
{
	return c->reader >= 0 && c->rconn[1 - c->reader] != NULL;
}

/*
 * The WAL-index is SQLite's shared mapping of the -shm, one per process
 * and file whichever connection asks, in 32 KiB regions. Its pages stay
 * resident in our address space once touched: for a thousand idle
 * databases the largest part of our RSS. MADV_DONTNEED on a shared file
 * mapping drops only our page-table entries: the bytes stay in the page
 * cache (and in the file), the next read faults them back in. Asked of
 * SQLite's own mapping (xShmMap, never extending): the -shm is never
 * opened here (see file_fd in db_conn.h for why).
 */
#define SHM_REGION 32768
#define SHM_MAX_REGIONS 64

void db_conn_shm_release(struct db_conn *c)
{
	sqlite3_file *f = NULL;
	long page = sysconf(_SC_PAGESIZE);

	if (c->reader < 0 || page <= 0 || SHM_REGION % page != 0 ||
	    sqlite3_file_control(c->rconn[c->reader], "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL || f->pMethods->iVersion < 2 || f->pMethods->xShmMap == NULL)
		return;
	for (int i = 0; i < SHM_MAX_REGIONS; i++) {
		void volatile *p = NULL;
		if (f->pMethods->xShmMap(f, i, SHM_REGION, 0, &p) != SQLITE_OK || p == NULL)
			break;
		/* Regions are page-aligned when the page divides 32 KiB (checked above). */
		madvise((void *)p, SHM_REGION, MADV_DONTNEED);
	}
}

int db_conn_open(struct db_conn *c, char *err, size_t errlen)
{
	char ps[16];
	int rc;

	c->file_fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (c->file_fd < 0) {
		snprintf(err, errlen, "open %s: %s", c->path, strerror(errno));
		return -errno;
	}
	db_conn_busy_for(c, 1000);
	/* The write connection waits for the first forced checkpoint (db_conn_write_lock()),
	 * the spare read connection for the first checkpoint or new read transaction
	 * (spare()): most of a thousand databases never need the one, nor, when idle,
	 * the other (their memory and descriptors). */
	if ((rc = open_one(c, &c->rconn[0], err, errlen)) != 0 || (rc = ensure_wal(c, err, errlen)) != 0 ||
	    (rc = query_text(c->rconn[0], "PRAGMA page_size", ps, sizeof(ps), err, errlen)) != 0)
		goto fail;
	c->page_size = (uint32_t)strtoul(ps, NULL, 10);
	if ((rc = read_begin(c, 0, err, errlen)) != 0)
		goto fail;
	c->reader = 0;
	return 0;
fail:
	db_conn_close(c);
	return rc;
}

void db_conn_close(struct db_conn *c)
{
	for (int i = 0; i < 2; i++) {
		if (c->rconn[i] != NULL)
			read_end(c, i);
		sqlite3_close(c->rconn[i]);
		c->rconn[i] = NULL;
	}
	sqlite3_close(c->wconn);
	c->wconn = NULL;
	c->reader = c->next = -1;
	/* Only after SQLite let go: see file_fd in db_conn.h. */
	if (c->file_fd >= 0)
		close(c->file_fd);
	c->file_fd = -1;
	commit_watch_close(&c->watch);
}

int db_conn_read_hold(struct db_conn *c, char *err, size_t errlen)
{
	int rc;

	if (c->reader >= 0)
		return 0;
	db_conn_busy_for(c, 1000);
	if ((rc = spare(c, 0, false, err, errlen)) != 0 || (rc = read_begin(c, 0, err, errlen)) != 0)
		return rc;
	c->reader = 0;
	return 0;
}

int db_conn_read_take(struct db_conn *c, char *err, size_t errlen)
{
	int i = c->reader < 0 ? 0 : 1 - c->reader;
	int rc;

	db_conn_busy_for(c, 1000);
	if ((rc = spare(c, i, false, err, errlen)) != 0 || (rc = read_begin(c, i, err, errlen)) != 0)
		return rc;
	c->next = i;
	return 0;
}

void db_conn_read_settle(struct db_conn *c, bool keep_new)
{
	if (c->next < 0)
		return;
	if (keep_new) {
		if (c->reader >= 0)
			read_end(c, c->reader);
		c->reader = c->next;
	} else {
		read_end(c, c->next);
	}
	c->next = -1;
}

int db_conn_checkpoint(struct db_conn *c, int *log, int *done, char *err, size_t errlen)
{
	int i = c->reader < 0 ? 0 : 1 - c->reader, rc;
	sqlite3 *s;

	*log = *done = 0;
	if ((rc = spare(c, i, true, err, errlen)) != 0)
		return rc;
	s = c->rconn[i];
	rc = sqlite3_wal_checkpoint_v2(s, NULL, SQLITE_CHECKPOINT_PASSIVE, log, done);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "checkpoint: %s", sqlite3_errmsg(s));
		return sqlite_rc(rc);
	}
	return 0;
}

int db_conn_write_lock(struct db_conn *c, char *err, size_t errlen)
{
	int rc;

	if (c->wconn == NULL) {
		if ((rc = open_one(c, &c->wconn, err, errlen)) != 0) {
			sqlite3_close(c->wconn);
			c->wconn = NULL;
			return rc;
		}
		/* Opened with the write connection and kept until the close
		 * (commit_watch.h: closing it would drop SQLite's locks). */
		commit_watch_open(&c->watch, c->path);
	}
	commit_watch_reset(&c->watch);
	c->write_waiting = true;
	rc = exec_sql(c->wconn, "BEGIN IMMEDIATE", err, errlen);
	c->write_waiting = false;
	return rc;
}

void db_conn_write_unlock(struct db_conn *c)
{
	sqlite3_exec(c->wconn, "ROLLBACK", NULL, NULL, NULL);
}
