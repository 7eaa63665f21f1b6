/*
 * Replica and shadow file names; see names.h.
 */
#include "core/names.h"

#include "util/pct.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Names are written in lowercase hex only: an uppercase digit is no digit here. */
static int hexval(char c)
{
	return isupper((unsigned char)c) ? -1 : pct_hex_digit((unsigned char)c);
}

/* Parses `min`..`max` lowercase hex digits at s; returns how many were read. */
static size_t hex_prefix(const char *s, size_t min, size_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < max && hexval(s[i]) >= 0; i++)
		v = v << 4 | (uint64_t)hexval(s[i]);
	if (i < min)
		return 0;
	*out = v;
	return i;
}

bool generation_valid(const char *s)
{
	size_t i;

	for (i = 0; i < GENERATION_LEN; i++)
		if (hexval(s[i]) < 0)
			return false;
	return s[i] == '\0';
}

int generation_new(char *out)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t raw[GENERATION_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[GENERATION_LEN] = '\0';
	return 0;
}

void snapshot_name(char *buf, size_t n, uint32_t index)
{
	snprintf(buf, n, "%08x.snapshot.lz4", (unsigned)index);
}

/* Parses an 8-digit index at s and checks the rest of the name is `suffix`. */
static int index_then(const char *s, const char *suffix, uint32_t *index)
{
	uint64_t v;

	if (hex_prefix(s, 8, 8, &v) != 8 || strcmp(s + 8, suffix) != 0 || v > WAL_INDEX_MAX)
		return -EINVAL;
	*index = (uint32_t)v;
	return 0;
}

int snapshot_name_parse(const char *name, uint32_t *index)
{
	return index_then(name, ".snapshot.lz4", index);
}

void segment_name(char *buf, size_t n, uint32_t index, uint64_t offset)
{
	snprintf(buf, n, "%08x_%08llx.wal.lz4", (unsigned)index, (unsigned long long)offset);
}

int segment_name_parse(const char *name, uint32_t *index, uint64_t *offset,
		       enum segment_form *form)
{
	uint64_t idx, off;
	size_t n;

	if (index_then(name, ".wal.lz4", index) == 0) {
		*offset = 0;
		*form = SEGMENT_WHOLE_LZ4;
		return 0;
	}
	if (index_then(name, ".wal", index) == 0) {
		*offset = 0;
		*form = SEGMENT_WHOLE_RAW;
		return 0;
	}
	if (hex_prefix(name, 8, 8, &idx) != 8 || name[8] != '_' || idx > WAL_INDEX_MAX)
		return -EINVAL;
	n = hex_prefix(name + 9, 8, 16, &off);
	if (n == 0 || strcmp(name + 9 + n, ".wal.lz4") != 0)
		return -EINVAL;
	/* A wider offset must not carry leading zeros: one name per offset. */
	if (n > 8 && name[9] == '0')
		return -EINVAL;
	*index = (uint32_t)idx;
	*offset = off;
	*form = SEGMENT_OFFSET;
	return 0;
}

void shadow_wal_name(char *buf, size_t n, uint32_t index)
{
	snprintf(buf, n, "%08x.wal", (unsigned)index);
}

int shadow_wal_name_parse(const char *name, uint32_t *index)
{
	return index_then(name, ".wal", index);
}

int index_parse(const char *s, uint32_t *index)
{
	uint64_t v;
	size_t n = hex_prefix(s, 1, 8, &v);

	if (n == 0 || s[n] != '\0' || v > WAL_INDEX_MAX)
		return -EINVAL;
	*index = (uint32_t)v;
	return 0;
}
