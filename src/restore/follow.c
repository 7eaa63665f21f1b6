#include "restore/follow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int follow_init(struct follow *f, const char *path)
{
	int rc;

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->fd = -1;
	if ((rc = uv_mutex_init(&f->mu)) != 0)
		return rc;
	if ((rc = uv_cond_init(&f->cv)) != 0) {
		uv_mutex_destroy(&f->mu);
		return rc;
	}
	return 0;
}

void follow_destroy(struct follow *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	uv_cond_destroy(&f->cv);
	uv_mutex_destroy(&f->mu);
}

void follow_ready(struct follow *f, uint64_t n)
{
	uv_mutex_lock(&f->mu);
	if (n > f->ready)
		f->ready = n;
	uv_cond_signal(&f->cv);
	uv_mutex_unlock(&f->mu);
}

void follow_end(struct follow *f, int rc)
{
	uv_mutex_lock(&f->mu);
	f->ended = true;
	f->end_rc = rc;
	uv_cond_signal(&f->cv);
	uv_mutex_unlock(&f->mu);
}

long follow_read(void *ctx, void *buf, size_t n, char *err, size_t errlen)
{
	struct follow *f = ctx;
	uint64_t avail;
	int end_rc;
	ssize_t r;

	uv_mutex_lock(&f->mu);
	while (f->ready <= f->pos && !f->ended)
		uv_cond_wait(&f->cv, &f->mu);
	avail = f->ready > f->pos ? f->ready - f->pos : 0;
	end_rc = f->ended ? f->end_rc : 0;
	uv_mutex_unlock(&f->mu);
	if (end_rc != 0) {
		snprintf(err, errlen, "the download failed");
		return -ECANCELED;
	}
	if (avail == 0)
		return 0; /* ended, all read */
	if (f->fd < 0 && (f->fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "read: open %s: %s", f->path, strerror(errno));
		return -errno;
	}
	if (n > avail)
		n = (size_t)avail;
	do {
		r = pread(f->fd, buf, n, (off_t)f->pos);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		snprintf(err, errlen, "read: %s", strerror(errno));
		return -errno;
	}
	if (r == 0) {
		snprintf(err, errlen, "read: %s is shorter than its download", f->path);
		return -EIO;
	}
	f->pos += (uint64_t)r;
	return (long)r;
}

bool follow_possible(void)
{
	const char *v = getenv("UV_THREADPOOL_SIZE");

	return v == NULL || v[0] == '\0' || atoi(v) >= 2;
}
