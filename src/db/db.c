/*
 * One watched database, the threadpool side: the sync job that opens the
 * database, copies the WAL into the shadow WAL, checkpoints and removes
 * shipped shadow files (see db.h). It touches only its struct db_job, the
 * job-owned fields of struct db and the shadow; db_loop.c schedules it and
 * reads its outputs.
 */
#include "db/db_internal.h"
#include "util/clock.h"

#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long the forced checkpoint waits for the write lock. */
#define BUSY_FORCED_LOCK_MS 5000


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

const char *db_pos_format(const struct db_pos *p, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%08x:%llu", p->generation, p->index, (unsigned long long)p->offset);
	return buf;
}

/* ---- SQLite side (job thread) ---------------------------------------- */

/*
 * Checkpoints, and why the WAL stays small without our ever writing to the
 * database or taking its write lock (but for the forced checkpoint).
 *
 * SQLite restarts the WAL (the next write starts again at its beginning)
 * only when a writer begins on a fully backfilled WAL and no reader holds
 * a read mark above 0 (walRestartLog in SQLite's wal.c); a reader that
 * begins on a fully backfilled WAL takes mark 0 and reads the database
 * file alone, which lets the restart happen and keeps every checkpoint
 * out until that reader moves on. So a checkpoint here is:
 *
 *   1. the shadow WAL already holds everything our read transaction sees
 *      (advance(): the next read transaction begins, the new frames are
 *      copied, the last one ends), so backfilling up to our read mark
 *      puts nothing in the database file the shadow does not have;
 *   2. a PASSIVE checkpoint on a connection without a transaction
 *      backfills up to our mark, never blocking the application;
 *   3. advance() again: if the WAL is now fully backfilled (no commit came
 *      in meanwhile) our new read transaction takes mark 0 and the
 *      application's next write restarts the WAL, which the shadow WAL
 *      follows into its next index (shadow.c, "complete index"); if a
 *      commit came in, our mark moves up to it and a second round
 *      backfills the few frames that arrived during the first.
 *
 * A round succeeds when the writer pauses for longer than the round
 * takes. So until the WAL has restarted, rounds are tried again after a
 * pause that doubles from RETRY_MIN_MS to RETRY_ACTIVE_MS while the writer
 * writes (each round backfills what came since the last, which keeps the
 * next one short) and to RETRY_MAX_MS once it stopped; and a job runs
 * QUIET_MS after a commit that no other followed: the writer paused, and a
 * round now (short, as the last one was at most RETRY_ACTIVE_MS ago)
 * usually ends before its next transaction begins, which then restarts
 * the WAL. Only at max-checkpoint-page-count, against a writer that never
 * pauses long enough, does the forced checkpoint take the write lock
 * (forced_round()).
 */

#define PASSIVE_ROUNDS 2
#define RETRY_MIN_MS 10
#define RETRY_ACTIVE_MS 100
#define RETRY_MAX_MS 1000
#define QUIET_MS 2

static void note_sync(struct db_job *job, const struct shadow_sync_result *r)
{
	job->copied += r->copied;
	job->wal_size = r->wal_size;
	if (r->new_generation) {
		job->generation_started = true;
		job->sync = *r;
	}
}

/* job->err: what failed, naming the shadow WAL file (a full disk or an I/O
 * error there is the operator's to fix, so the message says where). */
static void shadow_error(struct db *db, struct db_job *job, const char *what, int rc)
{
	const struct shadow *sh = &db->shadow;
	char *path = sh->generation[0] != '\0' ? shadow_file_path(sh, sh->generation, sh->index) : NULL;

	snprintf(job->err, sizeof(job->err), "%s %s: %s", what, path != NULL ? path : sh->meta_dir,
		 strerror(-rc));
	free(path);
}

static int sync_shadow(struct db *db, struct db_job *job)
{
	struct shadow_sync_result r;
	int rc = shadow_sync(&db->shadow, &r);

	if (rc == 0)
		note_sync(job, &r);
	else if (job->err[0] == '\0')
		shadow_error(db, job, "copy the WAL into the shadow wal", rc);
	return rc;
}

/*
 * Moves our read transaction up to the newest snapshot without a moment
 * of letting go: the next one begins, what it sees is copied, and only
 * then does the last one end (db_conn.h).
 */
static int advance(struct db *db, struct db_job *job)
{
	int rc = db_conn_read_take(&db->conn, job->err, sizeof(job->err));

	if (rc == -EBUSY) {
		job->err[0] = '\0'; /* keep the one we hold; copy anyway */
		return sync_shadow(db, job);
	}
	if (rc != 0)
		return rc;
	rc = sync_shadow(db, job);
	db_conn_read_settle(&db->conn, rc == 0);
	return rc;
}

static uint64_t shadow_frames(const struct db *db)
{
	uint64_t frame = WAL_FRAME_HEADER_SIZE + (uint64_t)db->shadow.hdr.page_size;

	return db->shadow.size > WAL_HEADER_SIZE ? (db->shadow.size - WAL_HEADER_SIZE) / frame : 0;
}

static enum db_checkpoint_mode checkpoint_due(struct db *db, struct db_job *job)
{
	const struct db_config *cfg = db->cfg;
	uint64_t frames = shadow_frames(db);
	struct stat st;

	if (job->requested != CHECKPOINT_NONE)
		return job->requested;
	if (db->checkpoint_pending && db->shadow.index != db->checkpoint_index) {
		/* The WAL restarted: the next checkpoint waits for new frames. */
		db->checkpoint_pending = false;
		db->checkpoint_backoff_ms = 0;
		db->forced_retry_ms = 0;
	}
	/* The bound holds whatever the pacing: forced rounds 100 ms apart. */
	if (cfg->max_checkpoint_page_count > 0 && frames >= (uint64_t)cfg->max_checkpoint_page_count &&
	    clock_mono_ms() >= db->forced_retry_ms)
		return CHECKPOINT_RESTART;
	if (db->checkpoint_pending && clock_mono_ms() < db->checkpoint_retry_ms && !job->writer_paused)
		return CHECKPOINT_NONE;
	if (frames >= (uint64_t)cfg->min_checkpoint_page_count || (db->checkpoint_pending && frames > 0))
		return CHECKPOINT_PASSIVE;
	/* An idle WAL that the last round backfilled whole: nothing to do. */
	if (cfg->checkpoint_interval_ms > 0 && frames > 1 && !db->shadow.complete && stat(db->path, &st) == 0) {
		int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		int64_t last = mtime > job->last_checkpoint_ms ? mtime : job->last_checkpoint_ms;
		if (clock_wall_ms() - last >= cfg->checkpoint_interval_ms)
			return CHECKPOINT_PASSIVE;
	}
	return CHECKPOINT_NONE;
}

/*
 * One round: steps 2 and 3 of the comment above. spin: the write lock is
 * held, so the application's own checkpoint (which makes ours answer BUSY
 * at once) ends soon: try again until the deadline.
 */
static int passive_round(struct db *db, struct db_job *job, bool spin, bool *complete, int *done_out)
{
	int log = 0, done = 0, rc;

	/* What SQLite may reuse once backfilled should be on disk (shadow.c). */
	if ((rc = shadow_flush(&db->shadow)) != 0) {
		shadow_error(db, job, "fsync shadow wal", rc);
		return rc;
	}
	for (;;) {
		rc = db_conn_checkpoint(&db->conn, &log, &done, job->err, sizeof(job->err));
		if (rc != -EBUSY || !spin || clock_mono_ms() >= db->conn.busy_deadline_ms)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	if (rc != 0)
		return rc;
	LOG_DEBUG(db->path, NULL, "checkpoint: %d of %d frames backfilled", done, log);
	if (done_out != NULL)
		*done_out = done;
	*complete = log > 0 && done == log;
	if (*complete)
		shadow_mark_backfilled(&db->shadow, (uint64_t)log);
	return advance(db, job);
}

/*
 * The write lock, for as long as the last frames take (see above): the
 * bulk of the backfill runs before it, waiting out the application's own
 * checkpoint if one is running, in unlocked rounds until few frames are
 * left or they stop shrinking (a writer of large transactions), so that
 * under the lock only the last commits are backfilled. If the writer
 * committed a transaction larger than those just before we got the lock,
 * let go at once and backfill it unlocked first, once: a writer without a
 * busy timeout sees SQLITE_BUSY for every moment we hold the lock. But
 * the bound comes first: past 1.5 x max-checkpoint-page-count the lock is
 * taken at once.
 */
#define FORCED_ROUNDS 2
#define FORCED_LOCKED_FRAMES 256
#define FORCED_DONE_MS 200

/* Frames the WAL holds beyond what the last round backfilled. */
static uint64_t frames_left(const struct db *db, int done)
{
	uint64_t frames = shadow_frames(db);

	return frames > (uint64_t)done ? frames - (uint64_t)done : 0;
}

/* The WAL is far enough past max-checkpoint-page-count to lock at once. */
static bool far_past_bound(const struct db *db)
{
	uint64_t max = (uint64_t)db->cfg->max_checkpoint_page_count;

	return shadow_frames(db) >= max + max / 2;
}

static int unlocked_rounds(struct db *db, struct db_job *job, uint32_t index, bool *complete, int *done)
{
	uint64_t left = UINT64_MAX;
	int rc;

	for (int u = 0; u < FORCED_ROUNDS && !far_past_bound(db); u++) {
		uint64_t last = left;
		db_conn_busy_for(&db->conn, BUSY_FORCED_LOCK_MS);
		if ((rc = passive_round(db, job, true, complete, done)) != 0 || db->shadow.index != index)
			return rc;
		left = frames_left(db, *done);
		if (left <= FORCED_LOCKED_FRAMES || left > last / 2)
			break;
	}
	return 0;
}

static int forced_round(struct db *db, struct db_job *job, bool *complete)
{
	uint32_t index = db->shadow.index;
	uint64_t left = 0;
	int done = 0, rc;

	for (int t = 0;; t++) {
		if ((rc = unlocked_rounds(db, job, index, complete, &done)) != 0)
			return rc;
		if (db->shadow.index != index)
			return 0; /* the application restarted the WAL meanwhile */
		if (t == 0)
			left = frames_left(db, done);
		db_conn_busy_for(&db->conn, BUSY_FORCED_LOCK_MS);
		if ((rc = db_conn_write_lock(&db->conn, job->err, sizeof(job->err))) != 0)
			return rc;
		if ((rc = advance(db, job)) != 0)
			break;
		if (db->shadow.index != index) {
			*complete = true;
			break;
		}
		if (t > 0 || frames_left(db, done) <= 2 * left + FORCED_LOCKED_FRAMES || far_past_bound(db)) {
			rc = passive_round(db, job, true, complete, NULL);
			break;
		}
		db_conn_write_unlock(&db->conn);
	}
	db_conn_write_unlock(&db->conn);
	return rc;
}

/*
 * After a round the WAL restarts only once the application writes after
 * a pause (see above): until the shadow WAL moves to the next index, try
 * again after a pause that doubles from RETRY_MIN_MS to RETRY_ACTIVE_MS
 * (the writer writes: about ten rounds a second, each backfilling what
 * SQLite's own checkpoints would) or RETRY_MAX_MS (it stopped, and a
 * reader of the application's holds old frames: one round a second).
 */
static void checkpoint_paced(struct db *db, bool complete)
{
	int64_t cap = db->wal_growing ? RETRY_ACTIVE_MS : RETRY_MAX_MS;

	db->checkpoint_pending = true;
	db->checkpoint_complete = complete;
	db->checkpoint_index = db->shadow.index;
	db->checkpoint_backoff_ms = db->checkpoint_backoff_ms == 0 ? RETRY_MIN_MS
				    : db->checkpoint_backoff_ms * 2 > cap ? cap
				    : db->checkpoint_backoff_ms * 2;
	db->checkpoint_retry_ms = clock_mono_ms() + db->checkpoint_backoff_ms;
}

static int checkpoint(struct db *db, struct db_job *job, enum db_checkpoint_mode mode)
{
	bool complete = false;
	/* Step 1: our mark up to the newest commit (it may rest on mark 0). */
	int rc = advance(db, job);

	for (int i = 0; i < PASSIVE_ROUNDS && !complete && rc == 0 && mode == CHECKPOINT_PASSIVE; i++)
		rc = passive_round(db, job, false, &complete, NULL);
	/*
	 * A complete PASSIVE round is no proof that the WAL will restart: a
	 * writer that never pauses is inside its next transaction already,
	 * on a read mark above 0, and appends. At the bound only the write
	 * lock makes its next transaction begin on the backfilled WAL.
	 */
	if (rc == 0 && mode != CHECKPOINT_PASSIVE) {
		rc = forced_round(db, job, &complete);
		/* Complete: the writer's next transaction restarts the WAL, which
		 * the shadow sees a moment later: no second lock meanwhile. A
		 * reader of the application's holds old frames: pause briefly. */
		db->forced_retry_ms = clock_mono_ms() + (complete ? FORCED_DONE_MS : 100);
	}
	checkpoint_paced(db, complete);
	return rc;
}

static void job_fill_pos(struct db *db, struct db_job *job)
{
	struct stat st;

	snprintf(job->pos.generation, sizeof(job->pos.generation), "%s", db->shadow.generation);
	job->pos.index = db->shadow.index;
	job->pos.offset = db->shadow.size;
	job->wal_backfilled = db->shadow.complete;
	if (stat(db->path, &st) == 0)
		job->db_size = (uint64_t)st.st_size;
	/* Complete: the application's next write restarts the WAL and wakes us;
	 * a writer that just committed is looked at again QUIET_MS later. */
	if (db->checkpoint_pending && (!db->checkpoint_complete || db->wal_growing)) {
		job->retry_in_ms = db->checkpoint_retry_ms - clock_mono_ms();
		if (db->wal_growing && job->retry_in_ms > QUIET_MS)
			job->retry_in_ms = QUIET_MS;
	}
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

/* The database file, through our descriptor (see file_fd in db_conn.h). */
static int copy_image(struct db *db, const char *path)
{
	struct stat st;
	int out, rc;

	if (fstat(db->conn.file_fd, &st) != 0)
		return -errno;
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	rc = fs_copy_range(db->conn.file_fd, 0, (uint64_t)st.st_size, out);
	if (close(out) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void close_conns(struct db *db)
{
	db_conn_close(&db->conn);
	shadow_forget(&db->shadow);
}

/* Opens the database if it is there; false when the job has nothing to do. */
static bool job_open(struct db *db, struct db_job *job)
{
	int rc;

	if (db_conn_is_open(&db->conn) && access(db->path, F_OK) != 0 && errno == ENOENT) {
		/* Removed under us: let go of it and wait for it to come back. */
		close_conns(db);
		job->removed = true;
	}
	if (!db_conn_is_open(&db->conn)) {
		if (!looks_created(db->path)) {
			job->waiting = true;
			return false;
		}
		if ((rc = db_conn_open(&db->conn, job->err, sizeof(job->err))) != 0) {
			job->rc = rc;
			return false;
		}
		job->opened = true;
	} else if ((rc = db_conn_read_hold(&db->conn, job->err, sizeof(job->err))) != 0) {
		job->rc = rc;
		return false;
	}
	return true;
}

/* Copies what was committed (or starts the generation a replica asked for). */
static int job_sync(struct db *db, struct db_job *job)
{
	struct shadow_sync_result r;
	int rc;

	if (job->new_generation_reason[0] != '\0') {
		if ((rc = shadow_new_generation(&db->shadow, job->new_generation_reason, &r)) == 0)
			note_sync(job, &r);
	} else {
		/*
		 * The read mark stays where it is between checkpoints: the frames
		 * are read from the WAL file, not through SQLite, and a mark that
		 * does not move (best: mark 0, where the last checkpoint left it)
		 * keeps the application's own checkpoints from doing anything, so
		 * that only ours do, at our pace (and none runs while a snapshot
		 * reads the file: may_checkpoint).
		 */
		rc = sync_shadow(db, job);
	}
	if (rc != 0 && job->err[0] == '\0')
		snprintf(job->err, sizeof(job->err), "sync: %s", strerror(-rc));
	return rc;
}

static void job_run(struct db *db, struct db_job *job)
{
	int rc;

	if (job->close) {
		close_conns(db);
		return;
	}
	if (!job_open(db, job))
		return;
	db_wal_print(db, db->shadow.size, &job->wal_print);
	if ((rc = job_sync(db, job)) != 0) {
		job->rc = rc;
		return;
	}
	/* Nothing new QUIET_MS after a commit: the writer paused (see above). */
	job->writer_paused = job->copied == 0 && db->wal_growing;
	db->wal_growing = job->copied > 0;
	job->page_size = db->shadow.hdr.page_size ? db->shadow.hdr.page_size : db->conn.page_size;
	if (job->may_checkpoint && !job->final) {
		enum db_checkpoint_mode mode = checkpoint_due(db, job);
		if (mode != CHECKPOINT_NONE) {
			int64_t t0 = clock_mono_ms();
			job->checkpointed = mode;
			job->checkpoint_rc = checkpoint(db, job, mode);
			job->checkpoint_seconds = (double)(clock_mono_ms() - t0) / 1000.0;
		}
	}
	/* Plans were made for the generation the job started in. */
	if (job->housekeeping && !job->generation_started) {
		char *keep[8];
		for (size_t i = 0; i < job->n_keep; i++)
			keep[i] = job->keep[i];
		rc = shadow_remove_shipped(&db->shadow, job->min_index, keep, job->n_keep);
		if (rc != 0)
			LOG_WARN_ERR(db->path, NULL, strerror(-rc), "cannot remove shipped shadow wal files");
	}
	/* At rest (the loop asked): the spare connection goes until it is needed,
	 * and the WAL-index pages leave our resident memory until it is read. */
	if (job->rest && job->copied == 0 && !(db->checkpoint_pending && !db->checkpoint_complete)) {
		db_conn_spare_close(&db->conn);
		db_conn_shm_release(&db->conn);
	}
	job->spare_open = db_conn_spare_open(&db->conn);
	if (job->final && (rc = shadow_flush(&db->shadow)) != 0)
		LOG_WARN_ERR(db->path, NULL, strerror(-rc), "fsync shadow wal");
	job_fill_pos(db, job);
	if (job->image_path != NULL)
		job->image_rc = copy_image(db, job->image_path);
}

/* Opens the -wal only: closing a descriptor of the -shm would drop SQLite's locks. */
void db_wal_print(const struct db *db, uint64_t end, struct wal_print *out)
{
	char wal[4096];
	struct stat st;
	int fd;

	memset(out, 0, sizeof(*out));
	out->end = end;
	snprintf(wal, sizeof(wal), "%s-wal", db->path);
	fd = open(wal, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0) {
		out->exists = true;
		out->ino = st.st_ino;
		out->size = (uint64_t)st.st_size;
		out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		/* Short reads leave zeros, which compare as well as bytes. */
		(void)!pread(fd, out->head, sizeof(out->head), 0);
		if (end >= sizeof(out->head))
			(void)!pread(fd, out->at_end, sizeof(out->at_end), (off_t)end);
	}
	close(fd);
}

/* ---- what the loop side calls ----------------------------------------- */

void db_job_work(uv_work_t *req)
{
	struct db_job *job = req->data;
	int64_t t0 = clock_mono_ms();

	job_run(job->db, job);
	job->seconds = (double)(clock_mono_ms() - t0) / 1000.0;
}

void db_job_close_now(struct db *db)
{
	close_conns(db);
}
