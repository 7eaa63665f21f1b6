/*
 * Replica URLs; see url.h for the forms accepted.
 *
 * Litestream hands the string to Go's net/url and matches the host with
 * regular expressions. Here the URL is split by hand (scheme, authority,
 * path, query; the fragment is dropped) and the host is compared label by
 * label, from the right, with a table of provider forms. The part of the
 * host that matched a form is the endpoint's host, so the table needs no
 * endpoint templates, and what precedes it (minus the separating '.') is
 * the bucket.
 *
 * Everything is built in a local struct replica_url and copied to the
 * caller's only when the whole URL has been accepted.
 */
#include "config/url.h"

#include "config/parse.h"
#include "util/pct.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* gcs://BUCKET/... is read as s3://BUCKET.storage.googleapis.com/... */
#define GCS_HOST_SUFFIX ".storage.googleapis.com"

struct host_form {
	const char *suffix; /* labels; a '*' ending a label captures the region */
	bool aws;           /* no endpoint: the SDK's own AWS endpoint */
	bool http;          /* a local server: the endpoint speaks plain http */
};

/* The labels are disjoint, so the order does not matter. */
static const struct host_form host_forms[] = {
	{"s3.amazonaws.com", true, false},
	{"s3.*.amazonaws.com", true, false},
	{"s3-*.amazonaws.com", true, false},
	{"s3.*.backblazeb2.com", false, false},
	{"*.digitaloceanspaces.com", false, false},
	{"*.linodeobjects.com", false, false},
	{"s3.*.scw.cloud", false, false},
	{"s3.filebase.com", false, false},
	{"storage.googleapis.com", false, false},
	{"localhost", false, true},
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

bool replica_url_is_url(const char *s)
{
	size_t n = 0;

	while (isalnum((unsigned char)s[n]) || s[n] == '_')
		n++;
	return n > 0 && strncmp(s + n, "://", 3) == 0;
}

/* pct_decode() (PCT_PLUS_SPACE for queries) into a malloc'd string; -EINVAL, -ENOMEM. */
static int decode_dup(const char *s, size_t len, unsigned flags, char **out)
{
	char *d = malloc(len + 1);

	if (d == NULL)
		return -ENOMEM;
	if (pct_decode(s, len, flags, d) != 0) {
		free(d);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

int replica_url_endpoint(const char *in, char **out, char *err, size_t errlen)
{
	const char *sep = strstr(in, "://"), *host = in;
	size_t len = strlen(in);
	char *e;

	if (sep != NULL) {
		size_t slen = (size_t)(sep - in);

		if (!(slen == 4 && strncasecmp(in, "http", 4) == 0) &&
		    !(slen == 5 && strncasecmp(in, "https", 5) == 0)) {
			seterr(err, errlen, "invalid endpoint \"%s\": the scheme must be http or https", in);
			return -EINVAL;
		}
		host = sep + 3;
	}
	while (len > 0 && in[len - 1] == '/')
		len--;
	if (len <= (size_t)(host - in) || *host == '/') {
		seterr(err, errlen, "invalid endpoint \"%s\": no host", in);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (isspace((unsigned char)in[i]) || iscntrl((unsigned char)in[i])) {
			seterr(err, errlen, "invalid endpoint \"%s\": a space or control character", in);
			return -EINVAL;
		}
	}
	e = malloc(len + sizeof("https://"));
	if (e == NULL)
		return -ENOMEM;
	if (sep != NULL)
		snprintf(e, len + 1, "%s", in);
	else
		sprintf(e, "https://%.*s", (int)len, in);
	*out = e;
	return 0;
}

void replica_url_free(struct replica_url *u)
{
	free(u->path);
	free(u->bucket);
	free(u->region);
	free(u->endpoint);
	free(u->sse);
	free(u->sse_kms_key_id);
	if (u->sse_customer_key != NULL)
		explicit_bzero(u->sse_customer_key, strlen(u->sse_customer_key));
	free(u->sse_customer_key);
	free(u->storage_class);
	free(u->account_name);
	free(u->host);
	free(u->user);
	if (u->password != NULL)
		explicit_bzero(u->password, strlen(u->password));
	free(u->password);
	memset(u, 0, sizeof(*u));
}

/*
 * Matches the end of host[0..len) against form's labels. On a match *off
 * is where the matched suffix starts (the bucket, if any, is
 * host[0..*off - 1)) and *region, *region_len the part a '*' captured.
 */
static bool match_form(const char *host, size_t len, const char *form, size_t *off,
		       const char **region, size_t *region_len)
{
	const char *pe = form + strlen(form);
	size_t hend = len;
	bool exhausted = false;

	*region = NULL;
	*region_len = 0;
	while (pe > form) {
		const char *ps = pe;
		size_t hs = hend, plen, hlen;

		while (ps > form && ps[-1] != '.')
			ps--;
		if (exhausted)
			return false;
		while (hs > 0 && host[hs - 1] != '.')
			hs--;
		plen = (size_t)(pe - ps);
		hlen = hend - hs;
		if (plen > 0 && ps[plen - 1] == '*') {
			size_t fixed = plen - 1;

			if (hlen <= fixed || strncasecmp(host + hs, ps, fixed) != 0)
				return false;
			*region = host + hs + fixed;
			*region_len = hlen - fixed;
		} else if (hlen != plen || strncasecmp(host + hs, ps, plen) != 0) {
			return false;
		}
		*off = hs;
		if (hs == 0)
			exhausted = true;
		else
			hend = hs - 1;
		pe = ps > form ? ps - 1 : form;
	}
	return true;
}

bool replica_url_bucket_valid(const char *b)
{
	if (*b == '\0')
		return false;
	for (; *b != '\0'; b++)
		if (!isalnum((unsigned char)*b) && *b != '.' && *b != '-' && *b != '_')
			return false;
	return true;
}

static int parse_bool_param(const char *url, const char *key, const char *v, bool *out,
			    char *err, size_t errlen)
{
	if (parse_bool(v, out) != 0) {
		seterr(err, errlen, "replica URL \"%s\": %s: invalid boolean \"%s\"", url, key, v);
		return -EINVAL;
	}
	return 0;
}

enum {
	Q_ENDPOINT = 1,
	Q_REGION = 2,
	Q_FORCE_PATH_STYLE = 4,
	Q_SKIP_VERIFY = 8,
	Q_SSE = 16,
	Q_SSE_KMS_KEY_ID = 32,
	Q_SSE_CUSTOMER_KEY = 64,
	Q_STORAGE_CLASS = 128,
};

/* The Q_ flag of a query parameter's name (Litestream 0.5's too), 0 for an unknown one. */
static unsigned query_key(const char *key)
{
	if (strcmp(key, "endpoint") == 0)
		return Q_ENDPOINT;
	if (strcmp(key, "region") == 0)
		return Q_REGION;
	if (strcmp(key, "force-path-style") == 0 || strcmp(key, "forcePathStyle") == 0)
		return Q_FORCE_PATH_STYLE;
	if (strcmp(key, "skip-verify") == 0 || strcmp(key, "skipVerify") == 0)
		return Q_SKIP_VERIFY;
	if (strcmp(key, "sse") == 0)
		return Q_SSE;
	if (strcmp(key, "sse-kms-key-id") == 0)
		return Q_SSE_KMS_KEY_ID;
	if (strcmp(key, "sse-customer-key") == 0)
		return Q_SSE_CUSTOMER_KEY;
	if (strcmp(key, "storage-class") == 0)
		return Q_STORAGE_CLASS;
	return 0;
}

/* Applies parameter which (named key) with the non-empty value *val to u; may take *val. */
static int apply_param(const char *url, unsigned which, const char *key, char **val,
		       struct replica_url *u, char *err, size_t errlen)
{
	int rc = 0;

	switch (which) {
	case Q_ENDPOINT: {
		char *e = NULL, msg[256];

		rc = replica_url_endpoint(*val, &e, msg, sizeof(msg));
		if (rc == 0) {
			free(u->endpoint);
			u->endpoint = e;
		} else if (rc == -EINVAL) {
			seterr(err, errlen, "replica URL \"%s\": %s", url, msg);
		}
		break;
	}
	case Q_REGION:
		free(u->region);
		u->region = *val;
		*val = NULL;
		break;
	case Q_FORCE_PATH_STYLE:
		rc = parse_bool_param(url, key, *val, &u->force_path_style, err, errlen);
		u->force_path_style_set = true;
		break;
	case Q_SKIP_VERIFY:
		rc = parse_bool_param(url, key, *val, &u->skip_verify, err, errlen);
		break;
	default: {
		char why[256];

		rc = replica_url_sse_param(key, val, u, why, sizeof(why));
		if (rc != 0)
			seterr(err, errlen, "replica URL \"%s\": %s: %s", url, key, why);
		break;
	}
	}
	return rc;
}

/* Applies the query string q[0..len) to u. */
static int parse_query(const char *url, const char *q, size_t len, struct replica_url *u,
		       char *err, size_t errlen)
{
	unsigned seen = 0;
	size_t i = 0;
	int rc = 0;

	while (i < len && rc == 0) {
		size_t plen = 0, klen;
		const char *param = q + i, *eq;
		char *key = NULL, *val = NULL;
		unsigned which;

		while (i + plen < len && q[i + plen] != '&')
			plen++;
		i += plen + 1;
		if (plen == 0)
			continue;
		eq = memchr(param, '=', plen);
		klen = eq != NULL ? (size_t)(eq - param) : plen;
		rc = decode_dup(param, klen, PCT_PLUS_SPACE, &key);
		if (rc == 0)
			rc = decode_dup(eq != NULL ? eq + 1 : param + plen,
					eq != NULL ? plen - klen - 1 : 0, PCT_PLUS_SPACE, &val);
		if (rc == -EINVAL)
			seterr(err, errlen, "replica URL \"%s\": invalid escape in the query", url);
		if (rc != 0)
			goto next;
		which = query_key(key);
		if (which == 0) {
			seterr(err, errlen,
			       "replica URL \"%s\": unknown query parameter \"%s\" (want endpoint, "
			       "region, force-path-style, skip-verify, sse, sse-kms-key-id, "
			       "sse-customer-key or storage-class)",
			       url, key);
			rc = -EINVAL;
			goto next;
		}
		if (seen & which) {
			seterr(err, errlen, "replica URL \"%s\": query parameter \"%s\" given twice",
			       url, key);
			rc = -EINVAL;
			goto next;
		}
		seen |= which;
		if (*val == '\0') {
			seterr(err, errlen, "replica URL \"%s\": query parameter \"%s\" has no value",
			       url, key);
			rc = -EINVAL;
			goto next;
		}
		rc = apply_param(url, which, key, &val, u, err, errlen);
	next:
		free(key);
		free(val);
	}
	return rc;
}

/*
 * Splits the authority auth[0..alen) into the host auth[0..*hlen) and a
 * port (*port, NULL when there is none). -EINVAL with the message for user
 * information, a bad IPv6 literal or port, or an empty host.
 */
static int split_authority(const char *url, const char *auth, size_t alen, size_t *hlen_out,
			   const char **port_out, char *err, size_t errlen)
{
	size_t hlen = alen, portlen = 0;
	const char *port = NULL;

	if (memchr(auth, '@', alen) != NULL) {
		/* The URL is not echoed: it holds a secret. */
		seterr(err, errlen,
		       "replica URL: user information (USER:PASSWORD@) is not supported; set "
		       "access-key-id and secret-access-key in the config file or the environment");
		return -EINVAL;
	}
	if (alen > 0 && auth[0] == '[') {
		const char *rb = memchr(auth, ']', alen);

		if (rb == NULL || (rb + 1 < auth + alen && rb[1] != ':')) {
			seterr(err, errlen, "replica URL \"%s\": invalid host", url);
			return -EINVAL;
		}
		hlen = (size_t)(rb - auth) + 1;
	} else {
		const char *c = memchr(auth, ':', alen);

		if (c != NULL)
			hlen = (size_t)(c - auth);
	}
	if (hlen < alen) {
		unsigned long v = 0;

		port = auth + hlen + 1;
		portlen = alen - hlen - 1;
		/* Stops once past 65535; a non-digit pushes it past too. */
		for (size_t i = 0; i < portlen && v <= 65535; i++) {
			if (isdigit((unsigned char)port[i]))
				v = v * 10 + (unsigned long)(port[i] - '0');
			else
				v = 65536;
		}
		if (portlen == 0 || v == 0 || v > 65535) {
			seterr(err, errlen, "replica URL \"%s\": invalid port", url);
			return -EINVAL;
		}
	}
	if (hlen == 0) {
		seterr(err, errlen, "replica URL \"%s\": no bucket (want s3://BUCKET/PREFIX)", url);
		return -EINVAL;
	}
	*hlen_out = hlen;
	*port_out = port;
	return 0;
}

/*
 * Sets the bucket, region and endpoint that the host auth[0..hlen) (with
 * its port, auth[0..alen)) names, by the table of provider forms;
 * *bucket_in_path when the host names no bucket. -EINVAL with the message
 * for a port on an AWS host; -ENOMEM.
 */
static int apply_host(const char *url, const char *auth, size_t alen, size_t hlen, bool has_port,
		      struct replica_url *u, bool *bucket_in_path, char *err, size_t errlen)
{
	const struct host_form *form = NULL;
	size_t off = 0, reglen;
	const char *reg;

	for (size_t i = 0; i < sizeof(host_forms) / sizeof(host_forms[0]); i++) {
		if (match_form(auth, hlen, host_forms[i].suffix, &off, &reg, &reglen)) {
			form = &host_forms[i];
			break;
		}
	}
	if (form != NULL && form->aws && has_port) {
		seterr(err, errlen,
		       "replica URL \"%s\": a port on an AWS host is not supported (use ?endpoint=)",
		       url);
		return -EINVAL;
	}
	if (form != NULL) {
		/* off > 1: a bucket label and its '.' precede the matched form. */
		if (off > 1)
			u->bucket = dup_n(auth, off - 1);
		else
			*bucket_in_path = true;
		if (reg != NULL)
			u->region = dup_n(reg, reglen);
		if (!form->aws) {
			size_t elen = alen - off;

			u->endpoint = malloc(elen + sizeof("https://"));
			if (u->endpoint != NULL)
				sprintf(u->endpoint, "%s://%.*s", form->http ? "http" : "https",
					(int)elen, auth + off);
		}
		if ((off > 1 && u->bucket == NULL) || (reg != NULL && u->region == NULL) ||
		    (!form->aws && u->endpoint == NULL))
			return -ENOMEM;
	} else if (has_port) {
		/* An S3-compatible server of its own (MinIO, RADOS Gateway). */
		u->endpoint = malloc(alen + sizeof("http://"));
		if (u->endpoint == NULL)
			return -ENOMEM;
		sprintf(u->endpoint, "http://%.*s", (int)alen, auth);
		*bucket_in_path = true;
	} else {
		u->bucket = dup_n(auth, hlen);
		if (u->bucket == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* rest is what follows "s3://". */
static int parse_s3(const char *url, const char *rest, struct replica_url *u, char *err,
		    size_t errlen)
{
	size_t alen = strcspn(rest, "/?#"), hlen, plen;
	const char *auth = rest, *p = rest + alen, *port;
	char *dpath = NULL, *prefix = NULL;
	bool bucket_in_path = false;
	int rc;

	plen = strcspn(p, "?#");
	rc = split_authority(url, auth, alen, &hlen, &port, err, errlen);
	if (rc != 0)
		return rc;

	rc = decode_dup(p, plen, 0, &dpath);
	if (rc == -EINVAL)
		seterr(err, errlen, "replica URL \"%s\": invalid escape in the path", url);
	if (rc != 0)
		goto out;
	rc = replica_url_s3_prefix(dpath, &prefix);
	if (rc != 0)
		goto out;
	rc = apply_host(url, auth, alen, hlen, port != NULL, u, &bucket_in_path, err, errlen);
	if (rc != 0)
		goto out;

	if (bucket_in_path) {
		const char *seg = prefix, *slash = strchr(seg, '/');

		if (*seg == '\0') {
			seterr(err, errlen,
			       "replica URL \"%s\": no bucket (want s3://HOST/BUCKET/PREFIX)", url);
			rc = -EINVAL;
			goto out;
		}
		u->bucket = slash != NULL ? dup_n(seg, (size_t)(slash - seg)) : strdup(seg);
		u->path = strdup(slash != NULL ? slash + 1 : "");
	} else {
		u->path = prefix;
		prefix = NULL;
	}
	if (u->bucket == NULL || u->path == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (!replica_url_bucket_valid(u->bucket)) {
		seterr(err, errlen, "replica URL \"%s\": invalid bucket name \"%s\"", url, u->bucket);
		rc = -EINVAL;
		goto out;
	}
	if (p[plen] == '?') {
		const char *q = p + plen + 1;

		rc = parse_query(url, q, strcspn(q, "#"), u, err, errlen);
		if (rc != 0)
			goto out;
	}
	/* As Litestream: only AWS itself does without path-style requests. */
	if (!u->force_path_style_set)
		u->force_path_style = u->endpoint != NULL;
out:
	if (rc == -ENOMEM)
		seterr(err, errlen, "out of memory");
	free(dpath);
	free(prefix);
	return rc;
}

/*
 * rest is what follows "gcs://": BUCKET[/PREFIX][?QUERY], read as the S3
 * host form BUCKET.storage.googleapis.com, so that the query and the
 * messages are S3's. GCS's XML API signs with region "auto".
 */
static int parse_gcs(const char *url, const char *rest, struct replica_url *u, char *err,
		     size_t errlen)
{
	size_t blen = strcspn(rest, "/?#");
	char *s3rest;
	int rc;

	if (blen == 0 || memchr(rest, ':', blen) != NULL || memchr(rest, '@', blen) != NULL) {
		seterr(err, errlen, "replica URL \"%s\": want gcs://BUCKET/PATH (a bucket, no port or user)",
		       url);
		return -EINVAL;
	}
	if ((s3rest = malloc(strlen(rest) + sizeof(GCS_HOST_SUFFIX))) == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sprintf(s3rest, "%.*s%s%s", (int)blen, rest, GCS_HOST_SUFFIX, rest + blen);
	rc = parse_s3(url, s3rest, u, err, errlen);
	free(s3rest);
	if (rc == 0 && u->region == NULL && (u->region = strdup("auto")) == NULL) {
		seterr(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	u->gcs = true;
	return rc;
}

/* rest is what follows "file://". */
static int parse_file(const char *url, const char *rest, struct replica_url *u, char *err,
		      size_t errlen)
{
	char *decoded = NULL;
	int rc;

	if (strncasecmp(rest, "localhost/", 10) == 0)
		rest += 9;
	if (rest[0] != '/') {
		seterr(err, errlen,
		       "replica URL \"%s\": a file URL needs an absolute path (file:///PATH)", url);
		return -EINVAL;
	}
	if (strpbrk(rest, "?#") != NULL) {
		seterr(err, errlen,
		       "replica URL \"%s\": a file URL takes no query or fragment (write '?' "
		       "as %%3F, '#' as %%23)",
		       url);
		return -EINVAL;
	}
	rc = decode_dup(rest, strlen(rest), 0, &decoded);
	if (rc == -EINVAL) {
		seterr(err, errlen, "replica URL \"%s\": invalid escape in the path", url);
		return rc;
	}
	if (rc == 0) {
		rc = replica_url_abs_path(decoded, &u->path);
		free(decoded);
	}
	if (rc != 0)
		seterr(err, errlen, "replica URL \"%s\": %s", url, strerror(-rc));
	return rc;
}

int replica_url_parse(const char *url, struct replica_url *out, char *err, size_t errlen)
{
	struct replica_url u = {0};
	char *shown;
	int rc;

	if (*url == '\0') {
		seterr(err, errlen, "empty replica URL");
		return -EINVAL;
	}
	if ((shown = replica_url_redacted(url)) == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!replica_url_is_url(url)) {
		u.type = REPLICA_FILE;
		rc = replica_url_abs_path(url, &u.path);
		if (rc != 0)
			seterr(err, errlen, "replica path \"%s\": %s", shown, strerror(-rc));
	} else if (strncasecmp(url, "file://", 7) == 0) {
		u.type = REPLICA_FILE;
		rc = parse_file(shown, url + 7, &u, err, errlen);
	} else if (strncasecmp(url, "s3://", 5) == 0) {
		u.type = REPLICA_S3;
		rc = parse_s3(shown, url + 5, &u, err, errlen);
	} else if (strncasecmp(url, "abs://", 6) == 0) {
		rc = replica_url_parse_abs(shown, url + 6, &u, err, errlen);
	} else if (strncasecmp(url, "gcs://", 6) == 0) {
		u.type = REPLICA_S3;
		rc = parse_gcs(shown, url + 6, &u, err, errlen);
	} else if (strncasecmp(url, "sftp://", 7) == 0) {
		rc = replica_url_parse_sftp(shown, url + 7, &u, err, errlen);
	} else {
		seterr(err, errlen,
		       "replica URL \"%s\": unsupported scheme \"%.*s\" (want file, s3, gcs, abs or sftp)",
		       shown, (int)strcspn(url, ":"), url);
		rc = -EINVAL;
	}
	free(shown);
	if (rc != 0) {
		replica_url_free(&u);
		return rc;
	}
	*out = u;
	return 0;
}
