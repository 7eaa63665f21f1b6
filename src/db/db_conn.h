/*
 * The SQLite side of one watched database: our connections to it, the
 * read transaction that keeps the WAL from restarting behind our back, and
 * the checkpoint and write-lock calls the checkpoint policy (db.c) uses.
 *
 * Used from the database's threadpool job only (one at a time).
 *
 * The read transaction is never let go while the database is open: it is
 * moved forward by beginning the next one on a second connection before
 * ending the last (db_conn_read_take, then db_conn_read_settle), so that
 * there is no moment in which another connection could restart the WAL
 * over frames not yet copied. Whoever takes the next one copies the new
 * frames before settling: our lowest read mark then never passes the
 * shadow WAL's end, so no checkpoint can put a page into the database file
 * that the shadow WAL does not hold.
 *
 * In normal operation nothing here writes to the database or takes its
 * write lock: db_conn_write_lock() exists for the forced checkpoint only.
 * A lock wait is bounded by the deadline set with db_conn_busy_for();
 * SQLITE_BUSY comes back as -EBUSY, other SQLite errors as -EIO, with the
 * statement and SQLite's message in err.
 */
#ifndef LITESTREAM_DB_CONN_H
#define LITESTREAM_DB_CONN_H

#include "db/commit_watch.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_conn {
	const char *path;     /* the database (borrowed) */
	sqlite3 *rconn[2];    /* read transactions, in turns */
	sqlite3 *wconn;       /* the forced checkpoint's write lock */
	int reader;           /* rconn holding the current read transaction, -1 none */
	int next;             /* rconn holding the one being taken, -1 none */
	/*
	 * The database file, open for as long as the connections are. POSIX
	 * locks belong to the process: closing ANY descriptor of the file
	 * drops every lock SQLite holds on it, after which another process
	 * may think it is alone, checkpoint and delete the WAL. So everything
	 * that reads the file (snapshots, checksums) preads this descriptor
	 * and never opens or closes the database itself. -1 when closed.
	 */
	int file_fd;
	/* The application's commits, for the write lock's waits (commit_watch.h). */
	struct commit_watch watch;
	bool write_waiting;   /* the write lock is being waited for */
	int64_t busy_deadline_ms;
	uint32_t page_size;
};

void db_conn_init(struct db_conn *c, const char *path);

/*
 * Opens the connections (the database must be in WAL mode, or be put in
 * it when no other connection uses it), turns automatic checkpoints off
 * on them and begins the first read transaction. 0 or -errno.
 */
int db_conn_open(struct db_conn *c, char *err, size_t errlen);

bool db_conn_is_open(const struct db_conn *c);

/* Ends the read transactions and closes everything, never checkpointing. */
void db_conn_close(struct db_conn *c);

/* Lock waits from now on give up after ms. */
void db_conn_busy_for(struct db_conn *c, int64_t ms);

/* Begins a read transaction if none is held (after a failure). */
int db_conn_read_hold(struct db_conn *c, char *err, size_t errlen);

/*
 * Begins the next read transaction beside the current one. It takes the
 * newest snapshot: read mark 0 when the WAL is fully backfilled (see
 * shadow.c). Then settle: keep_new ends the old one (the caller copied
 * what the new one sees), otherwise the new one ends.
 */
int db_conn_read_take(struct db_conn *c, char *err, size_t errlen);
void db_conn_read_settle(struct db_conn *c, bool keep_new);

/*
 * A PASSIVE checkpoint on a connection with no transaction: it backfills
 * up to our lowest read mark. *log: frames in the WAL; *done: frames
 * backfilled in all (equal: the WAL is fully backfilled). -EBUSY when
 * another connection's checkpoint runs.
 */
int db_conn_checkpoint(struct db_conn *c, int *log, int *done, char *err, size_t errlen);

/*
 * Closes the read connection that holds no transaction (an idle database
 * needs only the one that does: about 20 KB of SQLite's heap and two
 * descriptors less); the calls above open it again when they need it.
 */
void db_conn_spare_close(struct db_conn *c);
bool db_conn_spare_open(const struct db_conn *c);

/*
 * Drops the WAL-index (-shm) pages SQLite mapped for us from our resident
 * memory; they come back on the next read. For a database at rest.
 */
void db_conn_shm_release(struct db_conn *c);

/* Takes and drops the write lock (BEGIN IMMEDIATE) on the write connection. */
int db_conn_write_lock(struct db_conn *c, char *err, size_t errlen);
void db_conn_write_unlock(struct db_conn *c);

#endif
