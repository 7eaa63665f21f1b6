/*
 * The way out of `litestream replicate` (see replicate.h): on a signal,
 * when the -exec child exits, or at once with -once, every database syncs
 * one last time (never checkpointing), every replica ships up to that
 * position (then, with -enforce-retention and -once, removes what is past
 * retention), closes, and the loop ends.
 *
 * A database leaving the set while the process runs (replicate_set.c)
 * goes the same way alone.
 *
 * A replica that could not ship its last bytes makes the exit code 1 and
 * is named in the log: the bytes stay in the shadow WAL and ship at the
 * next start on this machine, which a container on another node will not
 * be. shutdown-sync-timeout bounds the whole way out: when it passes, what
 * is still pending is logged per replica and the process exits 1 at once.
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <stdlib.h>

static void close_app_handles(struct app *app)
{
	control_close(app->control); /* after the last flush, which sync?wait may be waiting for */
	app->control = NULL;
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->sigterm, NULL);
	uv_close((uv_handle_t *)&app->sighup, NULL);
	uv_close((uv_handle_t *)&app->stop_timer, NULL);
	replicate_notify_close(app);
	replicate_trim_close(app);
}

static void on_db_closed(struct db *db)
{
	struct watched *w = (struct watched *)db;
	struct app *app = w->app;

	replicate_db_closed(w);
	if (app->stopping && app->n_dbs == 0)
		close_app_handles(app);
}

static void on_backend_closed(void *arg)
{
	struct replica *r = arg;
	struct watched *w = (struct watched *)r->db;

	if (--w->pending == 0)
		db_close(&w->db, on_db_closed);
}

static void on_replica_closed(struct replica *r)
{
	/* The backend's loop handles (S3's http client) must go before the
	 * loop ends; replica_free() frees it later. */
	backend_close(r->backend, on_backend_closed, r);
}

static size_t replica_slot(const struct watched *w, const struct replica *r)
{
	return (size_t)(r - w->replicas);
}

/* One replica is done with its last shipment (and retention). */
static void replica_finished(struct replica *r)
{
	struct watched *w = (struct watched *)r->db;

	w->finished[replica_slot(w, r)] = true;
	if (--w->pending == 0) {
		w->pending = w->n_replicas;
		for (size_t i = 0; i < w->n_replicas; i++)
			replica_close(&w->replicas[i], on_replica_closed);
	}
}

static void on_retention_done(struct replica *r, int rc)
{
	struct watched *w = (struct watched *)r->db;

	if (rc != 0) {
		LOG_ERROR(w->db.path, r->name, "-enforce-retention: retention did not complete");
		w->app->exit_code = w->app->exit_code != 0 ? w->app->exit_code : 1;
	}
	replica_finished(r);
}

static void on_flushed(struct replica *r, int rc)
{
	struct watched *w = (struct watched *)r->db;
	struct app *app = w->app;

	if (rc != 0) {
		LOG_ERROR(w->db.path, r->name,
			  "could not ship everything before exit; the rest stays in the shadow wal "
			  "and ships at the next start");
		if (!w->retiring) /* one that left the set was logged; the process goes on */
			app->exit_code = app->exit_code != 0 ? app->exit_code : 1;
	} else if (app->once && app->enforce_retention) {
		replica_enforce_retention(r, on_retention_done);
		return;
	}
	replica_finished(r);
}

static void on_db_stopped(struct db *db)
{
	struct watched *w = (struct watched *)db;
	struct db_pos d;

	if (w->app->once && !db_position(db, &d))
		LOG_WARN(db->path, NULL, "-once: the database does not exist; nothing to ship");
	if (w->n_replicas == 0) {
		db_close(db, on_db_closed);
		return;
	}
	w->pending = w->n_replicas;
	for (size_t i = 0; i < w->n_replicas; i++)
		replica_flush(&w->replicas[i], on_flushed);
}

/* What the timeout leaves behind, one line per replica. */
static void log_pending(struct app *app)
{
	for (size_t i = 0; i < app->n_dbs; i++) {
		struct watched *w = app->dbs[i];
		for (size_t j = 0; j < w->n_replicas; j++) {
			struct replica *r = &w->replicas[j];
			struct db_pos p = {0};
			if (w->finished[j])
				continue;
			replica_position(r, &p);
			LOG_ERROR(w->db.path, r->name,
				  "shutdown-sync-timeout: not shipped: %llu bytes of wal after %s/%08x:%llu%s%s",
				  (unsigned long long)replica_pending_bytes(r),
				  p.generation[0] ? p.generation : "(none)", p.index,
				  (unsigned long long)p.offset, r->stats.last_error[0] ? "; last error: " : "",
				  r->stats.last_error);
		}
	}
}

static void on_stop_timeout(uv_timer_t *t)
{
	struct app *app = t->data;

	LOG_ERROR(NULL, NULL, "shutdown-sync-timeout (%lld ms) passed with shipments pending; exiting",
		  (long long)app->cfg.shutdown_sync_timeout_ms);
	log_pending(app);
	exit(1);
}

void replicate_shut_down(struct app *app)
{
	if (app->stopping)
		return;
	app->stopping = true;
	replicate_notify_stop(app);
	if (app->cfg.shutdown_sync_timeout_ms > 0)
		uv_timer_start(&app->stop_timer, on_stop_timeout, (uint64_t)app->cfg.shutdown_sync_timeout_ms, 0);
	replicate_dirs_close(app);
	if (app->n_dbs == 0) {
		close_app_handles(app);
		return;
	}
	/* Those leaving already are on their way out (db_stop() ignores them). */
	for (size_t i = 0; i < app->n_dbs; i++)
		if (!app->dbs[i]->retiring)
			db_stop(&app->dbs[i]->db, on_db_stopped);
}

void replicate_db_stop(struct watched *w)
{
	replicate_verify_cancel(w);
	db_stop(&w->db, on_db_stopped);
}
