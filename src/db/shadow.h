/*
 * The shadow WAL: Litestream's local, durable copy of every committed frame
 * of a database's WAL, kept next to the database (FORMAT.md):
 *
 *   DIR/.NAME-litestream/generation                      current generation
 *   DIR/.NAME-litestream/generations/GEN/wal/IIIIIIII.wal shadow WAL index I
 *
 * Each shadow file is the real WAL's header followed by the committed
 * frames copied so far; a new index starts each time SQLite restarts the
 * real WAL, and a new generation whenever continuity with what was copied
 * cannot be proven. Invariants kept here:
 *
 *  - a shadow file only ever holds whole transactions: bytes are appended
 *    up to the last valid commit frame (salts and checksum chain verified);
 *  - after a crash, the first sync re-verifies the current file and cuts
 *    any torn tail back to its last commit frame;
 *  - no frame is ever taken from a WAL whose continuity with the shadow is
 *    in doubt: a new generation starts, with the reason logged.
 *
 * The caller holds a read transaction on the database from before the
 * first shadow_sync() and never lets go of it (it moves it forward by
 * taking the next one before releasing the last); when it does lose it
 * (the connections close), it calls shadow_forget(). Some continuity
 * proofs rest on that lock (see shadow.c).
 *
 * An index may be "headerless": a generation started while the real WAL
 * was empty or missing has index 0 with no file yet (size 0); the first
 * WAL header to appear under the caller's read lock starts it.
 *
 * Blocking file I/O; used from the database's threadpool job only (one at
 * a time), never from the loop thread; except the path accessors
 * (shadow_file_path, shadow_generation_dir, shadow_index_size,
 * shadow_tmp_dir), which read only what shadow_init() set and which the
 * loop uses to read shadow files that are already committed.
 */
#ifndef LITESTREAM_SHADOW_H
#define LITESTREAM_SHADOW_H

#include "core/names.h"
#include "core/wal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHADOW_REASON_LEN 128

struct shadow {
	char *db_path;         /* the database (owned) */
	char *wal_path;        /* its real WAL (owned) */
	char *meta_dir;        /* DIR/.NAME-litestream (owned) */
	char generation[GENERATION_LEN + 1]; /* "" when none is loaded */
	uint32_t index;        /* current shadow index */
	int fd;                /* current shadow file, -1 when none */
	uint64_t size;         /* committed bytes in the current shadow file */
	uint32_t cksum[2];     /* running WAL checksum at size */
	struct wal_header hdr; /* header of the current shadow file */
	uint64_t bytes_copied; /* total frames bytes appended, for metrics */
	uint64_t flushed;      /* size at the last fdatasync of fd */
	/*
	 * verified: continuity with the real WAL was checked in this process
	 * under the caller's read lock (not only loaded from disk).
	 * complete: the current file holds the whole real WAL as of a moment
	 * it was fully backfilled (shadow_mark_backfilled), so the next WAL
	 * restart needs no look at the old frames.
	 */
	bool verified;
	bool complete;
	/* shadow_remove_shipped() found nothing left below swept_below. */
	bool swept;
	uint32_t swept_below;
	size_t swept_keep;
};

/* What the last shadow_sync() did. */
struct shadow_sync_result {
	uint64_t copied;          /* bytes appended to the shadow WAL */
	bool restarted;           /* a new index was started */
	bool new_generation;      /* a new generation was started */
	char reason[SHADOW_REASON_LEN]; /* why, when new_generation */
	uint64_t wal_size;        /* size of the real WAL file */
};

/* Sets up paths; loads nothing. 0 or -ENOMEM. */
int shadow_init(struct shadow *s, const char *db_path);
void shadow_close(struct shadow *s);

/*
 * Brings the shadow WAL level with the real WAL: verifies continuity
 * (loading the current generation from disk first if none is loaded),
 * copies newly committed frames, follows a WAL restart into the next index,
 * and starts a new generation when continuity is lost. The caller must
 * hold a read transaction so that SQLite cannot restart the WAL meanwhile.
 * An empty or missing real WAL copies nothing, or starts a headerless
 * generation when continuity with the loaded one cannot be proven. Never
 * writes to the database. Returns 0 or a negative errno (I/O error;
 * nothing is half-done: the shadow stays at its last committed size).
 */
int shadow_sync(struct shadow *s, struct shadow_sync_result *res);

/* Makes the current shadow file durable (before a checkpoint, at exit). */
int shadow_flush(struct shadow *s);

/*
 * A checkpoint reported the real WAL fully backfilled with frames frames
 * in it: if the current file holds exactly those, it is complete (see
 * struct shadow). Cleared by the next bytes copied into the same index.
 */
void shadow_mark_backfilled(struct shadow *s, uint64_t frames);

/* The caller lost its read transaction: forget what rested on it. */
void shadow_forget(struct shadow *s);

/* Starts a new generation now (e.g. asked by a replica). */
int shadow_new_generation(struct shadow *s, const char *reason, struct shadow_sync_result *res);

/* Path of a shadow WAL file; malloc'd. */
char *shadow_file_path(const struct shadow *s, const char *generation, uint32_t index);

/* Path of a generation's directory; malloc'd. */
char *shadow_generation_dir(const struct shadow *s, const char *generation);

/*
 * Size in bytes of shadow WAL file index of generation, or -errno (-ENOENT
 * when it is gone). Reads only the paths set up by shadow_init(), so the
 * loop may ask while a job syncs: the answer is a size the file had.
 */
int64_t shadow_index_size(const struct shadow *s, const char *generation, uint32_t index);

/*
 * The directory for scratch files next to the shadow WAL
 * (DIR/.NAME-litestream/tmp); malloc'd. Not created here.
 */
char *shadow_tmp_dir(const struct shadow *s);

/*
 * Housekeeping: removes shadow files of the current generation with an
 * index below min_index, and the directories of other generations not in
 * keep[0..n_keep). Returns 0 or the first error.
 */
int shadow_remove_shipped(struct shadow *s, uint32_t min_index, char *const *keep, size_t n_keep);

#endif
