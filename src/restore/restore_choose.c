/*
 * Restore, phase one: choose. Lists every candidate replica (a catalog
 * each) and picks, as Litestream 0.3 does, the generation, the snapshot at
 * or before the target and the segments from it to the target; see
 * restore.h for the rules. A missing WAL index between them fails here,
 * before anything is downloaded.
 */
#include "restore/restore_internal.h"

#include "util/timefmt.h"

#include <errno.h>
#include <string.h>

static bool better_generation(const struct restore_opts *o, const struct catalog_generation *g,
			      const struct catalog_generation *best)
{
	if (g->n_snapshots == 0)
		return false;
	if (o->timestamp_ms >= 0) {
		if (g->created_ms > o->timestamp_ms)
			return false;
		/* The timeline at T is the generation begun last before it. */
		return best == NULL || g->created_ms > best->created_ms ||
		       (g->created_ms == best->created_ms && g->updated_ms > best->updated_ms);
	}
	return best == NULL || g->updated_ms > best->updated_ms;
}

static const struct catalog_snapshot *pick_snapshot(const struct restore_opts *o,
						    const struct catalog_generation *g)
{
	const struct catalog_snapshot *best = NULL;

	for (size_t i = 0; i < g->n_snapshots; i++) {
		const struct catalog_snapshot *s = &g->snapshots[i];
		if (o->index >= 0 && s->index > (uint64_t)o->index)
			continue;
		if (o->timestamp_ms >= 0 && s->created_ms > o->timestamp_ms)
			continue;
		if (best == NULL || s->index >= best->index)
			best = s;
	}
	return best;
}

/*
 * Segments from the snapshot's index to the target, checked for a missing
 * index (offsets within an index are checked as they are applied).
 */
static int pick_segments(struct restore *r, struct choice *c)
{
	const struct catalog_generation *g = c->gen;
	const struct restore_opts *o = r->o;
	size_t i = 0;

	while (i < g->n_segments && g->segments[i].index < c->snap->index)
		i++;
	c->first = i;
	for (; i < g->n_segments; i++) {
		const struct catalog_segment *s = &g->segments[i];
		uint32_t want;
		if (o->index >= 0 && s->index > (uint64_t)o->index)
			break;
		if (o->timestamp_ms >= 0 && s->created_ms > o->timestamp_ms)
			break;
		if (i == c->first)
			want = c->snap->index;
		else if (s->index != g->segments[i - 1].index)
			want = g->segments[i - 1].index + 1;
		else
			continue;
		if (s->index != want)
			return restore_fail(r, -EBADMSG,
					    "generation %s: wal index %08x is missing (found %s next)",
					    g->name, want, s->name);
	}
	c->last = i;
	if (o->index >= 0) {
		bool found = c->snap->index == (uint64_t)o->index;
		for (size_t k = c->first; k < c->last && !found; k++)
			found = g->segments[k].index == (uint64_t)o->index;
		if (!found)
			return restore_fail(r, -ENOENT, "wal index %08llx not found in generation %s",
					    (unsigned long long)o->index, g->name);
	}
	return 0;
}

int restore_choose(struct restore *r, const struct restore_source *src, size_t n,
		   struct catalog *cats, struct choice *c)
{
	const struct restore_opts *o = r->o;
	int rc;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		char err[512];
		if ((rc = catalog_load(src[i].backend, o->generation, &cats[i], err, sizeof(err))) != 0)
			return restore_fail(r, rc, "replica %s: %s", src[i].name, err);
		for (size_t k = 0; k < cats[i].n_gens; k++) {
			const struct catalog_generation *g = &cats[i].gens[k];
			if (better_generation(o, g, c->gen)) {
				c->gen = g;
				c->source = i;
			}
		}
	}
	if (c->gen == NULL) {
		if (o->generation != NULL)
			return restore_fail(r, -ENOENT, "generation %s not found (or it has no snapshot)",
					    o->generation);
		if (o->timestamp_ms >= 0) {
			char t[40];
			timefmt_format(o->timestamp_ms, t, sizeof(t));
			return restore_fail(r, -ENOENT, "no backup found at or before %s", t);
		}
		return restore_fail(r, -ENOENT, "no matching backups found");
	}
	c->snap = pick_snapshot(o, c->gen);
	if (c->snap == NULL)
		return restore_fail(r, -ENOENT, "generation %s has no snapshot at or before the target",
				    c->gen->name);
	return pick_segments(r, c);
}
