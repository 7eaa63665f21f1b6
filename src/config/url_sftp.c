/*
 * The sftp:// replica URL, read as Litestream 0.3.13 reads it
 * (newSFTPReplicaClientFromConfig): sftp://USER[:PASSWORD]@HOST[:PORT]/PATH,
 * the user information percent-decoded, the host kept as HOST[:PORT] (the
 * form of the `host` key), the path cleaned and absolute (a relative
 * remote path needs the `path` key; no path at all is the login
 * directory). A query is an error rather than ignored: key-path, host-key
 * and known-hosts-file belong in the config file. The password is a
 * secret: no message shows it (replica_url_redacted() replaces it). See
 * url.h.
 */
#include "config/url.h"
#include "util/pct.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int replica_url_sftp_host(const char *s, char **host, int *port, char *why, size_t n)
{
	size_t len = strlen(s), hlen = len;
	const char *h = s, *p = NULL;
	long v = 0;

	if (len > 0 && s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || (rb[1] != '\0' && rb[1] != ':')) {
			snprintf(why, n, "invalid host \"%s\" (want HOST, HOST:PORT or [IPV6]:PORT)", s);
			return -EINVAL;
		}
		h = s + 1;
		hlen = (size_t)(rb - h);
		p = rb[1] == ':' ? rb + 2 : NULL;
	} else if ((p = strchr(s, ':')) != NULL) {
		hlen = (size_t)(p - s);
		p++;
	}
	if (hlen == 0) {
		snprintf(why, n, "no host in \"%s\" (want HOST or HOST:PORT)", s);
		return -EINVAL;
	}
	for (size_t i = 0; i < hlen; i++) {
		if (isspace((unsigned char)h[i]) || iscntrl((unsigned char)h[i]) || h[i] == '/' ||
		    h[i] == '@' || (h[i] == ':' && s[0] != '[')) {
			snprintf(why, n, "invalid host \"%s\" (want HOST, HOST:PORT or [IPV6]:PORT)", s);
			return -EINVAL;
		}
	}
	if (p != NULL) {
		for (const char *c = p; *c != '\0' && v <= 65535; c++)
			v = isdigit((unsigned char)*c) ? v * 10 + (*c - '0') : 65536;
		if (*p == '\0' || v == 0 || v > 65535) {
			snprintf(why, n, "invalid port in \"%s\" (want 1 to 65535)", s);
			return -EINVAL;
		}
	}
	if (host != NULL && (*host = strndup(h, hlen)) == NULL)
		return -ENOMEM;
	if (port != NULL)
		*port = p != NULL ? (int)v : 22;
	return 0;
}

/* The percent-decoded s[0..len) into *out; -EINVAL for a bad escape, -ENOMEM. */
static int decoded(const char *s, size_t len, char **out)
{
	char *d = malloc(len + 1);

	if (d == NULL)
		return -ENOMEM;
	if (pct_decode(s, len, 0, d) != 0) {
		free(d);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

/* The user information rest[0..len): USER[:PASSWORD], both decoded. */
static int take_userinfo(const char *shown, const char *rest, size_t len, struct replica_url *u,
			 char *err, size_t errlen)
{
	const char *colon = memchr(rest, ':', len);
	size_t ulen = colon != NULL ? (size_t)(colon - rest) : len;
	int rc;

	if (ulen == 0) {
		snprintf(err, errlen, "replica URL \"%s\": an empty user before '@'", shown);
		return -EINVAL;
	}
	if ((rc = decoded(rest, ulen, &u->user)) == 0 && colon != NULL)
		rc = decoded(colon + 1, len - ulen - 1, &u->password);
	if (rc == -EINVAL)
		snprintf(err, errlen, "replica URL \"%s\": invalid escape in the %s", shown,
			 u->user == NULL ? "user" : "password");
	return rc;
}

int replica_url_parse_sftp(const char *shown, const char *rest, struct replica_url *u, char *err,
			   size_t errlen)
{
	size_t alen = strcspn(rest, "/?#"), plen;
	const char *at = NULL, *p = rest + alen, *host;
	char why[256], *path = NULL;
	int rc;

	for (const char *c = rest; c < rest + alen; c++)
		if (*c == '@')
			at = c; /* the last one: a password may hold an unescaped '@' */
	host = at != NULL ? at + 1 : rest;
	u->type = REPLICA_SFTP;
	if (at != NULL && (rc = take_userinfo(shown, rest, (size_t)(at - rest), u, err, errlen)) != 0)
		goto fail;
	u->host = strndup(host, (size_t)(rest + alen - host));
	if (u->host == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = replica_url_sftp_host(u->host, NULL, NULL, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "replica URL \"%s\": %s (want sftp://USER@HOST[:PORT]/PATH)",
			 shown, why);
		goto fail;
	}
	plen = strcspn(p, "?#");
	if (p[plen] == '?') {
		snprintf(err, errlen,
			 "replica URL \"%s\": sftp:// takes no query (set key-path, host-key or "
			 "known-hosts-file in the config file)",
			 shown);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = decoded(p, plen, &path)) == -EINVAL)
		snprintf(err, errlen, "replica URL \"%s\": invalid escape in the path", shown);
	if (rc != 0)
		goto fail;
	rc = replica_url_sftp_path(path, &u->path);
	free(path);
	if (rc != 0)
		goto fail;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}
