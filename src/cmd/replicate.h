/*
 * `litestream replicate`, shared between its files: cmd_replicate.c the
 * flags, start-up and the loop; replicate_stop.c the way out (the last
 * sync and shipment of every database, retention with -enforce-retention,
 * shutdown-sync-timeout, the exit code); replicate_notify.c what the
 * service manager hears (READY, STATUS, WATCHDOG, STOPPING).
 *
 * Everything runs on the loop thread.
 */
#ifndef LITESTREAM_CMD_REPLICATE_H
#define LITESTREAM_CMD_REPLICATE_H

#include "config/config.h"
#include "control/control.h"
#include "db/db.h"
#include "net/sd_notify.h"
#include "replica/replica.h"
#include "util/subprocess.h"

#include <stdbool.h>
#include <uv.h>

struct app;

struct watched {
	struct db db;             /* first: a struct db * is a struct watched * */
	struct replica *replicas;
	bool *finished;           /* per replica: its last shipment is done (or failed) */
	size_t n_replicas;
	size_t pending;           /* replicas not finished, or still closing */
	bool ready;               /* shipped its first sync (READY=1) */
	bool first_known;
	struct db_pos first;      /* the first position published */
	struct app *app;
};

struct app {
	uv_loop_t loop;
	struct config cfg;
	struct watched *dbs;
	size_t n_dbs;
	size_t running;  /* databases not yet closed */
	uv_signal_t sigint, sigterm;
	int signals;
	int forwarded;   /* the signal passed on to the child, 0 if none */
	bool stopping;
	bool once;               /* -once: ship everything, then exit */
	bool enforce_retention;  /* -enforce-retention: one retention run (at exit with -once) */
	int exit_code;
	struct control *control;
	struct subprocess child;
	uv_timer_t stop_timer;   /* shutdown-sync-timeout */
	struct sd_notify notify;
	bool ready_sent;
	uv_timer_t notify_timer; /* readiness, then STATUS */
	uv_timer_t watchdog_timer;
};

/* The last sync and shipment of every database, then the loop ends. */
void replicate_shut_down(struct app *app);

/* Starts telling the service manager (nothing without NOTIFY_SOCKET). */
void replicate_notify_start(struct app *app);
/* STOPPING=1; no more STATUS (WATCHDOG goes on until closed). */
void replicate_notify_stop(struct app *app);
/* Closes the timers (the loop ends after). */
void replicate_notify_close(struct app *app);

#endif
