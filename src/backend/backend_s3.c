/*
 * The S3 backend: a replica in an S3 bucket (AWS or any S3-compatible
 * store), behind the same table of operations as the file backend. The
 * requests themselves (addressing, signing, the bound on requests in
 * flight, timeouts, retries) are s3/client.c's; the backend turns its
 * operations into them, one file per operation (backend_s3_internal.h
 * lists them): list pages through ListObjectsV2, put is one PutObject or a
 * multipart upload, get is ranged GetObjects, remove is DeleteObjects.
 *
 * Objects appear whole (DESIGN.md, rule 4): S3 shows an object only once
 * its PUT or its multipart completion succeeded. Every body is signed with
 * its real SHA-256 and carries Content-MD5; the digests of a file are
 * computed on libuv's threadpool, never on the loop.
 *
 * This file holds what the operations share: creating the backend (the
 * configuration, the test settings from the environment, the credentials
 * provider (s3/provider.h) and the client), the operations table, and the
 * lifecycle.
 *
 * Lifecycle: the backend holds loop handles (the client's timer and its
 * curl multi handle) until close(), which cancels whatever is in flight and
 * calls back once every operation has answered and the client is gone.
 * free() after close(); free() alone starts the client's close and lets
 * the loop finish it (the one-shot commands run the loop once more).
 */
#include "backend/backend_s3_internal.h"
#include "util/duration.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "s3/credentials.h"
#include "s3/provider.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* For tests and slow links: how long a request may move no byte. */
#define STALL_TIMEOUT_ENV "LITESTREAM_S3_STALL_TIMEOUT"
/* For tests: a smaller listing page (1..1000), so that a few objects take
 * several pages and the continuation tokens are exercised. */
#define MAX_KEYS_ENV "LITESTREAM_S3_MAX_KEYS"

/* ---- shared by the operations -------------------------------------------- */

static void maybe_closed(struct s3_backend *sb)
{
	void (*cb)(void *);

	if (!sb->closing || sb->client != NULL || sb->n_ops > 0 || sb->close_cb == NULL)
		return;
	cb = sb->close_cb;
	sb->close_cb = NULL;
	cb(sb->close_arg);
}

void backend_s3_op_begin(struct s3_backend *sb)
{
	sb->n_ops++;
}

void backend_s3_op_end(struct s3_backend *sb)
{
	sb->n_ops--;
	maybe_closed(sb);
}

int backend_s3_send(struct s3_backend *sb, const struct s3_request *req, s3_request_cb cb,
		    void *arg)
{
	return sb->client != NULL ? s3_client_request(sb->client, req, cb, arg) : -ESHUTDOWN;
}

char *backend_s3_key(const struct s3_backend *sb, const char *key)
{
	return str_printf("%s%s%s", sb->prefix, sb->prefix[0] && key[0] ? "/" : "", key);
}

int backend_s3_keys_copy(const struct s3_backend *sb, char *const *keys, size_t n,
			 struct s3b_keys *out)
{
	struct s3b_keys k = {0};

	k.keys = calloc(n ? n : 1, sizeof(*k.keys));
	k.full = calloc(n ? n : 1, sizeof(*k.full));
	if (k.keys == NULL || k.full == NULL)
		goto fail;
	for (; k.n < n; k.n++) {
		k.keys[k.n] = strdup(keys[k.n]);
		k.full[k.n] = backend_s3_key(sb, keys[k.n]);
		if (k.keys[k.n] == NULL || k.full[k.n] == NULL) {
			k.n++;
			goto fail;
		}
	}
	*out = k;
	return 0;
fail:
	backend_s3_keys_free(&k);
	return -ENOMEM;
}

void backend_s3_keys_free(struct s3b_keys *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->keys[i]);
		free(k->full[i]);
	}
	free(k->keys);
	free(k->full);
	memset(k, 0, sizeof(*k));
}

const char *backend_s3_refused(int rc)
{
	return rc == -ESHUTDOWN ? "the replica's client is closing" : strerror(-rc);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void on_client_closed(void *arg)
{
	struct s3_backend *sb = arg;

	sb->client = NULL;
	maybe_closed(sb);
}

void backend_s3_close(struct backend *b, void (*cb)(void *arg), void *arg)
{
	struct s3_backend *sb = (struct s3_backend *)b;

	if (sb->closing)
		return;
	sb->closing = true;
	sb->close_cb = cb;
	sb->close_arg = arg;
	if (sb->client != NULL)
		s3_client_close(sb->client, on_client_closed, sb);
	else
		maybe_closed(sb);
}

void backend_s3_free(struct backend *b)
{
	struct s3_backend *sb = (struct s3_backend *)b;

	/* Not closed: the client closes itself as the loop runs on. */
	if (sb->client != NULL && !sb->closing)
		s3_client_close(sb->client, NULL, NULL);
	free(sb->name);
	free(sb->prefix);
	age_keys_free(b->age);
	free(b->describe);
	free(sb);
}

const char *backend_s3_credentials_source(struct backend *b)
{
	struct s3_backend *sb = (struct s3_backend *)b;

	return sb->client != NULL ? s3_client_credentials_source(sb->client) : "";
}

static const struct backend_ops s3_ops = {
	.type = "s3",
	.list = backend_s3_list,
	.put = backend_s3_put,
	.get = backend_s3_get,
	.get_follow = backend_s3_get_follow,
	.remove = backend_s3_remove,
	.credentials_source = backend_s3_credentials_source,
	.close = backend_s3_close,
	.free = backend_s3_free,
};

/* ---- creation ------------------------------------------------------------- */

int backend_s3_read_env(const struct replica_config *cfg, int64_t *stall_ms, int *max_keys,
			char *err, size_t errlen)
{
	const char *stall_env = getenv(STALL_TIMEOUT_ENV);
	const char *keys_env = getenv(MAX_KEYS_ENV);

	*stall_ms = 0;
	*max_keys = 0;
	if (stall_env != NULL && stall_env[0] != '\0' &&
	    (duration_parse(stall_env, stall_ms) != 0 || *stall_ms < 1000)) {
		snprintf(err, errlen, "replica %s: %s=\"%s\": want a duration of at least 1s", cfg->name,
			 STALL_TIMEOUT_ENV, stall_env);
		return -EINVAL;
	}
	if (keys_env != NULL && keys_env[0] != '\0' &&
	    (strspn(keys_env, "0123456789") != strlen(keys_env) || strlen(keys_env) > 4 ||
	     atoi(keys_env) < 1 || atoi(keys_env) > 1000)) {
		snprintf(err, errlen, "replica %s: %s=\"%s\": want 1 to 1000", cfg->name, MAX_KEYS_ENV,
			 keys_env);
		return -EINVAL;
	}
	if (keys_env != NULL && keys_env[0] != '\0')
		*max_keys = atoi(keys_env);
	return 0;
}

/*
 * Google Cloud Storage's XML API takes HMAC keys only: the AWS role
 * sources (STS, the container and EC2 metadata endpoints) mean nothing
 * there, so a gcs replica without static keys is refused at start.
 */
static int gcs_needs_hmac(const struct replica_config *cfg, char *err, size_t errlen)
{
	struct s3_credentials creds;
	char why[640];
	int rc = s3_credentials_resolve(cfg->access_key_id, cfg->secret_access_key, &creds, why,
					sizeof(why));

	if (rc == 0) {
		s3_credentials_free(&creds);
		return 0;
	}
	if (rc == -ENOENT)
		snprintf(err, errlen,
			 "replica %s: Google Cloud Storage needs HMAC keys (access-key-id and "
			 "secret-access-key, or LITESTREAM_ACCESS_KEY_ID and "
			 "LITESTREAM_SECRET_ACCESS_KEY; create them under Cloud Storage, Settings, "
			 "Interoperability); service-account credentials are not supported",
			 cfg->name);
	else
		snprintf(err, errlen, "replica %s: %s", cfg->name, rc == -ENOMEM ? strerror(ENOMEM) : why);
	return rc;
}

/* Creates sb's credentials provider and client from cfg. 0, or -errno with err set. */
static int start_client(struct s3_backend *sb, const struct replica_config *cfg, int64_t stall_ms,
			char *err, size_t errlen)
{
	struct s3_provider_config pc = {cfg->access_key_id, cfg->secret_access_key, cfg->region,
					sb->name};
	struct s3_sse sse = {cfg->sse, cfg->sse_kms_key_id, cfg->storage_class,
			     cfg->sse_customer_key, ""};
	struct s3_client_config cc;
	char why[2048];
	int rc;

	memset(&cc, 0, sizeof(cc));
	if (cfg->gcs && (rc = gcs_needs_hmac(cfg, err, errlen)) != 0)
		return rc;
	rc = s3_provider_new(sb->base.loop, &pc, &cc.provider, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "replica %s: %s", cfg->name, rc == -ENOMEM ? strerror(ENOMEM) : why);
		return rc;
	}
	cc.endpoint = cfg->endpoint;
	cc.bucket = cfg->bucket;
	cc.region = cfg->region;
	cc.force_path_style = cfg->force_path_style;
	cc.skip_verify = cfg->skip_verify;
	cc.ca_file = cfg->ca_file;
	cc.sse = &sse;
	cc.log_name = sb->name;
	cc.stall_timeout_ms = stall_ms;
	rc = s3_client_new(sb->base.loop, &cc, &sb->client, why, sizeof(why));
	if (rc != 0)
		snprintf(err, errlen, "replica %s: %s", cfg->name,
			 rc == -ENOMEM ? strerror(ENOMEM) : why);
	return rc;
}

int backend_s3_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		   char *err, size_t errlen)
{
	struct s3_backend *sb;
	int64_t stall_ms;
	int max_keys;
	int rc;

	if (cfg->bucket == NULL || cfg->bucket[0] == '\0') {
		snprintf(err, errlen, "replica %s: no bucket", cfg->name);
		return -EINVAL;
	}
	rc = backend_s3_read_env(cfg, &stall_ms, &max_keys, err, errlen);
	if (rc != 0)
		return rc;
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return -ENOMEM;
	sb->base.ops = &s3_ops;
	sb->base.loop = loop;
	sb->name = str_printf("replica %s", cfg->name);
	sb->prefix = strdup(cfg->path ? cfg->path : "");
	if (max_keys > 0)
		snprintf(sb->max_keys, sizeof(sb->max_keys), "%d", max_keys);
	sb->part_size = cfg->part_size >= CONFIG_PART_SIZE_MIN ? (uint64_t)cfg->part_size
							       : CONFIG_PART_SIZE_DEFAULT;
	/* What logs, status and metrics show: never a key or a secret. */
	sb->base.describe =
		str_printf("s3://%s%s%s%s%s%s", cfg->bucket, sb->prefix && sb->prefix[0] ? "/" : "",
			   sb->prefix ? sb->prefix : "", cfg->endpoint ? " (endpoint " : "",
			   cfg->endpoint ? cfg->endpoint : "", cfg->endpoint ? ")" : "");
	if (sb->name == NULL || sb->prefix == NULL || sb->base.describe == NULL) {
		backend_s3_free(&sb->base);
		return -ENOMEM;
	}
	rc = start_client(sb, cfg, stall_ms, err, errlen);
	if (rc != 0) {
		backend_s3_free(&sb->base);
		return rc;
	}
	if (cfg->skip_verify)
		LOG_WARN(sb->name, NULL,
			 "skip-verify is set: the TLS certificate of %s is not checked, so anyone on the "
			 "path can read and alter this replica",
			 cfg->endpoint ? cfg->endpoint : "S3");
	*out = &sb->base;
	return 0;
}
