/*
 * The WAL header and frame parsers and wal_scan() (src/wal.h) on an
 * arbitrary file.
 *
 * Random bytes almost never carry valid checksums, so the first input byte
 * may ask the harness to repair them, letting the fuzzer reach the frame
 * chain and the commit logic:
 *
 *   byte 0  bit 0: make bytes 0..31 a valid header (magic, version, page
 *                  size, checksum; checkpoint seq and salts as given)
 *           bit 1: big-endian checksums (the magic's low bit) when repairing
 *           bits 2..4: page size 512 << n when repairing
 *           bit 5: give every whole frame the header's salts and a checksum
 *                  that continues the chain
 *   byte 1  the size of wal_scan()'s buffer: (byte % 4) frames plus
 *           (byte / 4) * 7 bytes (so sometimes less than one frame)
 *   rest    the WAL file
 *
 * The file goes to a memfd for wal_scan(); the same frames are also checked
 * in memory with wal_frame_verify() and, with -DFUZZ_INVARIANTS, both must
 * agree on where the last commit ends.
 */
#include "fuzz.h"

#include "core/wal.h"

#include <errno.h>

static void repair_header(uint8_t *w, uint8_t flags)
{
	struct wal_header h;

	h.magic = (flags & 2) ? WAL_MAGIC_BE : WAL_MAGIC_LE;
	h.version = WAL_VERSION;
	h.page_size = 512u << ((flags >> 2) & 7);
	h.checkpoint_seq = wal_get_u32(w + 12);
	h.salt1 = wal_get_u32(w + 16);
	h.salt2 = wal_get_u32(w + 20);
	wal_header_encode(&h, w);
}

static void repair_frames(uint8_t *w, size_t n, const struct wal_header *h)
{
	size_t fsz = wal_frame_size(h);
	uint32_t s[2] = {h->cksum1, h->cksum2};
	bool be = (h->magic & 1) != 0;

	for (size_t off = WAL_HEADER_SIZE; off + fsz <= n; off += fsz) {
		uint8_t *f = w + off;
		wal_put_u32(f + 8, h->salt1);
		wal_put_u32(f + 12, h->salt2);
		wal_checksum(be, f, 8, s);
		wal_checksum(be, f + WAL_FRAME_HEADER_SIZE, h->page_size, s);
		wal_put_u32(f + 16, s[0]);
		wal_put_u32(f + 20, s[1]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wal_header h;
	struct wal_frame_header fh;
	struct wal_scan_result r;
	const char *why = NULL;
	uint8_t flags, bsel, *w, *buf;
	size_t n, fsz, buf_len;
	char path[64];
	int fd;

	if (size < 2)
		return 0;
	flags = data[0];
	bsel = data[1];
	n = size - 2;
	w = malloc(n ? n : 1);
	if (w == NULL)
		abort();
	memcpy(w, data + 2, n);
	if (n < WAL_HEADER_SIZE) {
		if (n >= WAL_FRAME_HEADER_SIZE)
			wal_frame_header_decode(w, &fh);
		free(w);
		return 0;
	}
	if (flags & 1)
		repair_header(w, flags);
	if (wal_header_decode(w, &h, &why) != 0) {
		FUZZ_CHECK(why != NULL);
		free(w);
		return 0;
	}
	fsz = wal_frame_size(&h);
	FUZZ_CHECK(fsz == WAL_FRAME_HEADER_SIZE + h.page_size);
	if (flags & 0x20)
		repair_frames(w, n, &h);

	/* What wal_scan() should find, frame by frame in memory. */
	uint32_t run[2] = {h.cksum1, h.cksum2};
	uint64_t commit_end = WAL_HEADER_SIZE, frames = 0, committed = 0;
	for (size_t off = WAL_HEADER_SIZE; off + fsz <= n; off += fsz) {
		if (!wal_frame_verify(&h, w + off, run))
			break;
		wal_frame_header_decode(w + off, &fh);
		frames++;
		if (fh.db_size != 0) {
			commit_end = off + fsz;
			committed = frames;
		}
	}

	fd = fuzz_memfd(w, n, path, sizeof(path));
	if (fd >= 0) {
		uint32_t ck[2] = {h.cksum1, h.cksum2};
		buf_len = (bsel % 4) * fsz + (size_t)(bsel / 4) * 7;
		buf = malloc(buf_len ? buf_len : 1);
		if (buf == NULL)
			abort();
		int rc = wal_scan(fd, &h, WAL_HEADER_SIZE, ck, buf, buf_len, &r);
		if (buf_len < fsz) {
			FUZZ_CHECK(rc == -EINVAL);
		} else {
			FUZZ_CHECK(rc == 0);
			FUZZ_CHECK(r.commit_end == commit_end);
			FUZZ_CHECK(r.frames == committed);
		}
		(void)rc;
		free(buf);
		close(fd);
	}
	(void)commit_end;
	(void)committed;
	free(w);
	return 0;
}
