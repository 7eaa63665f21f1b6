/*
 * The abs backend: a replica in an Azure Blob Storage container (Azure, a
 * sovereign cloud through `endpoint`, or Azurite), behind the same table
 * of operations as the others, with the object layout Litestream 0.3.13
 * writes there (PATH/generations/...).
 *
 * It is the S3 backend's struct on the S3 client (s3/client.h) with
 * Azure's signer (azure/shared_key.h) in place of Signature V4, so that
 * the queue, the bound on requests in flight, the timeouts, the retries,
 * cancellation on close and the error messages are the same code; the
 * client sends to ENDPOINT/CONTAINER/KEY, ENDPOINT defaulting to
 * https://ACCOUNT.blob.core.windows.net. Listing (List Blobs) and get
 * (ranged Get Blob) are the S3 backend's operations; put (Put Blob, or Put
 * Block and Put Block List above part-size) and remove (Delete Blob) are
 * backend_abs_put.c's and backend_abs_delete.c's. Nothing is sent while
 * the replica has nothing to do.
 *
 * Credentials: the account key from the config (account-key) or
 * LITESTREAM_AZURE_ACCOUNT_KEY, as 0.3.13 reads it, or a SAS token
 * (sas-token), held by a static provider: the account name as the key id,
 * the key as the secret, the SAS token as the session token.
 */
#include "backend/backend_s3_internal.h"
#include "azure/shared_key.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "s3/provider.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCOUNT_KEY_ENV "LITESTREAM_AZURE_ACCOUNT_KEY"

static const struct backend_ops abs_ops = {
	.type = "abs",
	.list = backend_s3_list,
	.put = backend_abs_put,
	.get = backend_s3_get,
	.get_follow = backend_s3_get_follow,
	.remove = backend_abs_remove,
	.credentials_source = backend_s3_credentials_source,
	.close = backend_s3_close,
	.free = backend_s3_free,
};

/* The static credentials: account, key (config or environment) or SAS token. */
static int abs_creds(const struct replica_config *cfg, struct s3_credentials *c, char *err,
		     size_t errlen)
{
	const char *env = getenv(ACCOUNT_KEY_ENV);
	const char *key = cfg->account_key, *source = "account-key in the replica configuration";

	memset(c, 0, sizeof(*c));
	if (cfg->sas_token != NULL && cfg->sas_token[0] != '\0') {
		key = "";
		source = "sas-token in the replica configuration";
	} else if (key == NULL || key[0] == '\0') {
		key = env;
		source = ACCOUNT_KEY_ENV;
	}
	if (key == NULL || (key[0] == '\0' && source[0] != 's')) {
		snprintf(err, errlen,
			 "replica %s: no account key: set account-key or %s, or give a sas-token",
			 cfg->name, ACCOUNT_KEY_ENV);
		return -EINVAL;
	}
	c->access_key_id = strdup(cfg->account_name ? cfg->account_name : "");
	c->secret_access_key = strdup(key);
	c->session_token = cfg->sas_token ? strdup(cfg->sas_token) : NULL;
	snprintf(c->source, sizeof(c->source), "%s", source);
	if (c->access_key_id == NULL || c->secret_access_key == NULL ||
	    (cfg->sas_token != NULL && c->session_token == NULL)) {
		s3_credentials_free(c);
		return -ENOMEM;
	}
	return 0;
}

static int start_client(struct s3_backend *sb, const struct replica_config *cfg,
			const char *endpoint, int64_t stall_ms, char *err, size_t errlen)
{
	struct s3_client_config cc;
	struct s3_credentials creds;
	char why[1024];
	int rc = abs_creds(cfg, &creds, err, errlen);

	if (rc != 0)
		return rc;
	memset(&cc, 0, sizeof(cc));
	cc.endpoint = endpoint;
	cc.bucket = cfg->bucket;
	cc.force_path_style = true;
	cc.skip_verify = cfg->skip_verify;
	cc.ca_file = cfg->ca_file;
	cc.creds = &creds;
	cc.log_name = sb->name;
	cc.stall_timeout_ms = stall_ms;
	cc.sign = abs_sign;
	rc = s3_client_new(sb->base.loop, &cc, &sb->client, why, sizeof(why));
	s3_credentials_free(&creds);
	if (rc != 0)
		snprintf(err, errlen, "replica %s: %s", cfg->name,
			 rc == -ENOMEM ? strerror(ENOMEM) : why);
	return rc;
}

int backend_abs_new(uv_loop_t *loop, const struct replica_config *cfg, struct backend **out,
		    char *err, size_t errlen)
{
	struct s3_backend *sb;
	char *endpoint;
	int64_t stall_ms;
	int max_keys, rc;

	if (cfg->bucket == NULL || cfg->bucket[0] == '\0') {
		snprintf(err, errlen, "replica %s: no container (bucket)", cfg->name);
		return -EINVAL;
	}
	if ((cfg->account_name == NULL || cfg->account_name[0] == '\0') && cfg->endpoint == NULL) {
		snprintf(err, errlen, "replica %s: no account-name", cfg->name);
		return -EINVAL;
	}
	rc = backend_s3_read_env(cfg, &stall_ms, &max_keys, err, errlen);
	if (rc != 0)
		return rc;
	endpoint = cfg->endpoint ? strdup(cfg->endpoint)
				 : str_printf("https://%s.blob.core.windows.net", cfg->account_name);
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL || endpoint == NULL) {
		free(sb);
		free(endpoint);
		return -ENOMEM;
	}
	sb->base.ops = &abs_ops;
	sb->base.loop = loop;
	sb->abs = true;
	sb->name = str_printf("replica %s", cfg->name);
	sb->prefix = strdup(cfg->path ? cfg->path : "");
	if (max_keys > 0)
		snprintf(sb->max_keys, sizeof(sb->max_keys), "%d", max_keys);
	sb->part_size = cfg->part_size >= CONFIG_ABS_BLOCK_MIN ? (uint64_t)cfg->part_size
							       : CONFIG_PART_SIZE_DEFAULT;
	/* What logs, status and metrics show: never a key or a token. */
	sb->base.describe = str_printf("abs://%s%s%s%s%s (endpoint %s)",
				       cfg->account_name ? cfg->account_name : "",
				       cfg->account_name ? "@" : "", cfg->bucket,
				       sb->prefix && sb->prefix[0] ? "/" : "",
				       sb->prefix ? sb->prefix : "", endpoint);
	if (sb->name == NULL || sb->prefix == NULL || sb->base.describe == NULL) {
		free(endpoint);
		backend_s3_free(&sb->base);
		return -ENOMEM;
	}
	rc = start_client(sb, cfg, endpoint, stall_ms, err, errlen);
	if (rc != 0) {
		free(endpoint);
		backend_s3_free(&sb->base);
		return rc;
	}
	if (cfg->skip_verify)
		LOG_WARN(sb->name, NULL,
			 "skip-verify is set: the TLS certificate of %s is not checked, so anyone on the "
			 "path can read and alter this replica",
			 endpoint);
	free(endpoint);
	*out = &sb->base;
	return 0;
}
