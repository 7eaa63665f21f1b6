/*
 * The abs:// replica URL (Azure Blob Storage), read the way Litestream
 * 0.3.13 reads it (newABSReplicaClientFromConfig): abs://ACCOUNT@CONTAINER/PATH,
 * the user name the storage account, the host the container, the cleaned
 * path the prefix. Everything else a URL could carry (a password, a port,
 * a query) is an error rather than ignored: the account key belongs in
 * the config file or LITESTREAM_AZURE_ACCOUNT_KEY, the endpoint in the
 * `endpoint` key. See url.h.
 */
#include "config/url.h"
#include "util/pct.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Azure's rule: 3 to 63 of a-z, 0-9 and '-', starting with a letter or digit. */
static bool container_valid(const char *s, size_t n)
{
	if (n < 3 || n > 63 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

bool replica_url_container_valid(const char *s)
{
	return container_valid(s, strlen(s));
}

/* Azure's rule for an account: 3 to 24 of a-z and 0-9. */
static bool account_valid(const char *s, size_t n)
{
	if (n < 3 || n > 24)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i])))
			return false;
	return true;
}

int replica_url_parse_abs(const char *shown, const char *rest, struct replica_url *u, char *err,
			  size_t errlen)
{
	size_t alen = strcspn(rest, "/?#"), plen;
	const char *at = memchr(rest, '@', alen), *host = at ? at + 1 : rest, *p = rest + alen;
	size_t hlen = (size_t)(rest + alen - host);
	char *decoded;

	if (at != NULL && memchr(rest, ':', (size_t)(at - rest)) != NULL) {
		/* Not echoed: what follows ':' is a secret. */
		snprintf(err, errlen, "replica URL: abs:// takes no password (ACCOUNT:KEY@); set "
				      "account-key in the config file or LITESTREAM_AZURE_ACCOUNT_KEY");
		return -EINVAL;
	}
	if (at != NULL && !account_valid(rest, (size_t)(at - rest))) {
		snprintf(err, errlen,
			 "replica URL \"%s\": invalid account name \"%.*s\" (want 3 to 24 of a-z, 0-9)",
			 shown, (int)(at - rest), rest);
		return -EINVAL;
	}
	if (memchr(host, ':', hlen) != NULL) {
		snprintf(err, errlen,
			 "replica URL \"%s\": abs://ACCOUNT@CONTAINER/PATH takes no port (set endpoint "
			 "for Azurite or another cloud)",
			 shown);
		return -EINVAL;
	}
	if (!container_valid(host, hlen)) {
		snprintf(err, errlen,
			 "replica URL \"%s\": invalid container name \"%.*s\" (want "
			 "abs://ACCOUNT@CONTAINER/PATH, a container of 3 to 63 of a-z, 0-9, '-')",
			 shown, (int)hlen, host);
		return -EINVAL;
	}
	plen = strcspn(p, "?#");
	if (p[plen] == '?') {
		snprintf(err, errlen,
			 "replica URL \"%s\": abs:// takes no query (set endpoint, account-key or "
			 "sas-token in the config file)",
			 shown);
		return -EINVAL;
	}
	decoded = malloc(plen + 1);
	if (decoded == NULL)
		return -ENOMEM;
	if (pct_decode(p, plen, 0, decoded) != 0) {
		free(decoded);
		snprintf(err, errlen, "replica URL \"%s\": invalid escape in the path", shown);
		return -EINVAL;
	}
	u->type = REPLICA_ABS;
	u->bucket = strndup(host, hlen);
	u->account_name = at != NULL ? strndup(rest, (size_t)(at - rest)) : NULL;
	if (replica_url_s3_prefix(decoded, &u->path) != 0)
		u->path = NULL;
	free(decoded);
	if (u->bucket == NULL || u->path == NULL || (at != NULL && u->account_name == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}
