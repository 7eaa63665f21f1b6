/*
 * Retention planning on hand-built catalogs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "replica/retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H 3600000LL

static struct catalog_generation gen(const char *name, size_t n_snap, const uint32_t *snap_idx,
				     const int64_t *snap_t, size_t n_seg, const uint32_t *seg_idx,
				     const int64_t *seg_t)
{
	struct catalog_generation g;

	memset(&g, 0, sizeof(g));
	snprintf(g.name, sizeof(g.name), "%s", name);
	g.snapshots = calloc(n_snap + 1, sizeof(*g.snapshots));
	g.segments = calloc(n_seg + 1, sizeof(*g.segments));
	for (size_t i = 0; i < n_snap; i++) {
		g.snapshots[i].index = snap_idx[i];
		g.snapshots[i].created_ms = snap_t[i];
	}
	g.n_snapshots = n_snap;
	for (size_t i = 0; i < n_seg; i++) {
		g.segments[i].index = seg_idx[i];
		g.segments[i].created_ms = seg_t[i];
		snprintf(g.segments[i].name, sizeof(g.segments[i].name), "%08x_00000000.wal.lz4", seg_idx[i]);
	}
	g.n_segments = n_seg;
	for (size_t i = 0; i < n_snap; i++)
		g.updated_ms = snap_t[i] > g.updated_ms ? snap_t[i] : g.updated_ms;
	for (size_t i = 0; i < n_seg; i++)
		g.updated_ms = seg_t[i] > g.updated_ms ? seg_t[i] : g.updated_ms;
	return g;
}

static bool has(const struct retention_plan *p, const char *key)
{
	for (size_t i = 0; i < p->n_keys; i++)
		if (strcmp(p->keys[i], key) == 0)
			return true;
	return false;
}

static void free_catalog(struct catalog *c)
{
	catalog_free(c);
}

static const char *const OLD = "00000000000000aa";
static const char *const CUR = "00000000000000bb";

/* now = 100h, retention 24h: the window starts at 76h. */
static void test_trims_before_base_snapshot(void **state)
{
	const uint32_t si[] = {0, 3, 6};
	const int64_t st[] = {10 * H, 70 * H, 90 * H};
	const uint32_t gi[] = {0, 1, 2, 3, 4, 5, 6, 7};
	const int64_t gt[] = {11 * H, 20 * H, 50 * H, 71 * H, 80 * H, 85 * H, 91 * H, 99 * H};
	struct catalog c = {calloc(1, sizeof(struct catalog_generation)), 1};
	struct retention_plan p;

	c.gens[0] = gen(CUR, 3, si, st, 8, gi, gt);
	assert_int_equal(retention_plan(&c, CUR, 100 * H, 24 * H, &p), 0);
	/* Base: snapshot 3 (70h <= 76h). Snapshot 0 and indexes 0-2 go. */
	assert_int_equal(p.n_keys, 4);
	assert_true(has(&p, "generations/00000000000000bb/snapshots/00000000.snapshot.lz4"));
	assert_true(has(&p, "generations/00000000000000bb/wal/00000002_00000000.wal.lz4"));
	assert_false(has(&p, "generations/00000000000000bb/wal/00000003_00000000.wal.lz4"));
	assert_false(p.need_snapshot);
	retention_plan_free(&p);
	free_catalog(&c);
}

static void test_never_removes_newest_snapshot(void **state)
{
	const uint32_t si[] = {0, 5};
	const int64_t st[] = {1 * H, 2 * H};
	const uint32_t gi[] = {0, 5, 6};
	const int64_t gt[] = {1 * H, 3 * H, 99 * H};
	struct catalog c = {calloc(1, sizeof(struct catalog_generation)), 1};
	struct retention_plan p;

	c.gens[0] = gen(CUR, 2, si, st, 3, gi, gt);
	assert_int_equal(retention_plan(&c, CUR, 100 * H, 24 * H, &p), 0);
	assert_int_equal(p.n_keys, 2); /* snapshot 0 and index 0 */
	assert_false(has(&p, "generations/00000000000000bb/snapshots/00000005.snapshot.lz4"));
	assert_true(p.need_snapshot); /* the newest one is older than the window */
	retention_plan_free(&p);
	free_catalog(&c);
}

static void test_old_generations(void **state)
{
	const uint32_t si[] = {0};
	const int64_t old_t[] = {1 * H};
	const int64_t recent_t[] = {90 * H};
	const uint32_t gi[] = {0, 1};
	const int64_t old_gt[] = {2 * H, 3 * H};
	const int64_t recent_gt[] = {90 * H, 95 * H};
	struct catalog c = {calloc(3, sizeof(struct catalog_generation)), 3};
	struct retention_plan p;

	c.gens[0] = gen(OLD, 1, si, old_t, 2, gi, old_gt);                /* all old: goes whole */
	c.gens[1] = gen("00000000000000ab", 1, si, old_t, 2, gi, recent_gt); /* updated recently: stays */
	c.gens[2] = gen(CUR, 1, si, recent_t, 2, gi, recent_gt);
	assert_int_equal(retention_plan(&c, CUR, 100 * H, 24 * H, &p), 0);
	assert_int_equal(p.n_generations, 1);
	assert_int_equal(p.n_keys, 3);
	assert_true(has(&p, "generations/00000000000000aa/snapshots/00000000.snapshot.lz4"));
	assert_true(has(&p, "generations/00000000000000aa/wal/00000001_00000000.wal.lz4"));
	retention_plan_free(&p);
	free_catalog(&c);
}

static void test_nothing_without_current_snapshot(void **state)
{
	const uint32_t si[] = {0};
	const int64_t t[] = {1 * H};
	struct catalog c = {calloc(2, sizeof(struct catalog_generation)), 2};
	struct retention_plan p;

	c.gens[0] = gen(OLD, 1, si, t, 0, NULL, NULL);
	c.gens[1] = gen(CUR, 0, NULL, NULL, 0, NULL, NULL);
	assert_int_equal(retention_plan(&c, CUR, 100 * H, 24 * H, &p), 0);
	assert_int_equal(p.n_keys, 0);
	assert_int_equal(retention_plan(&c, "00000000000000cc", 100 * H, 24 * H, &p), 0);
	assert_int_equal(p.n_keys, 0);
	free_catalog(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trims_before_base_snapshot),
		cmocka_unit_test(test_never_removes_newest_snapshot),
		cmocka_unit_test(test_old_generations),
		cmocka_unit_test(test_nothing_without_current_snapshot),
	};
	return cmocka_run_group_tests_name("retention", tests, NULL, NULL);
}
