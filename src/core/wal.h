/*
 * SQLite write-ahead log: header and frame parsing and the WAL checksum.
 *
 * Byte layout (sqlite.org/fileformat.html, "The Write-Ahead Log"; all fields
 * big-endian u32):
 *
 *   header (32 bytes): magic, version, page size, checkpoint seq,
 *                      salt-1, salt-2, checksum-1, checksum-2
 *   frame  (24 bytes + page): page number, db size after commit (non-zero
 *                      only on a commit frame), salt-1, salt-2,
 *                      checksum-1, checksum-2
 *
 * Checksums are cumulative. The header checksum covers header bytes 0..23;
 * each frame's covers its first 8 header bytes then its page, seeded with
 * the previous frame's (the first frame is seeded with the header's). The
 * magic's low bit chooses the byte order of the 32-bit words summed.
 *
 * Everything here is pure: no I/O, no allocation, except wal_scan() which
 * reads a file descriptor with pread().
 */
#ifndef LITESTREAM_WAL_H
#define LITESTREAM_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WAL_HEADER_SIZE 32
#define WAL_FRAME_HEADER_SIZE 24
#define WAL_MAGIC_LE 0x377f0682u
#define WAL_MAGIC_BE 0x377f0683u
#define WAL_VERSION 3007000u
#define WAL_MAX_PAGE_SIZE 65536u

struct wal_header {
	uint32_t magic;
	uint32_t version;
	uint32_t page_size;
	uint32_t checkpoint_seq;
	uint32_t salt1;
	uint32_t salt2;
	uint32_t cksum1;
	uint32_t cksum2;
};

struct wal_frame_header {
	uint32_t pgno;
	uint32_t db_size; /* pages after commit; 0 unless a commit frame */
	uint32_t salt1;
	uint32_t salt2;
	uint32_t cksum1;
	uint32_t cksum2;
};

/* Big-endian loads and stores. */
uint32_t wal_get_u32(const uint8_t *p);
void wal_put_u32(uint8_t *p, uint32_t v);

/*
 * Adds the 32-bit words of data[0..n) (n a multiple of 8) to the running
 * checksum s[2], words read big-endian when big_endian is true.
 */
void wal_checksum(bool big_endian, const uint8_t *data, size_t n, uint32_t s[2]);

/*
 * Decodes and validates a 32-byte header: magic, version, page size (a
 * power of two from 512 to 65536) and the header checksum.
 * Returns 0, or -EINVAL with a reason in *why (a static string) when the
 * header is not a valid WAL header. *h is written only on success.
 */
int wal_header_decode(const uint8_t *buf, struct wal_header *h, const char **why);

/* Encodes *h into 32 bytes, recomputing the header checksum into h. */
void wal_header_encode(struct wal_header *h, uint8_t *buf);

void wal_frame_header_decode(const uint8_t *buf, struct wal_frame_header *fh);

/* Size of one frame (header + page) for a header's page size. */
size_t wal_frame_size(const struct wal_header *h);

/*
 * Checks that frame (WAL_FRAME_HEADER_SIZE + page_size bytes) belongs to the
 * WAL with header h and continues the checksum chain in cksum[2]. On
 * success updates cksum to the frame's checksum and returns true; on
 * failure leaves cksum untouched and returns false.
 */
bool wal_frame_verify(const struct wal_header *h, const uint8_t *frame, uint32_t cksum[2]);

/* What wal_scan() found. */
struct wal_scan_result {
	uint64_t commit_end;      /* offset just past the last valid commit frame */
	uint32_t cksum[2];        /* running checksum at commit_end */
	uint32_t db_size;         /* db size of the last commit frame (0 if none) */
	uint64_t frames;          /* committed frames found after start */
};

/*
 * Reads frames of the WAL open at fd from offset start (a frame boundary
 * at or after WAL_HEADER_SIZE) whose running checksum there is cksum,
 * stopping at the first frame that is short, has other salts or breaks the
 * chain. Reports where the last valid commit frame ends (start itself when
 * none is found). buf (buf_len bytes, at least one frame) is filled with as
 * many whole frames per read as fit. Returns 0 or -errno on a read error.
 */
int wal_scan(int fd, const struct wal_header *h, uint64_t start, const uint32_t cksum[2],
	     uint8_t *buf, size_t buf_len, struct wal_scan_result *out);

#endif
