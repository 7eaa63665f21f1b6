/*
 * LZ4 frame streaming; see lz4io.h.
 */
#include "core/lz4io.h"

#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4frame.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_CHUNK (64 * 1024)
/* Decompressed bytes written between two write-back kicks (see emit()). */
#define WRITE_BEHIND (8 * 1024 * 1024)

static int write_fd(void *ctx, const void *buf, size_t n)
{
	return fs_write_full(*(int *)ctx, buf, n);
}

int lz4io_compress(int in, uint64_t off, uint64_t len, int out, uint64_t *out_size)
{
	return lz4io_compress_to(in, off, len, write_fd, &out, out_size);
}

int lz4io_compress_to(int in, uint64_t off, uint64_t len, lz4io_write_fn write_fn, void *ctx,
		      uint64_t *out_size)
{
	LZ4F_preferences_t prefs;
	LZ4F_cctx *cctx = NULL;
	uint8_t *src = NULL, *dst = NULL;
	size_t cap, n;
	uint64_t total = 0;
	int rc = 0;

	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.blockSizeID = LZ4F_max64KB;
	prefs.frameInfo.blockMode = LZ4F_blockLinked;
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	prefs.frameInfo.contentSize = len;
	cap = LZ4F_compressBound(IN_CHUNK, &prefs);
	if (LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)))
		return -ENOMEM;
	src = malloc(IN_CHUNK);
	dst = malloc(cap);
	if (src == NULL || dst == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	n = LZ4F_compressBegin(cctx, dst, cap, &prefs);
	if (LZ4F_isError(n)) {
		rc = -EINVAL;
		goto out;
	}
	if ((rc = write_fn(ctx, dst, n)) != 0)
		goto out;
	total += n;
	while (len > 0) {
		size_t want = len < IN_CHUNK ? (size_t)len : IN_CHUNK;
		ssize_t r = fs_pread_full(in, src, want, off);
		if (r < 0) {
			rc = (int)r;
			goto out;
		}
		if ((size_t)r < want) {
			rc = -EIO;
			goto out;
		}
		n = LZ4F_compressUpdate(cctx, dst, cap, src, want, NULL);
		if (LZ4F_isError(n)) {
			rc = -EINVAL;
			goto out;
		}
		if (n > 0 && (rc = write_fn(ctx, dst, n)) != 0)
			goto out;
		total += n;
		off += want;
		len -= want;
	}
	n = LZ4F_compressEnd(cctx, dst, cap, NULL);
	if (LZ4F_isError(n)) {
		rc = -EINVAL;
		goto out;
	}
	if ((rc = write_fn(ctx, dst, n)) != 0)
		goto out;
	total += n;
	*out_size = total;
out:
	free(src);
	free(dst);
	LZ4F_freeCompressionContext(cctx);
	return rc;
}

static long read_fd(void *ctx, void *buf, size_t n, char *err, size_t errlen)
{
	int fd = *(int *)ctx;

	for (;;) {
		ssize_t r = read(fd, buf, n);

		if (r >= 0)
			return (long)r;
		if (errno != EINTR) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return -errno;
		}
	}
}

/* Where the output stands: bytes written, and how many of them were handed
 * to write-back. */
struct sink {
	int fd;
	uint64_t total, kicked;
};

/*
 * Writes n bytes of output, and every WRITE_BEHIND bytes asks the kernel to
 * start writing them back (without waiting). A restored database is
 * fsynced whole at the end; started early, its write-back overlaps the
 * decompression instead of following it, so that fsync finds little left
 * to do. An output that is not a regular file (a pipe) just refuses the
 * hint, which is harmless.
 */
static int emit(struct sink *k, const uint8_t *buf, size_t n, char *err, size_t errlen)
{
	int rc = fs_write_full(k->fd, buf, n);

	if (rc != 0) {
		snprintf(err, errlen, "write: %s", strerror(-rc));
		return rc;
	}
	k->total += n;
	if (k->total - k->kicked >= WRITE_BEHIND) {
		(void)sync_file_range(k->fd, (off64_t)k->kicked, (off64_t)(k->total - k->kicked),
				      SYNC_FILE_RANGE_WRITE);
		k->kicked = k->total;
	}
	return 0;
}

int lz4io_decompress(int in, int out, uint64_t *out_size, char *err, size_t errlen)
{
	return lz4io_decompress_from(read_fd, &in, out, out_size, err, errlen);
}

int lz4io_decompress_from(lz4io_read_fn read_fn, void *ctx, int out, uint64_t *out_size, char *err,
			  size_t errlen)
{
	LZ4F_dctx *dctx = NULL;
	uint8_t *src = NULL, *dst = NULL;
	const size_t dst_cap = 4 * 1024 * 1024 + 64; /* largest LZ4 block */
	struct sink k = { .fd = out };
	size_t hint = 1; /* LZ4F_decompress: 0 means the frame ended */
	bool started = false;
	int rc = 0;

	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return -ENOMEM;
	src = malloc(IN_CHUNK);
	dst = malloc(dst_cap);
	if (src == NULL || dst == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		long r = read_fn(ctx, src, IN_CHUNK, err, errlen);
		if (r < 0) {
			rc = (int)r;
			goto out;
		}
		if (r == 0)
			break;
		size_t pos = 0;
		while (pos < (size_t)r) {
			if (hint == 0) {
				snprintf(err, errlen, "trailing bytes after the lz4 frame");
				rc = -EBADMSG;
				goto out;
			}
			size_t in_n = (size_t)r - pos, out_n = dst_cap;
			hint = LZ4F_decompress(dctx, dst, &out_n, src + pos, &in_n, NULL);
			if (LZ4F_isError(hint)) {
				snprintf(err, errlen, "lz4: %s", LZ4F_getErrorName(hint));
				rc = -EBADMSG;
				goto out;
			}
			started = true;
			pos += in_n;
			if (out_n > 0 && (rc = emit(&k, dst, out_n, err, errlen)) != 0)
				goto out;
		}
	}
	/* Drain output still buffered inside the context. */
	while (hint != 0 && started) {
		size_t in_n = 0, out_n = dst_cap;
		size_t h = LZ4F_decompress(dctx, dst, &out_n, src, &in_n, NULL);
		if (LZ4F_isError(h) || out_n == 0)
			break;
		if ((rc = emit(&k, dst, out_n, err, errlen)) != 0)
			goto out;
		hint = h;
	}
	if (!started) {
		snprintf(err, errlen, "empty file, not an lz4 frame");
		rc = -EBADMSG;
		goto out;
	}
	if (hint != 0) {
		snprintf(err, errlen, "truncated lz4 frame");
		rc = -EBADMSG;
		goto out;
	}
	*out_size = k.total;
out:
	free(src);
	free(dst);
	LZ4F_freeDecompressionContext(dctx);
	return rc;
}
