/*
 * The data path, end to end on a real loop: a real database (SQLite in a
 * scratch directory, watched by struct db: its jobs, its shadow WAL) and a
 * real replica shipping to a scripted in-memory backend. The backend keeps
 * objects in memory, answers every operation from the loop (never inside
 * the call), and answers each put as the test scripted it: at once, with
 * an error, or only when the test releases it.
 *
 * Covered: what a moved position ships (one segment, one upload in flight
 * at a time), the order of shipping (snapshot first in a generation, then
 * segments in order, sealed indexes before the current one), a retry after
 * a failed put, resuming from what the backend already holds, and
 * snapshots versus checkpoints. Every test ends with uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/db_internal.h"
#include "lib/fake_backend.h"
#include "util/log.h"
#include "core/names.h"
#include "replica/replica.h"
#include "lib/sqlite_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 10000

/* ---- fixture: a database, a replica, a loop -------------------------------- */

struct fixture {
	uv_loop_t loop;
	uv_timer_t guard; /* bounds every wait */
	bool timed_out;
	char *dir, *db_path;
	sqlite3 *app;     /* the application's connection */
	struct db_config dcfg;
	struct replica_config rcfg;
	struct db db;
	struct replica r;
	struct fake *fake;
	struct store store;
	bool running;     /* db and replica are up */
	int events[64];   /* what the database published to the test's subscription */
	size_t n_events;
	int done;         /* completions of stop/flush/close */
	uv_prepare_t prepare;
	void (*action)(struct fixture *f); /* during_checkpoint() */
};

static void on_guard(uv_timer_t *t)
{
	struct fixture *f = t->data;

	f->timed_out = true;
}

/* Runs the loop until cond holds; fails the test after WAIT_MS. */
#define RUN_UNTIL(f, cond)                                                             \
	do {                                                                           \
		(f)->timed_out = false;                                                \
		uv_timer_start(&(f)->guard, on_guard, WAIT_MS, 0);                      \
		while (!(cond) && !(f)->timed_out)                                     \
			uv_run(&(f)->loop, UV_RUN_ONCE);                               \
		uv_timer_stop(&(f)->guard);                                            \
		if (!(cond))                                                           \
			fail_msg("timed out waiting for %s (line %d)", #cond, __LINE__); \
	} while (0)

static void on_test_event(void *arg, const struct db_event *ev)
{
	struct fixture *f = arg;

	if (f->n_events < 64)
		f->events[f->n_events++] = ev->kind;
}

static void start(struct fixture *f)
{
	f->fake = fake_backend_new(&f->loop, &f->store);
	assert_int_equal(db_init(&f->db, &f->loop, &f->dcfg), 0);
	assert_int_equal(replica_init_backend(&f->r, &f->loop, &f->db, &f->rcfg, fake_backend_base(f->fake)), 0);
	assert_int_equal(db_add_replica(&f->db, &f->r), 0);
	assert_int_equal(db_subscribe(&f->db, on_test_event, NULL, f), 0);
	f->n_events = 0;
	replica_start(&f->r);
	assert_int_equal(db_start(&f->db), 0);
	f->running = true;
}

static struct fixture *current;

static void on_db_done(struct db *db)
{
	current->done++;
}

static void on_flushed(struct replica *r, int rc)
{
	assert_int_equal(rc, 0);
	current->done++;
}

static void on_backend_closed(void *arg)
{
	current->done++;
}

static void on_replica_closed(struct replica *r)
{
	backend_close(r->backend, on_backend_closed, r);
}

/* What cmd_replicate does at exit: last sync, flush, close, free. */
static void stop(struct fixture *f)
{
	f->done = 0;
	db_stop(&f->db, on_db_done);
	RUN_UNTIL(f, f->done == 1);
	replica_flush(&f->r, on_flushed);
	RUN_UNTIL(f, f->done == 2);
	db_unsubscribe(&f->db, on_test_event, f);
	replica_close(&f->r, on_replica_closed);
	RUN_UNTIL(f, f->done == 3);
	db_close(&f->db, on_db_done);
	RUN_UNTIL(f, f->done == 4);
	replica_free(&f->r);
	db_free(&f->db);
	f->running = false;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	log_threshold = LOG_LEVEL_WARN;
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
	uv_prepare_init(&f->loop, &f->prepare);
	f->prepare.data = f;
	f->dir = th_tmpdir();
	f->db_path = th_path(f->dir, "app.db");
	f->app = th_open(f->db_path, 4096);
	sqlite3_busy_timeout(f->app, 5000);
	th_exec(f->app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
	f->dcfg.name = f->db_path;
	f->dcfg.path = f->db_path;
	f->dcfg.monitor_interval_ms = 0;
	f->dcfg.checkpoint_interval_ms = 0;
	f->dcfg.min_checkpoint_page_count = 1000000; /* checkpoints only when a test asks */
	f->dcfg.max_checkpoint_page_count = 0;
	f->rcfg.name = (char *)"fake";
	f->rcfg.type = REPLICA_FILE;
	current = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->running)
		stop(f);
	uv_close((uv_handle_t *)&f->guard, NULL);
	uv_close((uv_handle_t *)&f->prepare, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	sqlite3_close(f->app);
	th_rmrf(f->dir);
	store_clear(&f->store);
	free(f->dir);
	free(f->db_path);
	free(f);
	current = NULL;
	return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static void insert(struct fixture *f, int rows)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d) "
		 "INSERT INTO t (v) SELECT randomblob(100) FROM s",
		 rows);
	th_exec(f->app, sql);
}

/* Waits for a sync that started after this call (so it saw every commit before). */
static void sync_now(struct fixture *f)
{
	uint64_t target = f->db.stats.sync_count + (f->db.job != NULL ? 2 : 1);

	db_request_sync(&f->db);
	RUN_UNTIL(f, f->db.stats.sync_count >= target);
}

static struct db_pos db_pos_now(struct fixture *f)
{
	struct db_pos d;

	assert_true(db_position(&f->db, &d));
	return d;
}

static bool caught_up(struct fixture *f)
{
	struct db_pos d, p;

	return f->r.state == REPLICA_IDLE && db_position(&f->db, &d) && replica_position(&f->r, &p) &&
	       strcmp(d.generation, p.generation) == 0 && db_pos_cmp(&d, &p) == 0 &&
	       fake_backend_idle(f->fake);
}

static void segment_key(char *buf, size_t n, const char *gen, uint32_t index, uint64_t offset)
{
	char name[NAME_MAX_LEN];

	segment_name(name, sizeof(name), index, offset);
	snprintf(buf, n, "generations/%s/wal/%s", gen, name);
}

static void snapshot_key(char *buf, size_t n, const char *gen, uint32_t index)
{
	char name[NAME_MAX_LEN];

	snapshot_name(name, sizeof(name), index);
	snprintf(buf, n, "generations/%s/snapshots/%s", gen, name);
}

static void assert_put(struct fixture *f, size_t i, const char *key)
{
	assert_true(i < f->store.n_puts);
	assert_string_equal(f->store.puts[i], key);
}

/* Starts and waits until the first snapshot and segment are stored. */
static struct db_pos start_caught_up(struct fixture *f)
{
	start(f);
	RUN_UNTIL(f, caught_up(f));
	return db_pos_now(f);
}

/* ---- tests ---------------------------------------------------------------------- */

/*
 * A new generation starts with its snapshot, then the segment from offset
 * 0 to the position; the database announces the generation before the
 * position it published.
 */
static void test_first_sync_ships_snapshot_then_segment(void **state)
{
	struct fixture *f = *state;
	struct db_pos d = start_caught_up(f);
	char key[256];

	assert_true(f->n_events >= 2);
	assert_int_equal(f->events[0], DB_EVENT_GENERATION);
	assert_int_equal(f->events[1], DB_EVENT_POSITION);
	assert_int_equal(f->store.n_puts, 2);
	snapshot_key(key, sizeof(key), d.generation, 0);
	assert_put(f, 0, key);
	segment_key(key, sizeof(key), d.generation, 0, 0);
	assert_put(f, 1, key);
	assert_int_equal(f->store.put_wal_bytes[1], d.offset);
	assert_int_equal(f->r.stats.snapshots, 1);
	assert_int_equal(f->r.stats.segments, 1);
}

/*
 * A moved position ships one segment; commits that arrive while it is on
 * its way travel together in the next one.
 */
static void test_one_segment_in_flight(void **state)
{
	struct fixture *f = *state;
	struct db_pos d0 = start_caught_up(f), da, dc;
	size_t n0 = f->store.n_puts;
	char key[256];

	fake_backend_script_put(f->fake, ANSWER_HOLD, 0);
	insert(f, 5);
	sync_now(f);
	da = db_pos_now(f);
	assert_true(da.offset > d0.offset);
	RUN_UNTIL(f, fake_backend_held(f->fake) == 1);
	assert_int_equal(f->store.n_puts, n0 + 1);
	segment_key(key, sizeof(key), d0.generation, 0, d0.offset);
	assert_put(f, n0, key);

	/* Two more commits, each synced, while the upload waits. */
	insert(f, 5);
	sync_now(f);
	insert(f, 5);
	sync_now(f);
	dc = db_pos_now(f);
	assert_true(dc.offset > da.offset);
	assert_int_equal(f->store.n_puts, n0 + 1);
	assert_int_equal(f->r.task, REPLICA_TASK_SEGMENT);

	fake_backend_release(f->fake, 0);
	RUN_UNTIL(f, caught_up(f));
	assert_int_equal(f->store.n_puts, n0 + 2);
	assert_int_equal(f->store.put_wal_bytes[n0], da.offset - d0.offset);
	segment_key(key, sizeof(key), d0.generation, 0, da.offset);
	assert_put(f, n0 + 1, key);
	assert_int_equal(f->store.put_wal_bytes[n0 + 1], dc.offset - da.offset);
}

/*
 * Segments go in order, the rest of a sealed index before the current one;
 * a new generation starts with its snapshot.
 */
static void test_shipping_order(void **state)
{
	struct fixture *f = *state;
	struct db_pos d0 = start_caught_up(f), da, db, d1, dg;
	size_t n0 = f->store.n_puts;
	uint64_t restarts = f->db.stats.checkpoint_count[CHECKPOINT_RESTART];
	char key[256];

	fake_backend_script_put(f->fake, ANSWER_HOLD, 0);
	insert(f, 5);
	sync_now(f);
	da = db_pos_now(f);
	RUN_UNTIL(f, fake_backend_held(f->fake) == 1);
	insert(f, 5);
	sync_now(f);
	db = db_pos_now(f);

	/* The WAL restarts: index 0 is sealed, index 1 is the current one. */
	db_request_checkpoint(&f->db, CHECKPOINT_RESTART);
	RUN_UNTIL(f, f->db.stats.checkpoint_count[CHECKPOINT_RESTART] > restarts && f->db.job == NULL);
	assert_int_equal(f->db.stats.checkpoint_error_count[CHECKPOINT_RESTART], 0);
	insert(f, 5);
	sync_now(f);
	d1 = db_pos_now(f);
	assert_string_equal(d1.generation, d0.generation);
	assert_int_equal(d1.index, 1);
	assert_int_equal(db_shadow_size(&f->db, d0.generation, 0), (int64_t)db.offset);

	fake_backend_release(f->fake, 0);
	RUN_UNTIL(f, caught_up(f));
	assert_int_equal(f->store.n_puts, n0 + 3);
	segment_key(key, sizeof(key), d0.generation, 0, d0.offset);
	assert_put(f, n0, key);
	segment_key(key, sizeof(key), d0.generation, 0, da.offset);
	assert_put(f, n0 + 1, key);
	assert_int_equal(f->store.put_wal_bytes[n0 + 1], db.offset - da.offset);
	segment_key(key, sizeof(key), d0.generation, 1, 0);
	assert_put(f, n0 + 2, key);
	assert_int_equal(f->store.put_wal_bytes[n0 + 2], d1.offset);

	/* A new generation: its snapshot, then its segments. */
	db_request_new_generation(&f->db, "test");
	sync_now(f);
	dg = db_pos_now(f);
	assert_string_not_equal(dg.generation, d0.generation);
	RUN_UNTIL(f, caught_up(f));
	assert_int_equal(f->store.n_puts, n0 + 5);
	snapshot_key(key, sizeof(key), dg.generation, dg.index);
	assert_put(f, n0 + 3, key);
	segment_key(key, sizeof(key), dg.generation, dg.index, 0);
	assert_put(f, n0 + 4, key);
}

/* A failed put moves nothing; after the backoff the same range ships again. */
static void test_retry_after_failed_put(void **state)
{
	struct fixture *f = *state;
	struct db_pos d0 = start_caught_up(f), da, p;
	size_t n0 = f->store.n_puts;
	uint64_t t0;
	char key[256];

	fake_backend_script_put(f->fake, ANSWER_FAIL, -EIO);
	insert(f, 5);
	sync_now(f);
	da = db_pos_now(f);
	t0 = uv_now(&f->loop);
	RUN_UNTIL(f, f->store.n_puts == n0 + 1 && f->r.task == REPLICA_TASK_BACKOFF);
	segment_key(key, sizeof(key), d0.generation, 0, d0.offset);
	assert_put(f, n0, key);
	assert_int_equal(f->store.put_rc[n0], -EIO);
	assert_true(replica_position(&f->r, &p));
	assert_int_equal(db_pos_cmp(&p, &d0), 0);
	assert_int_equal(f->r.stats.error_count, 1);
	assert_non_null(strstr(f->r.stats.last_error, key));

	RUN_UNTIL(f, caught_up(f));
	assert_true(uv_now(&f->loop) - t0 >= 400); /* RETRY_BASE_MS */
	assert_int_equal(f->store.n_puts, n0 + 2);
	assert_put(f, n0 + 1, key);
	assert_int_equal(f->store.put_rc[n0 + 1], 0);
	assert_int_equal(f->store.put_wal_bytes[n0 + 1], da.offset - d0.offset);
	assert_string_equal(f->r.stats.last_error, "");
	assert_int_equal(f->r.failures, 0);
}

/* After a restart the replica resumes at the end of its last segment. */
static void test_restart_resumes(void **state)
{
	struct fixture *f = *state;
	struct db_pos d0 = start_caught_up(f), d1, p;
	size_t n0;
	char key[256];

	insert(f, 5);
	sync_now(f);
	RUN_UNTIL(f, caught_up(f));
	d1 = db_pos_now(f);
	stop(f);
	n0 = f->store.n_puts;
	assert_int_equal(n0, 3);

	/* The same database and backend, new processes' worth of state. */
	start(f);
	RUN_UNTIL(f, caught_up(f));
	assert_true(replica_position(&f->r, &p));
	assert_string_equal(p.generation, d1.generation);
	assert_int_equal(db_pos_cmp(&p, &d1), 0);
	assert_int_equal(f->store.n_puts, n0); /* nothing shipped twice */

	insert(f, 5);
	sync_now(f);
	RUN_UNTIL(f, caught_up(f));
	assert_int_equal(f->store.n_puts, n0 + 1);
	segment_key(key, sizeof(key), d0.generation, 0, d1.offset);
	assert_put(f, n0, key);
	for (size_t i = 0; i < f->store.n_puts; i++)
		for (size_t j = i + 1; j < f->store.n_puts; j++)
			assert_string_not_equal(f->store.puts[i], f->store.puts[j]);
}

struct grant {
	struct db *db;
	bool granted;
	uint64_t checkpoints_then;
};

static void on_granted(void *arg)
{
	struct grant *g = arg;

	g->granted = true;
	g->checkpoints_then = g->db->stats.checkpoint_count[CHECKPOINT_PASSIVE];
}

/*
 * Runs action(f) while a job that may checkpoint runs: a prepare handle
 * runs after the timers (which start jobs) and before the poll (which
 * delivers their end), so it sees the job in flight.
 */
static void on_prepare(uv_prepare_t *h)
{
	struct fixture *f = h->data;

	if (f->action != NULL && f->db.job != NULL && f->db.job->may_checkpoint &&
	    f->db.job->requested == CHECKPOINT_PASSIVE) {
		void (*action)(struct fixture *) = f->action;
		f->action = NULL;
		action(f);
	}
}

static void during_checkpoint(struct fixture *f, void (*action)(struct fixture *))
{
	f->action = action;
	uv_prepare_start(&f->prepare, on_prepare);
	db_request_checkpoint(&f->db, CHECKPOINT_PASSIVE);
	RUN_UNTIL(f, f->action == NULL);
	uv_prepare_stop(&f->prepare);
}

static struct grant the_grant;

static void acquire(struct fixture *f)
{
	assert_int_equal(db_snapshot_acquire(&f->db, on_granted, &the_grant), 0);
	assert_false(the_grant.granted);
}

static void ask_snapshot(struct fixture *f)
{
	replica_request_snapshot(&f->r);
	assert_int_equal(f->r.task, REPLICA_TASK_SNAPSHOT_WAIT);
}

/*
 * A snapshot waits while a checkpointing job runs; checkpoints wait while
 * a snapshot reads, and the one put off runs once it is done.
 */
static void test_snapshot_versus_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct grant *g = &the_grant;
	uint64_t ck0, snaps;
	size_t n0;

	start_caught_up(f);
	insert(f, 5);
	sync_now(f);
	RUN_UNTIL(f, caught_up(f));

	/* The database's own API. */
	memset(g, 0, sizeof(*g));
	g->db = &f->db;
	ck0 = f->db.stats.checkpoint_count[CHECKPOINT_PASSIVE];
	during_checkpoint(f, acquire);
	RUN_UNTIL(f, g->granted);
	assert_int_equal(g->checkpoints_then, ck0 + 1);

	insert(f, 5);
	db_request_checkpoint(&f->db, CHECKPOINT_PASSIVE);
	sync_now(f);
	assert_int_equal(f->db.stats.checkpoint_count[CHECKPOINT_PASSIVE], ck0 + 1);
	assert_int_equal(f->db.checkpoint_wanted, CHECKPOINT_PASSIVE);
	db_snapshot_release(&f->db);
	RUN_UNTIL(f, f->db.stats.checkpoint_count[CHECKPOINT_PASSIVE] == ck0 + 2);
	RUN_UNTIL(f, caught_up(f));

	/* The replica asks and is called back once the checkpoint is over. */
	n0 = f->store.n_puts;
	snaps = f->r.stats.snapshots;
	during_checkpoint(f, ask_snapshot);
	assert_int_equal(f->store.n_puts, n0);
	RUN_UNTIL(f, f->r.task != REPLICA_TASK_SNAPSHOT_WAIT);
	assert_int_equal(f->db.stats.checkpoint_count[CHECKPOINT_PASSIVE], ck0 + 3);
	RUN_UNTIL(f, f->r.stats.snapshots == snaps + 1 && caught_up(f));
	assert_non_null(strstr(f->store.puts[n0], "/snapshots/"));
	assert_int_equal(f->db.snapshot_readers, 0);
}

/*
 * Both in the same callback, while the checkpointing job is known to run:
 * back in the loop, that job may end in the same turn and let the
 * snapshot in before a close made afterwards.
 */
static void ask_snapshot_then_close(struct fixture *f)
{
	ask_snapshot(f);
	f->done = 0;
	replica_close(&f->r, on_replica_closed);
	assert_null(f->db.snapshot_waiters);
}

/* A replica that closes while its snapshot waits leaves no wait behind. */
static void test_close_while_snapshot_waits(void **state)
{
	struct fixture *f = *state;

	start_caught_up(f);
	during_checkpoint(f, ask_snapshot_then_close);
	RUN_UNTIL(f, f->done == 1 && f->db.job == NULL);
	db_stop(&f->db, on_db_done);
	RUN_UNTIL(f, f->done == 2);
	db_close(&f->db, on_db_done);
	RUN_UNTIL(f, f->done == 3);
	assert_int_equal(f->db.snapshot_readers, 0);
	replica_free(&f->r);
	db_free(&f->db);
	f->running = false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_sync_ships_snapshot_then_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_segment_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipping_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_failed_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_versus_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_snapshot_waits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
