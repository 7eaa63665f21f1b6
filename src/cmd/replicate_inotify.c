/*
 * The [dir] sections' file-system events: one inotify descriptor for the
 * process, one watch per directory (replicate_dir.c), read on the loop
 * through a uv_poll.
 *
 * Why not libuv's uv_fs_event: it reads the descriptor as soon as
 * anything is in it, and under a bulk load every write() of the
 * application to its WAL and every page our checkpoint writes into the
 * database raises an event (IN_MODIFY): measured, 20,856 reads of the
 * descriptor for 100 MiB written, a third more sidecar CPU than a [db]
 * database, whose own watcher is paused while its sync runs. A [dir]'s
 * watcher serves every database of the directory and cannot pause. So
 * after each batch the descriptor is left alone for HOLD_MS: the kernel
 * merges an event into the one queued before it when they are the same
 * (watch, mask, name), and what would have been hundreds of reads is one.
 * A lone commit is seen at once (the descriptor is polled while quiet);
 * a later one waits at most HOLD_MS, less than the spacing of one
 * database's syncs anyway (db_loop.c: SYNC_MIN_GAP_MS). Measured with
 * bench/many.py (ten of 1,000 databases written together, which keeps
 * the descriptor in its hold most of the time): 5 ms doubled their lag
 * p99 (7.9 to 15.7 ms), 2 ms keeps it (8.3 ms) and the CPU saving.
 *
 * A full kernel queue (IN_Q_OVERFLOW) is logged once and reported to
 * every watcher as an event without a name: each rescans its directory.
 * An error of the descriptor itself stops the events (one ERROR line);
 * the databases already found keep their monitor ticks.
 */
#include "cmd/replicate.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define HOLD_MS 2
#define MASK (IN_ATTRIB | IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)

struct dir_inotify {
	struct app *app;
	int fd;
	uv_poll_t poll;
	uv_timer_t hold;
	int open_handles;
};

static void on_readable(uv_poll_t *p, int status, int events);

static void dispatch(struct app *app, const struct inotify_event *e)
{
	int events = 0;

	if (e->mask & IN_Q_OVERFLOW) {
		LOG_WARN(NULL, NULL, "[dir] file-system events were lost (the kernel's queue overflowed); "
				     "rescanning %zu directories", app->n_dirs);
		/* The list may grow while they rescan (new subdirectories). */
		for (size_t i = 0; i < app->n_dirs; i++)
			replicate_dir_event(app->dirs[i], NULL, 0, 0);
		return;
	}
	if (e->len == 0 || (e->mask & IN_IGNORED))
		return;
	if (e->mask & (IN_ATTRIB | IN_MODIFY))
		events |= UV_CHANGE;
	if (e->mask & ~(uint32_t)(IN_ATTRIB | IN_MODIFY | IN_ISDIR))
		events |= UV_RENAME;
	/* Two [dir]s of one directory share its watch. Looked up per event: one
	 * may add a directory (recursive) and so move the array. */
	for (size_t i = 0; i < app->n_dirs; i++)
		if (replicate_dir_wd(app->dirs[i]) == e->wd)
			replicate_dir_event(app->dirs[i], e->name, events, 0);
}

static void on_hold_over(uv_timer_t *t)
{
	struct dir_inotify *in = t->data;

	if (!uv_is_closing((uv_handle_t *)&in->poll))
		uv_poll_start(&in->poll, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct dir_inotify *in = p->data;
	/* inotify_event needs its alignment; NAME_MAX bytes of name at most. */
	_Alignas(struct inotify_event) char buf[64 * 1024];
	bool any = false;

	(void)events;
	if (status < 0) {
		/* Not once per loop turn: stopped, and said what that costs. */
		LOG_ERROR(NULL, NULL, "[dir] file-system events: %s; databases added from now on are not "
				      "seen until a restart", uv_strerror(status));
		uv_poll_stop(p);
		return;
	}
	for (;;) {
		ssize_t n = read(in->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EAGAIN: all read */
		any = true;
		for (char *at = buf; at < buf + n;) {
			/* Aligned: the kernel pads each name (len counts it) for the next record. */
			const struct inotify_event *e = (const struct inotify_event *)(const void *)at;
			dispatch(in->app, e);
			at += sizeof(*e) + e->len;
		}
		if (in->app->inotify != in)
			return; /* closed by what an event did */
	}
	if (any && uv_poll_stop(p) == 0)
		uv_timer_start(&in->hold, on_hold_over, HOLD_MS, 0);
}

static int open_inotify(struct app *app)
{
	struct dir_inotify *in = calloc(1, sizeof(*in));
	int rc;

	if (in == NULL)
		return -ENOMEM;
	in->app = app;
	in->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in->fd < 0) {
		rc = -errno;
		free(in);
		return rc;
	}
	if ((rc = uv_poll_init(&app->loop, &in->poll, in->fd)) != 0) {
		close(in->fd);
		free(in);
		return rc;
	}
	in->poll.data = in;
	uv_timer_init(&app->loop, &in->hold);
	in->hold.data = in;
	in->open_handles = 2;
	uv_poll_start(&in->poll, UV_READABLE, on_readable);
	app->inotify = in;
	return 0;
}

int replicate_inotify_add(struct app *app, const char *path)
{
	int rc, wd;

	if (app->inotify == NULL && (rc = open_inotify(app)) != 0)
		return rc;
	wd = inotify_add_watch(app->inotify->fd, path, MASK);
	return wd >= 0 ? wd : -errno;
}

void replicate_inotify_rm(struct app *app, int wd)
{
	if (app->inotify == NULL || wd < 0)
		return;
	for (size_t i = 0; i < app->n_dirs; i++)
		if (replicate_dir_wd(app->dirs[i]) == wd)
			return; /* another [dir] of the same directory */
	inotify_rm_watch(app->inotify->fd, wd);
}

static void on_closed(uv_handle_t *h)
{
	struct dir_inotify *in = h->data;

	if (--in->open_handles > 0)
		return;
	close(in->fd);
	free(in);
}

void replicate_inotify_close(struct app *app)
{
	struct dir_inotify *in = app->inotify;

	if (in == NULL)
		return;
	app->inotify = NULL;
	uv_close((uv_handle_t *)&in->poll, on_closed);
	uv_close((uv_handle_t *)&in->hold, on_closed);
}
