/*
 * The follower's loop (follower.h): start (restore, or resume from the
 * position file), then poll the replica every interval, apply what is
 * new, and switch generations when the replica's newest is another one.
 *
 * This file drives the loop the way restore does, step by step
 * (catalog_load, downloads, then an apply on the threadpool), so the
 * control socket and the signal handles are served during every step;
 * between polls the loop waits on one timer and nothing else runs.
 *
 * What stops the follower (follower_run returns the error): a corrupt or
 * missing object, a generation that cannot be restored, a position that
 * does not match PATH. What it retries at the next poll, keeping the
 * error in last_error: a listing or a download that failed otherwise (the
 * network), readers that kept PATH locked past lock_timeout_ms.
 */
#include "restore/follower_internal.h"

#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Segments applied in one change at most; more wait for the next turn. */
#define BATCH_MAX 256

const char *follower_state_name(enum follower_state s)
{
	switch (s) {
	case FOLLOWER_STARTING: return "starting";
	case FOLLOWER_RESTORING: return "restoring";
	case FOLLOWER_FOLLOWING: return "following";
	case FOLLOWER_STOPPED: return "stopped";
	case FOLLOWER_FAILED: return "failed";
	}
	return "unknown";
}

int follower_init(struct follower *f, uv_loop_t *loop, const struct restore_source *src,
		  const struct follower_opts *o)
{
	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->src = *src;
	f->o = *o;
	if (f->o.interval_ms <= 0)
		f->o.interval_ms = 1000;
	/*
	 * While the follower waits for a long read to end, its PENDING lock
	 * holds new readers off: it gives up after this long and tries again
	 * at the next poll, so readers never wait much longer than this.
	 */
	if (f->o.lock_timeout_ms <= 0)
		f->o.lock_timeout_ms = 2000;
	uv_timer_init(loop, &f->timer);
	uv_fs_event_init(loop, &f->watch_wal);
	uv_fs_event_init(loop, &f->watch_gens);
	f->timer.data = f->watch_wal.data = f->watch_gens.data = f;
	f->pos_path = str_printf("%s.follow", o->output);
	f->scratch = str_printf("%s.follow.d", o->output);
	f->new_path = str_printf("%s.follow-new", o->output);
	if (f->pos_path == NULL || f->scratch == NULL || f->new_path == NULL)
		return -ENOMEM;
	return 0;
}

void follower_free(struct follower *f)
{
	livedb_close(f->live);
	f->live = NULL;
	if (f->scratch != NULL)
		fs_remove_tree(f->scratch);
	if (!uv_is_closing((uv_handle_t *)&f->timer)) {
		uv_close((uv_handle_t *)&f->timer, NULL);
		uv_close((uv_handle_t *)&f->watch_wal, NULL);
		uv_close((uv_handle_t *)&f->watch_gens, NULL);
	}
	free(f->pos_path);
	free(f->scratch);
	free(f->new_path);
	f->pos_path = f->scratch = f->new_path = NULL;
}

void follower_stop(struct follower *f)
{
	f->stopping = true;
}

static int fail(struct follower *f, char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail(struct follower *f, char *err, size_t errlen, int rc, const char *fmt, ...)
{
	char msg[sizeof(f->last_error)];
	va_list ap;

	/* Through msg: the arguments may point into err itself. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s", msg);
	snprintf(f->last_error, sizeof(f->last_error), "%s", msg);
	return rc;
}

/* A failure worth another try at the next poll. */
static void transient(struct follower *f, const char *what, const char *err)
{
	f->stats.poll_errors++;
	snprintf(f->last_error, sizeof(f->last_error), "%s: %s", what, err);
	LOG_WARN_ERR(f->o.output, f->src.name, err, "%s failed, retrying at the next poll", what);
}

/* ---- restoring a generation ---------------------------------------------- */

static int install_job(struct follower *f, void *arg)
{
	return follow_install_generation(f, arg, f->job.err, sizeof(f->job.err));
}

/* The first restore: PATH does not exist yet, nobody reads it. */
static int install_new(struct follower *f, const struct restore_result *res, char *err, size_t errlen)
{
	struct follow_pos p;
	int rc;

	memset(&p, 0, sizeof(p));
	snprintf(p.generation, sizeof(p.generation), "%s", res->generation);
	p.index = res->index;
	p.offset = res->offset;
	p.have_chain = res->have_chain;
	p.hdr = res->hdr;
	p.cksum[0] = res->cksum[0];
	p.cksum[1] = res->cksum[1];
	p.applied_ms = res->applied_ms;
	p.counter = 1;
	if ((rc = livedb_prepare_file(f->new_path, &p.page1_crc, err, errlen)) != 0)
		return rc;
	/* The position first: a crash before the rename leaves no PATH, so a restart restores anew. */
	if ((rc = follow_pos_save(f->pos_path, f->src.backend->describe, &p, NULL, err, errlen)) != 0)
		return rc;
	if (renameat2(AT_FDCWD, f->new_path, AT_FDCWD, f->o.output, RENAME_NOREPLACE) != 0)
		return fail(f, err, errlen, -errno, "rename %s to %s: %s", f->new_path, f->o.output,
			    strerror(errno));
	fs_fsync_parent(f->o.output);
	f->pos = p;
	f->have_pos = true;
	return livedb_open(f->o.output, &f->live, err, errlen);
}

/* Restores generation (NULL: the newest) beside PATH, then into it. */
static int restore_generation(struct follower *f, const char *generation, char *err, size_t errlen)
{
	struct restore_result res;
	struct restore_opts ro = {0};
	int rc;

	f->state = FOLLOWER_RESTORING;
	ro.output = f->new_path;
	ro.generation = generation;
	ro.index = -1;
	ro.timestamp_ms = -1;
	ro.parallelism = f->o.parallelism;
	ro.verbose = f->o.verbose;
	ro.result = &res;
	unlink(f->new_path);
	if ((rc = restore_run(&f->src, 1, &ro, err, errlen)) != 0) {
		/* PATH is untouched: only damage stops a follower that already follows. */
		if (f->live != NULL && rc != -EBADMSG && rc != -ENOENT) {
			transient(f, "restoring the new generation", err);
			f->state = FOLLOWER_FOLLOWING;
			return 0;
		}
		return fail(f, err, errlen, rc, "%s", err);
	}
	if (f->live == NULL) {
		rc = install_new(f, &res, err, errlen);
	} else {
		rc = follower_blocking(f, install_job, &res);
		if (rc != 0)
			snprintf(err, errlen, "%s", f->job.err);
		else
			f->stats.switches++;
	}
	unlink(f->new_path);
	if (rc != 0)
		return fail(f, err, errlen, rc, "%s", err);
	f->stats.last_apply_ms = clock_wall_ms();
	f->state = FOLLOWER_FOLLOWING;
	LOG_INFO(f->o.output, f->src.name, "restored generation %s up to index %08x offset %llu",
		 f->pos.generation, f->pos.index, (unsigned long long)f->pos.offset);
	return 0;
}

/* ---- starting ---------------------------------------------------------------- */

static void remove_copy(struct follower *f)
{
	static const char *const suffixes[] = {"", "-journal", "-wal", "-shm", ".follow"};

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char *p = str_printf("%s%s", f->o.output, suffixes[i]);
		if (p != NULL)
			unlink(p);
		free(p);
	}
}

static int resume(struct follower *f, char *err, size_t errlen)
{
	struct follow_pos entries[2];
	uint64_t crc;
	uint32_t counter;
	size_t n;
	int rc = follow_pos_load(f->pos_path, f->src.backend->describe, entries, &n, err, errlen);

	if (rc == -ENOENT)
		return fail(f, err, errlen, -EEXIST,
			    "%s exists but has no position file %s: it is not a follower's copy (remove it, or pass -force to restore it anew)",
			    f->o.output, f->pos_path);
	if (rc != 0)
		return fail(f, err, errlen, rc, "%s (pass -force to start over)", err);
	if ((rc = livedb_open(f->o.output, &f->live, err, errlen)) != 0 ||
	    (rc = livedb_state(f->live, &counter, &crc, err, errlen)) != 0)
		return fail(f, err, errlen, rc, "%s (pass -force to start over)", err);
	for (size_t i = 0; i < n; i++) {
		if (entries[i].counter == counter && entries[i].page1_crc == crc) {
			f->pos = entries[i];
			f->have_pos = true;
		}
	}
	if (!f->have_pos)
		return fail(f, err, errlen, -ESTALE,
			    "%s changed since the follower left it (change counter %u matches no entry of %s; pass -force to start over)",
			    f->o.output, counter, f->pos_path);
	LOG_INFO(f->o.output, f->src.name, "resuming generation %s at index %08x offset %llu",
		 f->pos.generation, f->pos.index, (unsigned long long)f->pos.offset);
	f->state = FOLLOWER_FOLLOWING;
	return 0;
}

static int start(struct follower *f, char *err, size_t errlen)
{
	int rc;

	if ((rc = fs_mkdir_p(f->scratch, 0700)) != 0)
		return fail(f, err, errlen, rc, "mkdir %s: %s", f->scratch, strerror(-rc));
	if (access(f->o.output, F_OK) == 0 && f->o.force) {
		LOG_INFO(f->o.output, f->src.name, "-force: restoring anew");
		remove_copy(f);
	}
	if (access(f->o.output, F_OK) == 0)
		return resume(f, err, errlen);
	unlink(f->pos_path);
	return restore_generation(f, NULL, err, errlen);
}

/* ---- following ------------------------------------------------------------- */

static void on_fetched(void *arg, int rc, const char *err)
{
	struct follow_seg *sg = arg;
	sg->rc = rc;
	if (rc != 0)
		snprintf(sg->err, sizeof(sg->err), "%s: %s", sg->key, err ? err : strerror(-rc));
	sg->done = true;
}

/* Downloads (or finds, in a file replica) every segment of the batch. */
static int fetch_all(struct follower *f, struct follow_seg *segs, size_t n, char *err, size_t errlen)
{
	struct backend *b = f->src.backend;
	bool all;

	for (size_t i = 0; i < n; i++) {
		struct follow_seg *sg = &segs[i];
		sg->f = f;
		sg->out = str_printf("%s/%zu.wal", f->scratch, i);
		sg->src = b->ops->local_path ? b->ops->local_path(b, sg->key) : NULL;
		if (sg->out == NULL)
			return fail(f, err, errlen, -ENOMEM, "out of memory");
		if (sg->src != NULL) {
			sg->done = true;
			continue;
		}
		sg->src = str_printf("%s/%zu.fetch", f->scratch, i);
		sg->src_is_tmp = true;
		if (sg->src == NULL)
			return fail(f, err, errlen, -ENOMEM, "out of memory");
		b->ops->get(b, sg->key, sg->src, on_fetched, sg);
	}
	do {
		all = true;
		for (size_t i = 0; i < n && all; i++)
			all = segs[i].done;
		if (!all)
			uv_run(f->loop, UV_RUN_ONCE);
	} while (!all);
	for (size_t i = 0; i < n; i++)
		if (segs[i].rc != 0)
			return snprintf(err, errlen, "%s", segs[i].err), segs[i].rc;
	return 0;
}

static void free_segs(struct follow_seg *segs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (segs[i].src_is_tmp && segs[i].src != NULL)
			unlink(segs[i].src);
		if (segs[i].out != NULL)
			unlink(segs[i].out);
		free(segs[i].src);
		free(segs[i].out);
	}
	free(segs);
}

/* Segments of g after the position, in order; a missing index is an error. */
static int pick_new(struct follower *f, const struct catalog_generation *g, struct follow_seg **out,
		    size_t *n, char *err, size_t errlen)
{
	struct follow_seg *v = calloc(BATCH_MAX, sizeof(*v));
	uint32_t prev = f->pos.index;
	size_t k = 0;

	if (v == NULL)
		return fail(f, err, errlen, -ENOMEM, "out of memory");
	for (size_t i = 0; i < g->n_segments && k < BATCH_MAX; i++) {
		const struct catalog_segment *s = &g->segments[i];
		if (s->index < f->pos.index || (s->index == f->pos.index && s->offset < f->pos.offset))
			continue;
		if (s->index != prev && s->index != prev + 1) {
			free(v);
			return fail(f, err, errlen, -EBADMSG, "generation %s: wal index %08x is missing (found %s next)",
				    g->name, prev + 1, s->name);
		}
		prev = s->index;
		v[k].s = *s;
		catalog_segment_key(v[k].key, sizeof(v[k].key), g->name, s);
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

struct apply_args {
	struct follow_seg *segs;
	size_t n, used;
};

static int apply_job(struct follower *f, void *arg)
{
	struct apply_args *a = arg;

	return follow_apply_segments(f, a->segs, a->n, &a->used, f->job.err, sizeof(f->job.err));
}

/* One batch of g's new segments; *more when the batch was full. */
static int follow_segments(struct follower *f, const struct catalog_generation *g, bool *more, char *err,
			   size_t errlen)
{
	struct apply_args a = {0};
	int rc;

	if ((rc = pick_new(f, g, &a.segs, &a.n, err, errlen)) != 0)
		return rc;
	if (a.n == 0) {
		f->stats.lag_seconds = 0;
		free(a.segs);
		return 0;
	}
	rc = fetch_all(f, a.segs, a.n, err, errlen);
	if (rc != 0 && rc != -ENOENT && rc != -EBADMSG) {
		transient(f, "download", err);
		free_segs(a.segs, a.n);
		return 0;
	}
	if (rc == 0) {
		rc = follower_blocking(f, apply_job, &a);
		if (rc != 0)
			snprintf(err, errlen, "%s", f->job.err);
	}
	free_segs(a.segs, a.n);
	if (rc == -EBUSY) {
		transient(f, "apply", err);
		return 0;
	}
	if (rc != 0)
		return fail(f, err, errlen, rc, "%s", err);
	if (a.used > 0) {
		f->stats.applies++;
		f->stats.segments += a.used;
		f->stats.last_apply_ms = clock_wall_ms();
		if (f->o.verbose)
			LOG_INFO(f->o.output, f->src.name, "applied %zu segments, now at index %08x offset %llu",
				 a.used, f->pos.index, (unsigned long long)f->pos.offset);
	}
	f->stats.lag_seconds = a.used == a.n ? 0 : (double)(g->updated_ms - f->pos.applied_ms) / 1000.0;
	if (f->stats.lag_seconds < 0)
		f->stats.lag_seconds = 0;
	*more = a.n == BATCH_MAX && a.used == a.n;
	return 0;
}

/*
 * Retention removed the segments the copy needs next (it was stopped, or
 * fell behind) but a later snapshot holds their effect: the generation is
 * restored anew, in place, instead of stopping on the gap.
 */
static bool behind_retention(const struct follower *f, const struct catalog_generation *g)
{
	bool later_snapshot = false;

	for (size_t i = 0; i < g->n_segments; i++)
		if (g->segments[i].index <= f->pos.index + 1)
			return false;
	for (size_t i = 0; i < g->n_snapshots; i++)
		later_snapshot = later_snapshot || g->snapshots[i].index > f->pos.index;
	return later_snapshot && g->n_segments > 0;
}

/* The generation restore would choose now: the one updated last. */
static const struct catalog_generation *newest(const struct catalog *c)
{
	const struct catalog_generation *best = NULL;

	for (size_t i = 0; i < c->n_gens; i++) {
		const struct catalog_generation *g = &c->gens[i];
		if (g->n_snapshots > 0 && (best == NULL || g->updated_ms > best->updated_ms))
			best = g;
	}
	return best;
}

static int poll_once(struct follower *f, bool *more, char *err, size_t errlen)
{
	const struct catalog_generation *cur, *best;
	struct catalog cat;
	int rc = 0;

	f->stats.polls++;
	f->woken = false;
	if ((rc = catalog_load(f->src.backend, NULL, &cat, err, errlen)) != 0) {
		transient(f, "listing the replica", err);
		return 0;
	}
	cur = catalog_find(&cat, f->pos.generation);
	best = newest(&cat);
	if (best != NULL && best != cur && (cur == NULL || best->updated_ms > cur->updated_ms)) {
		char name[GENERATION_LEN + 1];
		snprintf(name, sizeof(name), "%s", best->name);
		LOG_INFO(f->o.output, f->src.name, "the replica moved to generation %s: restoring it", name);
		catalog_free(&cat);
		return restore_generation(f, name, err, errlen);
	}
	if (cur != NULL && behind_retention(f, cur)) {
		char name[GENERATION_LEN + 1];
		snprintf(name, sizeof(name), "%s", cur->name);
		LOG_INFO(f->o.output, f->src.name, "the segments after index %08x are gone (retention): restoring anew",
			 f->pos.index);
		catalog_free(&cat);
		return restore_generation(f, name, err, errlen);
	}
	if (cur != NULL)
		rc = follow_segments(f, cur, more, err, errlen);
	catalog_free(&cat);
	return rc;
}

static void on_timer(uv_timer_t *t)
{
	struct follower *f = t->data;

	f->timer_fired = true;
}

static void on_dir_change(uv_fs_event_t *h, const char *name, int events, int status)
{
	struct follower *f = h->data;

	(void)name;
	(void)events;
	(void)status;
	f->woken = true;
}

/* Watches what a file replica changes next (best effort: polling stays). */
static void watch(struct follower *f)
{
	struct backend *b = f->src.backend;
	char key[80], *dir;

	if (b->ops->local_path == NULL || strcmp(f->watched, f->pos.generation) == 0)
		return;
	uv_fs_event_stop(&f->watch_wal);
	snprintf(key, sizeof(key), "generations/%s/wal", f->pos.generation);
	/* A wal directory not made yet is tried again at the next wait. */
	if ((dir = b->ops->local_path(b, key)) != NULL &&
	    uv_fs_event_start(&f->watch_wal, on_dir_change, dir, 0) == 0)
		snprintf(f->watched, sizeof(f->watched), "%s", f->pos.generation);
	free(dir);
	if (!uv_is_active((uv_handle_t *)&f->watch_gens) && (dir = b->ops->local_path(b, "generations")) != NULL) {
		uv_fs_event_start(&f->watch_gens, on_dir_change, dir, 0);
		free(dir);
	}
}

static void wait_interval(struct follower *f)
{
	watch(f);
	f->timer_fired = false;
	uv_timer_start(&f->timer, on_timer, (uint64_t)f->o.interval_ms, 0);
	while (!f->timer_fired && !f->woken && !f->stopping)
		uv_run(f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->timer);
}

int follower_run(struct follower *f, char *err, size_t errlen)
{
	int rc;

	f->state = FOLLOWER_STARTING;
	rc = start(f, err, errlen);
	while (rc == 0 && !f->stopping) {
		bool more;
		do {
			more = false;
			rc = poll_once(f, &more, err, errlen);
		} while (rc == 0 && more && !f->stopping);
		if (rc == 0 && !f->stopping)
			wait_interval(f);
	}
	f->state = rc == 0 ? FOLLOWER_STOPPED : FOLLOWER_FAILED;
	if (rc != 0)
		snprintf(f->last_error, sizeof(f->last_error), "%s", err);
	return rc;
}
