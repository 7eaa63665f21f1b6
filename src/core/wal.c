/*
 * SQLite WAL parsing; see wal.h for the byte layout.
 */
#include "core/wal.h"

#include "util/fsutil.h"

#include <errno.h>

uint32_t wal_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void wal_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32_le(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

void wal_checksum(bool big_endian, const uint8_t *data, size_t n, uint32_t s[2])
{
	uint32_t s0 = s[0], s1 = s[1];
	size_t i;

	if (big_endian) {
		for (i = 0; i + 8 <= n; i += 8) {
			s0 += wal_get_u32(data + i) + s1;
			s1 += wal_get_u32(data + i + 4) + s0;
		}
	} else {
		for (i = 0; i + 8 <= n; i += 8) {
			s0 += get_u32_le(data + i) + s1;
			s1 += get_u32_le(data + i + 4) + s0;
		}
	}
	s[0] = s0;
	s[1] = s1;
}

static bool is_big_endian(uint32_t magic)
{
	return (magic & 1) != 0;
}

static bool page_size_valid(uint32_t sz)
{
	return sz >= 512 && sz <= WAL_MAX_PAGE_SIZE && (sz & (sz - 1)) == 0;
}

int wal_header_decode(const uint8_t *buf, struct wal_header *h, const char **why)
{
	struct wal_header t;
	uint32_t s[2] = {0, 0};

	t.magic = wal_get_u32(buf);
	t.version = wal_get_u32(buf + 4);
	t.page_size = wal_get_u32(buf + 8);
	t.checkpoint_seq = wal_get_u32(buf + 12);
	t.salt1 = wal_get_u32(buf + 16);
	t.salt2 = wal_get_u32(buf + 20);
	t.cksum1 = wal_get_u32(buf + 24);
	t.cksum2 = wal_get_u32(buf + 28);

	if (t.magic != WAL_MAGIC_LE && t.magic != WAL_MAGIC_BE) {
		*why = "bad WAL magic";
		return -EINVAL;
	}
	if (t.version != WAL_VERSION) {
		*why = "unsupported WAL format version";
		return -EINVAL;
	}
	if (!page_size_valid(t.page_size)) {
		*why = "invalid WAL page size";
		return -EINVAL;
	}
	wal_checksum(is_big_endian(t.magic), buf, 24, s);
	if (s[0] != t.cksum1 || s[1] != t.cksum2) {
		*why = "WAL header checksum mismatch";
		return -EINVAL;
	}
	*h = t;
	return 0;
}

void wal_header_encode(struct wal_header *h, uint8_t *buf)
{
	uint32_t s[2] = {0, 0};

	wal_put_u32(buf, h->magic);
	wal_put_u32(buf + 4, h->version);
	wal_put_u32(buf + 8, h->page_size);
	wal_put_u32(buf + 12, h->checkpoint_seq);
	wal_put_u32(buf + 16, h->salt1);
	wal_put_u32(buf + 20, h->salt2);
	wal_checksum(is_big_endian(h->magic), buf, 24, s);
	h->cksum1 = s[0];
	h->cksum2 = s[1];
	wal_put_u32(buf + 24, s[0]);
	wal_put_u32(buf + 28, s[1]);
}

void wal_frame_header_decode(const uint8_t *buf, struct wal_frame_header *fh)
{
	fh->pgno = wal_get_u32(buf);
	fh->db_size = wal_get_u32(buf + 4);
	fh->salt1 = wal_get_u32(buf + 8);
	fh->salt2 = wal_get_u32(buf + 12);
	fh->cksum1 = wal_get_u32(buf + 16);
	fh->cksum2 = wal_get_u32(buf + 20);
}

size_t wal_frame_size(const struct wal_header *h)
{
	return WAL_FRAME_HEADER_SIZE + (size_t)h->page_size;
}

bool wal_frame_verify(const struct wal_header *h, const uint8_t *frame, uint32_t cksum[2])
{
	struct wal_frame_header fh;
	uint32_t s[2] = {cksum[0], cksum[1]};
	bool be = is_big_endian(h->magic);

	wal_frame_header_decode(frame, &fh);
	if (fh.salt1 != h->salt1 || fh.salt2 != h->salt2 || fh.pgno == 0)
		return false;
	wal_checksum(be, frame, 8, s);
	wal_checksum(be, frame + WAL_FRAME_HEADER_SIZE, h->page_size, s);
	if (s[0] != fh.cksum1 || s[1] != fh.cksum2)
		return false;
	cksum[0] = s[0];
	cksum[1] = s[1];
	return true;
}

int wal_scan(int fd, const struct wal_header *h, uint64_t start, const uint32_t cksum[2],
	     uint8_t *buf, size_t buf_len, struct wal_scan_result *out)
{
	size_t fsz = wal_frame_size(h);
	size_t per_read = buf_len / fsz;
	uint32_t run[2] = {cksum[0], cksum[1]};
	uint64_t off = start, frames = 0;
	struct wal_scan_result r = {start, {cksum[0], cksum[1]}, 0, 0};

	if (per_read == 0)
		return -EINVAL;
	for (;;) {
		ssize_t n = fs_pread_full(fd, buf, per_read * fsz, off);
		size_t whole;

		if (n < 0)
			return (int)n;
		whole = (size_t)n / fsz;
		for (size_t i = 0; i < whole; i++) {
			const uint8_t *frame = buf + i * fsz;
			if (!wal_frame_verify(h, frame, run))
				goto done;
			off += fsz;
			frames++;
			uint32_t db_size = wal_get_u32(frame + 4);
			if (db_size != 0) {
				r.commit_end = off;
				r.cksum[0] = run[0];
				r.cksum[1] = run[1];
				r.db_size = db_size;
				r.frames = frames;
			}
		}
		if (whole < per_read)
			break; /* end of file, or a torn last frame */
	}
done:
	*out = r;
	return 0;
}
