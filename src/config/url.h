/*
 * Replica URLs, as `replicate DB_PATH REPLICA_URL...`, `restore REPLICA_URL`
 * and a config file's `url = ...` take them:
 *
 *   file:///abs/dir             a directory (file://localhost/abs/dir too)
 *   /abs/dir, rel/dir, ~/dir    a plain path is a file replica
 *   s3://HOST/PREFIX?QUERY      S3 or an S3-compatible store
 *   abs://[ACCOUNT@]CONTAINER/PATH   Azure Blob Storage (url_abs.c; no query)
 *   sftp://USER[:PASSWORD]@HOST[:PORT]/PATH   a directory on an SSH server
 *                               (url_sftp.c; no query)
 *   gcs://BUCKET/PREFIX?QUERY   Google Cloud Storage through its S3-compatible
 *                               XML API: s3:// with endpoint
 *                               https://storage.googleapis.com and region "auto"
 *                               unless the query sets them; it takes HMAC keys
 *
 * The S3 HOST is read the way Litestream reads it (s3.ParseHost), extended
 * with the AWS and GCS forms:
 *
 *   BUCKET                          AWS, virtual-hosted style
 *   BUCKET.s3.amazonaws.com         AWS
 *   BUCKET.s3.REGION.amazonaws.com  AWS in REGION (also BUCKET.s3-REGION...)
 *   BUCKET.s3.REGION.backblazeb2.com       endpoint https://s3.REGION.backblazeb2.com
 *   BUCKET.REGION.digitaloceanspaces.com   endpoint https://REGION.digitaloceanspaces.com
 *   BUCKET.REGION.linodeobjects.com        endpoint https://REGION.linodeobjects.com
 *   BUCKET.s3.REGION.scw.cloud             endpoint https://s3.REGION.scw.cloud
 *   BUCKET.s3.filebase.com                 endpoint https://s3.filebase.com
 *   BUCKET.storage.googleapis.com          endpoint https://storage.googleapis.com
 *   BUCKET.localhost                       endpoint http://localhost
 *   HOST:PORT (no form above)              endpoint http://HOST:PORT
 *
 * When a form above is written without its BUCKET label (a bare
 * `storage.googleapis.com`, `localhost:9000`, `nyc3.digitaloceanspaces.com`,
 * any HOST:PORT) the bucket is the first segment of the path and the prefix
 * is the rest (`s3://localhost:9000/BUCKET/PREFIX`).
 * A port on a provider host is kept on its endpoint; the AWS forms derive
 * no endpoint, so a port there is an error. Hosts are matched without
 * regard to case. A region is set only where the host names one.
 *
 * Query parameters, each at most once, override what the host says:
 * `endpoint` (https:// is added when it has no scheme), `region`,
 * `force-path-style`, `skip-verify` (booleans: true/false, yes/no, 1/0,
 * on/off); Litestream 0.5's `forcePathStyle` and `skipVerify` are accepted
 * as aliases. `sse`, `sse-kms-key-id`, `sse-customer-key` and
 * `storage-class` set server-side encryption and the storage class (as the
 * config keys do; config.h). The value of `sse-customer-key` is a secret:
 * messages show the URL with it replaced by "REDACTED". Any other parameter is an error rather than ignored, so a
 * typo such as `?endpont=` cannot silently send backups to AWS. A
 * fragment (`#...`) is ignored, as Go's url.Parse leaves it out of the path.
 * User information (`user:pass@`) is rejected, but for sftp:// (and
 * abs://'s account): credentials belong in the config file or the
 * environment, and error messages never echo them; an sftp:// password is
 * shown as REDACTED.
 *
 * Paths are percent-decoded and cleaned like Go's path.Clean; an S3 prefix
 * carries no leading or trailing '/' and is "" at the bucket root.
 */
#ifndef LITESTREAM_URL_H
#define LITESTREAM_URL_H

#include <stdbool.h>
#include <stddef.h>

/* The kinds of replica, which a URL's scheme names (config.h uses it too). */
enum replica_type { REPLICA_FILE, REPLICA_S3, REPLICA_ABS, REPLICA_SFTP };

struct replica_url {
	enum replica_type type;
	char *path;                /* file: absolute, cleaned; s3: prefix ("" at the root) */
	/* S3 only (NULL/false for file). */
	char *bucket;
	char *region;              /* from the host or ?region=, else NULL */
	char *endpoint;            /* "http(s)://host[:port]" from the host or ?endpoint=, else NULL (AWS) */
	bool force_path_style;     /* ?force-path-style= if given, else endpoint != NULL */
	bool force_path_style_set; /* given in the query, so it wins over the endpoint default */
	bool skip_verify;          /* ?skip-verify=, default false */
	char *sse;                 /* ?sse=, ?sse-kms-key-id=, ?sse-customer-key=, */
	char *sse_kms_key_id;      /* ?storage-class=: checked as parse.h says, */
	char *sse_customer_key;    /* NULL when not given */
	char *storage_class;
	bool gcs;                  /* gcs://: an S3 replica on Google Cloud Storage */
	/* abs only: the account before '@' (bucket is the container, path the prefix). */
	char *account_name;
	/* sftp only: HOST[:PORT] as written, the decoded user and password (a secret). */
	char *host;
	char *user;
	char *password;
};

/*
 * Parses url into *out (which owns its strings afterwards; release them
 * with replica_url_free()). On failure returns -EINVAL (-ENOMEM, or the
 * error of getcwd() for a relative path), writes a one-line message to err
 * and leaves *out untouched.
 */
int replica_url_parse(const char *url, struct replica_url *out, char *err, size_t errlen);

/* Frees the strings of u and zeroes it; u itself is the caller's. */
void replica_url_free(struct replica_url *u);

/* True if s starts with a scheme and "://" (Litestream's isURL: \w+://). */
bool replica_url_is_url(const char *s);

/*
 * Makes path absolute and clean: a leading "~/" (or a lone "~") becomes
 * $HOME (the password database's when $HOME is unset or relative), a relative
 * path is taken from the current directory. Symbolic links are not
 * resolved. *out is malloc'd; returns 0, -EINVAL for an empty path,
 * -ENOENT when no home directory is known, -ENOMEM, or getcwd()'s error.
 */
int replica_url_abs_path(const char *path, char **out);

/*
 * An S3 key prefix from a `path` key: cleaned like a URL's path, without
 * leading or trailing '/', "" for the bucket root. *out is malloc'd;
 * 0 or -ENOMEM.
 */
int replica_url_s3_prefix(const char *path, char **out);

/*
 * An sftp path from a URL or the `path` key: cleaned, absolute if it
 * starts with '/', else relative to the login directory ("" for that
 * directory itself). *out is malloc'd; 0 or -ENOMEM.
 */
int replica_url_sftp_path(const char *path, char **out);

/* A bucket name is non-empty and made of letters, digits, '.', '-', '_'. */
bool replica_url_bucket_valid(const char *bucket);

/*
 * Normalises an S3 endpoint as the `endpoint` key and query parameter take
 * it: "https://" is prepended when there is no scheme, trailing '/' are
 * dropped; a scheme other than http or https, or an empty host, is an
 * error (-EINVAL with a message in err). *out is malloc'd on success.
 */
int replica_url_endpoint(const char *in, char **out, char *err, size_t errlen);

/* ---- url_abs.c ---- */

/*
 * rest is what follows "abs://" in url (shown: url as messages may show
 * it). As Litestream 0.3.13 reads it: the user name is the account, the
 * host the container, the path (cleaned, no leading or trailing '/') the
 * prefix. A password, a port, a query or an invalid container name is an
 * error. 0, -EINVAL with a message, or -ENOMEM.
 */
int replica_url_parse_abs(const char *shown, const char *rest, struct replica_url *u, char *err,
			  size_t errlen);

/* Azure's container names: 3 to 63 of a-z, 0-9 and '-', not starting with '-'. */
bool replica_url_container_valid(const char *s);

/* ---- url_sftp.c ---- */

/*
 * rest is what follows "sftp://" in url (shown: url as messages may show
 * it, the password redacted): [USER[:PASSWORD]@]HOST[:PORT][/PATH], the
 * user information percent-decoded, the path as replica_url_sftp_path()
 * makes it. A query or an invalid host or port is an error. 0, -EINVAL
 * with a message, or -ENOMEM.
 */
int replica_url_parse_sftp(const char *shown, const char *rest, struct replica_url *u, char *err,
			   size_t errlen);

/*
 * Splits an sftp host, HOST, HOST:PORT or [IPV6]:PORT, into *host
 * (malloc'd, without brackets; skipped when host is NULL) and *port (22
 * when not given). 0, -EINVAL with why, or -ENOMEM.
 */
int replica_url_sftp_host(const char *s, char **host, int *port, char *why, size_t n);

/* ---- url_sse.c ---- */

/*
 * The encryption query parameters: takes *val (non-empty) into u when key
 * is sse, sse-kms-key-id, sse-customer-key or storage-class and the value
 * passes parse.h's check. 0, or -EINVAL with why (never the value of a
 * customer key).
 */
int replica_url_sse_param(const char *key, char **val, struct replica_url *u, char *why,
			  size_t n);

/*
 * url as messages may show it: the password of its user information
 * (scheme://USER:PASSWORD@HOST) and the value of every query parameter
 * whose name starts with "sse-customer" (the key, and any misspelling of
 * it) replaced by REDACTED. malloc'd, NULL when out of memory.
 */
char *replica_url_redacted(const char *url);

#endif
