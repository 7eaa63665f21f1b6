/*
 * LZ4 frame format (Litestream's codec for snapshots and WAL segments),
 * streamed between file descriptors in bounded memory (64 KiB blocks,
 * about 200 KiB of buffers), so that compressing a 1 GB database never
 * holds it in memory. Written frames carry the content size and a content
 * checksum; reads verify every checksum the frame has and reject
 * truncation and trailing bytes.
 *
 * Blocking I/O: meant for libuv's threadpool.
 */
#ifndef LITESTREAM_LZ4IO_H
#define LITESTREAM_LZ4IO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Compresses len bytes of in (from offset off) into one LZ4 frame written
 * to out at its current offset. *out_size gets the compressed size.
 * Returns 0, -EIO when in is shorter than asked, or another -errno.
 */
int lz4io_compress(int in, uint64_t off, uint64_t len, int out, uint64_t *out_size);

/*
 * The same, handing the frame to write_fn (0 or -errno) instead of a
 * descriptor: an encrypting sink (age.h) takes it as it is made.
 * *out_size gets the frame's size.
 */
typedef int (*lz4io_write_fn)(void *ctx, const void *buf, size_t n);
int lz4io_compress_to(int in, uint64_t off, uint64_t len, lz4io_write_fn write_fn, void *ctx,
		      uint64_t *out_size);

/*
 * Decompresses the LZ4 frame read from in (at its current offset, to EOF)
 * and writes the content to out at its current offset. *out_size gets the
 * decompressed size. On a corrupt, truncated or otherwise invalid frame
 * returns -EBADMSG with a reason in err; a failed read or write returns
 * its -errno with "read: ..." or "write: ..." in err.
 */
int lz4io_decompress(int in, int out, uint64_t *out_size, char *err, size_t errlen);

/*
 * The same, reading the frame through read_fn (which returns bytes read, 0
 * at the end, or a negative errno with its own reason in err): restore uses
 * it to decompress a download while it is still arriving.
 */
typedef long (*lz4io_read_fn)(void *ctx, void *buf, size_t n, char *err, size_t errlen);
int lz4io_decompress_from(lz4io_read_fn read_fn, void *ctx, int out, uint64_t *out_size, char *err,
			  size_t errlen);

#endif
