/*
 * Retention planning; see retention.h.
 */
#include "replica/retention.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_key(struct retention_plan *p, size_t *cap, const char *key)
{
	if (p->n_keys == *cap) {
		size_t n = *cap ? *cap * 2 : 64;
		char **v = realloc(p->keys, n * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		p->keys = v;
		*cap = n;
	}
	if ((p->keys[p->n_keys] = strdup(key)) == NULL)
		return -ENOMEM;
	p->n_keys++;
	return 0;
}

/* Removes every object of g with an index below `below` (all when whole). */
static int remove_before(struct retention_plan *p, size_t *cap, const struct catalog_generation *g,
			 uint32_t below, bool whole)
{
	char key[160];
	int rc;

	for (size_t i = 0; i < g->n_snapshots; i++) {
		if (!whole && g->snapshots[i].index >= below)
			continue;
		catalog_snapshot_key(key, sizeof(key), g->name, g->snapshots[i].index);
		if ((rc = add_key(p, cap, key)) != 0)
			return rc;
	}
	for (size_t i = 0; i < g->n_segments; i++) {
		if (!whole && g->segments[i].index >= below)
			continue;
		catalog_segment_key(key, sizeof(key), g->name, &g->segments[i]);
		if ((rc = add_key(p, cap, key)) != 0)
			return rc;
	}
	return 0;
}

int retention_plan(const struct catalog *c, const char *current_generation, int64_t now_ms,
		   int64_t retention_ms, struct retention_plan *out)
{
	const struct catalog_generation *cur = catalog_find(c, current_generation);
	struct retention_plan p = {0};
	int64_t cutoff = now_ms - retention_ms;
	size_t cap = 0;
	int rc = 0;

	if (cur == NULL || cur->n_snapshots == 0) {
		*out = p;
		return 0;
	}
	p.need_snapshot = cur->snapshots[cur->n_snapshots - 1].created_ms < cutoff;
	for (size_t i = 0; i < c->n_gens && rc == 0; i++) {
		const struct catalog_generation *g = &c->gens[i];
		const struct catalog_snapshot *base = NULL;

		if (g != cur && g->updated_ms < cutoff) {
			rc = remove_before(&p, &cap, g, 0, true);
			p.n_generations++;
			continue;
		}
		/* The newest snapshot at or before the window's start. */
		for (size_t k = 0; k < g->n_snapshots; k++)
			if (g->snapshots[k].created_ms <= cutoff &&
			    (base == NULL || g->snapshots[k].index >= base->index))
				base = &g->snapshots[k];
		if (base != NULL)
			rc = remove_before(&p, &cap, g, base->index, false);
	}
	if (rc != 0) {
		retention_plan_free(&p);
		return rc;
	}
	*out = p;
	return 0;
}

void retention_plan_free(struct retention_plan *p)
{
	for (size_t i = 0; i < p->n_keys; i++)
		free(p->keys[i]);
	free(p->keys);
	p->keys = NULL;
	p->n_keys = 0;
}
