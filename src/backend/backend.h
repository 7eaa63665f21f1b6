/*
 * Storage backends behind one table of asynchronous operations, so the
 * replica logic (replica.c) and restore never know whether bytes go to a
 * directory or over HTTP. Every operation answers exactly once through its
 * callback, on the loop thread. Keys are paths relative to the replica's
 * root, '/'-separated: "generations/GEN/wal/00000000_00000000.wal.lz4".
 *
 * Adding a backend is filling a struct backend_ops (see backend_file.c,
 * and backend_s3.c with its operations in backend_s3_*.c).
 */
#ifndef LITESTREAM_BACKEND_H
#define LITESTREAM_BACKEND_H

#include "config/config.h"
#include "core/age_keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct backend;

struct backend_entry {
	char *name;        /* base name under the listed directory */
	uint64_t size;     /* bytes as stored */
	int64_t mtime_ms;  /* last modified, wall clock */
	bool is_dir;
};

struct backend_list {
	struct backend_entry *v;
	size_t n;
};

void backend_list_free(struct backend_list *l);

/* rc is 0 or a negative errno; err explains a failure (NULL on success). */
typedef void (*backend_done_cb)(void *arg, int rc, const char *err);

/*
 * list is valid during the callback only; the callback may move its
 * contents out (copy the struct, then set list->v = NULL, list->n = 0).
 */
typedef void (*backend_list_cb)(void *arg, int rc, const char *err, struct backend_list *list);

struct backend_ops {
	const char *type; /* "file", "s3", "abs", "sftp" */
	/* Names directly under dir; a missing dir is an empty list. */
	void (*list)(struct backend *b, const char *dir, backend_list_cb cb, void *arg);
	/*
	 * Stores the local file local_path under key; the object appears
	 * whole or not at all. The backend may consume local_path (rename it)
	 * when it came from stage_path().
	 */
	void (*put)(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		    void *arg);
	/* Fetches key into local_path (created or truncated). -ENOENT if missing. */
	void (*get)(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		    void *arg);
	/*
	 * Optional: get() that also says, from the loop, how many leading
	 * bytes of local_path are final each time that number grows
	 * (ready(arg, n)), so that a reader can follow the download. cb ends
	 * it as for get(); ready is never called after cb.
	 */
	void (*get_follow)(struct backend *b, const char *key, const char *local_path,
			   void (*ready)(void *arg, uint64_t n), backend_done_cb cb, void *arg);
	/* Deletes keys (missing ones are fine). */
	void (*remove)(struct backend *b, char *const *keys, size_t n, backend_done_cb cb, void *arg);
	/*
	 * Optional: a local path where the file destined for key can be
	 * written, so that put() only renames it. malloc'd, or NULL.
	 */
	char *(*stage_path)(struct backend *b, const char *key);
	/*
	 * Optional: the local file that holds key, when the backend keeps
	 * objects as plain files (the file backend), so readers can use it
	 * in place instead of copying it first. malloc'd, or NULL.
	 */
	char *(*local_path)(struct backend *b, const char *key);
	/*
	 * Optional: the name of where the backend's credentials come from
	 * ("AWS_ACCESS_KEY_ID", "container endpoint http://..."; never a
	 * secret), "" while not known yet; for status. Static or owned by b.
	 */
	const char *(*credentials_source)(struct backend *b);
	/*
	 * Optional, asynchronous: cancels whatever is still in flight (those
	 * callbacks run first, with -ECANCELED), releases every handle the
	 * backend holds on the loop, then calls cb(arg) from the loop. Only
	 * free() may follow. A backend that holds no handle between
	 * operations (file) leaves it NULL. Call it through backend_close().
	 */
	void (*close)(struct backend *b, void (*cb)(void *arg), void *arg);
	/*
	 * Frees the backend; no operation may be in flight. A backend with
	 * close() is normally closed first; freed without that, it starts
	 * closing its handles itself, and the loop must run again (as the
	 * one-shot commands do after free) for them to go.
	 */
	void (*free)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	uv_loop_t *loop;
	char *describe; /* for logs, e.g. "file:///backups/app" (no secrets) */
	/*
	 * The replica's age keys (age-recipients, age-identities), NULL for a
	 * plaintext replica. Owned by the backend (freed with it) and only
	 * carried here: the backend moves objects as they are, the layers
	 * above encode and decode them (core/object_codec.h), so every
	 * reader of a replica finds its keys where it finds its storage.
	 */
	struct age_keys *age;
};

/*
 * Creates the backend a replica configuration names, with its age keys
 * loaded (identity files read and their modes checked). 0 or -errno with
 * err ("replica NAME: age-identities: ...").
 */
int backend_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out, char *err,
		size_t errlen);

/* The file backend (backend_file.c). */
int backend_file_new(uv_loop_t *loop, const char *root, struct backend **out);

/* The S3 backend (backend_s3*.c). 0 or -errno with a message in err. */
int backend_s3_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		   char *err, size_t errlen);

/* The abs backend, Azure Blob Storage (backend_abs*.c). 0 or -errno with a message in err. */
int backend_abs_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		    char *err, size_t errlen);

/*
 * The sftp backend, a directory on an SSH server (backend_sftp*.c). 0 or
 * -errno with a message in err.
 */
int backend_sftp_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		     char *err, size_t errlen);

/*
 * Closes b (ops->close), then cb(arg). Without a close op there is nothing
 * to release and cb runs before backend_close() returns.
 */
void backend_close(struct backend *b, void (*cb)(void *arg), void *arg);

#endif
