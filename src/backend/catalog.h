/*
 * What a replica holds: its generations, and in each the snapshots and WAL
 * segments (every 0.3 naming form), with sizes and times, read from one
 * backend by listing. Restore, the listing commands and retention all
 * work from it.
 *
 * Times are the objects' modification times (LastModified on S3): that is
 * what Litestream 0.3 calls "created", and what restore-by-timestamp and
 * retention compare against.
 */
#ifndef LITESTREAM_CATALOG_H
#define LITESTREAM_CATALOG_H

#include "backend/backend.h"
#include "core/names.h"

#include <stddef.h>
#include <stdint.h>

struct catalog_snapshot {
	uint32_t index;
	uint64_t size;       /* bytes as stored (compressed) */
	int64_t created_ms;
};

struct catalog_segment {
	uint32_t index;
	uint64_t offset;
	enum segment_form form;
	uint64_t size;       /* bytes as stored */
	int64_t created_ms;
	char name[NAME_MAX_LEN];
};

struct catalog_generation {
	char name[GENERATION_LEN + 1];
	int64_t created_ms;  /* oldest object, 0 when empty */
	int64_t updated_ms;  /* newest object, 0 when empty */
	struct catalog_snapshot *snapshots; /* by index */
	size_t n_snapshots;
	struct catalog_segment *segments;   /* by (index, offset) */
	size_t n_segments;
};

struct catalog {
	struct catalog_generation *gens; /* by name */
	size_t n_gens;
};

/*
 * Called once on the loop. On success c is complete and the callback may
 * move it out (copy the struct, then zero c->gens and c->n_gens); it is
 * freed after the callback otherwise.
 */
typedef void (*catalog_cb)(void *arg, int rc, const char *err, struct catalog *c);

/* Lists the replica behind b (all generations, or only `generation`). */
void catalog_load_async(struct backend *b, const char *generation, catalog_cb cb, void *arg);

/*
 * The same for one-shot commands: drives b's loop until done (never call
 * it from a loop callback). 0, or -errno with err set; *out is written
 * only on success and is the caller's to free.
 */
int catalog_load(struct backend *b, const char *generation, struct catalog *out, char *err,
		 size_t errlen);

void catalog_free(struct catalog *c);

const struct catalog_generation *catalog_find(const struct catalog *c, const char *generation);

/* Key of a snapshot or segment of generation g. */
void catalog_snapshot_key(char *buf, size_t n, const char *generation, uint32_t index);
void catalog_segment_key(char *buf, size_t n, const char *generation, const struct catalog_segment *s);

#endif
