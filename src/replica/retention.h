/*
 * Retention: which objects of a replica may go.
 *
 * A point in time within the retention window must stay restorable, and
 * so must the latest state. So, per generation: everything before the
 * newest snapshot taken at or before the start of the window goes (that
 * snapshot and all after it stay); a generation other than the database's
 * current one goes whole once its last object is older than the window.
 * The current generation's newest snapshot and everything after it are
 * never removed. When that newest snapshot is itself older than the
 * window, a new snapshot is asked for, so that the next check can trim.
 *
 * Nothing is removed while the replica has no snapshot in the current
 * generation (it is still catching up, or shipping an older generation).
 */
#ifndef LITESTREAM_RETENTION_H
#define LITESTREAM_RETENTION_H

#include "backend/catalog.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct retention_plan {
	char **keys;          /* objects to remove (owned) */
	size_t n_keys;
	size_t n_generations; /* whole generations among them */
	bool need_snapshot;
};

/* Plans retention at time now_ms. 0 or -ENOMEM. */
int retention_plan(const struct catalog *c, const char *current_generation, int64_t now_ms,
		   int64_t retention_ms, struct retention_plan *out);

void retention_plan_free(struct retention_plan *p);

#endif
