/*
 * Snapshots versus checkpoints, decided here and nowhere else.
 *
 * A snapshot reads the database file through the database's descriptor
 * while a checkpoint may rewrite it, so the two never overlap:
 *
 *   - a job started while a snapshot reads the file or waits to may not
 *     checkpoint (db_checkpoint_allowed(), asked by start_job);
 *   - a snapshot may begin when no job that may checkpoint is running;
 *     otherwise it waits in a FIFO and is let in when that job ends
 *     (db_snapshot_job_done(), from the job's after-work callback), before
 *     any other job can start;
 *   - a checkpoint asked for meanwhile stays asked for (checkpoint_wanted)
 *     and runs at the first sync after the last reader let go.
 *
 * While the waiters are let in, each callback may release at once or ask
 * again; the list being answered (snapshot_granting) still counts as
 * waiting, so no checkpointing job can start before all have been called.
 * All on the loop thread.
 */
#include "db/db_internal.h"

#include <errno.h>
#include <stdlib.h>

struct db_snapshot_waiter {
	db_snapshot_cb cb;
	void *arg;
	struct db_snapshot_waiter *next;
};

bool db_checkpoint_allowed(const struct db *db)
{
	return db->snapshot_readers == 0 && db->snapshot_waiters == NULL &&
	       db->snapshot_granting == NULL;
}

static bool snapshot_allowed(const struct db *db)
{
	return db->job == NULL || !db->job->may_checkpoint;
}

int db_snapshot_acquire(struct db *db, db_snapshot_cb cb, void *arg)
{
	struct db_snapshot_waiter *w, **tail;

	if (snapshot_allowed(db)) {
		db->snapshot_readers++;
		return 1;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	for (tail = &db->snapshot_waiters; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = w;
	return 0;
}

void db_snapshot_release(struct db *db)
{
	db->snapshot_readers--;
	if (db->snapshot_readers == 0 && db->checkpoint_wanted != CHECKPOINT_NONE)
		db_request_sync(db);
}

static bool drop(struct db_snapshot_waiter **list, db_snapshot_cb cb, void *arg)
{
	for (struct db_snapshot_waiter **p = list; *p != NULL; p = &(*p)->next) {
		struct db_snapshot_waiter *w = *p;
		if (w->cb == cb && w->arg == arg) {
			*p = w->next;
			free(w);
			return true;
		}
	}
	return false;
}

void db_snapshot_cancel(struct db *db, db_snapshot_cb cb, void *arg)
{
	if (!drop(&db->snapshot_waiters, cb, arg))
		drop(&db->snapshot_granting, cb, arg);
}

void db_snapshot_job_done(struct db *db)
{
	struct db_snapshot_waiter *w;

	if (db->snapshot_waiters == NULL || !snapshot_allowed(db))
		return;
	/* Only these: one that asks again from a callback is answered at once. */
	db->snapshot_granting = db->snapshot_waiters;
	db->snapshot_waiters = NULL;
	while ((w = db->snapshot_granting) != NULL) {
		db->snapshot_granting = w->next;
		db->snapshot_readers++;
		w->cb(w->arg);
		free(w);
	}
}

void db_snapshot_forget(struct db *db)
{
	struct db_snapshot_waiter *w;

	while ((w = db->snapshot_waiters) != NULL) {
		db->snapshot_waiters = w->next;
		free(w);
	}
}
