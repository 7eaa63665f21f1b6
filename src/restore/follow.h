/*
 * Reading a file while it is being downloaded: the loop thread says how
 * many leading bytes are final (follow_ready) and when the download ended
 * (follow_end); a threadpool job reads through follow_read(), which waits
 * for bytes that have not arrived yet. Restore decompresses a large
 * snapshot this way instead of after its download.
 *
 * The job blocks its threadpool thread while it waits, so the download
 * must not need every thread of the pool; restore does not follow when
 * UV_THREADPOOL_SIZE is below 2 (follow_possible()).
 */
#ifndef LITESTREAM_FOLLOW_H
#define LITESTREAM_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct follow {
	uv_mutex_t mu;
	uv_cond_t cv;
	uint64_t ready;  /* leading bytes final so far */
	bool ended;
	int end_rc;      /* how the download ended */
	/* The reader's own: */
	const char *path;
	int fd;
	uint64_t pos;
};

/* 0, or a negative errno. path is borrowed until follow_destroy(). */
int follow_init(struct follow *f, const char *path);
void follow_destroy(struct follow *f);

/* Loop side. */
void follow_ready(struct follow *f, uint64_t n);
void follow_end(struct follow *f, int rc);

/* Reader side, an lz4io_read_fn: bytes read, 0 at the end of a download
 * that succeeded, or a negative errno (-ECANCELED when it failed). */
long follow_read(void *ctx, void *buf, size_t n, char *err, size_t errlen);

/* Whether libuv's threadpool has room for a reader that waits. */
bool follow_possible(void);

#endif
