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
 * Syncs start at most this often: a lone commit is copied at once, a
 * burst of them (each commit raises fs events) every few milliseconds in
 * one job, which spares the loop and the threadpool a hand-over and the
 * WAL a read per commit. Replicas ship at most every SHIP_MIN_GAP_MS
 * (replica.c) anyway.
 */
#define SYNC_MIN_GAP_MS 5

/* How long the forced checkpoint waits for the write lock. */
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
	int64_t retry_in_ms;         /* > 0: a checkpoint to try again this much later */
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
 * Until the WAL has restarted, the rounds are tried again after a short,
 * doubling pause (a writer's pause is when they succeed). Only at
 * max-checkpoint-page-count, against a writer that never pauses, does the
 * forced checkpoint take the write lock, for as long as copying and
 * backfilling the frames since the last round takes.
 */

#define PASSIVE_ROUNDS 2
#define RETRY_MIN_MS 10
#define RETRY_MAX_MS 1000

static void note_sync(struct db_job *job, const struct shadow_sync_result *r)
{
	job->copied += r->copied;
	job->wal_size = r->wal_size;
	if (r->new_generation) {
		job->generation_started = true;
		job->sync = *r;
	}
}

static int sync_shadow(struct db *db, struct db_job *job)
{
	struct shadow_sync_result r;
	int rc = shadow_sync(&db->shadow, &r);

	if (rc == 0)
		note_sync(job, &r);
	else if (job->err[0] == '\0')
		snprintf(job->err, sizeof(job->err), "sync shadow wal: %s", strerror(-rc));
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
	}
	/* The bound holds whatever the pacing: forced rounds 100 ms apart. */
	if (cfg->max_checkpoint_page_count > 0 && frames >= (uint64_t)cfg->max_checkpoint_page_count &&
	    now_ms(CLOCK_MONOTONIC) >= db->forced_retry_ms)
		return CHECKPOINT_RESTART;
	if (db->checkpoint_pending && now_ms(CLOCK_MONOTONIC) < db->checkpoint_retry_ms)
		return CHECKPOINT_NONE;
	if (frames >= (uint64_t)cfg->min_checkpoint_page_count || (db->checkpoint_pending && frames > 0))
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
 * One round: steps 2 and 3 of the comment above. spin: the write lock is
 * held, so the application's own checkpoint (which makes ours answer BUSY
 * at once) ends soon: try again until the deadline.
 */
static int passive_round(struct db *db, struct db_job *job, bool spin, bool *complete)
{
	int log = 0, done = 0, rc;

	/* What SQLite may reuse once backfilled should be on disk (shadow.c). */
	if ((rc = shadow_flush(&db->shadow)) != 0) {
		snprintf(job->err, sizeof(job->err), "fsync shadow wal: %s", strerror(-rc));
		return rc;
	}
	for (;;) {
		rc = db_conn_checkpoint(&db->conn, &log, &done, job->err, sizeof(job->err));
		if (rc != -EBUSY || !spin || now_ms(CLOCK_MONOTONIC) >= db->conn.busy_deadline_ms)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	if (rc != 0)
		return rc;
	LOG_DEBUG(db->path, NULL, "checkpoint: %d of %d frames backfilled", done, log);
	*complete = log > 0 && done == log;
	if (*complete)
		shadow_mark_backfilled(&db->shadow, (uint64_t)log);
	return advance(db, job);
}

/* The write lock, for as long as the last frames take (see above). */
static int forced_round(struct db *db, struct db_job *job, bool *complete)
{
	int rc;

	db_conn_busy_for(&db->conn, BUSY_FORCED_LOCK_MS);
	if ((rc = db_conn_write_lock(&db->conn, job->err, sizeof(job->err))) != 0)
		return rc;
	if ((rc = advance(db, job)) == 0)
		rc = passive_round(db, job, true, complete);
	db_conn_write_unlock(&db->conn);
	return rc;
}

/*
 * After a round the WAL restarts only once the application writes after
 * a pause (see above): until the shadow WAL moves to the next index, try
 * again after a pause that doubles from RETRY_MIN_MS to RETRY_MAX_MS, so
 * that a short pause of the writer is caught soon and a writer that never
 * pauses costs about one round a second.
 */
static void checkpoint_paced(struct db *db, bool complete)
{
	db->checkpoint_pending = true;
	db->checkpoint_complete = complete;
	db->checkpoint_index = db->shadow.index;
	db->checkpoint_backoff_ms = db->checkpoint_backoff_ms == 0 ? RETRY_MIN_MS
				    : db->checkpoint_backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
				    : db->checkpoint_backoff_ms * 2;
	db->checkpoint_retry_ms = now_ms(CLOCK_MONOTONIC) + db->checkpoint_backoff_ms;
}

static int checkpoint(struct db *db, struct db_job *job, enum db_checkpoint_mode mode)
{
	bool complete = false;
	int rc = 0;

	for (int i = 0; i < PASSIVE_ROUNDS && !complete && rc == 0; i++)
		rc = passive_round(db, job, false, &complete);
	if (rc == 0 && !complete && mode != CHECKPOINT_PASSIVE) {
		rc = forced_round(db, job, &complete);
		/* A reader of the application's holds old frames: pause briefly. */
		if (!complete)
			db->forced_retry_ms = now_ms(CLOCK_MONOTONIC) + 100;
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
	if (stat(db->path, &st) == 0)
		job->db_size = (uint64_t)st.st_size;
	/* Complete: the application's next write restarts the WAL and wakes us. */
	if (db->checkpoint_pending && !db->checkpoint_complete)
		job->retry_in_ms = db->checkpoint_retry_ms - now_ms(CLOCK_MONOTONIC);
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
	if ((rc = job_sync(db, job)) != 0) {
		job->rc = rc;
		return;
	}
	job->page_size = db->shadow.hdr.page_size ? db->shadow.hdr.page_size : db->conn.page_size;
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

static void turn_at(struct db *db, int64_t ms);

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
	int64_t retry_in_ms = job->rc == 0 ? job->retry_in_ms : 0;
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
	else if (retry_in_ms > 0)
		turn_at(db, retry_in_ms);
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

static void on_turn(uv_timer_t *t);

/* The next sync in ms from now, unless one is due sooner already. */
static void turn_at(struct db *db, int64_t ms)
{
	int64_t due = now_ms(CLOCK_MONOTONIC) + ms;

	if (uv_is_active((uv_handle_t *)&db->turn_timer) && db->turn_due_ms <= due)
		return;
	db->turn_due_ms = due;
	uv_timer_start(&db->turn_timer, on_turn, (uint64_t)ms, 0);
}

static void on_turn(uv_timer_t *t)
{
	struct db *db = t->data;

	if (db->state == DB_RUNNING && db->job == NULL)
		start_job(db);
}

/*
 * A commit raises several fs events (the WAL, then the database file when
 * a checkpoint writes it) and each asks for a sync: they meet in one job
 * that starts at the next turn of the loop (or SYNC_MIN_GAP_MS after the
 * last one started), and those that come while a job runs in the one
 * after it (on_job_done). No fixed delay: a lone commit is copied at once.
 */
void db_request_sync(struct db *db)
{
	int64_t now = now_ms(CLOCK_MONOTONIC), wait;

	if (db->state != DB_RUNNING)
		return;
	db->sync_wanted = true;
	/* After a failure, wait a second (the monitor timer comes back). */
	if (db->job != NULL || now < db->retry_at_ms)
		return;
	wait = db->last_start_ms + SYNC_MIN_GAP_MS - now;
	turn_at(db, wait > 0 ? wait : 0);
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
	db_conn_init(&db->conn, cfg->path);
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
	uv_timer_init(db->loop, &db->turn_timer);
	db->turn_timer.data = db;
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
	uv_timer_stop(&db->turn_timer);
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
	uv_close((uv_handle_t *)&db->turn_timer, on_handle_closed);
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
	uv_close((uv_handle_t *)&db->turn_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->dir_watch, on_handle_closed);
}

void db_free(struct db *db)
{
	free(db->image_path);
	shadow_close(&db->shadow);
	free(db->replicas);
	db->replicas = NULL;
}
