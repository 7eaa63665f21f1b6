/*
 * Restore: rebuilds a database from a replica.
 *
 * Target (Litestream 0.3's rules): the generation updated most recently,
 * its newest snapshot, then every WAL index from the snapshot's on, each
 * index's segments concatenated in offset order and checkpointed into the
 * database by SQLite. Everything read is verified (LZ4 checksums, offsets
 * contiguous within an index, no index missing); any gap or corruption
 * stops the restore with a message naming the object.
 *
 * The output is built under OUTPUT.tmp, checked with PRAGMA
 * integrity_check, fsynced and renamed into place only if OUTPUT does not
 * exist (it is never overwritten); on failure nothing is left behind.
 */
#ifndef LITESTREAM_RESTORE_H
#define LITESTREAM_RESTORE_H

#include "backend.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct restore_opts {
	const char *output;     /* path of the database to create */
	const char *generation; /* NULL: the most recently updated */
	bool verbose;           /* one line per step on stderr */
};

/* Runs the restore on loop (driving it until done). 0 or -errno with err. */
int restore_run(struct backend *b, const struct restore_opts *opts, char *err, size_t errlen);

#endif
