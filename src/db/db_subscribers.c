/*
 * The subscribers of one watched database: who is told of its events, and
 * what they still need of the shadow WAL.
 *
 * Events go to the subscribers in the order they subscribed (the replicas,
 * set up first, hear of a position before the control server does). A
 * subscriber may subscribe or unsubscribe from within an event: during a
 * dispatch an unsubscribed entry is only marked (on_event NULL) and the
 * array is compacted once the outermost dispatch is over, so indexes stay
 * valid; one added meanwhile hears from the next event on.
 *
 * Housekeeping: before a sync the loop asks every floor callback which
 * shadow position its subscriber still needs; the job then removes the
 * current generation's shadow files below the lowest index asked for and
 * the directories of generations nobody names (shadow_remove_shipped).
 */
#include "db/db_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_subscribe(struct db *db, db_event_cb on_event, db_floor_cb floor, void *arg)
{
	struct db_subscriber *v = realloc(db->subs, (db->n_subs + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	v[db->n_subs].on_event = on_event;
	v[db->n_subs].floor = floor;
	v[db->n_subs].arg = arg;
	db->subs = v;
	db->n_subs++;
	return 0;
}

static void compact(struct db *db)
{
	size_t n = 0;

	for (size_t i = 0; i < db->n_subs; i++)
		if (db->subs[i].on_event != NULL)
			db->subs[n++] = db->subs[i];
	db->n_subs = n;
}

void db_unsubscribe(struct db *db, db_event_cb on_event, void *arg)
{
	for (size_t i = 0; i < db->n_subs; i++) {
		struct db_subscriber *s = &db->subs[i];
		if (s->on_event == on_event && s->arg == arg) {
			s->on_event = NULL;
			s->floor = NULL;
		}
	}
	if (db->dispatching == 0)
		compact(db);
}

void db_dispatch(struct db *db, const struct db_event *ev)
{
	size_t n = db->n_subs;

	db->dispatching++;
	for (size_t i = 0; i < n; i++) {
		/* Re-read each time: a callback may have grown (moved) the array. */
		struct db_subscriber s = db->subs[i];
		if (s.on_event != NULL)
			s.on_event(s.arg, ev);
	}
	if (--db->dispatching == 0)
		compact(db);
}

bool db_plan_housekeeping(struct db *db, struct db_job *job)
{
	bool have_min = false;

	if (!db->pos_valid)
		return false;
	job->min_index = db->pos.index;
	for (size_t i = 0; i < db->n_subs; i++) {
		const struct db_subscriber *s = &db->subs[i];
		struct db_pos p;
		if (s->floor == NULL)
			continue;
		if (!s->floor(s->arg, &p))
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
