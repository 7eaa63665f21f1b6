/*
 * Replica objects, LZ4 and optionally age; see object_codec.h. Reading
 * puts a small reader in front of the source that first gives back the
 * bytes sniffed from it, so neither lz4io nor age needs to seek.
 */
#include "core/object_codec.h"

#include "core/age.h"
#include "util/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SNIFF_LEN 22 /* strlen(AGE_MAGIC) */

_Static_assert(SNIFF_LEN == sizeof(AGE_MAGIC) - 1, "SNIFF_LEN is the age magic's length");

bool object_codec_encrypts(const struct age_keys *k)
{
	return k != NULL && k->n_recipients > 0;
}

static int write_fd(void *ctx, const void *buf, size_t n)
{
	return fs_write_full(*(int *)ctx, buf, n);
}

int object_encode(int in, uint64_t off, uint64_t len, int out, const struct age_keys *k,
		  uint64_t *out_size)
{
	struct age_writer w;
	uint64_t frame;
	int rc;

	if (!object_codec_encrypts(k))
		return lz4io_compress(in, off, len, out, out_size);
	if ((rc = age_writer_begin(&w, k, write_fd, &out)) != 0) {
		age_writer_free(&w);
		return rc;
	}
	rc = lz4io_compress_to(in, off, len, age_writer_write, &w, &frame);
	if (rc != 0) {
		age_writer_free(&w);
		return rc;
	}
	return age_writer_end(&w, out_size);
}

struct prefixed {
	lz4io_read_fn read_fn;
	void *ctx;
	uint8_t head[SNIFF_LEN];
	size_t n, pos;
};

static long prefixed_read(void *ctx, void *buf, size_t n, char *err, size_t errlen)
{
	struct prefixed *p = ctx;

	if (p->pos < p->n) {
		size_t take = p->n - p->pos < n ? p->n - p->pos : n;
		memcpy(buf, p->head + p->pos, take);
		p->pos += take;
		return (long)take;
	}
	return p->read_fn(p->ctx, buf, n, err, errlen);
}

int object_decode_from(lz4io_read_fn read_fn, void *ctx, int out, const struct age_keys *k,
		       uint64_t *size, char *err, size_t errlen)
{
	struct prefixed p = {read_fn, ctx, {0}, 0, 0};
	struct age_reader r;
	int rc;

	while (p.n < SNIFF_LEN) {
		long got = read_fn(ctx, p.head + p.n, SNIFF_LEN - p.n, err, errlen);
		if (got < 0)
			return (int)got;
		if (got == 0)
			break;
		p.n += (size_t)got;
	}
	if (!age_is_encrypted(p.head, p.n))
		return lz4io_decompress_from(prefixed_read, &p, out, size, err, errlen);
	rc = age_reader_begin(&r, k, read_fn, ctx, p.head, p.n, err, errlen);
	if (rc == 0) {
		rc = lz4io_decompress_from(age_reader_read, &r, out, size, err, errlen);
		/* An lz4 error inside an authentic payload: say where it came from. */
		if (rc == -EBADMSG && strncmp(err, "lz4", 3) == 0) {
			char why[256];

			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen, "encrypted with age, decrypted: %s", why);
		}
	}
	age_reader_free(&r);
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

int object_decode(int in, int out, const struct age_keys *k, uint64_t *size, char *err,
		  size_t errlen)
{
	return object_decode_from(read_fd, &in, out, k, size, err, errlen);
}
