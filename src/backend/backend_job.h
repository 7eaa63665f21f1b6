/*
 * One operation of a backend whose calls block (file, sftp): the arguments
 * copied from the caller, the callback to answer with, and the libuv work
 * request that runs it on the threadpool. Each such backend embeds a
 * struct backend_job first in its own operation record and adds what it
 * needs (its backend, a queue link, its result).
 *
 * Loop thread only, except that the job's function reads the copied
 * arguments and fills list on the threadpool between queueing and the
 * after-work callback.
 */
#ifndef LITESTREAM_BACKEND_JOB_H
#define LITESTREAM_BACKEND_JOB_H

#include "backend/backend.h"

#include <uv.h>

enum backend_job_kind { BACKEND_JOB_LIST, BACKEND_JOB_PUT, BACKEND_JOB_GET, BACKEND_JOB_REMOVE };

struct backend_job {
	uv_work_t req;               /* req.data is the embedding record */
	enum backend_job_kind kind;
	char *key;                   /* the object, or the directory of a LIST */
	char *local;                 /* PUT: the file to send; GET: the file to write */
	char **keys;                 /* REMOVE */
	size_t n_keys;
	backend_done_cb done;        /* PUT, GET, REMOVE */
	backend_list_cb listed;      /* LIST */
	void *arg;
	struct backend_list list;    /* LIST: what the job found */
};

/*
 * Copies key, local and keys[0..n_keys) into j (any may be NULL / 0) and
 * records the callback and req.data = owner; 0, or -ENOMEM with nothing
 * held.
 */
int backend_job_init(struct backend_job *j, void *owner, enum backend_job_kind kind,
		     const char *key, const char *local, char *const *keys, size_t n_keys);

/* Sets the callback that answers the job (listed for LIST, done otherwise). */
void backend_job_callback(struct backend_job *j, backend_done_cb done, backend_list_cb listed,
			  void *arg);

/* Frees what backend_job_init() copied and the listing; j itself stays. */
void backend_job_release(struct backend_job *j);

/*
 * Calls the job's callback: rc 0 or -errno, err the failure's message
 * (strerror(-rc) when NULL or empty; ignored on success).
 */
void backend_job_answer(struct backend_job *j, int rc, const char *err);

/* Answers a call for which no job could be made or queued. */
void backend_job_refuse(backend_done_cb done, backend_list_cb listed, void *arg, int rc,
			const char *why);

#endif
