/*
 * Listing a replica; see catalog.h.
 */
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_snapshot(const void *a, const void *b)
{
	const struct catalog_snapshot *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_segment(const void *a, const void *b)
{
	const struct catalog_segment *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_generation(const void *a, const void *b)
{
	const struct catalog_generation *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void touch(struct catalog_generation *g, int64_t t)
{
	if (g->created_ms == 0 || t < g->created_ms)
		g->created_ms = t;
	if (t > g->updated_ms)
		g->updated_ms = t;
}

static int load_generation(struct backend *b, struct catalog_generation *g, char *err, size_t errlen)
{
	struct backend_list l = {0};
	char dir[128];
	int rc;

	snprintf(dir, sizeof(dir), "generations/%s/snapshots", g->name);
	if ((rc = backend_list_wait(b, dir, &l, err, errlen)) != 0)
		return rc;
	g->snapshots = calloc(l.n ? l.n : 1, sizeof(*g->snapshots));
	if (g->snapshots == NULL)
		goto nomem;
	for (size_t i = 0; i < l.n; i++) {
		struct catalog_snapshot *s = &g->snapshots[g->n_snapshots];
		if (l.v[i].is_dir || snapshot_name_parse(l.v[i].name, &s->index) != 0)
			continue;
		s->size = l.v[i].size;
		s->created_ms = l.v[i].mtime_ms;
		touch(g, s->created_ms);
		g->n_snapshots++;
	}
	backend_list_free(&l);
	qsort(g->snapshots, g->n_snapshots, sizeof(*g->snapshots), cmp_snapshot);

	snprintf(dir, sizeof(dir), "generations/%s/wal", g->name);
	if ((rc = backend_list_wait(b, dir, &l, err, errlen)) != 0)
		return rc;
	g->segments = calloc(l.n ? l.n : 1, sizeof(*g->segments));
	if (g->segments == NULL)
		goto nomem;
	for (size_t i = 0; i < l.n; i++) {
		struct catalog_segment *s = &g->segments[g->n_segments];
		if (l.v[i].is_dir || segment_name_parse(l.v[i].name, &s->index, &s->offset, &s->form) != 0)
			continue;
		s->size = l.v[i].size;
		s->created_ms = l.v[i].mtime_ms;
		snprintf(s->name, sizeof(s->name), "%s", l.v[i].name);
		touch(g, s->created_ms);
		g->n_segments++;
	}
	backend_list_free(&l);
	qsort(g->segments, g->n_segments, sizeof(*g->segments), cmp_segment);
	return 0;
nomem:
	backend_list_free(&l);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

int catalog_load(struct backend *b, const char *generation, struct catalog *out, char *err,
		 size_t errlen)
{
	struct catalog c = {0};
	struct backend_list l = {0};
	int rc = 0;

	if (generation != NULL) {
		if (!generation_valid(generation)) {
			snprintf(err, errlen, "invalid generation name \"%s\"", generation);
			return -EINVAL;
		}
		c.gens = calloc(1, sizeof(*c.gens));
		if (c.gens == NULL)
			return -ENOMEM;
		snprintf(c.gens[0].name, sizeof(c.gens[0].name), "%s", generation);
		c.n_gens = 1;
	} else {
		if ((rc = backend_list_wait(b, "generations", &l, err, errlen)) != 0)
			return rc;
		c.gens = calloc(l.n ? l.n : 1, sizeof(*c.gens));
		if (c.gens == NULL) {
			backend_list_free(&l);
			return -ENOMEM;
		}
		for (size_t i = 0; i < l.n; i++)
			if (generation_valid(l.v[i].name))
				snprintf(c.gens[c.n_gens++].name, GENERATION_LEN + 1, "%s", l.v[i].name);
		backend_list_free(&l);
		qsort(c.gens, c.n_gens, sizeof(*c.gens), cmp_generation);
	}
	for (size_t i = 0; i < c.n_gens && rc == 0; i++)
		rc = load_generation(b, &c.gens[i], err, errlen);
	if (rc != 0) {
		catalog_free(&c);
		return rc;
	}
	*out = c;
	return 0;
}

void catalog_free(struct catalog *c)
{
	for (size_t i = 0; i < c->n_gens; i++) {
		free(c->gens[i].snapshots);
		free(c->gens[i].segments);
	}
	free(c->gens);
	c->gens = NULL;
	c->n_gens = 0;
}

const struct catalog_generation *catalog_latest(const struct catalog *c)
{
	const struct catalog_generation *best = NULL;

	for (size_t i = 0; i < c->n_gens; i++)
		if (c->gens[i].updated_ms > 0 && (best == NULL || c->gens[i].updated_ms > best->updated_ms))
			best = &c->gens[i];
	return best;
}

const struct catalog_generation *catalog_find(const struct catalog *c, const char *generation)
{
	for (size_t i = 0; i < c->n_gens; i++)
		if (strcmp(c->gens[i].name, generation) == 0)
			return &c->gens[i];
	return NULL;
}

void catalog_snapshot_key(char *buf, size_t n, const char *generation, uint32_t index)
{
	char name[NAME_MAX_LEN];

	snapshot_name(name, sizeof(name), index);
	snprintf(buf, n, "generations/%s/snapshots/%s", generation, name);
}

void catalog_segment_key(char *buf, size_t n, const char *generation, const struct catalog_segment *s)
{
	snprintf(buf, n, "generations/%s/wal/%s", generation, s->name);
}
