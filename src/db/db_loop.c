/*
 * One watched database, the loop side: starts the sync jobs (one at a
 * time, paced), takes their results in the after-work callback and
 * publishes them to the subscribers, queues what replicas and the control
 * server ask for (a sync, a checkpoint, an image, a new generation) into
 * the next job, and runs the lifecycle (start, the final sync at stop,
 * close). See db.h; the job itself is db.c.
 */
#include "db/db_internal.h"
#include "util/clock.h"

#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/*
 * Syncs start at most this often: a lone commit is copied at once, a
 * burst of them (each commit raises fs events) every few milliseconds in
 * one job, which spares the loop and the threadpool a hand-over and the
 * WAL a read per commit. Replicas ship at most every SHIP_MIN_GAP_MS
 * (replica.c) anyway.
 */
#define SYNC_MIN_GAP_MS 5

static void start_job(struct db *db);
static void on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status);

/*
 * Paused watcher. Every write() of the application to its WAL (two per
 * frame) and every page our own checkpoint writes into the database file
 * raise an inotify event, and each woke the loop: thousands a second
 * under a bulk load, about a third of the sidecar's CPU, all for a sync
 * that was already running or asked for. So the directory watcher stops
 * while a job runs and starts again when it ends; then what it may have
 * missed in between is looked for: after a job that copied frames,
 * another job runs anyway (the writer is active, group shipping); after
 * one that copied nothing, the WAL's print (db_wal_print(): its size,
 * time, inode, header and the frame header where the shadow ended) is
 * compared with the one the job took before it read the WAL, and any
 * difference asks for a sync. The watcher starts before that print is
 * read, so a write after the read raises an event.
 * (A print taken as the job ended would miss a commit that came after
 * the job's read: a test found that under load.)
 */
static void watch_pause(struct db *db)
{
	if (db->watch_dir == NULL || !db->open || !uv_is_active((uv_handle_t *)&db->dir_watch))
		return;
	uv_fs_event_stop(&db->dir_watch);
	db->watch_paused = true;
}

/* Starts the watcher again after a job; true when the WAL moved meanwhile. */
static bool watch_resume(struct db *db, const struct db_job *job)
{
	struct wal_print now;

	if (!db->watch_paused)
		return false;
	db->watch_paused = false;
	if (db->state != DB_RUNNING)
		return false;
	if (uv_fs_event_start(&db->dir_watch, on_dir_event, db->watch_dir, 0) != 0)
		return true; /* the monitor tick is left; this sync costs nothing */
	if (job->copied > 0 || job->rc != 0)
		return job->copied > 0; /* another job comes anyway, or the retry */
	/* Also when the WAL was missing: one that appeared is news. */
	db_wal_print(db, job->wal_print.end, &now);
	return memcmp(&now, &job->wal_print, sizeof(now)) != 0;
}

static void publish(struct db *db, struct db_job *job)
{
	bool moved = !db->pos_valid || strcmp(db->pos.generation, job->pos.generation) != 0 ||
		     db_pos_cmp(&db->pos, &job->pos) != 0;

	db->pos = job->pos;
	db->pos_valid = true;
	db->page_size = job->page_size;
	db->wal_backfilled = job->wal_backfilled;
	db->spare_open = job->spare_open;
	/* Any other job reads the WAL-index again: its pages are back. */
	db->rested = job->rest && job->copied == 0 && job->rc == 0;
	if (job->copied > 0)
		db->last_active_ms = clock_mono_ms();
	db->stats.db_size = job->db_size;
	db->stats.wal_size = job->wal_size;
	db->stats.total_wal_bytes += job->copied;
	db->stats.last_sync_ms = clock_wall_ms();
	if (job->generation_started) {
		struct db_event gen = {DB_EVENT_GENERATION, db, &db->pos, false};
		db->stats.generations_started++;
		db_dispatch(db, &gen);
	}
	struct db_event ev = {DB_EVENT_POSITION, db, &db->pos, moved};
	db_dispatch(db, &ev);
}

static void record_checkpoint(struct db *db, struct db_job *job)
{
	enum db_checkpoint_mode m = job->checkpointed;

	if (m == CHECKPOINT_NONE)
		return;
	db->stats.checkpoint_count[m]++;
	db->stats.checkpoint_seconds[m] += job->checkpoint_seconds;
	if (job->checkpoint_rc == 0) {
		db->last_checkpoint_ms = clock_wall_ms();
		return;
	}
	db->stats.checkpoint_error_count[m]++;
	if (job->checkpoint_rc == -EBUSY)
		LOG_DEBUG_ERR(db->path, NULL, job->err, "checkpoint %s: database busy, retrying later",
			      db_checkpoint_mode_name(m));
	else
		LOG_ERROR_ERR(db->path, NULL, job->err, "checkpoint %s", db_checkpoint_mode_name(m));
}

/* A failed sync is retried every second: its first failure is logged at
 * once, later ones once a minute (the others at debug level). A busy
 * database is a moment's wait, not a fault: logged each time, as before. */
static void log_sync_failure(struct db *db, const struct db_job *job)
{
	uint64_t held = 0;
	char note[96];

	if (job->rc == -EBUSY) {
		LOG_WARN_ERR(db->path, NULL, job->err, "sync: database busy, retrying");
	} else if (!log_throttle_failure(&db->sync_failure_log, clock_mono_ms(), &held)) {
		LOG_DEBUG_ERR(db->path, NULL, job->err, "sync");
	} else {
		log_throttle_held_note(held, note, sizeof(note));
		LOG_ERROR_ERR(db->path, NULL, job->err, "sync%s", note);
	}
}

static void log_sync_success(struct db *db)
{
	uint64_t failures;
	int64_t ms;
	char note[96];

	if (!log_throttle_success(&db->sync_failure_log, clock_mono_ms(), &failures, &ms))
		return;
	log_throttle_run_note(failures, ms, note, sizeof(note));
	LOG_INFO(db->path, NULL, "sync working again after %s", note);
}

static void turn_at(struct db *db, int64_t ms);

static void on_job_done(uv_work_t *req, int status)
{
	struct db_job *job = req->data;
	struct db *db = job->db;

	db->job = NULL;
	if (watch_resume(db, job))
		db->sync_wanted = true;
	if (job->close) {
		free(job);
		db->open = false;
		return;
	}
	if (job->removed) {
		struct db_event ev = {DB_EVENT_REMOVED, db, NULL, false};
		db->open = false;
		db->pos_valid = false;
		LOG_WARN(db->path, NULL, "database removed; waiting for it to come back");
		db_dispatch(db, &ev);
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
		db->retry_at_ms = clock_mono_ms() + 1000;
		db->stats.sync_error_count++;
		snprintf(db->stats.last_error, sizeof(db->stats.last_error), "%s", job->err);
		log_sync_failure(db, job);
	} else if (!job->waiting) {
		log_sync_success(db);
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
	db_snapshot_job_done(db);
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
	db->last_start_ms = clock_mono_ms();
	job->final = db->state == DB_STOPPING;
	job->requested = db->checkpoint_wanted;
	job->checkpointed = CHECKPOINT_NONE; /* calloc's 0 is CHECKPOINT_PASSIVE */
	job->may_checkpoint = db_checkpoint_allowed(db);
	job->rest = db->rest_wanted;
	db->rest_wanted = false;
	job->last_checkpoint_ms = db->last_checkpoint_ms;
	snprintf(job->new_generation_reason, sizeof(job->new_generation_reason), "%s",
		 db->new_generation_reason);
	if (!job->final)
		job->housekeeping = db_plan_housekeeping(db, job);
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
	rc = uv_queue_work(db->loop, &job->req, db_job_work, on_job_done);
	if (rc != 0) {
		LOG_ERROR_ERR(db->path, NULL, uv_strerror(rc), "cannot queue sync");
		free(job);
		return;
	}
	db->job = job;
	watch_pause(db);
}

static void on_turn(uv_timer_t *t);

/* The next sync in ms from now, unless one is due sooner already. */
static void turn_at(struct db *db, int64_t ms)
{
	int64_t due = clock_mono_ms() + ms;

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
	int64_t now = clock_mono_ms(), wait;

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

/* What a monitor tick compares of a file. */
static void file_id(const char *path, struct db_file_id *out)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (stat(path, &st) == 0) {
		out->ino = st.st_ino;
		out->size = st.st_size;
		out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
}

/*
 * The WAL at every tick, the database file when the WAL changed or at
 * every DB_STAT_TICKS-th tick (a stat is a syscall, 1-2 us here, the most
 * of an idle database's cost). A commit always reaches the WAL; the file
 * alone changes by a checkpoint (nothing to ship) or by being replaced,
 * which the directory's watcher reports at once: this is the net under a
 * lost event.
 */
#define DB_STAT_TICKS 10

static void files_stat(struct db *db, struct db_files_stat *out)
{
	char wal[4096];

	snprintf(wal, sizeof(wal), "%s-wal", db->path);
	file_id(wal, &out->wal);
	if (db->monitor_seen_valid && ++db->monitor_file_skips < DB_STAT_TICKS &&
	    memcmp(&out->wal, &db->monitor_seen.wal, sizeof(out->wal)) == 0) {
		out->db = db->monitor_seen.db;
		return;
	}
	db->monitor_file_skips = 0;
	file_id(db->path, &out->db);
}

/*
 * The monitor tick is the safety net under the fs events. A database
 * whose file and WAL have not changed (stat: inode, size, mtime in
 * nanoseconds) since the last tick's sync asked for one costs a stat of
 * its WAL (files_stat()), not a sync job on the threadpool: a thousand idle databases
 * would otherwise wake the threadpool a thousand times a second. Still
 * synced: one that changed, one with requests pending, a failed one
 * retrying, and one whose WAL holds frames not yet backfilled while its
 * checkpoint-interval may have passed (the job decides). One idle for
 * REST_IDLE_TICKS intervals gets one job that puts it at rest: it closes
 * the spare read connection and drops the WAL-index pages from our
 * resident memory (db_conn_shm_release()); another comes only after some
 * other job read the database again.
 *
 * The ticks of all databases fall on the same instant of the interval (a
 * multiple of it on the loop's clock), also for those added at runtime:
 * the loop wakes once a second for a thousand databases, not a thousand
 * times (each wake-up costs more than the stat pair; measured: 0.8 % of a
 * core with one instant, 1.3 % with ten).
 */
#define REST_IDLE_TICKS 10

static uint64_t monitor_first_delay(const struct db *db, uint64_t every)
{
	return every - uv_now(db->loop) % every;
}

static void on_monitor(uv_timer_t *t)
{
	struct db *db = t->data;
	struct db_files_stat now;
	int64_t interval = db->cfg->checkpoint_interval_ms;

	files_stat(db, &now);
	if (db->monitor_seen_valid && memcmp(&now, &db->monitor_seen, sizeof(now)) == 0 &&
	    db->stats.last_error[0] == '\0' && !db->sync_wanted &&
	    db->checkpoint_wanted == CHECKPOINT_NONE && db->new_generation_reason[0] == '\0' &&
	    db->image_path == NULL &&
	    (now.wal.size <= 32 || interval <= 0 || db->wal_backfilled ||
	     clock_wall_ms() - db->last_checkpoint_ms < interval)) {
		db->stats.idle_ticks++;
		if ((db->spare_open || !db->rested) &&
		    clock_mono_ms() - db->last_active_ms >= REST_IDLE_TICKS * db->cfg->monitor_interval_ms) {
			db->rest_wanted = true;
			db_request_sync(db);
		}
		return;
	}
	db->monitor_seen = now;
	db->monitor_seen_valid = true;
	db_request_sync(db);
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
	db->last_checkpoint_ms = clock_wall_ms();
	db->last_active_ms = clock_mono_ms();
	if ((rc = shadow_init(&db->shadow, cfg->path)) != 0)
		return rc;
	if ((db->tmp_dir = shadow_tmp_dir(&db->shadow)) == NULL) {
		shadow_close(&db->shadow);
		return -ENOMEM;
	}
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
	if (db->cfg->monitor_interval_ms > 0) {
		uint64_t every = (uint64_t)db->cfg->monitor_interval_ms;
		uv_timer_start(&db->monitor_timer, on_monitor, monitor_first_delay(db, every), every);
	}
	uv_timer_init(db->loop, &db->turn_timer);
	db->turn_timer.data = db;
	db->open_handles++;
	uv_fs_event_init(db->loop, &db->dir_watch);
	db->dir_watch.data = db;
	db->open_handles++;
	/* A [dir]'s database hears from its directory's one watcher. */
	rc = db->cfg->dir_events ? 0 : uv_fs_event_start(&db->dir_watch, on_dir_event, dir, 0);
	if (rc == 0 && !db->cfg->dir_events)
		db->watch_dir = strdup(dir); /* NULL (no memory): never paused, only watched */
	if (rc != 0)
		LOG_FIELDS_AT(LOG_LEVEL_WARN, db->path, NULL, NULL, uv_strerror(rc),
			      "cannot watch %s; relying on monitor-interval", dir);
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
		if (uv_queue_work(db->loop, &job->req, db_job_work, on_close_job_done) == 0)
			return;
		db->job = NULL;
		free(job);
	}
	/* No memory or no threadpool: close here; nothing else runs now. */
	db_job_close_now(db);
	uv_close((uv_handle_t *)&db->monitor_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->turn_timer, on_handle_closed);
	uv_close((uv_handle_t *)&db->dir_watch, on_handle_closed);
}

void db_free(struct db *db)
{
	free(db->image_path);
	db->image_path = NULL;
	free(db->tmp_dir);
	db->tmp_dir = NULL;
	free(db->watch_dir);
	db->watch_dir = NULL;
	shadow_close(&db->shadow);
	free(db->replicas);
	db->replicas = NULL;
	free(db->subs);
	db->subs = NULL;
	db->n_subs = 0;
	db_snapshot_forget(db);
}

/* ---- what readers see ------------------------------------------------------ */

bool db_position(const struct db *db, struct db_pos *out)
{
	*out = db->pos;
	return db->pos_valid;
}

const char *db_path(const struct db *db)
{
	return db->path;
}

char *db_shadow_path(const struct db *db, const char *generation, uint32_t index)
{
	return shadow_file_path(&db->shadow, generation, index);
}

char *db_generation_dir(const struct db *db, const char *generation)
{
	return shadow_generation_dir(&db->shadow, generation);
}

int64_t db_shadow_size(const struct db *db, const char *generation, uint32_t index)
{
	return shadow_index_size(&db->shadow, generation, index);
}

const char *db_tmp_dir(const struct db *db)
{
	return db->tmp_dir;
}

int db_file_fd(const struct db *db)
{
	return db->conn.file_fd;
}
