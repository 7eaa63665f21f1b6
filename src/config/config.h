/*
 * Configuration: the INI file (default /etc/litestream.conf) and the
 * command-line URL mode (`replicate DB_PATH REPLICA_URL...`) both produce a
 * struct config. Shape of the file (DESIGN.md):
 *
 *   [litestream]        socket, socket-mode, metrics-addr, log-level,
 *                       log-format, exec
 *   [db NAME]           path, monitor-interval, checkpoint-interval,
 *                       min-checkpoint-page-count, max-checkpoint-page-count
 *   [dir NAME]          path (a directory), pattern, recursive, watch, and
 *                       the per-database keys of [db]
 *   [replica NAME]      db = NAME, type or url, path, bucket, region,
 *                       endpoint, force-path-style, skip-verify, ca-file,
 *                       access-key-id, secret-access-key, sse,
 *                       sse-kms-key-id, sse-customer-key, storage-class,
 *                       age-recipients, age-identities, sync-interval,
 *                       retention, retention-check-interval,
 *                       snapshot-interval, validation-interval, part-size,
 *                       account-name, account-key, sas-token (abs),
 *                       host, user, password, key-path, host-key,
 *                       known-hosts-file (sftp)
 *
 * ${VAR} (and $VAR) in values are replaced from the environment. Every
 * error names the file, line, section and key.
 *
 * Ownership: a struct config owns every string and array in it; free it
 * with config_free().
 *
 * The file, in detail (config_options.c holds the one table of keys,
 * config_ini.c reads the lines, config_check.c makes the checks that need
 * the whole file):
 *
 * - Syntax is inih's: `key = value` (or `key: value`), `;` and `#` start a
 *   comment line, ` ;` starts a comment after a value, whitespace around
 *   keys and values is dropped, values are taken literally (no quotes). A
 *   line may not be longer than inih's buffer (198 bytes). Indentation is
 *   ignored: there are no continuation lines.
 * - Expansion, in values only, before the value is parsed: `${NAME}` and
 *   `$NAME` (NAME made of letters, digits and '_') become the variable's
 *   value, or "" when it is unset, as Litestream's os.ExpandEnv does. A '$'
 *   followed by anything else stays a '$' (so `$$` is just two dollars);
 *   an unterminated or empty `${` is an error. There is no escape: a value
 *   that must hold `$NAME` literally can come from a variable, since
 *   expansion is not recursive.
 * - Values: durations as duration_parse() reads them, never negative;
 *   counts are decimal integers > 0; booleans see parse_bool() and
 *   sizes parse_size() (parse.h); socket-mode is octal (0600 or 600);
 *   log-level is debug, info, warn or error; log-format text or json
 *   (both in any case). An empty optional string
 *   (region, endpoint, keys, ca-file, metrics-addr, exec), e.g. from an
 *   unset variable, counts as not set; an empty db, type, url, path,
 *   bucket or socket is an error.
 * - Errors, the first one found: while reading, every line is checked at
 *   once (syntax, unknown or duplicate sections and keys, bad values);
 *   then each section, in file order, for what needs the whole file
 *   (missing keys, `db` references, unique paths, url against type).
 *   Messages read "FILE:LINE: [SECTION] KEY: what", with the key left out
 *   when the error is the section's.
 * - Replicas: `type` or `url` is required; with both, they must agree. A
 *   url sets the type and the fields its form gives (url.h). As Litestream
 *   0.3.13 does, `path` (file and s3) and `bucket` (s3) may not be given
 *   beside a url, while an explicit `region`, `endpoint`,
 *   `force-path-style`, `skip-verify`, `sse`, `sse-kms-key-id`,
 *   `sse-customer-key` or `storage-class` overrides what the url says (0.3.13
 *   lets a url's path style win over an explicit `force-path-style =
 *   false`; here the explicit key always wins). force-path-style defaults
 *   to true when an endpoint is set, from either place. An s3-only key on
 *   a file replica is an error rather than ignored. A `path` that looks
 *   like a URL is an error (use `url`).
 * - Encryption (parse.h has the values): `sse-kms-key-id` needs `sse =
 *   aws:kms`; `sse-customer-key` (SSE-C) cannot go with `sse`. The
 *   customer key is a secret: no message echoes it.
 * - Paths: db `path`, a file replica's `path` and `ca-file` are made
 *   absolute (replica_url_abs_path(): "~/" is $HOME, relative paths are
 *   from the current directory); symbolic links are not resolved. No two
 *   [db] sections may have the same path. A [db] needs no replicas, and a
 *   file with no [db] section loads: commands decide what they need.
 * - [dir NAME]: every file in the directory `path` whose name matches the
 *   glob `pattern` (fnmatch(3), default "*.db"; with `recursive`, in
 *   subdirectories too, hidden ones skipped) is a database with the
 *   section's per-database keys and replicas (config_dir_db()). A
 *   replica's `db` names a [db] or a [dir]; one name cannot be both. A
 *   database of a dir is named "NAME/RELATIVE-PATH" and each of its
 *   replicas stores it under the replica's path + "/" + RELATIVE-PATH,
 *   an ordinary replica of one database. A [db] whose path a [dir] also
 *   matches is that [db]'s alone. `watch` (default true) makes
 *   `replicate` follow the directory: databases created later start,
 *   removed ones stop.
 * - Section names are unique per kind ([db x] and [replica x] may
 *   coexist); replica names are unique across the whole file.
 */
#ifndef LITESTREAM_CONFIG_H
#define LITESTREAM_CONFIG_H

#include "util/log.h"
#include "config/url.h" /* enum replica_type */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/litestream.conf"
#define CONFIG_DEFAULT_SOCKET "/var/run/litestream.sock"

struct replica_config {
	/* Every char * member is also listed in config.c's replica_strings. */
	char *name;               /* section name; in URL mode the type ("file", "s3") */
	enum replica_type type;
	char *url;                /* as written (after ${VAR} expansion), or NULL */
	char *path;               /* file: absolute directory; s3: key prefix, no leading '/', "" at the root */
	/* S3 only (NULL/false when unset). */
	char *bucket;
	char *region;
	char *endpoint;           /* "http(s)://host[:port]" or NULL for AWS */
	bool force_path_style;    /* default: true when endpoint is set */
	bool skip_verify;
	char *ca_file;
	char *access_key_id;
	char *secret_access_key;
	char *sse;                /* "AES256", "aws:kms" or NULL */
	char *sse_kms_key_id;     /* needs sse = aws:kms */
	char *sse_customer_key;   /* SSE-C: base64 of 32 bytes (a secret), not with sse */
	char *storage_class;
	bool gcs;                 /* type = gcs or gcs://: Google Cloud Storage, HMAC keys only */
	/* Client-side encryption (age_keys.h has the forms), NULL when unset. */
	char *age_recipients;     /* "age1..." keys, white space or commas between */
	char *age_identities;     /* identity files or inline keys (a secret) */
	int64_t part_size;        /* bytes, default 8 MiB, at least 5 MiB */
	/* abs only (bucket is the container, endpoint the service URL). */
	char *account_name;
	char *account_key;        /* base64 (a secret); else LITESTREAM_AZURE_ACCOUNT_KEY */
	char *sas_token;          /* "sv=...&sig=..." without '?' (a secret), instead of a key */
	/* sftp only (path is the remote directory, absolute or from the login directory). */
	char *host;               /* HOST, HOST:PORT or [IPV6]:PORT (port 22 by default) */
	char *user;
	char *password;           /* a secret; else key-path, else ssh-agent and ~/.ssh keys */
	char *key_path;           /* private key file, absolute */
	char *host_key;           /* one known_hosts line (or "TYPE BASE64"), pinned */
	char *known_hosts_file;   /* absolute; NULL: ~/.ssh/known_hosts */
	/* Intervals in milliseconds. */
	int64_t sync_interval_ms;          /* file: 0, s3: 1000 */
	int64_t retention_ms;              /* 24h */
	int64_t retention_check_interval_ms; /* 1h */
	int64_t snapshot_interval_ms;      /* 0 = only at generation start */
	int64_t validation_interval_ms;    /* 0 = off */
	int line;                 /* line of the section header, 0 in URL mode */
};

struct db_config {
	char *name;               /* section name; in URL mode the file's name (config_name_by_file()) */
	char *path;               /* absolute */
	int64_t monitor_interval_ms;       /* 1s */
	int64_t checkpoint_interval_ms;    /* 1m */
	long min_checkpoint_page_count;    /* 1000 */
	long max_checkpoint_page_count;    /* 10000 */
	struct replica_config *replicas;
	size_t n_replicas;
	int line;
	/* Set for a database of a [dir]: the directory's watcher asks for its
	 * syncs, so db_start() watches no directory of its own. */
	bool dir_events;
};

/* A [dir NAME] section: db holds its per-database keys and replicas (db.path is NULL). */
struct dir_config {
	char *name;
	char *path;               /* absolute, no trailing '/' */
	char *pattern;            /* fnmatch(3) glob on the file name, default "*.db" */
	bool recursive;           /* default false */
	bool watch;               /* default true */
	struct db_config db;
	int line;
};

struct config {
	char *path;               /* file read, or NULL in URL mode */
	char *socket;             /* default CONFIG_DEFAULT_SOCKET */
	int socket_mode;          /* default 0600 */
	char *metrics_addr;       /* "host:port" or NULL */
	enum log_level log_level; /* default info */
	enum log_format log_format; /* default text */
	char *exec;               /* command to run as a child, or NULL */
	int64_t shutdown_sync_timeout_ms; /* the last shipment at exit; default 30s, 0 = no limit */
	struct db_config *dbs;
	size_t n_dbs;
	struct dir_config *dirs;
	size_t n_dirs;
};

/*
 * Reads the INI file at path. On success fills *out and returns 0; on
 * failure returns a negative errno-style code, writes a one-line message to
 * err (e.g. "/etc/litestream.conf:12: [replica s3] sync-interval: invalid
 * duration \"5x\"") and leaves *out zeroed.
 */
int config_load(const char *path, struct config *out, char *err, size_t errlen);

/*
 * URL mode: one database and its replicas given on the command line
 * (`file:///abs/dir`, a plain path, or `s3://BUCKET/PREFIX?endpoint=...`).
 * Same contract as config_load().
 */
int config_from_args(const char *db_path, char *const *urls, size_t n_urls,
		     struct config *out, char *err, size_t errlen);

/*
 * A replica configuration from one URL alone (as `restore REPLICA_URL`
 * takes), with defaults for everything else. Same contract.
 */
int config_replica_from_url(const char *url, struct replica_config *out, char *err, size_t errlen);

/*
 * URL mode names each replica by its type; when a type repeats, the second
 * is "file2", the third "file3", and so on ("s3-2" for s3: a '-' goes
 * between a name ending in a digit and the number). Sync intervals follow
 * the per-type defaults (file 0, s3 1s) rather than Litestream's 1s for
 * every URL-mode replica, so both modes agree.
 */

/*
 * Names each database of c by its file's name, as URL mode does (the
 * name `litestream status` shows and the control socket takes): the last
 * component of its path, and when an earlier database already has that
 * name, the name followed by "-2", "-3" and so on (the first free one).
 * Replaces the names c had. 0 or -ENOMEM (names given so far stay).
 */
int config_name_by_file(struct config *c);

/*
 * Finds the database whose absolute path equals path (after making path
 * absolute): a [db], else a file a [dir] takes (config_dir_match(); the
 * file need not exist, as for a restore), whose configuration is then
 * built and appended to c->dbs (c owns it; earlier pointers into c->dbs
 * may move). NULL when none (or without memory).
 */
struct db_config *config_find_db(struct config *c, const char *path);

/*
 * Whether the absolute path abs is a database of d: under d->path, its
 * name matching d->pattern, in d->path itself unless d->recursive, no
 * component hidden. On true, *rel points into abs at the relative path.
 */
bool config_dir_match(const struct dir_config *d, const char *abs, const char **rel);

/*
 * The configuration of d's database at rel (a path relative to d->path):
 * name "NAME/REL", path d->path + "/" + rel, d's per-database keys, and a
 * copy of each replica with rel appended to its path. 0 with *out filled
 * (free it with config_db_free()), or -ENOMEM with *out zeroed.
 */
int config_dir_db(const struct dir_config *d, const char *rel, struct db_config *out);

/* Deep copy of a database's configuration (for a database that outlives its config). */
int config_db_copy(const struct db_config *from, struct db_config *out);

/* Whether two database configurations would replicate alike (names aside). */
bool config_db_equal(const struct db_config *a, const struct db_config *b);

/* Frees what db owns and zeroes it. */
void config_db_free(struct db_config *db);

/* The same for a [dir]: a deep copy (0 or -ENOMEM), the comparison, the free. */
int config_dir_copy(const struct dir_config *from, struct dir_config *out);
bool config_dir_equal(const struct dir_config *a, const struct dir_config *b);
void config_dir_free(struct dir_config *d);

/* Frees everything c owns and zeroes it (c itself is the caller's). */
void config_free(struct config *c);
/* Frees the strings r owns and zeroes it. */
void replica_config_free(struct replica_config *r);

/* A deep copy of from into to: 0, or -ENOMEM with to zeroed. */
int replica_config_copy(const struct replica_config *from, struct replica_config *to);

/* Whether a and b hold the same settings (line numbers aside). */
bool replica_config_equal(const struct replica_config *a, const struct replica_config *b);

/* The keys of one section kind: "litestream", "db", "dir" or "replica". */
struct config_key {
	const char *section;
	const char *key;
};

/*
 * The i-th key the parser knows, NULL past the last; for help text and for
 * the test that conf/litestream.conf mentions each one.
 */
const struct config_key *config_key_at(size_t i);

#define CONFIG_PART_SIZE_DEFAULT (8 * 1024 * 1024)
#define CONFIG_PART_SIZE_MIN (5 * 1024 * 1024)          /* S3's smallest part */
#define CONFIG_PART_SIZE_MAX (5LL * 1024 * 1024 * 1024) /* and largest */
#define CONFIG_ABS_BLOCK_MIN (1024 * 1024)               /* abs: what we allow */
#define CONFIG_ABS_BLOCK_MAX (4000LL * 1024 * 1024)      /* Azure's largest block */

#endif
