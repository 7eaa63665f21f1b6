/*
 * Names of the files in a replica and in the local shadow directory, in
 * Litestream 0.3's layout (FORMAT.md):
 *
 *   generation    16 lowercase hex characters, random
 *   snapshot      IIIIIIII.snapshot.lz4
 *   WAL segment   IIIIIIII_OOOOOOOO.wal.lz4   (bytes [O, O+len) of index I)
 *   older forms   IIIIIIII.wal.lz4, IIIIIIII.wal  (a whole index, read only)
 *   shadow WAL    IIIIIIII.wal                  (local)
 *
 * Indexes and offsets are lowercase hex, at least 8 digits. Parsers take a
 * base name and return 0 or -EINVAL; out-parameters are written only on
 * success.
 */
#ifndef LITESTREAM_NAMES_H
#define LITESTREAM_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GENERATION_LEN 16
#define NAME_MAX_LEN 64 /* room for any name formatted here */
#define WAL_INDEX_MAX 0x7fffffffu

enum segment_form {
	SEGMENT_OFFSET,   /* IIIIIIII_OOOOOOOO.wal.lz4 */
	SEGMENT_WHOLE_LZ4, /* IIIIIIII.wal.lz4 */
	SEGMENT_WHOLE_RAW, /* IIIIIIII.wal, uncompressed */
};

bool generation_valid(const char *s);

/* Fills out (GENERATION_LEN + 1 bytes) with a new random name. 0 or -errno. */
int generation_new(char *out);

void snapshot_name(char *buf, size_t n, uint32_t index);
int snapshot_name_parse(const char *name, uint32_t *index);

void segment_name(char *buf, size_t n, uint32_t index, uint64_t offset);
int segment_name_parse(const char *name, uint32_t *index, uint64_t *offset,
		       enum segment_form *form);

void shadow_wal_name(char *buf, size_t n, uint32_t index);
int shadow_wal_name_parse(const char *name, uint32_t *index);

/* Parses 1 to 8 lowercase hex digits as an index (as `-index` takes). */
int index_parse(const char *s, uint32_t *index);

#endif
