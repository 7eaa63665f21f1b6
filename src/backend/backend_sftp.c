/*
 * The sftp backend: a replica in a directory on an SSH server, through
 * libssh, with the layout Litestream 0.3.13 writes there
 * (PATH/generations/...). libssh blocks, so every call runs on libuv's
 * threadpool, never on the loop: operations wait in a queue on the loop
 * and run one at a time (one job in the pool per replica), each on the
 * replica's one connection, which the first job opens and a transport
 * error closes, so that the next one (the replica retries) reconnects
 * (backend_sftp_conn.c). The jobs themselves are backend_sftp_ops.c's.
 *
 * libssh's blocking calls do not time out once connected, so a watchdog
 * timer on the loop, running while a job runs, shuts the job's socket
 * (shutdown(2), under a lock with the job's close of it) when the job has
 * moved nothing for LITESTREAM_SFTP_STALL_TIMEOUT (default 30s): the
 * blocked call then fails, the connection goes, and the replica retries.
 *
 * close() answers the queued operations with -ECANCELED, shuts the running
 * one's socket so that it ends at once, closes the watchdog, then closes
 * the connection in one more job and calls back.
 * Nothing is sent while the replica has nothing to do; an idle
 * connection stays open (sshd's ClientAliveInterval may drop it; the next
 * operation then reconnects).
 */
#include "backend/backend_sftp_internal.h"
#include "backend/backend_job.h"
#include "config/url.h"
#include "util/duration.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TIMEOUT_S 30
#define STALL_ENV "LITESTREAM_SFTP_STALL_TIMEOUT"
#define STALL_DEFAULT_MS 30000
#define WATCHDOG_TICK_MS 500

struct sftp_op {
	struct backend_job job;
	struct sftp_backend *sb;
	struct sftp_op *next;
	struct sftp_result res;
};

static void op_answer(struct sftp_op *op)
{
	backend_job_answer(&op->job, op->res.rc, op->res.err);
	backend_job_release(&op->job);
	free(op);
}

static void on_work(uv_work_t *req)
{
	struct sftp_op *op = req->data;
	struct sftp_backend *sb = op->sb;
	struct sftp_result *r = &op->res;

	sftp_conn_progress(sb);
	switch (op->job.kind) {
	case BACKEND_JOB_LIST:
		r->rc = sftp_job_list(sb, op->job.key, &op->job.list, r);
		break;
	case BACKEND_JOB_PUT:
		r->rc = sftp_job_put(sb, op->job.key, op->job.local, r);
		break;
	case BACKEND_JOB_GET:
		r->rc = sftp_job_get(sb, op->job.key, op->job.local, r);
		break;
	case BACKEND_JOB_REMOVE:
		r->rc = sftp_job_remove(sb, op->job.keys, op->job.n_keys, r);
		break;
	}
	if (sb->broken) {
		sftp_conn_close(sb);
		sb->broken = false;
	}
}

static void start_next(struct sftp_backend *sb);
static void finish_close(struct sftp_backend *sb);

static void on_after(uv_work_t *req, int status)
{
	struct sftp_op *op = req->data;
	struct sftp_backend *sb = op->sb;

	sb->running = NULL;
	if (status == UV_ECANCELED || (sb->closing && op->res.rc != 0)) {
		op->res.rc = -ECANCELED;
		snprintf(op->res.err, sizeof(op->res.err), "cancelled: the replica is closing");
	} else if (sb->stalled && op->res.rc != 0) {
		char was[SFTP_ERR_LEN];

		snprintf(was, sizeof(was), "%s", op->res.err);
		snprintf(op->res.err, sizeof(op->res.err),
			 "sftp %s: nothing moved for %lldms: connection dropped (%s)", sb->where,
			 (long long)sb->stall_ms, was);
		op->res.rc = -ETIMEDOUT;
	}
	sb->stalled = false;
	if (op->res.connected && !sb->connected_logged) {
		LOG_INFO(NULL, sb->rname, "connected to %s as %s (sftp)", sb->where, sb->user);
		sb->connected_logged = true;
	}
	if (op->res.rc != 0 && sb->sftp == NULL)
		sb->connected_logged = false; /* the next connection is news again */
	op_answer(op);
	start_next(sb);
}

/* Shuts the running job's socket, so that its blocked call returns. */
static void shut_socket(struct sftp_backend *sb)
{
	uv_mutex_lock(&sb->fd_lock);
	if (sb->fd >= 0)
		shutdown(sb->fd, SHUT_RDWR);
	uv_mutex_unlock(&sb->fd_lock);
}

static void on_watchdog(uv_timer_t *t)
{
	struct sftp_backend *sb = t->data;
	int64_t now = (int64_t)(uv_hrtime() / 1000000);

	if (sb->running == NULL || sb->stalled ||
	    now - __atomic_load_n(&sb->progress_ms, __ATOMIC_RELAXED) < sb->stall_ms)
		return;
	sb->stalled = true;
	shut_socket(sb);
}

static void start_next(struct sftp_backend *sb)
{
	while (sb->running == NULL && sb->head != NULL) {
		struct sftp_op *op = sb->head;
		int rc;

		sb->head = op->next;
		if (sb->head == NULL)
			sb->tail = NULL;
		sb->running = op;
		rc = uv_queue_work(sb->base.loop, &op->job.req, on_work, on_after);
		if (rc != 0) {
			sb->running = NULL;
			op->res.rc = rc;
			snprintf(op->res.err, sizeof(op->res.err), "%s", uv_strerror(rc));
			op_answer(op);
		}
	}
	if (sb->running != NULL && !uv_is_active((uv_handle_t *)&sb->watchdog) && !sb->closing)
		uv_timer_start(&sb->watchdog, on_watchdog, WATCHDOG_TICK_MS, WATCHDOG_TICK_MS);
	else if (sb->running == NULL)
		uv_timer_stop(&sb->watchdog);
	if (sb->running == NULL && sb->closing && !sb->disconnecting)
		finish_close(sb);
}

/* Queues the job, or answers at once with the error. */
static void submit(struct backend *b, enum backend_job_kind kind, const char *key,
		   const char *local, char *const *keys, size_t n_keys, backend_done_cb done,
		   backend_list_cb listed, void *arg)
{
	struct sftp_backend *sb = (struct sftp_backend *)b;
	struct sftp_op *op;

	if (sb->closing) {
		backend_job_refuse(done, listed, arg, -ECANCELED, "cancelled: the replica is closing");
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL || backend_job_init(&op->job, op, kind, key, local, keys, n_keys) != 0) {
		free(op);
		backend_job_refuse(done, listed, arg, -ENOMEM, "out of memory");
		return;
	}
	op->sb = sb;
	backend_job_callback(&op->job, done, listed, arg);
	if (sb->tail != NULL)
		sb->tail->next = op;
	else
		sb->head = op;
	sb->tail = op;
	start_next(sb);
}

static void sftp_list(struct backend *b, const char *dir, backend_list_cb cb, void *arg)
{
	submit(b, BACKEND_JOB_LIST, dir, NULL, NULL, 0, NULL, cb, arg);
}

static void sftp_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		     void *arg)
{
	submit(b, BACKEND_JOB_PUT, key, local_path, NULL, 0, cb, NULL, arg);
}

static void sftp_get(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		     void *arg)
{
	submit(b, BACKEND_JOB_GET, key, local_path, NULL, 0, cb, NULL, arg);
}

static void sftp_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb,
			void *arg)
{
	submit(b, BACKEND_JOB_REMOVE, NULL, NULL, keys, n, cb, NULL, arg);
}

static void on_disconnect(uv_work_t *req)
{
	sftp_conn_close(req->data);
}

static void on_disconnected(uv_work_t *req, int status)
{
	struct sftp_backend *sb = req->data;

	(void)status;
	sb->disconnecting = false;
	if (sb->close_cb != NULL)
		sb->close_cb(sb->close_arg);
}

/* Nothing runs or waits any more: the watchdog, then the connection in one last job. */
static void on_watchdog_closed(uv_handle_t *h)
{
	struct sftp_backend *sb = h->data;

	sb->watchdog_closed = true;
	if (sb->ssh == NULL) {
		if (sb->close_cb != NULL)
			sb->close_cb(sb->close_arg);
		return;
	}
	sb->close_req.data = sb;
	if (uv_queue_work(sb->base.loop, &sb->close_req, on_disconnect, on_disconnected) != 0) {
		sftp_conn_close(sb);
		on_disconnected(&sb->close_req, 0);
	}
}

static void finish_close(struct sftp_backend *sb)
{
	sb->disconnecting = true;
	uv_close((uv_handle_t *)&sb->watchdog, on_watchdog_closed);
}

static void sftp_backend_close(struct backend *b, void (*cb)(void *arg), void *arg)
{
	struct sftp_backend *sb = (struct sftp_backend *)b;
	struct sftp_op *op;

	sb->closing = true;
	sb->close_cb = cb;
	sb->close_arg = arg;
	while ((op = sb->head) != NULL) {
		sb->head = op->next;
		op->res.rc = -ECANCELED;
		snprintf(op->res.err, sizeof(op->res.err), "cancelled");
		op_answer(op);
	}
	sb->tail = NULL;
	if (sb->running != NULL)
		shut_socket(sb); /* it ends now, answered with -ECANCELED */
	else if (!sb->disconnecting)
		finish_close(sb);
}

static void free_struct(uv_handle_t *h)
{
	free(h->data);
}

static void sftp_backend_free(struct backend *b)
{
	struct sftp_backend *sb = (struct sftp_backend *)b;

	sftp_conn_close(sb);
	uv_mutex_destroy(&sb->fd_lock);
	free(sb->rname);
	free(sb->host);
	free(sb->where);
	free(sb->user);
	if (sb->password != NULL)
		explicit_bzero(sb->password, strlen(sb->password));
	free(sb->password);
	free(sb->key_path);
	if (sb->pinned != NULL)
		ssh_key_free(sb->pinned);
	free(sb->pinned_algos);
	free(sb->known_hosts);
	free(sb->root);
	age_keys_free(b->age);
	free(b->describe);
	if (sb->watchdog.loop == NULL || sb->watchdog_closed)
		free(sb);
	else /* freed without close(): on the next loop run */
		uv_close((uv_handle_t *)&sb->watchdog, free_struct);
}

static const char *sftp_credentials_source(struct backend *b)
{
	struct sftp_backend *sb = (struct sftp_backend *)b;

	return sb->key_path != NULL ? "key-path"
	       : sb->password != NULL ? "password"
				     : "ssh-agent and ~/.ssh";
}

static const struct backend_ops sftp_ops = {
	.type = "sftp",
	.list = sftp_list,
	.put = sftp_put,
	.get = sftp_get,
	.remove = sftp_remove,
	.credentials_source = sftp_credentials_source,
	.close = sftp_backend_close,
	.free = sftp_backend_free,
};

/* host-key: "[HOST]:PORT TYPE BASE64 ..." or "TYPE BASE64 ...": the key and the algorithms showing it. */
static int parse_pinned(struct sftp_backend *sb, const char *line, char *err, size_t errlen,
			const char *name)
{
	char *copy = strdup(line), *save = NULL, *tok;
	enum ssh_keytypes_e type = SSH_KEYTYPE_UNKNOWN;
	int rc = -EINVAL;

	if (copy == NULL)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if ((type = ssh_key_type_from_name(tok)) != SSH_KEYTYPE_UNKNOWN)
			break;
	}
	tok = tok != NULL ? strtok_r(NULL, " \t", &save) : NULL;
	if (tok != NULL && ssh_pki_import_pubkey_base64(tok, type, &sb->pinned) == SSH_OK) {
		const char *t = ssh_key_type_to_char(type);

		sb->pinned_algos = type == SSH_KEYTYPE_RSA ? strdup("rsa-sha2-512,rsa-sha2-256,ssh-rsa")
							   : strdup(t != NULL ? t : "");
		rc = sb->pinned_algos != NULL ? 0 : -ENOMEM;
	} else {
		snprintf(err, errlen, "replica %s: host-key: not a public key libssh can read (want "
				      "\"TYPE BASE64\" as ssh-keyscan prints it)",
			 name);
	}
	free(copy);
	return rc;
}

static int copy_settings(struct sftp_backend *sb, const struct replica_config *cfg, char *err,
			 size_t errlen)
{
	char why[256];
	int rc = replica_url_sftp_host(cfg->host, &sb->host, &sb->port, why, sizeof(why));

	if (rc != 0) {
		snprintf(err, errlen, "replica %s: host: %s", cfg->name, rc == -ENOMEM ? "out of memory" : why);
		return rc;
	}
	sb->where = strchr(sb->host, ':') != NULL ? str_printf("[%s]:%d", sb->host, sb->port)
						 : str_printf("%s:%d", sb->host, sb->port);
	sb->rname = strdup(cfg->name);
	sb->user = strdup(cfg->user);
	sb->password = cfg->password != NULL ? strdup(cfg->password) : NULL;
	sb->key_path = cfg->key_path != NULL ? strdup(cfg->key_path) : NULL;
	sb->root = strdup(cfg->path != NULL ? cfg->path : "");
	sb->timeout_s = TIMEOUT_S;
	if (cfg->host_key == NULL) {
		if (cfg->known_hosts_file != NULL)
			sb->known_hosts = strdup(cfg->known_hosts_file);
		else if (replica_url_abs_path("~/.ssh/known_hosts", &sb->known_hosts) != 0)
			sb->known_hosts = NULL;
	}
	if (sb->where == NULL || sb->rname == NULL || sb->user == NULL || sb->root == NULL ||
	    (cfg->password != NULL && sb->password == NULL) ||
	    (cfg->key_path != NULL && sb->key_path == NULL) ||
	    (cfg->host_key == NULL && sb->known_hosts == NULL))
		return -ENOMEM;
	if (cfg->host_key != NULL)
		return parse_pinned(sb, cfg->host_key, err, errlen, cfg->name);
	return 0;
}

/* LITESTREAM_SFTP_STALL_TIMEOUT, a duration of at least 1s. */
static int read_stall_env(const struct replica_config *cfg, int64_t *ms, char *err, size_t errlen)
{
	const char *v = getenv(STALL_ENV);

	*ms = STALL_DEFAULT_MS;
	if (v != NULL && v[0] != '\0' && (duration_parse(v, ms) != 0 || *ms < 1000)) {
		snprintf(err, errlen, "replica %s: %s=\"%s\": want a duration of at least 1s", cfg->name,
			 STALL_ENV, v);
		return -EINVAL;
	}
	return 0;
}

int backend_sftp_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		     char *err, size_t errlen)
{
	struct sftp_backend *sb;
	int64_t stall_ms;
	int rc;

	if (cfg->host == NULL || cfg->user == NULL) {
		snprintf(err, errlen, "replica %s: sftp needs host and user", cfg->name);
		return -EINVAL;
	}
	if ((rc = read_stall_env(cfg, &stall_ms, err, errlen)) != 0)
		return rc;
	if ((sb = calloc(1, sizeof(*sb))) == NULL)
		return -ENOMEM;
	if (uv_mutex_init(&sb->fd_lock) != 0) {
		free(sb);
		return -ENOMEM;
	}
	sb->fd = -1;
	sb->stall_ms = stall_ms;
	sb->base.ops = &sftp_ops;
	sb->base.loop = loop;
	rc = copy_settings(sb, cfg, err, errlen);
	if (rc == 0) {
		/* What logs, status and metrics show: never the password. */
		sb->base.describe = str_printf("sftp://%s@%s%s%s", sb->user, sb->where,
					       sb->root[0] == '/' ? "" : "/~/", sb->root);
		if (sb->base.describe == NULL)
			rc = -ENOMEM;
	}
	if (rc != 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "replica %s: out of memory", cfg->name);
		sftp_backend_free(&sb->base);
		return rc;
	}
	uv_timer_init(loop, &sb->watchdog);
	sb->watchdog.data = sb;
	uv_unref((uv_handle_t *)&sb->watchdog);
	*out = &sb->base;
	return 0;
}
