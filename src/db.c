/*
 * One watched database; see db.h for the division of work between the
 * loop thread and the threadpool job.
 */
#include "db.h"

#include "fsutil.h"
#include "log.h"
#include "replica.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * A busy application commits thousands of times a second and each commit
 * fires an fs event: syncs start at most this often, so that a burst of
 * commits is copied (and shipped) together. A lone commit still starts at
 * once.
 */
#define SYNC_MIN_GAP_MS 3

/* How often the read transaction moves up to what was copied (see job_run). */
#define READ_REFRESH_MS 100

/* Bounds on how long a job waits for SQLite's locks. */
#define BUSY_DEFAULT_MS 1000
#define BUSY_PASSIVE_LOCK_MS 2000
#define BUSY_FORCED_LOCK_MS 5000

struct db_job {
	uv_work_t req;
	struct db *db;
	/* inputs */
	bool final;                  /* last sync before exit: no checkpoint */
	bool close;                  /* release and close the connections */
	bool may_checkpoint;
	enum db_checkpoint_mode requested;
	char new_generation_reason[128];
	bool housekeeping;
	char *image_path;            /* copy the database file here (owned) */
	db_image_cb image_cb;
	void *image_arg;
	int image_rc;
	uint32_t min_index;          /* lowest index a replica still reads (current generation) */
	char keep[8][GENERATION_LEN + 1]; /* other generations replicas still read */
	size_t n_keep;
	int64_t last_checkpoint_ms;
	/* outputs */
	int rc;
	char err[256];
	bool waiting;                /* the database file does not exist yet */
	bool removed;                /* ... any more: it was removed */
	bool opened;
	struct shadow_sync_result sync;
	uint64_t copied;
	bool generation_started;
	enum db_checkpoint_mode checkpointed;
	int checkpoint_rc;
	double checkpoint_seconds;
	struct db_pos pos;
	uint32_t page_size;
	uint64_t db_size, wal_size;
	double seconds;
};

static const char *const mode_names[CHECKPOINT_MODES] = {"PASSIVE", "FULL", "RESTART", "TRUNCATE"};

const char *db_checkpoint_mode_name(enum db_checkpoint_mode mode)
{
	return mode >= 0 && mode < CHECKPOINT_MODES ? mode_names[mode] : "NONE";
}

int db_pos_cmp(const struct db_pos *a, const struct db_pos *b)
{
	if (a->index != b->index)
		return a->index < b->index ? -1 : 1;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return 0;
}

static int64_t now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- SQLite side (job thread) ---------------------------------------- */

/*
 * SQLite's own busy handler sleeps a millisecond or more between tries, and
 * a writer that never pauses frees its lock only for microseconds between
 * two transactions: it would win every time. So spin on the (cheap,
 * non-blocking) lock attempt first, then back off; give up at the deadline.
 */
static int on_busy(void *arg, int count)
{
	struct db *db = arg;
	struct timespec ts = {0, count < 4000 ? 20000 : 1000000};

	if (count % 64 == 0 && now_ms(CLOCK_MONOTONIC) >= db->busy_deadline_ms)
		return 0;
	if (count >= 2000)
		nanosleep(&ts, NULL);
	return 1;
}

static void busy_for(struct db *db, int64_t ms)
{
	db->busy_deadline_ms = now_ms(CLOCK_MONOTONIC) + ms;
}

static int exec_sql(struct db *db, sqlite3 *conn, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(conn, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? -EBUSY : -EIO;
	}
	(void)db;
	return 0;
}

static int read_lock_acquire(struct db *db, char *err, size_t errlen)
{
	int rc;

	if (db->read_locked)
		return 0;
	busy_for(db, BUSY_DEFAULT_MS);
	rc = exec_sql(db, db->rconn, "BEGIN; SELECT COUNT(1) FROM _litestream_seq;", err, errlen);
	if (rc != 0) {
		sqlite3_exec(db->rconn, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	db->read_locked = true;
	db->read_lock_ms = now_ms(CLOCK_MONOTONIC);
	return 0;
}

static void read_lock_release(struct db *db)
{
	if (!db->read_locked)
		return;
	sqlite3_exec(db->rconn, "ROLLBACK", NULL, NULL, NULL);
	db->read_locked = false;
}

static int open_conn(struct db *db, sqlite3 **out, char *err, size_t errlen)
{
	sqlite3 *c = NULL;
	int rc = sqlite3_open_v2(db->path, &c, SQLITE_OPEN_READWRITE, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "open %s: %s", db->path, c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
		sqlite3_close(c);
		return -EIO;
	}
	/* Never checkpoint (or delete the WAL) when our connection closes. */
	sqlite3_db_config(c, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_busy_handler(c, on_busy, db);
	*out = c;
	return 0;
}

static int query_int(sqlite3 *c, const char *sql, long *out, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(c));
		sqlite3_finalize(st);
		return rc == SQLITE_BUSY ? -EBUSY : -EIO;
	}
	*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static void close_conns(struct db *db)
{
	read_lock_release(db);
	sqlite3_close(db->rconn);
	sqlite3_close(db->wconn);
	db->rconn = db->wconn = NULL;
	/* Only after SQLite let go: see file_fd in db.h. */
	if (db->file_fd >= 0)
		close(db->file_fd);
	db->file_fd = -1;
}

static int open_db(struct db *db, struct db_job *job)
{
	char mode[16] = "";
	sqlite3_stmt *st = NULL;
	long page_size;
	int rc;

	db->file_fd = open(db->path, O_RDONLY | O_CLOEXEC);
	if (db->file_fd < 0) {
		snprintf(job->err, sizeof(job->err), "open %s: %s", db->path, strerror(errno));
		return -errno;
	}
	if ((rc = open_conn(db, &db->wconn, job->err, sizeof(job->err))) != 0 ||
	    (rc = open_conn(db, &db->rconn, job->err, sizeof(job->err))) != 0)
		goto fail;
	busy_for(db, BUSY_DEFAULT_MS);
	if (sqlite3_prepare_v2(db->wconn, "PRAGMA journal_mode = wal", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (strcmp(mode, "wal") != 0) {
		snprintf(job->err, sizeof(job->err), "cannot enable wal mode (journal_mode is \"%s\": %s)",
			 mode, sqlite3_errmsg(db->wconn));
		rc = -EBUSY;
		goto fail;
	}
	if ((rc = exec_sql(db, db->wconn,
			   "PRAGMA wal_autocheckpoint = 0;"
			   "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);"
			   "CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);",
			   job->err, sizeof(job->err))) != 0 ||
	    (rc = exec_sql(db, db->rconn, "PRAGMA wal_autocheckpoint = 0;", job->err,
			   sizeof(job->err))) != 0)
		goto fail;
	if ((rc = query_int(db->wconn, "PRAGMA page_size", &page_size, job->err, sizeof(job->err))) != 0)
		goto fail;
	if ((rc = read_lock_acquire(db, job->err, sizeof(job->err))) != 0)
		goto fail;
	job->page_size = (uint32_t)page_size;
	job->opened = true;
	return 0;
fail:
	close_conns(db);
	return rc;
}

/* Writes a frame so the WAL exists with a valid header. */
static int bump_seq(struct db *db, struct db_job *job)
{
	busy_for(db, BUSY_DEFAULT_MS);
	return exec_sql(db, db->wconn,
			"INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) "
			"ON CONFLICT (id) DO UPDATE SET seq = seq + 1",
			job->err, sizeof(job->err));
}

static void note_sync(struct db_job *job, const struct shadow_sync_result *r)
{
	job->copied += r->copied;
	job->wal_size = r->wal_size;
	if (r->new_generation) {
		job->generation_started = true;
		job->sync = *r;
	}
}

/* shadow_sync(), writing a first frame when the WAL has none yet. */
static int sync_shadow(struct db *db, struct db_job *job)
{
	struct shadow_sync_result r;
	int rc = shadow_sync(&db->shadow, &r);

	if (rc == -ENODATA) {
		if ((rc = bump_seq(db, job)) != 0)
			return rc;
		rc = shadow_sync(&db->shadow, &r);
	}
	if (rc == 0)
		note_sync(job, &r);
	else if (job->err[0] == '\0')
		snprintf(job->err, sizeof(job->err), "sync shadow wal: %s", strerror(-rc));
	return rc;
}

static enum db_checkpoint_mode checkpoint_due(struct db *db, struct db_job *job)
{
	const struct db_config *cfg = db->cfg;
	uint64_t frame = WAL_FRAME_HEADER_SIZE + (uint64_t)job->page_size;
	uint64_t frames = db->shadow.size > WAL_HEADER_SIZE ? (db->shadow.size - WAL_HEADER_SIZE) / frame : 0;
	struct stat st;

	if (job->requested != CHECKPOINT_NONE)
		return job->requested;
	if (db->passive_index != db->shadow.index)
		db->passive_floor = 0;
	if (now_ms(CLOCK_MONOTONIC) < db->checkpoint_retry_ms)
		return CHECKPOINT_NONE;
	if (cfg->max_checkpoint_page_count > 0 && frames >= (uint64_t)cfg->max_checkpoint_page_count)
		return CHECKPOINT_RESTART;
	if (frames >= (uint64_t)cfg->min_checkpoint_page_count &&
	    frames >= db->passive_floor + (uint64_t)cfg->min_checkpoint_page_count)
		return CHECKPOINT_PASSIVE;
	if (cfg->checkpoint_interval_ms > 0 && frames > 1 && stat(db->path, &st) == 0) {
		int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		int64_t last = mtime > job->last_checkpoint_ms ? mtime : job->last_checkpoint_ms;
		if (now_ms(CLOCK_REALTIME) - last >= cfg->checkpoint_interval_ms)
			return CHECKPOINT_PASSIVE;
	}
	return CHECKPOINT_NONE;
}

/*
 * Checkpoints so that the WAL restarts, keeping the shadow WAL continuous.
 * A PASSIVE one never blocks writers. A forced one (any other mode) takes
 * the write lock first, copies what is left and backfills the whole WAL
 * while writers wait, which is what SQLite's own FULL/RESTART do too; the
 * next write then restarts the WAL, whoever makes it. Either way the seal
 * into the next shadow index happens under the write lock.
 */
static int checkpoint(struct db *db, struct db_job *job, enum db_checkpoint_mode mode)
{
	bool forced = mode != CHECKPOINT_PASSIVE;
	int log_frames = 0, ckpt_frames = 0;
	int rc, lock_rc;

	/* What SQLite may now reuse must be durable in the shadow first. */
	if ((rc = shadow_flush(&db->shadow)) != 0) {
		snprintf(job->err, sizeof(job->err), "fsync shadow wal: %s", strerror(-rc));
		return rc;
	}
	read_lock_release(db);
	if (forced) {
		busy_for(db, BUSY_FORCED_LOCK_MS);
		if ((rc = exec_sql(db, db->wconn, "BEGIN IMMEDIATE", job->err, sizeof(job->err))) != 0)
			goto relock;
		if ((rc = sync_shadow(db, job)) != 0 || (rc = shadow_flush(&db->shadow)) != 0) {
			sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
			goto relock;
		}
	}
	/*
	 * SQLite never waits for its checkpoint lock: while the application
	 * runs its own checkpoint this answers BUSY at once. Holding the
	 * write lock, the application's checkpoint ends soon; try again.
	 */
	busy_for(db, forced ? BUSY_FORCED_LOCK_MS : BUSY_DEFAULT_MS);
	for (;;) {
		rc = sqlite3_wal_checkpoint_v2(db->rconn, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
					       &ckpt_frames);
		if (rc != SQLITE_BUSY || !forced || now_ms(CLOCK_MONOTONIC) >= db->busy_deadline_ms)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	if (forced)
		sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(job->err, sizeof(job->err), "checkpoint: %s", sqlite3_errmsg(db->rconn));
		rc = rc == SQLITE_BUSY ? -EBUSY : -EIO;
		goto relock;
	}
	LOG_DEBUG(db->path, NULL, "checkpoint %s: %d of %d frames", mode_names[mode], ckpt_frames, log_frames);
	if (ckpt_frames < log_frames) {
		/*
		 * Not every frame went in, so the WAL cannot restart: for a
		 * PASSIVE one, writers went on meanwhile (wait for more frames);
		 * under the write lock, a reader holds old frames (pause briefly:
		 * a second let a nonstop writer push the WAL past its bound).
		 */
		if (forced)
			db->checkpoint_retry_ms = now_ms(CLOCK_MONOTONIC) + 100;
		db->passive_index = db->shadow.index;
		db->passive_floor = (uint64_t)log_frames;
		goto relock;
	}
	/*
	 * The first write after a complete backfill restarts the WAL. The
	 * seal below must follow before the new WAL grows past the old one's
	 * end (or continuity is lost and a new generation starts): it waits
	 * for the write lock, spinning (on_busy), rather than give up.
	 */
	if ((rc = bump_seq(db, job)) != 0)
		goto relock;
	busy_for(db, forced ? BUSY_FORCED_LOCK_MS : BUSY_PASSIVE_LOCK_MS);
	if (exec_sql(db, db->wconn, "BEGIN IMMEDIATE", job->err, sizeof(job->err)) == 0) {
		uint32_t index = db->shadow.index;
		rc = sync_shadow(db, job);
		if (rc == 0 && db->shadow.index == index) {
			/* A writer got in first and the WAL went on: wait for more. */
			db->passive_index = index;
			db->passive_floor = (db->shadow.size - WAL_HEADER_SIZE) /
					    (WAL_FRAME_HEADER_SIZE + db->shadow.hdr.page_size);
		}
		lock_rc = read_lock_acquire(db, job->err, sizeof(job->err));
		sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
		if (rc == 0)
			rc = lock_rc;
		return rc;
	}
	job->err[0] = '\0'; /* the seal waits for the next sync; not an error */
relock:
	lock_rc = read_lock_acquire(db, job->err, sizeof(job->err));
	return rc != 0 ? rc : lock_rc;
}

static void job_fill_pos(struct db *db, struct db_job *job)
{
	struct stat st;

	snprintf(job->pos.generation, sizeof(job->pos.generation), "%s", db->shadow.generation);
	job->pos.index = db->shadow.index;
	job->pos.offset = db->shadow.size;
	if (stat(db->path, &st) == 0)
		job->db_size = (uint64_t)st.st_size;
}

/*
 * A database file that exists but has no header yet is still being
 * created by the application: opening it now would race with its first
 * statements (switching the journal mode needs an exclusive lock).
 */
static bool looks_created(const char *path)
{
	char hdr[16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = fs_pread_full(fd, hdr, sizeof(hdr), 0);
	close(fd);
	return n == (ssize_t)sizeof(hdr) && memcmp(hdr, "SQLite format 3", 16) == 0;
}

/* The database file, through our descriptor (see file_fd in db.h). */
static int copy_image(struct db *db, const char *path)
{
	struct stat st;
	int out, rc;

	if (fstat(db->file_fd, &st) != 0)
		return -errno;
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	rc = fs_copy_range(db->file_fd, 0, (uint64_t)st.st_size, out);
	if (close(out) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void job_run(struct db *db, struct db_job *job)
{
	int rc;

	if (job->close) {
		if (db->rconn != NULL || db->wconn != NULL)
			close_conns(db);
		return;
	}
	if (db->rconn != NULL && access(db->path, F_OK) != 0 && errno == ENOENT) {
		/* Removed under us: let go of it and wait for it to come back. */
		close_conns(db);
		job->removed = true;
	}
	if (db->rconn == NULL) {
		if (!looks_created(db->path)) {
			job->waiting = true;
			return;
		}
		if ((rc = open_db(db, job)) != 0) {
			job->rc = rc;
			return;
		}
	}
	if ((rc = read_lock_acquire(db, job->err, sizeof(job->err))) != 0) {
		job->rc = rc;
		return;
	}
	job->page_size = db->shadow.hdr.page_size;
	if (job->page_size == 0) {
		long ps = 0;
		query_int(db->wconn, "PRAGMA page_size", &ps, job->err, sizeof(job->err));
		job->page_size = (uint32_t)ps;
	}
	if (job->new_generation_reason[0] != '\0') {
		struct shadow_sync_result r;
		if ((rc = shadow_new_generation(&db->shadow, job->new_generation_reason, &r)) == -ENODATA &&
		    (rc = bump_seq(db, job)) == 0)
			rc = shadow_new_generation(&db->shadow, job->new_generation_reason, &r);
		if (rc == 0)
			note_sync(job, &r);
	} else {
		rc = sync_shadow(db, job);
	}
	if (rc != 0) {
		job->rc = rc;
		if (job->err[0] == '\0')
			snprintf(job->err, sizeof(job->err), "sync: %s", strerror(-rc));
		return;
	}
	/*
	 * Everything committed is copied: move our read snapshot up to it, so
	 * that the application's own checkpoints can backfill that far (a
	 * stale snapshot would hold them back). The moment without the lock
	 * is harmless now that nothing is left to copy.
	 */
	if (job->copied > 0 && now_ms(CLOCK_MONOTONIC) - db->read_lock_ms >= READ_REFRESH_MS) {
		read_lock_release(db);
		if ((rc = read_lock_acquire(db, job->err, sizeof(job->err))) != 0) {
			job->rc = rc;
			return;
		}
		/*
		 * Copy what was committed meanwhile: the read mark must never be
		 * past the shadow's end, or the application's checkpoints could
		 * put pages into the database file that no replica has (and a
		 * validation image would be ahead of its position).
		 */
		if ((rc = sync_shadow(db, job)) != 0) {
			job->rc = rc;
			return;
		}
	}
	if (job->may_checkpoint && !job->final) {
		enum db_checkpoint_mode mode = checkpoint_due(db, job);
		if (mode != CHECKPOINT_NONE) {
			int64_t t0 = now_ms(CLOCK_MONOTONIC);
			job->checkpointed = mode;
			job->checkpoint_rc = checkpoint(db, job, mode);
			job->checkpoint_seconds = (double)(now_ms(CLOCK_MONOTONIC) - t0) / 1000.0;
		}
	}
	/* Plans were made for the generation the job started in. */
	if (job->housekeeping && !job->generation_started) {
		char *keep[8];
		for (size_t i = 0; i < job->n_keep; i++)
			keep[i] = job->keep[i];
		rc = shadow_remove_shipped(&db->shadow, job->min_index, keep, job->n_keep);
		if (rc != 0)
			LOG_WARN(db->path, NULL, "cannot remove shipped shadow wal files: %s", strerror(-rc));
	}
	if (job->final && (rc = shadow_flush(&db->shadow)) != 0)
		LOG_WARN(db->path, NULL, "fsync shadow wal: %s", strerror(-rc));
	job_fill_pos(db, job);
	if (job->image_path != NULL)
		job->image_rc = copy_image(db, job->image_path);
}

/* ---- loop side ------------------------------------------------------- */

static void start_job(struct db *db);

static void on_job_work(uv_work_t *req)
{
	struct db_job *job = req->data;
	int64_t t0 = now_ms(CLOCK_MONOTONIC);

	job_run(job->db, job);
	job->seconds = (double)(now_ms(CLOCK_MONOTONIC) - t0) / 1000.0;
}

static void publish(struct db *db, struct db_job *job)
{
	bool moved = !db->pos_valid || strcmp(db->pos.generation, job->pos.generation) != 0 ||
		     db_pos_cmp(&db->pos, &job->pos) != 0;

	db->pos = job->pos;
	db->pos_valid = true;
	db->page_size = job->page_size;
	db->stats.db_size = job->db_size;
	db->stats.wal_size = job->wal_size;
	db->stats.total_wal_bytes += job->copied;
	db->stats.last_sync_ms = now_ms(CLOCK_REALTIME);
	if (job->generation_started)
		db->stats.generations_started++;
	if (moved)
		for (size_t i = 0; i < db->n_replicas; i++)
			replica_notify(db->replicas[i]);
	if (db->progress_cb != NULL)
		db->progress_cb(db, NULL, db->progress_arg);
}

static void record_checkpoint(struct db *db, struct db_job *job)
{
	enum db_checkpoint_mode m = job->checkpointed;

	if (m == CHECKPOINT_NONE)
		return;
	db->stats.checkpoint_count[m]++;
	db->stats.checkpoint_seconds[m] += job->checkpoint_seconds;
	if (job->checkpoint_rc == 0) {
		db->last_checkpoint_ms = now_ms(CLOCK_REALTIME);
		return;
	}
	db->stats.checkpoint_error_count[m]++;
	if (job->checkpoint_rc == -EBUSY)
		LOG_DEBUG(db->path, NULL, "checkpoint %s: database busy, retrying later (%s)",
			  mode_names[m], job->err);
	else
		LOG_ERROR(db->path, NULL, "checkpoint %s: %s", mode_names[m], job->err);
}

static void on_job_done(uv_work_t *req, int status)
{
	struct db_job *job = req->data;
	struct db *db = job->db;

	db->job = NULL;
	if (job->close) {
		free(job);
		db->open = false;
		return;
	}
	if (job->removed) {
		db->open = false;
		db->pos_valid = false;
		LOG_WARN(db->path, NULL, "database removed; waiting for it to come back");
	}
	if (job->opened) {
		db->open = true;
		LOG_INFO(db->path, NULL, "opened (page size %u)", job->page_size);
	}
	if (job->new_generation_reason[0] != '\0' && job->rc == 0)
		db->new_generation_reason[0] = '\0';
	if (!job->waiting) {
		db->stats.sync_count++;
		db->stats.sync_seconds += job->seconds;
	}
	if (status == UV_ECANCELED) {
		job->rc = -ECANCELED;
	} else if (job->rc != 0) {
		db->retry_at_ms = now_ms(CLOCK_MONOTONIC) + 1000;
		db->stats.sync_error_count++;
		snprintf(db->stats.last_error, sizeof(db->stats.last_error), "%s", job->err);
		if (job->rc == -EBUSY)
			LOG_WARN(db->path, NULL, "sync: database busy, retrying: %s", job->err);
		else
			LOG_ERROR(db->path, NULL, "sync: %s", job->err);
	} else if (!job->waiting) {
		db->stats.last_error[0] = '\0';
		record_checkpoint(db, job);
		publish(db, job);
	}
	if (job->image_cb != NULL) {
		int rc = job->rc != 0 ? job->rc : job->waiting ? -ENOENT : job->image_rc;
		job->image_cb(job->image_arg, rc, &job->pos);
	}
	free(job->image_path);
	bool final = job->final;
	free(job);
	if (db->state == DB_STOPPING) {
		if (final) {
			db->state = DB_STOPPED;
			if (db->stop_cb)
				db->stop_cb(db);
		} else {
			start_job(db); /* the final sync */
		}
		return;
	}
	if (db->state == DB_CLOSING) {
		db_close(db, db->close_cb);
		return;
	}
	if (db->state != DB_RUNNING)
		return;
	if (db->sync_wanted || db->checkpoint_wanted != CHECKPOINT_NONE ||
	    db->new_generation_reason[0] != '\0' || db->image_path != NULL)
		db_request_sync(db);
}

/* Which shadow files replicas still need (see shadow_remove_shipped). */
static bool plan_housekeeping(struct db *db, struct db_job *job)
{
	bool have_min = false;

	if (!db->pos_valid)
		return false;
	job->min_index = db->pos.index;
	for (size_t i = 0; i < db->n_replicas; i++) {
		struct db_pos p;
		if (!replica_shadow_floor(db->replicas[i], &p))
			return false; /* position not known yet: keep everything */
		if (strcmp(p.generation, db->pos.generation) == 0) {
			if (!have_min || p.index < job->min_index)
				job->min_index = p.index;
			have_min = true;
		} else if (p.generation[0] != '\0' && job->n_keep < 8) {
			snprintf(job->keep[job->n_keep++], GENERATION_LEN + 1, "%s", p.generation);
		}
	}
	return true;
}

static void start_job(struct db *db)
{
	struct db_job *job;
	int rc;

	if (db->job != NULL)
		return;
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		LOG_ERROR(db->path, NULL, "sync: out of memory");
		return;
	}
	job->req.data = job;
	job->db = db;
	db->last_start_ms = now_ms(CLOCK_MONOTONIC);
	job->final = db->state == DB_STOPPING;
	job->requested = db->checkpoint_wanted;
	job->may_checkpoint = db->snapshot_readers == 0 && db->snapshot_waiters == 0;
	job->last_checkpoint_ms = db->last_checkpoint_ms;
	snprintf(job->new_generation_reason, sizeof(job->new_generation_reason), "%s",
		 db->new_generation_reason);
	if (!job->final)
		job->housekeeping = plan_housekeeping(db, job);
	if (db->image_path != NULL && !job->final) {
		job->image_path = db->image_path;
		job->image_cb = db->image_cb;
		job->image_arg = db->image_arg;
		db->image_path = NULL;
		db->image_cb = NULL;
	}
	db->sync_wanted = false;
	if (job->may_checkpoint)
		db->checkpoint_wanted = CHECKPOINT_NONE;
	rc = uv_queue_work(db->loop, &job->req, on_job_work, on_job_done);
	if (rc != 0) {
		LOG_ERROR(db->path, NULL, "cannot queue sync: %s", uv_strerror(rc));
		free(job);
		return;
	}
	db->job = job;
}

static void on_pace(uv_timer_t *t)
{
	struct db *db = t->data;

	if (db->sync_wanted)
		db_request_sync(db);
}

void db_request_sync(struct db *db)
{
	int64_t now = now_ms(CLOCK_MONOTONIC);

	if (db->state != DB_RUNNING)
		return;
	db->sync_wanted = true;
	/* After a failure, wait a second (the monitor timer comes back). */
	if (db->job != NULL || now < db->retry_at_ms)
		return;
	if (now - db->last_start_ms < SYNC_MIN_GAP_MS) {
		if (!uv_is_active((uv_handle_t *)&db->pace_timer))
			uv_timer_start(&db->pace_timer, on_pace,
				       (uint64_t)(SYNC_MIN_GAP_MS - (now - db->last_start_ms)), 0);
		return;
	}
	start_job(db);
}

void db_request_checkpoint(struct db *db, enum db_checkpoint_mode mode)
{
	db->checkpoint_wanted = mode;
	db_request_sync(db);
}

int db_request_image(struct db *db, const char *path, db_image_cb cb, void *arg)
{
	if (db->image_path != NULL)
		return -EBUSY;
	db->image_path = strdup(path);
	if (db->image_path == NULL)
		return -ENOMEM;
	db->image_cb = cb;
	db->image_arg = arg;
	db_request_sync(db);
	return 0;
}

void db_request_new_generation(struct db *db, const char *reason)
{
	snprintf(db->new_generation_reason, sizeof(db->new_generation_reason), "%s", reason);
	db_request_sync(db);
}

void db_snapshot_begin(struct db *db)
{
	db->snapshot_readers++;
}

void db_snapshot_end(struct db *db)
{
	db->snapshot_readers--;
	if (db->snapshot_readers == 0 && db->checkpoint_wanted != CHECKPOINT_NONE)
		db_request_sync(db);
}

void db_snapshot_wait(struct db *db)
{
	db->snapshot_waiters++;
}

void db_snapshot_unwait(struct db *db)
{
	db->snapshot_waiters--;
}

bool db_snapshot_allowed(const struct db *db)
{
	return db->job == NULL || !db->job->may_checkpoint;
}

static void on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct db *db = h->data;
	const char *base = strrchr(db->path, '/');
	size_t n;

	base = base ? base + 1 : db->path;
	n = strlen(base);
	if (status < 0 || filename == NULL) {
		db_request_sync(db);
		return;
	}
	/* NAME, NAME-wal (not NAME-shm, which changes on every read). */
	if (strncmp(filename, base, n) == 0 && (filename[n] == '\0' || strcmp(filename + n, "-wal") == 0))
		db_request_sync(db);
}

static void on_monitor(uv_timer_t *t)
{
	db_request_sync(t->data);
}

int db_init(struct db *db, uv_loop_t *loop, const struct db_config *cfg)
{
	int rc;

	memset(db, 0, sizeof(*db));
	db->loop = loop;
	db->cfg = cfg;
	db->path = cfg->path;
	db->file_fd = -1;
	db->checkpoint_wanted = CHECKPOINT_NONE;
	db->state = DB_RUNNING;
	db->last_checkpoint_ms = now_ms(CLOCK_REALTIME);
	if ((rc = shadow_init(&db->shadow, cfg->path)) != 0)
		return rc;
	return 0;
}

int db_add_replica(struct db *db, struct replica *r)
{
	struct replica **v = realloc(db->replicas, (db->n_replicas + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	v[db->n_replicas++] = r;
	db->replicas = v;
	return 0;
}

int db_start(struct db *db)
{
	char dir[4096];
	const char *slash = strrchr(db->path, '/');
	int rc;

	snprintf(dir, sizeof(dir), "%.*s", slash && slash != db->path ? (int)(slash - db->path) : 1,
		 slash ? db->path : ".");
	uv_timer_init(db->loop, &db->monitor_timer);
	db->monitor_timer.data = db;
	db->open_handles++;
	if (db->cfg->monitor_interval_ms > 0)
		uv_timer_start(&db->monitor_timer, on_monitor, (uint64_t)db->cfg->monitor_interval_ms,
			       (uint64_t)db->cfg->monitor_interval_ms);
	uv_timer_init(db->loop, &db->pace_timer);
	db->pace_timer.data = db;
	db->open_handles++;
	uv_fs_event_init(db->loop, &db->dir_watch);
	db->dir_watch.data = db;
	db->open_handles++;
	rc = uv_fs_event_start(&db->dir_watch, on_dir_event, dir, 0);
	if (rc != 0)
		LOG_WARN(db->path, NULL, "cannot watch %s (%s); relying on monitor-interval", dir,
			 uv_strerror(rc));
	db_request_sync(db);
	return 0;
}

void db_stop(struct db *db, void (*cb)(struct db *db))
{
	if (db->state != DB_RUNNING)
		return;
	db->stop_cb = cb;
	db->state = DB_STOPPING;
	uv_timer_stop(&db->monitor_timer);
	uv_timer_stop(&db->pace_timer);
	uv_fs_event_stop(&db->dir_watch);
	if (db->job == NULL)
		start_job(db); /* the final sync; on_job_done reports */
}

static void on_handle_closed(uv_handle_t *h)
{
	struct db *db = h->data;

	if (--db->open_handles == 0 && db->job == NULL) {
		db->state = DB_CLOSED;
		if (db->close_cb)
			db->close_cb(db);
	}
}

static void on_close_job_done(uv_work_t *req, int status)
{
	struct db_job *job = req->data;
	struct db *db = job->db;

	free(job);
	db->job = NULL;
	db->open = false;
	uv_close((uv_handle_t *)&db->monitor_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->pace_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->dir_watch, on_handle_closed);
}

void db_close(struct db *db, void (*cb)(struct db *db))
{
	struct db_job *job;

	db->close_cb = cb;
	db->state = DB_CLOSING;
	if (db->job != NULL)
		return; /* on_job_done() comes back here once the job is over */
	job = calloc(1, sizeof(*job));
	if (job != NULL) {
		job->req.data = job;
		job->db = db;
		job->close = true;
		db->job = job;
		if (uv_queue_work(db->loop, &job->req, on_job_work, on_close_job_done) == 0)
			return;
		db->job = NULL;
		free(job);
	}
	/* No memory or no threadpool: close here; nothing else runs now. */
	close_conns(db);
	uv_close((uv_handle_t *)&db->monitor_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->pace_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->dir_watch, on_handle_closed);
}

void db_free(struct db *db)
{
	free(db->image_path);
	shadow_close(&db->shadow);
	free(db->replicas);
	db->replicas = NULL;
}
