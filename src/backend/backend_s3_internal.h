/*
 * What the files of the S3 and abs backends share, and nothing outside
 * them includes: the backend's state and the few helpers every operation
 * uses. The abs backend (Azure Blob Storage) is the same struct on the same
 * client with Azure's signer; it shares list (with its own query and XML)
 * and get, and has its own put and remove.
 *
 *   backend_s3.c         creation, credentials, the operations table,
 *                        close/free, and the count of operations in flight
 *   backend_s3_list.c    list: ListObjectsV2, page after page
 *   backend_s3_upload.c  the put pipeline both protocols share: open and
 *                        digest on the threadpool, one request or parts
 *                        (digested, then sent, a few at a time)
 *   backend_s3_put.c     put: one PutObject, or a multipart upload that a
 *                        HEAD verifies
 *   backend_s3_get.c     get and get_follow: ranged GETs, several at a time
 *   backend_s3_delete.c  remove: DeleteObjects in batches
 *   backend_abs.c        the abs backend's creation and operations table
 *   backend_abs_put.c    abs put: one Put Blob, or Put Block + Put Block List
 *   backend_abs_delete.c abs remove: one Delete Blob per key
 *
 * Every operation owns its state (a malloc'd *_op) from its entry point to
 * its callback. It calls backend_s3_op_begin() once it is sure to answer
 * through the loop, and backend_s3_op_end() after its callback returned and
 * its state is freed: close() calls back only when the count is back to
 * zero and the client is gone. Everything here runs on the loop thread;
 * digests and file opens go to libuv's threadpool and come back on the
 * loop.
 */
#ifndef LITESTREAM_BACKEND_S3_INTERNAL_H
#define LITESTREAM_BACKEND_S3_INTERNAL_H

#include "backend/backend.h"
#include "s3/client.h"

#include "s3/sigv4.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct s3_backend {
	struct backend base;
	struct s3_client *client; /* NULL once closed */
	char *name;               /* "replica NAME": how log lines name it */
	char *prefix;             /* key prefix: "" or "a/b", no trailing '/' */
	uint64_t part_size;
	char max_keys[8];         /* listing page size, "" for the server's (1000) */
	bool abs;                 /* Azure Blob Storage: List Blobs instead of ListObjectsV2 */
	size_t n_ops;             /* operations not yet answered */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* One more operation in flight / one fewer (which may end a close()). */
void backend_s3_op_begin(struct s3_backend *sb);
void backend_s3_op_end(struct s3_backend *sb);

/*
 * Hands req to the client: 0 when accepted (cb then runs exactly once,
 * from the loop), or a negative errno and cb never runs: -ESHUTDOWN once
 * the client is closed, or what s3_client_request() refused it with.
 */
int backend_s3_send(struct s3_backend *sb, const struct s3_request *req, s3_request_cb cb,
		    void *arg);

/* The object key for a backend key: the replica's prefix, then key. malloc'd or NULL. */
char *backend_s3_key(const struct s3_backend *sb, const char *key);

/* The objects of one removal: the caller's keys (for messages) and their full names. */
struct s3b_keys {
	char **keys;
	char **full;
	size_t n;
};

/* Copies keys[0..n) and makes their full names; 0, or -ENOMEM with nothing held. */
int backend_s3_keys_copy(const struct s3_backend *sb, char *const *keys, size_t n,
			 struct s3b_keys *out);

void backend_s3_keys_free(struct s3b_keys *k);

/* What to tell about a request backend_s3_send() refused with rc. Static text. */
const char *backend_s3_refused(int rc);

/*
 * The test settings from the environment (LITESTREAM_S3_STALL_TIMEOUT,
 * LITESTREAM_S3_MAX_KEYS, which serve abs too): *stall_ms and *max_keys,
 * 0 when unset. 0, or -EINVAL with err set.
 */
int backend_s3_read_env(const struct replica_config *cfg, int64_t *stall_ms, int *max_keys,
			char *err, size_t errlen);

/*
 * The put pipeline (backend_s3_upload.c). upload_start() opens the local
 * file on the threadpool; a file up to part-size is digested there and sent
 * as the protocol's one request; a larger one is cut into parts (at most
 * max_parts, larger parts when needed), each digested on the threadpool and
 * then sent, at most 4 at a time, and the protocol commits them. Every path
 * ends in upload_finish(), exactly once.
 */
struct upload;

struct upload_part {
	struct upload *up;
	uv_work_t work;
	size_t index;             /* from 0 */
	uint64_t offset, len;
	char sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	int rc;                   /* of the digest */
	char *tag;                /* S3: the part's ETag; abs: the block ID. malloc'd */
};

struct upload_protocol {
	const char *unit;         /* "part", "block": how messages name one */
	uint64_t max_parts;
	unsigned part_flags;      /* S3_REQ_* of a part's request */
	/* The request of a file up to part-size, body and digests filled in. */
	void (*fill_single)(struct upload *up, struct s3_request *req);
	/* Before the parts: S3 asks for an upload ID, then calls upload_cut().
	 * NULL: cut at once. */
	void (*begin)(struct upload *up);
	/* Names the part when it is cut (abs: its block ID); NULL for none. 0 or -ENOMEM. */
	int (*name_part)(struct upload_part *p);
	/* The part's own query parameters (at most 2) in params, with num's
	 * storage for a number; the method, key, body and digests are filled in. */
	size_t (*part_params)(struct upload_part *p, struct sigv4_param *params, char num[16]);
	/* A part's answer was 2xx: 0, or an error (with msg) that fails the upload; NULL: 0. */
	int (*part_stored)(struct upload_part *p, const struct s3_response *r, char *msg, size_t len);
	/* Every part stored: make the object of them; ends in upload_finish()
	 * (or upload_fail() + upload_abort()). */
	void (*commit)(struct upload *up);
	/* Gives up the parts after a failure, then upload_finish() with it; NULL
	 * when the server drops them by itself. */
	void (*abort)(struct upload *up);
};

struct upload {
	struct s3_backend *sb;
	const struct upload_protocol *proto;
	uv_work_t work;
	char *key;                /* backend key, for messages */
	char *full;               /* object key */
	char *local;
	int fd;
	uint64_t size;
	bool in_parts;
	char sha[SIGV4_SHA256_HEX_LEN + 1];
	char md5[SIGV4_MD5_BASE64_LEN + 1];
	int rc;                   /* of the threadpool step */
	char err[512];
	backend_done_cb cb;
	void *arg;
	struct upload_part *parts;
	size_t n_parts, next_part, parts_busy, parts_done;
	bool failed;              /* the first failure is in fail_rc, fail_msg */
	int fail_rc;
	char fail_msg[640];
	char *upload_id;          /* S3's multipart upload */
	char *body;               /* the commit's, while it is sent */
};

void upload_start(struct backend *b, const struct upload_protocol *proto, const char *key,
		  const char *local_path, backend_done_cb cb, void *arg);
/* Calls back with rc (err, else strerror) and frees up. */
void upload_finish(struct upload *up, int rc, const char *err);
/* Sends one request of the upload; one the client refuses ends it (upload_finish). */
void upload_send(struct upload *up, const struct s3_request *req, s3_request_cb cb);
/* Cuts the file into parts and sends them (after begin). */
void upload_cut(struct upload *up);
/* Records the first failure of the upload. */
void upload_fail(struct upload *up, int rc, const char *msg);
/* After a failure: the protocol's abort, else upload_finish() with the failure. */
void upload_abort(struct upload *up);

/* Lifecycle and status, shared by both tables (backend.h). */
void backend_s3_close(struct backend *b, void (*cb)(void *arg), void *arg);
void backend_s3_free(struct backend *b);
const char *backend_s3_credentials_source(struct backend *b);

/* The operations of the table; backend.h says what each does. */
void backend_s3_list(struct backend *b, const char *dir, backend_list_cb cb, void *arg);
void backend_s3_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		    void *arg);
void backend_s3_get(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		    void *arg);
void backend_s3_get_follow(struct backend *b, const char *key, const char *local_path,
			   void (*ready)(void *arg, uint64_t n), backend_done_cb cb, void *arg);
void backend_s3_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb,
		       void *arg);
void backend_abs_put(struct backend *b, const char *key, const char *local_path,
		     backend_done_cb cb, void *arg);
void backend_abs_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb,
			void *arg);

#endif
