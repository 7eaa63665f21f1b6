/*
 * Restore: rebuilds a database from one or more replicas of it.
 *
 * Target, as Litestream 0.3 chooses it: the generation updated most
 * recently across the candidate replicas (or the one given; with a
 * timestamp, the newest generation begun at or before it), the newest
 * snapshot at or before the target (index or time), then every WAL index
 * from the snapshot's on: up to the given index, or every segment written
 * at or before the timestamp, or all of them.
 *
 * Segments are downloaded up to `parallelism` at a time and decompressed
 * on the threadpool; the WAL is then applied page by page (walapply.h),
 * every object verified on the way (LZ4 checksums, WAL headers, salts and
 * checksum chains, contiguous offsets, no missing index). Any gap or
 * corruption stops the restore with a message naming the object.
 *
 * The output is built under OUTPUT.tmp, checked with PRAGMA
 * integrity_check, fsynced and renamed into place only if OUTPUT does not
 * exist (it is never overwritten); on failure nothing is left behind.
 */
#ifndef LITESTREAM_RESTORE_H
#define LITESTREAM_RESTORE_H

#include "backend/backend.h"
#include "core/names.h"
#include "core/wal.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/*
 * Where a restore ended, for a follower (follower.h) to go on from: the
 * generation, the WAL index and how many bytes of it were applied (the
 * snapshot's index and 0 when no segment followed it), and the checksum
 * chain there (have_chain false then).
 */
struct restore_result {
	char generation[GENERATION_LEN + 1];
	uint32_t index;
	uint64_t offset;
	bool have_chain;
	struct wal_header hdr;
	uint32_t cksum[2];
	int64_t applied_ms;     /* time of the newest object applied */
};

struct restore_opts {
	const char *output;     /* path of the database to create */
	const char *generation; /* NULL: chosen as above */
	int64_t index;          /* -1: latest; else restore up to this WAL index (needs generation) */
	int64_t timestamp_ms;   /* -1: latest; else the state at this time */
	int parallelism;        /* downloads in flight; default 8 */
	bool verbose;           /* one line per step on stderr */
	bool progress;          /* a progress line on a terminal */
	struct restore_result *result; /* NULL, or filled on success */
};

/* One candidate replica. */
struct restore_source {
	const char *name;       /* replica name, for messages */
	struct backend *backend;
};

/*
 * Runs the restore, driving the backends' loop until done. Returns 0,
 * -ENOENT when no backup matches (no generation, snapshot or index), or
 * another negative errno; err explains every failure.
 */
int restore_run(const struct restore_source *sources, size_t n_sources, const struct restore_opts *opts,
		char *err, size_t errlen);

/* One decompressed segment for restore_apply(). */
struct restore_segment {
	const char *path;  /* the WAL bytes */
	const char *name;  /* for errors */
	uint32_t index;
	uint64_t offset;   /* where they start in the index */
	uint64_t limit;    /* use only this many bytes (0: all) */
};

/*
 * Blocking: applies segments (in index and offset order, each index
 * starting at offset 0) to the database file at db_path, page by page
 * (walapply.h). 0, or -errno with err set.
 */
int restore_apply(const char *db_path, const struct restore_segment *segs, size_t n, bool verbose,
		  char *err, size_t errlen);

/* A compressed object already on local disk, for restore_build_local(). */
struct restore_object {
	char key[160];     /* for errors */
	const char *local; /* path of the object as stored */
	bool snapshot;
	bool raw;          /* an uncompressed IIIIIIII.wal */
	uint32_t index;
	uint64_t offset;
	uint64_t limit;    /* use only this many decompressed bytes (0: all) */
};

/*
 * Blocking (for the threadpool): builds the database at out_path (created)
 * from objs[0], a snapshot, and the segments after it, decompressing them
 * (decrypting with age's identities, when encrypted) into the directory
 * scratch. No integrity check, no rename: validation
 * uses it to compare images. 0, or -errno with err set.
 */
int restore_build_local(const struct restore_object *objs, size_t n, const struct age_keys *age,
			const char *out_path, const char *scratch, char *err, size_t errlen);

#endif
