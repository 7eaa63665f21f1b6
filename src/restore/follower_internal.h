/*
 * What follower.c (the poll loop), follower_apply.c (the threadpool
 * applies) and follower_pos.c (the position file) share.
 */
#ifndef LITESTREAM_FOLLOWER_INTERNAL_H
#define LITESTREAM_FOLLOWER_INTERNAL_H

#include "backend/catalog.h"
#include "restore/follower.h"
#include "restore/livedb.h"
#include "restore/restore_internal.h"

#include <stddef.h>

/* One new segment of the batch being applied. */
struct follow_seg {
	struct catalog_segment s;
	char key[160];
	char *src;            /* the object on local disk */
	bool src_is_tmp;
	char *out;            /* decompressed */
	int rc;
	char err[320];
	struct follower *f;
	bool done;
};

/*
 * follower_pos.c: the position file holds up to two entries (the state
 * before a change in flight and after it). 0, -ENOENT (no file) or
 * -EBADMSG with err set.
 */
int follow_pos_save(const char *path, const char *replica, const struct follow_pos *a,
		    const struct follow_pos *b, char *err, size_t errlen);
int follow_pos_load(const char *path, const char *replica, struct follow_pos *out, size_t *n,
		    char *err, size_t errlen);

/*
 * follower_apply.c, blocking (run as threadpool jobs): applies segs[0..n)
 * (decompressed here) after f->pos, the longest prefix of them that ends
 * with whole transactions; *used says how many. Updates f->pos and the
 * position file. 0 or -errno with err.
 */
int follow_apply_segments(struct follower *f, struct follow_seg *segs, size_t n, size_t *used,
			  char *err, size_t errlen);

/*
 * Copies the restored database at f->new_path into PATH in one change
 * and takes res as the position. 0 or -errno with err.
 */
int follow_install_generation(struct follower *f, const struct restore_result *res, char *err,
			      size_t errlen);

/* Runs fn(f, arg) on the threadpool and the loop until it ends; its return value. */
int follower_blocking(struct follower *f, int (*fn)(struct follower *f, void *arg), void *arg);

#endif
