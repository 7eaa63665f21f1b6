/*
 * Where the replica's last segments end, kept locally for a restart that
 * cannot read them: an age-encrypted replica on a host that holds only
 * the recipients. A segment's name gives its start, but only its content
 * gives its end (the listing's size is the encrypted, compressed size),
 * so the compression job records "NAME SIZE END" for each encrypted
 * segment it makes, before the upload; at start-up the replica looks up
 * the last listed segment by name and size.
 *
 * The file is META/generations/GEN/NAME.segment-ends: a record is one
 * appended line (one write(), O_APPEND), and once the file passes
 * SEGMENT_ENDS_COMPACT bytes it is rewritten with its newest
 * SEGMENT_ENDS_KEEP records (temporary file and rename). It is a cache,
 * not a log: no fsync, and a missing, stale or damaged file (a line torn
 * by a crash is skipped) only means no answer (the replica then falls
 * back, see replica_locate.c). Two records for one name and size that
 * disagree on the end are no answer either. One writer at a time: the
 * replica's jobs run one after another.
 *
 * Blocking, small files: the recording runs in the compression job, the
 * lookup once at start-up.
 */
#ifndef LITESTREAM_SEGMENT_ENDS_H
#define LITESTREAM_SEGMENT_ENDS_H

#include <stdint.h>

#define SEGMENT_ENDS_KEEP 16
#define SEGMENT_ENDS_COMPACT (16 * 1024)

/* Adds the record (name's object is size bytes, its WAL ends at end). 0 or -errno. */
int segment_ends_record(const char *path, const char *name, uint64_t size, uint64_t end);

/* The end recorded for name at size: 0 with *end set, -ENOENT when there is no single answer. */
int segment_ends_lookup(const char *path, const char *name, uint64_t size, uint64_t *end);

#endif
