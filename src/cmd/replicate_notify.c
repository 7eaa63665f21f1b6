/*
 * What the service manager hears from `litestream replicate` (systemd's
 * Type=notify; see sd_notify.h for the protocol):
 *
 *   READY=1     once every database has shipped its first sync: each
 *               replica holds at least the first position its database
 *               published (a database whose file does not exist yet
 *               counts as ready: there is nothing to ship until the
 *               application creates it). Checked every 100 ms until then,
 *               because a replica that already held everything uploads
 *               nothing and so reports no progress.
 *   STATUS=...  every 5 s after that: databases, the largest lag, and
 *               each database's position (one line; systemctl status
 *               shows it).
 *   WATCHDOG=1  every half WatchdogSec, from a loop timer: a loop that
 *               stops turning stops the pings.
 *   STOPPING=1  when the way out begins (the watchdog pings go on).
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define READY_POLL_MS 100
#define STATUS_EVERY_MS 5000

/* The replica holds the database's first position, or is level with its current one. */
static bool replica_level(const struct watched *w, const struct replica *r)
{
	struct db_pos rp, d;

	if (!replica_position(r, &rp) || rp.generation[0] == '\0')
		return false;
	if (strcmp(rp.generation, w->first.generation) == 0 && db_pos_cmp(&rp, &w->first) >= 0)
		return true;
	return db_position(&w->db, &d) && strcmp(rp.generation, d.generation) == 0 &&
	       db_pos_cmp(&rp, &d) >= 0;
}

static bool db_ready(struct watched *w)
{
	struct stat st;

	if (w->ready)
		return true;
	if (!w->first_known)
		w->first_known = db_position(&w->db, &w->first);
	if (!w->first_known) {
		/* Not opened: ready only when there is no file to open. */
		return stat(w->db.path, &st) != 0 && errno == ENOENT;
	}
	for (size_t i = 0; i < w->n_replicas; i++)
		if (!replica_level(w, &w->replicas[i]))
			return false;
	w->ready = true;
	return true;
}

static void send_status(struct app *app)
{
	char buf[1024];
	size_t len, n_replicas = 0;
	double lag = 0;
	int rc;

	for (size_t i = 0; i < app->n_dbs; i++)
		for (size_t j = 0; j < app->dbs[i]->n_replicas; j++) {
			double l = replica_lag_seconds(&app->dbs[i]->replicas[j]);
			lag = l > lag ? l : lag;
			n_replicas++;
		}
	rc = snprintf(buf, sizeof(buf), "STATUS=%zu database%s, %zu replica%s, max lag %.1fs", app->n_dbs,
		      app->n_dbs == 1 ? "" : "s", n_replicas, n_replicas == 1 ? "" : "s", lag);
	len = rc > 0 && (size_t)rc < sizeof(buf) ? (size_t)rc : 0;
	for (size_t i = 0; i < app->n_dbs && len < sizeof(buf); i++) {
		struct db_pos d;
		if (!db_position(&app->dbs[i]->db, &d))
			continue;
		rc = snprintf(buf + len, sizeof(buf) - len, "; %s %s/%08x:%llu", app->dbs[i]->db.path,
			      d.generation, d.index, (unsigned long long)d.offset);
		if (rc < 0 || (size_t)rc >= sizeof(buf) - len)
			break;
		len += (size_t)rc;
	}
	(void)sd_notify_send(&app->notify, buf);
}

static void on_notify_timer(uv_timer_t *t)
{
	struct app *app = t->data;

	if (!app->ready_sent) {
		for (size_t i = 0; i < app->n_dbs; i++)
			if (!db_ready(app->dbs[i]))
				return;
		app->ready_sent = true;
		LOG_INFO(NULL, NULL, "every database shipped its first sync: ready");
		(void)sd_notify_send(&app->notify, "READY=1");
		uv_timer_start(t, on_notify_timer, STATUS_EVERY_MS, STATUS_EVERY_MS);
	}
	send_status(app);
}

static void on_watchdog(uv_timer_t *t)
{
	struct app *app = t->data;

	(void)sd_notify_send(&app->notify, "WATCHDOG=1");
}

void replicate_notify_start(struct app *app)
{
	char err[256];
	uint64_t every_ms;

	uv_timer_init(&app->loop, &app->notify_timer);
	uv_timer_init(&app->loop, &app->watchdog_timer);
	app->notify_timer.data = app->watchdog_timer.data = app;
	if (sd_notify_open(&app->notify, err, sizeof(err)) != 0)
		LOG_WARN(NULL, NULL, "%s; not notifying the service manager", err);
	if (!sd_notify_enabled(&app->notify))
		return;
	uv_timer_start(&app->notify_timer, on_notify_timer, READY_POLL_MS, READY_POLL_MS);
	if (app->notify.watchdog_usec > 0) {
		every_ms = app->notify.watchdog_usec / 2000;
		every_ms = every_ms > 0 ? every_ms : 1;
		(void)sd_notify_send(&app->notify, "WATCHDOG=1");
		uv_timer_start(&app->watchdog_timer, on_watchdog, every_ms, every_ms);
	}
}

void replicate_notify_stop(struct app *app)
{
	/* The watchdog pings go on: the way out may take a while. */
	uv_timer_stop(&app->notify_timer);
	(void)sd_notify_send(&app->notify, "STOPPING=1");
}

void replicate_notify_close(struct app *app)
{
	uv_close((uv_handle_t *)&app->notify_timer, NULL);
	uv_close((uv_handle_t *)&app->watchdog_timer, NULL);
	sd_notify_close(&app->notify);
}
