/*
 * Listing a replica; see catalog.h.
 */
#include "backend/catalog.h"

#include <errno.h>
#include <stdbool.h>
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

/* One listing after another, on the loop: generations, then per generation
 * its snapshots and its WAL segments. */
struct loader {
	struct backend *b;
	struct catalog c;
	size_t gen;         /* generation being listed */
	bool wal_next;      /* snapshots listed, WAL next */
	catalog_cb cb;
	void *arg;
	char err[512];
};

static void next_listing(struct loader *l);

static void finish(struct loader *l, int rc)
{
	catalog_cb cb = l->cb;
	void *arg = l->arg;

	if (rc != 0)
		catalog_free(&l->c);
	cb(arg, rc, rc ? l->err : NULL, &l->c);
	catalog_free(&l->c);
	free(l);
}

static void add_snapshots(struct catalog_generation *g, const struct backend_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct catalog_snapshot *s = &g->snapshots[g->n_snapshots];
		if (l->v[i].is_dir || snapshot_name_parse(l->v[i].name, &s->index) != 0)
			continue;
		s->size = l->v[i].size;
		s->created_ms = l->v[i].mtime_ms;
		touch(g, s->created_ms);
		g->n_snapshots++;
	}
	qsort(g->snapshots, g->n_snapshots, sizeof(*g->snapshots), cmp_snapshot);
}

static void add_segments(struct catalog_generation *g, const struct backend_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct catalog_segment *s = &g->segments[g->n_segments];
		if (l->v[i].is_dir || segment_name_parse(l->v[i].name, &s->index, &s->offset, &s->form) != 0)
			continue;
		s->size = l->v[i].size;
		s->created_ms = l->v[i].mtime_ms;
		snprintf(s->name, sizeof(s->name), "%s", l->v[i].name);
		touch(g, s->created_ms);
		g->n_segments++;
	}
	qsort(g->segments, g->n_segments, sizeof(*g->segments), cmp_segment);
}

static void on_listed(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct loader *l = arg;
	struct catalog_generation *g = &l->c.gens[l->gen];

	if (rc != 0) {
		snprintf(l->err, sizeof(l->err), "%s", err ? err : strerror(-rc));
		finish(l, rc);
		return;
	}
	if (!l->wal_next) {
		g->snapshots = calloc(list->n ? list->n : 1, sizeof(*g->snapshots));
		if (g->snapshots == NULL)
			goto nomem;
		add_snapshots(g, list);
		l->wal_next = true;
	} else {
		g->segments = calloc(list->n ? list->n : 1, sizeof(*g->segments));
		if (g->segments == NULL)
			goto nomem;
		add_segments(g, list);
		l->wal_next = false;
		l->gen++;
	}
	next_listing(l);
	return;
nomem:
	snprintf(l->err, sizeof(l->err), "out of memory");
	finish(l, -ENOMEM);
}

static void next_listing(struct loader *l)
{
	char dir[128];

	if (l->gen == l->c.n_gens) {
		finish(l, 0);
		return;
	}
	snprintf(dir, sizeof(dir), "generations/%s/%s", l->c.gens[l->gen].name,
		 l->wal_next ? "wal" : "snapshots");
	l->b->ops->list(l->b, dir, on_listed, l);
}

static void on_generations(void *arg, int rc, const char *err, struct backend_list *list)
{
	struct loader *l = arg;

	if (rc != 0) {
		snprintf(l->err, sizeof(l->err), "%s", err ? err : strerror(-rc));
		finish(l, rc);
		return;
	}
	l->c.gens = calloc(list->n ? list->n : 1, sizeof(*l->c.gens));
	if (l->c.gens == NULL) {
		snprintf(l->err, sizeof(l->err), "out of memory");
		finish(l, -ENOMEM);
		return;
	}
	for (size_t i = 0; i < list->n; i++)
		if (generation_valid(list->v[i].name))
			snprintf(l->c.gens[l->c.n_gens++].name, GENERATION_LEN + 1, "%s", list->v[i].name);
	qsort(l->c.gens, l->c.n_gens, sizeof(*l->c.gens), cmp_generation);
	next_listing(l);
}

void catalog_load_async(struct backend *b, const char *generation, catalog_cb cb, void *arg)
{
	struct loader *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		cb(arg, -ENOMEM, "out of memory", NULL);
		return;
	}
	l->b = b;
	l->cb = cb;
	l->arg = arg;
	if (generation == NULL) {
		b->ops->list(b, "generations", on_generations, l);
		return;
	}
	if (!generation_valid(generation)) {
		snprintf(l->err, sizeof(l->err), "invalid generation name \"%s\"", generation);
		finish(l, -EINVAL);
		return;
	}
	l->c.gens = calloc(1, sizeof(*l->c.gens));
	if (l->c.gens == NULL) {
		snprintf(l->err, sizeof(l->err), "out of memory");
		finish(l, -ENOMEM);
		return;
	}
	snprintf(l->c.gens[0].name, GENERATION_LEN + 1, "%s", generation);
	l->c.n_gens = 1;
	next_listing(l);
}

struct waiter {
	bool done;
	int rc;
	struct catalog *out;
	char *err;
	size_t errlen;
};

static void on_loaded(void *arg, int rc, const char *err, struct catalog *c)
{
	struct waiter *w = arg;

	w->done = true;
	w->rc = rc;
	if (rc != 0) {
		snprintf(w->err, w->errlen, "%s", err);
		return;
	}
	*w->out = *c;
	c->gens = NULL;
	c->n_gens = 0;
}

int catalog_load(struct backend *b, const char *generation, struct catalog *out, char *err,
		 size_t errlen)
{
	struct waiter w = {false, 0, out, err, errlen};

	catalog_load_async(b, generation, on_loaded, &w);
	while (!w.done)
		uv_run(b->loop, UV_RUN_ONCE);
	return w.rc;
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
