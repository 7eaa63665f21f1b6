/*
 * One replica: its lifecycle, the scheduler that decides what to ship
 * next, and errors and retries; see replica.h.
 *
 * Lifecycle (state): WAITING for the database's first position, LOCATING
 * (replica_locate.c), then IDLE or BUSY with one task at a time (task:
 * a segment, a snapshot or its wait for a checkpoint to end, a backoff
 * after a failure, a retention run, a validation's download and
 * comparison), CLOSED at the end. Only replica_step() starts a task, and
 * only from IDLE; every task ends by going back to IDLE and stepping
 * again, so at most one upload is in flight and commits that arrive
 * meanwhile ship together in the next segment. Requests that arrive while
 * busy (a snapshot, retention, validation, the sync-interval tick) are
 * remembered as flags and served by the next step in a fixed order.
 */
#include "replica/replica_internal.h"
#include "util/clock.h"

#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_BASE_MS 500
#define RETRY_MAX_MS 10000
/*
 * Group shipping. One segment is in preparation or in flight at a time,
 * and the commits that arrive meanwhile travel together in the next one.
 * With sync-interval 0 a segment starts as soon as the database moves,
 * but not sooner than this after the previous one started: a lone commit
 * still ships at once, while a writer committing thousands of times a
 * second costs at most 1000/SHIP_MIN_GAP_MS objects (a file created,
 * fsynced and renamed each, for a file replica) a second instead of one
 * per commit, which is what kept the writer's slowdown and the sidecar's
 * CPU down in bench/replicate.py (1,968 segments for 5,000 commits
 * without it).
 */
#define SHIP_MIN_GAP_MS 10

static void on_sync_timer(uv_timer_t *t);
static void notify(struct replica *r);
static void ticker_resume(struct replica *r);

void replica_set_task(struct replica *r, enum replica_task task)
{
	r->task = task;
	if (r->state == REPLICA_CLOSED)
		return;
	if (task != REPLICA_TASK_NONE)
		r->state = REPLICA_BUSY;
	else
		r->state = r->located ? REPLICA_IDLE : REPLICA_WAITING;
}

/* ---- errors and retries ------------------------------------------------ */

static void on_retry(uv_timer_t *t)
{
	struct replica *r = t->data;

	if (r->task == REPLICA_TASK_BACKOFF) {
		replica_set_task(r, REPLICA_TASK_NONE);
		if (r->located)
			replica_step(r);
		else
			notify(r);
	}
}

/* A failure that will be retried: the first of a run at once, then one
 * line a minute (the rest at debug level), so that a fault lasting hours
 * (a full disk, a bucket gone) does not flood the log. */
static void log_failure(struct replica *r, const char *what, const char *err)
{
	uint64_t held = 0;
	char note[96];

	if (!log_throttle_failure(&r->failure_log, clock_mono_ms(), &held)) {
		LOG_DEBUG_ERR(db_path(r->db), r->name, err, "%s", what);
		return;
	}
	log_throttle_held_note(held, note, sizeof(note));
	LOG_ERROR_ERR(db_path(r->db), r->name, err, "%s%s", what, note);
}

void replica_failed(struct replica *r, const char *what, int rc, const char *err)
{
	uint64_t delay;

	r->stats.error_count++;
	if (err == NULL)
		err = strerror(-rc);
	snprintf(r->stats.last_error, sizeof(r->stats.last_error), "%s: %s", what, err);
	if (r->flush_cb != NULL) {
		void (*cb)(struct replica *, int) = r->flush_cb;
		LOG_ERROR_ERR(db_path(r->db), r->name, err, "%s", what);
		r->flush_cb = NULL;
		replica_set_task(r, REPLICA_TASK_NONE);
		cb(r, rc ? rc : -EIO);
		return;
	}
	log_failure(r, what, err);
	r->failures++;
	delay = (uint64_t)RETRY_BASE_MS << (r->failures < 6 ? r->failures - 1 : 5);
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	replica_set_task(r, REPLICA_TASK_BACKOFF); /* notifications wait for the timer */
	uv_timer_start(&r->retry_timer, on_retry, delay, 0);
}

void replica_succeeded(struct replica *r)
{
	uint64_t failures;
	int64_t ms;
	char note[96];

	if (log_throttle_success(&r->failure_log, clock_mono_ms(), &failures, &ms)) {
		log_throttle_run_note(failures, ms, note, sizeof(note));
		LOG_INFO(db_path(r->db), r->name, "replica healthy again after %s", note);
	}
	r->failures = 0;
	r->stats.last_error[0] = '\0';
	r->stats.last_sync_ms = clock_wall_ms();
}

static void compact_subs(struct replica *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_subs; i++)
		if (r->subs[i].cb != NULL)
			r->subs[n++] = r->subs[i];
	r->n_subs = n;
}

void replica_progressed(struct replica *r)
{
	size_t n = r->n_subs;

	r->dispatching++;
	for (size_t i = 0; i < n; i++) {
		struct replica_subscriber s = r->subs[i];
		if (s.cb != NULL)
			s.cb(s.arg, r);
	}
	if (--r->dispatching == 0)
		compact_subs(r);
}

int replica_subscribe(struct replica *r, replica_progress_cb cb, void *arg)
{
	struct replica_subscriber *v = realloc(r->subs, (r->n_subs + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	v[r->n_subs].cb = cb;
	v[r->n_subs].arg = arg;
	r->subs = v;
	r->n_subs++;
	return 0;
}

void replica_unsubscribe(struct replica *r, replica_progress_cb cb, void *arg)
{
	for (size_t i = 0; i < r->n_subs; i++)
		if (r->subs[i].cb == cb && r->subs[i].arg == arg)
			r->subs[i].cb = NULL;
	if (r->dispatching == 0)
		compact_subs(r);
}

/* ---- deciding what to ship next ---------------------------------------- */

static void caught_up(struct replica *r)
{
	r->stats.behind_since_ms = 0;
	if (r->flush_cb != NULL) {
		void (*cb)(struct replica *, int) = r->flush_cb;
		r->flush_cb = NULL;
		cb(r, 0);
	}
}

/* The replica holds more than the local shadow WAL: start over. */
static void ahead(struct replica *r, const char *where)
{
	char pos[DB_POS_STR_MAX];

	db_pos_format(&r->pos, pos, sizeof(pos));
	LOG_ERROR_POS(db_path(r->db), r->name, pos,
		      "replica is ahead of the local shadow wal at %s (%s); starting a new generation",
		      pos, where);
	r->pos.generation[0] = '\0';
	db_request_new_generation(r->db, "replica ahead of the local shadow wal");
}

/*
 * The replica is at the database's current index d->index: ship what is
 * new there, at the pace sync-interval (or SHIP_MIN_GAP_MS) sets.
 */
static void ship_current(struct replica *r, const struct db_pos *d)
{
	if (r->pos.index > d->index || r->pos.offset > d->offset) {
		ahead(r, "current index");
		return;
	}
	if (r->pos.offset >= d->offset) {
		caught_up(r);
		return;
	}
	/* A positive sync-interval ships the current index only on its tick. */
	if (r->cfg->sync_interval_ms > 0 && r->flush_cb == NULL && !r->tick)
		return;
	if (r->cfg->sync_interval_ms == 0 && r->flush_cb == NULL) {
		int64_t since = clock_mono_ms() - r->last_ship_ms;
		if (since < SHIP_MIN_GAP_MS) {
			if (!uv_is_active((uv_handle_t *)&r->sync_timer))
				uv_timer_start(&r->sync_timer, on_sync_timer,
					       (uint64_t)(SHIP_MIN_GAP_MS - since), 0);
			return;
		}
	}
	replica_ship_segment(r, d->offset);
}

/*
 * Walks from the replica's position to the database's d: the rest of a
 * sealed index first, then the next index, a snapshot when the replica has
 * nothing in a generation (or lost its place), the current index last.
 */
static void ship_next(struct replica *r, const struct db_pos *d)
{
	for (;;) {
		bool same_gen = strcmp(r->pos.generation, d->generation) == 0;
		int64_t end;

		if (r->pos.generation[0] == '\0') {
			replica_ship_snapshot(r);
			return;
		}
		if (same_gen && r->pos.index >= d->index) {
			ship_current(r, d);
			return;
		}
		/* An earlier, sealed index of this generation, or another generation. */
		end = db_shadow_size(r->db, r->pos.generation, r->pos.index);
		if (end < 0) {
			LOG_WARN(db_path(r->db), r->name, "shadow wal %s/%08x is gone; taking a snapshot",
				 r->pos.generation, r->pos.index);
			r->pos.generation[0] = '\0';
			continue;
		}
		if ((uint64_t)end > r->pos.offset) {
			replica_ship_segment(r, (uint64_t)end);
			return;
		}
		if ((uint64_t)end < r->pos.offset) {
			if (same_gen) {
				ahead(r, "sealed index");
				return;
			}
			r->pos.generation[0] = '\0';
			continue;
		}
		if (same_gen || db_shadow_size(r->db, r->pos.generation, r->pos.index + 1) >= 0) {
			r->pos.index++;
			r->pos.offset = 0;
			continue;
		}
		/* The old generation is fully shipped: move to the current one. */
		r->pos.generation[0] = '\0';
	}
}

void replica_step(struct replica *r)
{
	struct db_pos d;

	if (r->state != REPLICA_IDLE)
		return;
	if (!db_position(r->db, &d)) {
		/* The database file was removed: what its last syncs published has
		 * been shipped or cannot be any more; a flush has nothing to wait for. */
		if (r->flush_cb != NULL)
			caught_up(r);
		return;
	}
	if (r->retention_wanted && r->flush_cb == NULL) {
		replica_retention_start(r);
		return;
	}
	if (r->validation_wanted && r->flush_cb == NULL)
		replica_validation_start(r); /* shipping goes on meanwhile */
	if (replica_validation_ready(r)) {
		replica_validation_continue(r);
		return;
	}
	/*
	 * An asked-for snapshot of the current generation. It need not wait
	 * until the replica has caught up (under steady writes with a
	 * sync-interval it never quite has): the segments of its index and
	 * after still follow from the replica's position.
	 */
	if (r->snapshot_wanted && strcmp(r->pos.generation, d.generation) == 0) {
		replica_ship_snapshot(r);
		return;
	}
	ship_next(r, &d);
}

/* ---- what the database tells ----------------------------------------------- */

/* The database's position moved (or replica_start/flush asks to look). */
static void notify(struct replica *r)
{
	struct db_pos d;

	if (r->state == REPLICA_CLOSED)
		return;
	if (r->stats.behind_since_ms == 0)
		r->stats.behind_since_ms = clock_wall_ms();
	switch (r->state) {
	case REPLICA_WAITING:
		if (db_position(r->db, &d) && !uv_is_active((uv_handle_t *)&r->retry_timer))
			replica_locate(r);
		break;
	case REPLICA_IDLE:
		if (r->cfg->sync_interval_ms == 0 || r->flush_cb != NULL)
			replica_step(r);
		break;
	default:
		break; /* the task in progress steps when it ends */
	}
}

/*
 * Only a position that moved matters: a new generation shows in it, and a
 * removed database has none (step waits for the next one).
 */
static void on_db_event(void *arg, const struct db_event *ev)
{
	if (ev->kind == DB_EVENT_POSITION && ev->moved) {
		ticker_resume(arg);
		notify(arg);
	}
}

/*
 * The oldest shadow WAL position the replica still needs: its position,
 * moved back to a snapshot's index while that snapshot is on its way (the
 * replica goes on from there once it is stored) and to a validation's.
 * False while the replica is still locating: the database then keeps
 * every shadow file.
 */
static bool on_db_floor(void *arg, struct db_pos *out)
{
	const struct replica *r = arg;

	if (!r->located)
		return false;
	*out = r->pos;
	/* A snapshot into another generation (or the first one) moves the
	 * position to its index once stored: that index must still be here. */
	if (r->task == REPLICA_TASK_SNAPSHOT && strcmp(r->snapshot_from.generation, out->generation) != 0) {
		*out = r->snapshot_from;
		out->offset = 0;
	}
	replica_validation_floor(r, out);
	return true;
}

/* ---- public ---------------------------------------------------------------- */

/*
 * The sync-interval ticker runs only while there is something to ship: a
 * replica that has caught up stops it, and the next position moving
 * starts it again on the same phase (ticks at multiples of the interval
 * after the start), so an idle replica costs no wake-ups and a busy one
 * ships exactly as with a ticker that never stopped.
 */
static void on_sync_timer(uv_timer_t *t)
{
	struct replica *r = t->data;

	if (r->cfg->sync_interval_ms > 0)
		r->tick = true; /* kept until a segment goes, even if busy now */
	if (r->state == REPLICA_IDLE)
		replica_step(r);
	if (r->cfg->sync_interval_ms > 0 && r->state == REPLICA_IDLE && r->flush_cb == NULL &&
	    !r->snapshot_wanted && replica_pending_bytes(r) == 0) {
		uv_timer_stop(&r->sync_timer);
		r->tick = false;
	}
}

static void ticker_resume(struct replica *r)
{
	uint64_t every = (uint64_t)r->cfg->sync_interval_ms, now = uv_now(r->loop);

	if (every == 0 || r->state == REPLICA_CLOSED || uv_is_active((uv_handle_t *)&r->sync_timer))
		return;
	uv_timer_start(&r->sync_timer, on_sync_timer, every - (now - r->tick_origin) % every, every);
}

int replica_init_backend(struct replica *r, uv_loop_t *loop, struct db *db,
			 const struct replica_config *cfg, struct backend *backend)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->db = db;
	r->cfg = cfg;
	r->name = cfg->name;
	r->state = REPLICA_WAITING;
	r->backend = backend;
	if ((rc = db_subscribe(db, on_db_event, on_db_floor, r)) != 0) {
		backend->ops->free(backend);
		r->backend = NULL;
		return rc;
	}
	uv_timer_init(loop, &r->sync_timer);
	uv_timer_init(loop, &r->retry_timer);
	uv_timer_init(loop, &r->retention_timer);
	uv_timer_init(loop, &r->snapshot_timer);
	uv_timer_init(loop, &r->validation_timer);
	r->sync_timer.data = r->retry_timer.data = r;
	r->retention_timer.data = r->snapshot_timer.data = r->validation_timer.data = r;
	r->open_handles = 5;
	return 0;
}

int replica_init(struct replica *r, uv_loop_t *loop, struct db *db, const struct replica_config *cfg,
		 char *err, size_t errlen)
{
	struct backend *b;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = backend_new(loop, cfg, &b, err, errlen)) != 0)
		return rc;
	if ((rc = replica_init_backend(r, loop, db, cfg, b)) != 0)
		snprintf(err, errlen, "%s: %s", cfg->name, strerror(-rc));
	return rc;
}

void replica_start(struct replica *r)
{
	const struct replica_config *c = r->cfg;

	r->tick_origin = uv_now(r->loop);
	if (c->sync_interval_ms > 0)
		uv_timer_start(&r->sync_timer, on_sync_timer, (uint64_t)c->sync_interval_ms,
			       (uint64_t)c->sync_interval_ms);
	if (c->retention_ms > 0 && c->retention_check_interval_ms > 0)
		uv_timer_start(&r->retention_timer, replica_on_retention_timer,
			       (uint64_t)c->retention_check_interval_ms,
			       (uint64_t)c->retention_check_interval_ms);
	if (c->snapshot_interval_ms > 0)
		uv_timer_start(&r->snapshot_timer, replica_on_snapshot_timer,
			       (uint64_t)c->snapshot_interval_ms, (uint64_t)c->snapshot_interval_ms);
	if (c->validation_interval_ms > 0)
		uv_timer_start(&r->validation_timer, replica_on_validation_timer,
			       (uint64_t)c->validation_interval_ms, (uint64_t)c->validation_interval_ms);
	notify(r);
}

bool replica_position(const struct replica *r, struct db_pos *out)
{
	if (!r->located)
		return false;
	*out = r->pos;
	return true;
}

double replica_lag_seconds(const struct replica *r)
{
	if (r->stats.behind_since_ms == 0)
		return 0;
	return (double)(clock_wall_ms() - r->stats.behind_since_ms) / 1000.0;
}

void replica_request_snapshot(struct replica *r)
{
	r->snapshot_wanted = true;
	if (r->state == REPLICA_IDLE)
		replica_step(r);
}

uint64_t replica_pending_bytes(const struct replica *r)
{
	struct db_pos d;

	if (!db_position(r->db, &d))
		return 0;
	if (strcmp(r->pos.generation, d.generation) != 0 || r->pos.index != d.index)
		return d.offset;
	return d.offset > r->pos.offset ? d.offset - r->pos.offset : 0;
}

void replica_flush(struct replica *r, void (*cb)(struct replica *r, int rc))
{
	struct db_pos d;

	r->flush_cb = cb;
	if (r->task == REPLICA_TASK_BACKOFF) {
		/* Backing off after an error: one more try now. */
		uv_timer_stop(&r->retry_timer);
		replica_set_task(r, REPLICA_TASK_NONE);
	}
	switch (r->state) {
	case REPLICA_WAITING:
		if (!db_position(r->db, &d)) {
			r->flush_cb = NULL;
			cb(r, 0); /* nothing to ship: the database never opened */
			return;
		}
		replica_locate(r);
		break;
	case REPLICA_IDLE:
		replica_step(r);
		break;
	default:
		break; /* the task in flight continues into replica_step() */
	}
}

static void on_replica_handle_closed(uv_handle_t *h)
{
	struct replica *r = h->data;

	if (--r->open_handles == 0 && r->close_cb)
		r->close_cb(r);
}

void replica_close(struct replica *r, void (*cb)(struct replica *r))
{
	if (r->task == REPLICA_TASK_SNAPSHOT_WAIT)
		replica_snapshot_cancel(r);
	db_unsubscribe(r->db, on_db_event, r);
	r->close_cb = cb;
	r->state = REPLICA_CLOSED;
	uv_close((uv_handle_t *)&r->sync_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->retry_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->retention_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->snapshot_timer, on_replica_handle_closed);
	uv_close((uv_handle_t *)&r->validation_timer, on_replica_handle_closed);
}

void replica_free(struct replica *r)
{
	replica_validation_free(r);
	if (r->backend != NULL)
		r->backend->ops->free(r->backend);
	r->backend = NULL;
	free(r->subs);
	r->subs = NULL;
	r->n_subs = 0;
}
