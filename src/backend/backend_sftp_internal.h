/*
 * The sftp backend's parts (backend_sftp.c: the queue and the table of
 * operations; backend_sftp_conn.c: the SSH connection, host key check and
 * authentication; backend_sftp_ops.c: list, put, get and remove as SFTP
 * calls). Everything named sftp_conn_* or sftp_job_* blocks and runs on
 * libuv's threadpool only, one job at a time per backend, so the session
 * is never used by two threads at once; the loop thread touches the queue
 * and never the session while a job runs.
 */
#ifndef LITESTREAM_BACKEND_SFTP_INTERNAL_H
#define LITESTREAM_BACKEND_SFTP_INTERNAL_H

#include "backend/backend.h"

#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <stdbool.h>
#include <stddef.h>

#define SFTP_ERR_LEN 768

struct sftp_op;

struct sftp_backend {
	struct backend base;
	char *rname;          /* "replica NAME", for logs */
	/* Settings, read-only after backend_sftp_new(). */
	char *host;           /* without brackets */
	int port;
	char *where;          /* "HOST:PORT" or "[V6]:PORT", for messages */
	char *user;
	char *password;       /* a secret, or NULL */
	char *key_path;       /* or NULL */
	ssh_key pinned;       /* host-key, or NULL */
	char *pinned_algos;   /* host key algorithms that offer the pinned key's type */
	char *known_hosts;    /* the file, when nothing is pinned */
	char *root;           /* remote directory: "" (login directory), "/x" or "x", no trailing '/' */
	long timeout_s;
	int64_t stall_ms;     /* a job that moves nothing this long gets its socket shut */
	/* The connection: touched only by the job that runs (or by free/close when none does). */
	ssh_session ssh;
	sftp_session sftp;
	bool broken;          /* a transport error: the job's end closes the connection */
	/*
	 * For the watchdog on the loop: the socket (under fd_lock; -1 while
	 * there is none, set -1 before the descriptor is closed) and when the
	 * running job last moved (milliseconds of uv_hrtime(), atomic).
	 */
	uv_mutex_t fd_lock;
	int fd;
	int64_t progress_ms;
	bool connected_logged;
	/* The queue, on the loop thread. */
	struct sftp_op *head, *tail;
	struct sftp_op *running;
	bool closing;
	bool disconnecting;
	bool stalled;         /* the watchdog shut the running job's socket */
	uv_timer_t watchdog;
	bool watchdog_closed; /* its close callback ran */
	uv_work_t close_req;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* What a job reports: rc 0 or -errno, err the message (empty on success). */
struct sftp_result {
	int rc;
	char err[SFTP_ERR_LEN];
	bool connected;        /* this job opened a new connection */
};

/*
 * Opens the connection if there is none: TCP, the host key check (pinned
 * key or known_hosts; an unknown or changed key is refused with its SHA256
 * fingerprint), authentication (key-path, password, else agent and the
 * default keys), the SFTP session. 0 or -errno with res->err.
 */
int sftp_conn_open(struct sftp_backend *sb, struct sftp_result *res);

/* Closes the connection, if any (it blocks: the pool, or free()). */
void sftp_conn_close(struct sftp_backend *sb);

/* The running job moved (a chunk, a reply): the watchdog waits again. */
void sftp_conn_progress(struct sftp_backend *sb);

/*
 * After a failed SFTP call on path: -errno for the SFTP status, with
 * "WHAT PATH on HOST:PORT: REASON" in res->err. Unless the server answered
 * with a status about the file, marks the connection broken: the job
 * closes its handles as usual and then the connection goes, so that the
 * next operation starts a new one.
 */
int sftp_conn_fail(struct sftp_backend *sb, struct sftp_result *res, const char *what,
		   const char *path);

/* root + "/" + key (malloc'd; NULL when out of memory). */
char *sftp_remote_path(const struct sftp_backend *sb, const char *key);

/* The jobs (backend_sftp_ops.c); each opens the connection first. */
int sftp_job_list(struct sftp_backend *sb, const char *dir, struct backend_list *out,
		  struct sftp_result *res);
int sftp_job_put(struct sftp_backend *sb, const char *key, const char *local,
		 struct sftp_result *res);
int sftp_job_get(struct sftp_backend *sb, const char *key, const char *local,
		 struct sftp_result *res);
int sftp_job_remove(struct sftp_backend *sb, char *const *keys, size_t n,
		    struct sftp_result *res);

#endif
