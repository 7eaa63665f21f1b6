/*
 * `litestream replicate`, shared between its files: cmd_replicate.c the
 * flags, start-up and the loop; replicate_stop.c the way out (the last
 * sync and shipment of every database, retention with -enforce-retention,
 * shutdown-sync-timeout, the exit code); replicate_notify.c what the
 * service manager hears (READY, STATUS, WATCHDOG, STOPPING);
 * replicate_set.c the set of databases, which grows and shrinks while the
 * process runs; replicate_dir.c the [dir] sections' watchers;
 * replicate_limits.c the file descriptor limit; replicate_reload.c SIGHUP;
 * replicate_api.c the databases added and removed through the socket.
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
#include "util/strmap.h"
#include "util/subprocess.h"

#include <stdbool.h>
#include <uv.h>

struct app;
struct dirwatch;
struct dir_inotify;
struct verify_run;

/*
 * One database of the set, and its replicas. It owns its configuration
 * (db.cfg and the replicas' point into cfg), so that it outlives a
 * configuration reloaded or a [dir] that let it go.
 */
struct watched {
	struct db db;             /* first: a struct db * is a struct watched * */
	struct db_config cfg;
	char origin[96];          /* how it was added: "config", "dir NAME" */
	struct dirwatch *dir;     /* the [dir] watcher that added it, or NULL */
	bool started;
	bool retiring;            /* leaving the set: its last shipment, then it closes */
	bool recheck;             /* its file came back while it was leaving */
	struct db_config *next;   /* what replaces it once it closed (a changed [db]), or NULL */
	struct replica *replicas;
	bool *finished;           /* per replica: its last shipment is done (or failed) */
	size_t n_replicas;
	size_t pending;           /* replicas not finished, or still closing */
	bool ready;               /* shipped its first sync (READY=1) */
	bool first_known;
	struct db_pos first;      /* the first position published */
	struct verify_run *verify; /* POST /v1/dbs/NAME/verify under way, or NULL */
	struct app *app;
};

struct app {
	uv_loop_t loop;
	struct config cfg;
	struct watched **dbs;     /* the set, in the order added */
	size_t n_dbs, cap_dbs;
	struct strmap by_path;    /* database path -> struct watched */
	struct dirwatch **dirs;   /* every watched directory ([dir] and their subdirectories) */
	size_t n_dirs;
	int open_dirs;            /* watchers not yet closed */
	struct dir_inotify *inotify; /* the [dir]s' events (replicate_inotify.c), NULL until needed */
	bool started;             /* the first set has started: what joins now starts at once */
	uv_signal_t sigint, sigterm, sighup;
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
	uv_timer_t trim_timer;   /* replicate_trim.c */
};

/* The last sync and shipment of every database, then the loop ends. */
void replicate_shut_down(struct app *app);

/* replicate_stop.c: w's last sync and shipment, then its close (replicate_db_closed()). */
void replicate_db_stop(struct watched *w);

/* ---- replicate_set.c ---- */

/*
 * A new database of the set, from dc (taken, even on failure: zeroed):
 * its struct db and replicas made, not started. NULL with err set when
 * it cannot be made.
 */
struct watched *replicate_db_new(struct app *app, struct db_config *dc, const char *origin,
				 char *err, size_t errlen);

/* Starts w: served by the control server, its replicas, its sync. */
void replicate_db_start(struct app *app, struct watched *w);

/* Takes w out of the set: it finishes its last shipment, closes and is freed. */
void replicate_db_remove(struct app *app, struct watched *w);

/*
 * Puts a [db] section's database dc (copied) into the set: started at
 * once, or, when a database with its path is still there, once that one
 * has left (it is asked to).
 */
void replicate_db_replace(struct app *app, struct db_config *dc);

/* The database at path in the set (leaving or not), or NULL. */
struct watched *replicate_db_find(struct app *app, const char *path);

/* w is closed: out of the set and freed (a [dir] looks at its file again). */
void replicate_db_closed(struct watched *w);

/* Frees every database still in the set (never started or after the loop). */
void replicate_set_free(struct app *app);

/* ---- replicate_verify.c ---- */

/*
 * Starts `litestream verify` for each replica of w in turn (a child
 * process; the outcome lands in each replica's stats). 202, or 409 when
 * one runs already or w is closing, 500, with the message in err.
 */
int replicate_verify_start(struct watched *w, char *err, size_t errlen);

/* Stops w's verify, if any (the database is leaving). */
void replicate_verify_cancel(struct watched *w);

/* ---- replicate_inotify.c ---- */

/*
 * Watches the directory for the [dir]s (one inotify descriptor for all,
 * opened at the first call): the watch descriptor, or -errno. Events go
 * to replicate_dir_event() of every watcher whose replicate_dir_wd() it
 * is. On the loop only.
 */
int replicate_inotify_add(struct app *app, const char *path);

/* Drops the watch, unless a watcher still in app->dirs has it too. */
void replicate_inotify_rm(struct app *app, int wd);

/* Closes the descriptor and its handles (after every watcher went). */
void replicate_inotify_close(struct app *app);

/* ---- replicate_dir.c ---- */

/* An event in dw's directory (uv_fs_event's terms: name, UV_CHANGE and
 * UV_RENAME, status; no name: look at everything, events were lost). */
void replicate_dir_event(struct dirwatch *dw, const char *filename, int events, int status);
int replicate_dir_wd(const struct dirwatch *dw);

/* Scans each [dir] and, with watch, starts its watchers. 0 or -errno (logged). */
int replicate_dirs_start(struct app *app);

/* The first set started: the watchers start what they find from now on. */
void replicate_dirs_started(struct app *app);

/* Closes the watchers (at shutdown); the loop ends after their close callbacks. */
void replicate_dirs_close(struct app *app);

/* A database at path closed while its file was back: the watcher of its directory looks again. */
void replicate_dir_recheck(struct app *app, const char *path);

/* Starts following one [dir] section (copied): its scan, its watchers. 0 or -ENOMEM. */
int replicate_dir_open(struct app *app, const struct dir_config *d);

/* Stops following the [dir] called name: its watchers close, its databases leave. */
void replicate_dir_close(struct app *app, const char *name);

/* ---- replicate_api.c ---- */

/* The control server's hooks for POST /v1/dbs and DELETE /v1/dbs/NAME. */
void replicate_api_hooks(struct app *app, struct control_hooks *h);

/* ---- replicate_reload.c ---- */

/* SIGHUP: the configuration file again, applied to the running set (see the file). */
void replicate_reload(struct app *app);

/* ---- replicate_limits.c ---- */

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit and checks it against
 * what n_dbs databases with n_replicas replicas in all need. 0, or -EMFILE
 * with the message in err (the limit is too low to start).
 */
int replicate_limits_raise(size_t n_dbs, size_t n_replicas, char *err, size_t errlen);

/* Starts telling the service manager (nothing without NOTIFY_SOCKET). */
void replicate_notify_start(struct app *app);
/* STOPPING=1; no more STATUS (WATCHDOG goes on until closed). */
void replicate_notify_stop(struct app *app);
/* Closes the timers (the loop ends after). */
void replicate_notify_close(struct app *app);

/* ---- replicate_trim.c: free heap memory back to the system, once a minute ---- */
void replicate_trim_start(struct app *app);
void replicate_trim_close(struct app *app);

#endif
