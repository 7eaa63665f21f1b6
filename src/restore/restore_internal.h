/*
 * What the three phases of a restore share (restore.c, restore_choose.c,
 * restore_fetch.c), and nothing outside them includes.
 *
 * One struct restore lives on restore_run()'s stack for the whole run; it
 * owns its items, the scratch paths and the walapply state, and
 * restore.c's cleanup() frees them all whatever happened. Everything runs
 * on the loop thread except decompression, which runs on libuv's
 * threadpool and touches only its own item until its after-work callback.
 *
 * Errors: every function here that can fail returns 0 or a negative errno
 * and has written the message (restore_fail()) into the caller's err
 * buffer by then; the first failure of a fetch is kept in r->rc.
 */
#ifndef LITESTREAM_RESTORE_INTERNAL_H
#define LITESTREAM_RESTORE_INTERNAL_H

#include "backend/catalog.h"
#include "restore/follow.h"
#include "restore/restore.h"
#include "restore/walapply.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* One object to fetch: the snapshot (item 0) or a segment. */
struct item {
	uv_work_t work;
	struct restore *r;
	const struct age_keys *age; /* the source backend's, read-only */
	char key[160];
	bool snapshot;
	bool raw;             /* an uncompressed IIIIIIII.wal */
	uint32_t index;
	uint64_t offset;
	uint64_t stored;      /* bytes as stored */
	char *src;            /* the compressed object on local disk */
	bool src_is_tmp;      /* downloaded by us: remove after use */
	char *out;            /* decompressed */
	uint64_t out_size;
	bool done;            /* fetched and decompressed */
	int rc;
	char err[320];
	/*
	 * A snapshot decompressed while it downloads (get_follow): both must
	 * end, in either order, before the item does; a failed download is
	 * the item's error, the reader's then only follows from it.
	 */
	struct follow *follow;
	int follow_pending;
	int dl_rc;
	char dl_err[320];
};

/* One restore_run(), from choosing to cleanup. */
struct restore {
	const struct restore_opts *o;
	char *err;
	size_t errlen;
	struct backend *b;
	uv_loop_t *loop;
	char *tmp_db;         /* OUTPUT.tmp */
	char *scratch;        /* OUTPUT.tmp.d/ */
	struct item *items;
	size_t n_items;
	size_t next;          /* next item to start */
	size_t in_flight;
	size_t done;
	int rc;               /* first error */
	uint64_t bytes_total, bytes_done;
	int64_t started_ms, last_progress_ms;
	/* Applying, in order, as objects arrive (the download goes on). */
	struct walapply *a;
	int db_fd;
	size_t applied;       /* items applied so far */
};

/* What restore_choose() picked: where from, and which objects. */
struct choice {
	size_t source;
	const struct catalog_generation *gen;
	const struct catalog_snapshot *snap;
	size_t first, last; /* segments [first, last) of gen */
};

/* Writes the message into r's err and returns rc. */
int restore_fail(struct restore *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One line in the log, with -v only. */
void restore_say(struct restore *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Choosing (restore_choose.c): loads a catalog of each source into cats
 * (the caller frees them, whatever the result) and picks the generation,
 * snapshot and segments into *c, which points into cats.
 */
int restore_choose(struct restore *r, const struct restore_source *src, size_t n,
		   struct catalog *cats, struct choice *c);

/* Fetching (restore_fetch.c): the items to fetch for c, in apply order. */
int restore_plan_items(struct restore *r, const struct choice *c);

/*
 * Downloads and decompresses every item, applying each as soon as it and
 * all before it are in; runs r's loop until none is in flight. r->rc.
 */
int restore_fetch_all(struct restore *r);

/*
 * Blocking (threadpool or one-shot): decompresses (or copies, raw) the
 * object at src, or what follow delivers, into out, decrypting it with
 * age's identities when it is encrypted (object_codec.h); *size gets the
 * bytes written. 0, or -errno with err set ("KEY: encrypted with age,
 * ..." when it cannot be opened).
 */
int restore_decompress_file(const char *key, const char *src, bool raw, struct follow *follow,
			    const struct age_keys *age, const char *out, uint64_t *size, char *err,
			    size_t errlen);

#endif
