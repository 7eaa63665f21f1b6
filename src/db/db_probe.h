/*
 * Whether a file is a SQLite database in WAL mode, from its 100-byte
 * header alone (the magic string; the read and write versions at offsets
 * 18 and 19 are 2 in WAL mode): what a [dir] asks of each file before it
 * replicates it. Blocking (one open and one read); runs on the loop, which
 * it holds for a local file's read.
 *
 * Returns 0 for a database in WAL mode; -EAGAIN for a file too short to
 * tell yet (just created: ask again at its next change); -EINVAL for a
 * file that is not a SQLite database and -EPROTO for one in rollback-
 * journal mode, with why in why; -errno when it cannot be read (-ENOENT:
 * gone).
 */
#ifndef LITESTREAM_DB_PROBE_H
#define LITESTREAM_DB_PROBE_H

#include <stddef.h>

int db_probe(const char *path, char *why, size_t n);

#endif
