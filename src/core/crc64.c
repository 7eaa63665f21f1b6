/*
 * CRC-64/GO-ISO, slicing-by-8: eight derived tables let the loop consume
 * eight bytes per step, which makes checksumming a whole database cheap
 * enough to run on every validation.
 */
#include "core/crc64.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define CRC64_ISO_POLY 0xd800000000000000ull /* 0x1b, bit-reversed */

static uint64_t tables[8][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
	for (int i = 0; i < 256; i++) {
		uint64_t c = (uint64_t)i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC64_ISO_POLY : c >> 1;
		tables[0][i] = c;
	}
	for (int i = 0; i < 256; i++) {
		uint64_t c = tables[0][i];
		for (int t = 1; t < 8; t++) {
			c = tables[0][c & 0xff] ^ (c >> 8);
			tables[t][i] = c;
		}
	}
}

uint64_t crc64_update(uint64_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	pthread_once(&tables_once, build_tables);
	crc = ~crc;
	while (n >= 8) {
		uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
			     (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
			     (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
		crc ^= w;
		crc = tables[7][crc & 0xff] ^ tables[6][(crc >> 8) & 0xff] ^
		      tables[5][(crc >> 16) & 0xff] ^ tables[4][(crc >> 24) & 0xff] ^
		      tables[3][(crc >> 32) & 0xff] ^ tables[2][(crc >> 40) & 0xff] ^
		      tables[1][(crc >> 48) & 0xff] ^ tables[0][crc >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = tables[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

int crc64_file(const char *path, uint64_t *out)
{
	enum { CHUNK = 1 << 20 };
	uint64_t crc = 0;
	int fd, rc = 0;
	uint8_t *buf;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(CHUNK);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, buf, CHUNK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		crc = crc64_update(crc, buf, (size_t)r);
	}
	free(buf);
	close(fd);
	if (rc == 0)
		*out = crc;
	return rc;
}
