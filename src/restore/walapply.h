/*
 * Applies WAL indexes to a database file page by page: the engine behind
 * restore.
 *
 * Litestream's reference restore installs each WAL index as the
 * database's -wal and lets SQLite checkpoint it (TRUNCATE). For one index
 * that writes, for every page up to the database size of the index's last
 * commit frame, the newest version of the page committed in the index;
 * pages beyond that size are skipped and the file is then cut (or
 * extended, with zeros) to exactly that size. Frames after the last commit
 * frame are not part of the database.
 *
 * This engine computes the same result for a whole run of indexes at once:
 * it keeps, for each page, where its newest version lives (the snapshot,
 * a frame of some downloaded segment, or zeros after a cut), and writes
 * each page once at the end. So restore time follows the size of the
 * database, not how often pages were rewritten, and the output is byte for
 * byte what index-by-index SQLite checkpoints produce.
 *
 * Everything is verified on the way: each index starts with a valid WAL
 * header of the database's page size, segments are contiguous, and every
 * frame carries the header's salts and continues the checksum chain.
 * Errors name the segment and what is wrong.
 *
 * Blocking file I/O; used from one thread.
 */
#ifndef LITESTREAM_WALAPPLY_H
#define LITESTREAM_WALAPPLY_H

#include "core/wal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct walapply;

/*
 * Starts from the database file open read-write at db_fd (the snapshot,
 * already decompressed); checks its header and size. The fd stays the
 * caller's. 0, or -errno with err set.
 */
int walapply_new(int db_fd, struct walapply **out, char *err, size_t errlen);

/*
 * Starts from a database of n_pages pages of page_size bytes that is not
 * read here (a follower's live copy, livedb.h): unchanged pages are never
 * read, and walapply_finish() must not be called; walapply_changes() and
 * walapply_read_page() give the result instead. 0 or -errno with err.
 */
int walapply_new_sized(uint32_t page_size, uint32_t n_pages, struct walapply **out, char *err,
		       size_t errlen);

/* Starts a WAL index; its segments follow in offset order. */
int walapply_index_begin(struct walapply *a, uint32_t index);

/*
 * Continues index at byte offset (not 0) whose header and running
 * checksum at offset were saved by walapply_chain() earlier, so that the
 * next segment is verified as if the index had been read from its start.
 */
void walapply_index_resume(struct walapply *a, uint32_t index, uint64_t offset,
			   const struct wal_header *hdr, const uint32_t cksum[2]);

/*
 * Where the checksum chain stands: the index last read, the bytes of it
 * seen, its header and the running checksum there. false when no index
 * was read with a header.
 */
bool walapply_chain(const struct walapply *a, uint32_t *index, uint64_t *bytes, struct wal_header *hdr,
		    uint32_t cksum[2]);

/* The database size, in pages, after the indexes ended so far. */
uint32_t walapply_size(const struct walapply *a);

/*
 * The pages whose content changed (pgno ascending, each at most the new
 * size) into a malloc'd array the caller frees. 0 or -ENOMEM.
 */
int walapply_changes(const struct walapply *a, uint32_t **pgnos, size_t *n);

/* Reads the newest version of changed page pgno into buf. 0 or -errno with err. */
int walapply_read_page(struct walapply *a, uint32_t pgno, uint8_t *buf, char *err, size_t errlen);

/*
 * Adds a decompressed segment (path, kept until walapply_finish) holding
 * bytes [offset, offset + size) of the current index; only its first
 * `limit` bytes when limit is not 0 (a shadow WAL still growing). name is
 * for errors. Verifies it. 0, or -EBADMSG/-errno with err set.
 */
int walapply_segment(struct walapply *a, const char *path, uint64_t offset, uint64_t limit,
		     const char *name, char *err, size_t errlen);

/* Ends the current index: its committed pages take effect. */
int walapply_index_end(struct walapply *a, char *err, size_t errlen);

/* Writes every changed page into the database file and sets its size. */
int walapply_finish(struct walapply *a, char *err, size_t errlen);

/* Frames taken and pages written so far, for progress and tests. */
uint64_t walapply_frames(const struct walapply *a);
uint64_t walapply_pages_written(const struct walapply *a);

void walapply_free(struct walapply *a);

#endif
