/*
 * The keys of the configuration file, as Redis keeps its static_configs[]:
 * one table, options[], names every key, its section kind, how its value
 * is parsed and where it is stored. Parsing, the duplicate check, the help
 * (config_key_at()) and the test that the example config names every key
 * all go by it. config.h has the value forms; config_internal.h the
 * parser's state.
 *
 * This file also turns what config_ini.c reads into sections: a header
 * becomes a struct section (and a struct db_config or a replica draft), a
 * key is looked up, checked for a second setting, expanded and parsed into
 * its field. What needs the whole file waits for config_check.c.
 */
#include "config/config_internal.h"

#include "util/duration.h"
#include "config/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const section_kinds[] = {"litestream", "db", "replica", "dir"};
#define N_KINDS (sizeof(section_kinds) / sizeof(section_kinds[0]))

enum opt_type {
	OPT_STRING,    /* char *; "" leaves it unset */
	OPT_REQUIRED,  /* char *; "" is an error */
	OPT_ADDR,      /* char *, HOST:PORT; "" leaves it unset */
	OPT_DURATION,  /* int64_t milliseconds, >= 0 */
	OPT_COUNT,     /* long, > 0 */
	OPT_BOOL,      /* bool */
	OPT_SIZE,      /* int64_t bytes */
	OPT_MODE,      /* int, octal permission bits */
	OPT_LOG_LEVEL, /* enum log_level */
	OPT_LOG_FORMAT, /* enum log_format */
};

/* The remote types a replica key is for; none: every type takes it. */
#define OPT_S3 1u
#define OPT_ABS 2u
#define OPT_SFTP 4u
#define OPT_REMOTE (OPT_S3 | OPT_ABS)

struct option {
	struct config_key k;
	enum section_kind section;
	enum opt_type type;
	size_t offset; /* into struct config, struct db_config, struct dir_config or struct replica_draft */
	unsigned flags;
};

#define L_OPT(key, type, field) \
	{{"litestream", key}, SEC_LITESTREAM, type, offsetof(struct config, field), 0}
#define D_OPT(key, type, field) {{"db", key}, SEC_DB, type, offsetof(struct db_config, field), 0}
#define X_OPT(key, type, field) {{"dir", key}, SEC_DIR, type, offsetof(struct dir_config, field), 0}
#define R_OPT(key, type, field, flags) \
	{{"replica", key}, SEC_REPLICA, type, offsetof(struct replica_draft, field), flags}

static const struct option options[] = {
	L_OPT("socket", OPT_REQUIRED, socket),
	L_OPT("socket-mode", OPT_MODE, socket_mode),
	L_OPT("metrics-addr", OPT_ADDR, metrics_addr),
	L_OPT("log-level", OPT_LOG_LEVEL, log_level),
	L_OPT("log-format", OPT_LOG_FORMAT, log_format),
	L_OPT("exec", OPT_STRING, exec),
	L_OPT("shutdown-sync-timeout", OPT_DURATION, shutdown_sync_timeout_ms),
	D_OPT("path", OPT_REQUIRED, path),
	D_OPT("monitor-interval", OPT_DURATION, monitor_interval_ms),
	D_OPT("checkpoint-interval", OPT_DURATION, checkpoint_interval_ms),
	D_OPT("min-checkpoint-page-count", OPT_COUNT, min_checkpoint_page_count),
	D_OPT("max-checkpoint-page-count", OPT_COUNT, max_checkpoint_page_count),
	X_OPT("path", OPT_REQUIRED, path),
	X_OPT("pattern", OPT_REQUIRED, pattern),
	X_OPT("recursive", OPT_BOOL, recursive),
	X_OPT("watch", OPT_BOOL, watch),
	X_OPT("monitor-interval", OPT_DURATION, db.monitor_interval_ms),
	X_OPT("checkpoint-interval", OPT_DURATION, db.checkpoint_interval_ms),
	X_OPT("min-checkpoint-page-count", OPT_COUNT, db.min_checkpoint_page_count),
	X_OPT("max-checkpoint-page-count", OPT_COUNT, db.max_checkpoint_page_count),
	R_OPT("db", OPT_REQUIRED, db, 0),
	R_OPT("type", OPT_REQUIRED, type, 0),
	R_OPT("url", OPT_REQUIRED, rc.url, 0),
	R_OPT("path", OPT_REQUIRED, rc.path, 0),
	R_OPT("bucket", OPT_REQUIRED, rc.bucket, OPT_REMOTE),
	R_OPT("region", OPT_STRING, rc.region, OPT_S3),
	R_OPT("endpoint", OPT_STRING, rc.endpoint, OPT_REMOTE),
	R_OPT("force-path-style", OPT_BOOL, rc.force_path_style, OPT_S3),
	R_OPT("skip-verify", OPT_BOOL, rc.skip_verify, OPT_REMOTE),
	R_OPT("ca-file", OPT_STRING, rc.ca_file, OPT_REMOTE),
	R_OPT("access-key-id", OPT_STRING, rc.access_key_id, OPT_S3),
	R_OPT("secret-access-key", OPT_STRING, rc.secret_access_key, OPT_S3),
	R_OPT("sync-interval", OPT_DURATION, rc.sync_interval_ms, 0),
	R_OPT("retention", OPT_DURATION, rc.retention_ms, 0),
	R_OPT("retention-check-interval", OPT_DURATION, rc.retention_check_interval_ms, 0),
	R_OPT("snapshot-interval", OPT_DURATION, rc.snapshot_interval_ms, 0),
	R_OPT("validation-interval", OPT_DURATION, rc.validation_interval_ms, 0),
	R_OPT("part-size", OPT_SIZE, rc.part_size, OPT_REMOTE),
	R_OPT("sse", OPT_STRING, rc.sse, OPT_S3),
	R_OPT("sse-kms-key-id", OPT_STRING, rc.sse_kms_key_id, OPT_S3),
	R_OPT("sse-customer-key", OPT_STRING, rc.sse_customer_key, OPT_S3),
	R_OPT("storage-class", OPT_STRING, rc.storage_class, OPT_S3),
	R_OPT("age-recipients", OPT_STRING, rc.age_recipients, 0),
	R_OPT("age-identities", OPT_STRING, rc.age_identities, 0),
	R_OPT("account-name", OPT_STRING, rc.account_name, OPT_ABS),
	R_OPT("account-key", OPT_STRING, rc.account_key, OPT_ABS),
	R_OPT("sas-token", OPT_STRING, rc.sas_token, OPT_ABS),
	R_OPT("host", OPT_STRING, rc.host, OPT_SFTP),
	R_OPT("user", OPT_STRING, rc.user, OPT_SFTP),
	R_OPT("password", OPT_STRING, rc.password, OPT_SFTP),
	R_OPT("key-path", OPT_STRING, rc.key_path, OPT_SFTP),
	R_OPT("host-key", OPT_STRING, rc.host_key, OPT_SFTP),
	R_OPT("known-hosts-file", OPT_STRING, rc.known_hosts_file, OPT_SFTP),
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

_Static_assert(N_OPTIONS == CONFIG_N_OPTIONS, "CONFIG_N_OPTIONS must count options[]");

const struct config_key *config_key_at(size_t i)
{
	return i < N_OPTIONS ? &options[i].k : NULL;
}

static const struct option *find_option(enum section_kind kind, const char *key)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (options[i].section == kind && strcmp(options[i].k.key, key) == 0)
			return &options[i];
	return NULL;
}

int config_key_line(const struct section *s, const char *key)
{
	const struct option *o = find_option(s->kind, key);

	return o != NULL ? s->key_lines[o - options] : 0;
}

const char *config_foreign_key(const struct section *s, enum replica_type type, int *line,
			       const char **types)
{
	unsigned want = type == REPLICA_S3    ? OPT_S3
			: type == REPLICA_ABS   ? OPT_ABS
			: type == REPLICA_SFTP ? OPT_SFTP
						: 0;

	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (options[i].section == SEC_REPLICA && options[i].flags != 0 &&
		    (options[i].flags & want) == 0 && s->key_lines[i] != 0) {
			*line = s->key_lines[i];
			*types = options[i].flags == OPT_REMOTE ? "s3 and abs"
				 : options[i].flags == OPT_S3   ? "s3"
				 : options[i].flags == OPT_SFTP ? "sftp"
								: "abs";
			return options[i].k.key;
		}
	}
	return NULL;
}

/* ---- values ------------------------------------------------------------------ */

/* HOST:PORT, as metrics-addr takes it; the host may be empty (all interfaces). */
static bool addr_valid(const char *s)
{
	const char *c = strrchr(s, ':');
	long port = 0;

	if (c == NULL || c[1] == '\0')
		return false;
	for (c++; *c != '\0'; c++) {
		if (!isdigit((unsigned char)*c) || port > 65535)
			return false;
		port = port * 10 + (*c - '0');
	}
	return port > 0 && port <= 65535;
}

/* Octal permission bits, "0600" or "600"; -1 when v is not that. */
static long parse_mode(const char *v)
{
	size_t n = strlen(v);
	long mode = 0;

	/* At most four digits, checked first: more would overflow mode. */
	for (size_t i = 0; i < n && n <= 4 && mode >= 0; i++)
		mode = v[i] >= '0' && v[i] <= '7' ? mode * 8 + (v[i] - '0') : -1;
	if (n == 0 || n > 4 || mode < 0 || mode > 0777)
		return -1;
	return mode;
}

static void *field_of(struct parser *p, const struct section *s, const struct option *o)
{
	char *base;

	if (s->kind == SEC_LITESTREAM)
		base = (char *)&p->cfg;
	else if (s->kind == SEC_DB)
		base = (char *)&p->cfg.dbs[s->index];
	else if (s->kind == SEC_DIR)
		base = (char *)&p->cfg.dirs[s->index];
	else
		base = (char *)&p->drafts[s->index];
	return base + o->offset;
}

/* The string kinds of set_value(). */
static int set_string(struct parser *p, int line, const struct section *s, const struct option *o,
		      const char *v, char **field)
{
	char *d;

	if (*v == '\0') {
		if (o->type == OPT_REQUIRED)
			return fail(p, line, s->title, o->k.key, "empty value");
		return 0;
	}
	if (o->type == OPT_ADDR && !addr_valid(v))
		return fail(p, line, s->title, o->k.key, "invalid address \"%s\" (want HOST:PORT)", v);
	d = strdup(v);
	if (d == NULL)
		return oom(p);
	free(*field);
	*field = d;
	return 0;
}

/* Parses v, set on line, as o says and stores it in section s. */
static int set_value(struct parser *p, int line, const struct section *s, const struct option *o,
		     const char *v)
{
	const char *t = s->title, *k = o->k.key;
	void *field = field_of(p, s, o);

	switch (o->type) {
	case OPT_STRING:
	case OPT_REQUIRED:
	case OPT_ADDR:
		return set_string(p, line, s, o, v, field);
	case OPT_DURATION: {
		int64_t ms;

		if (duration_parse(v, &ms) != 0)
			return fail(p, line, t, k, "invalid duration \"%s\"", v);
		if (ms < 0)
			return fail(p, line, t, k, "invalid duration \"%s\": negative", v);
		*(int64_t *)field = ms;
		return 0;
	}
	case OPT_COUNT: {
		char *end;
		long n;

		errno = 0;
		n = strtol(v, &end, 10);
		if ((!isdigit((unsigned char)*v) && *v != '-') || *end != '\0' || errno != 0)
			return fail(p, line, t, k, "invalid integer \"%s\"", v);
		if (n <= 0)
			return fail(p, line, t, k, "%ld: must be greater than 0", n);
		*(long *)field = n;
		return 0;
	}
	case OPT_BOOL:
		if (parse_bool(v, (bool *)field) != 0)
			return fail(p, line, t, k, "invalid boolean \"%s\" (want true or false)", v);
		return 0;
	case OPT_SIZE:
		if (parse_size(v, (int64_t *)field) != 0)
			return fail(p, line, t, k, "invalid size \"%s\" (e.g. 8388608, 8MB, 8MiB)", v);
		return 0;
	case OPT_MODE: {
		long mode = parse_mode(v);

		if (mode < 0)
			return fail(p, line, t, k, "invalid mode \"%s\" (want octal, e.g. 0600)", v);
		*(int *)field = (int)mode;
		return 0;
	}
	case OPT_LOG_LEVEL:
		if (log_level_parse(v, (enum log_level *)field) != 0)
			return fail(p, line, t, k,
				    "invalid log level \"%s\" (want debug, info, warn or error)", v);
		return 0;
	case OPT_LOG_FORMAT:
		if (log_format_parse(v, (enum log_format *)field) != 0)
			return fail(p, line, t, k, "invalid log format \"%s\" (want text or json)", v);
		return 0;
	}
	return 0;
}

/* ---- defaults ---------------------------------------------------------------- */

void config_db_defaults(struct db_config *db)
{
	memset(db, 0, sizeof(*db));
	db->monitor_interval_ms = 1000;
	db->checkpoint_interval_ms = 60 * 1000;
	db->min_checkpoint_page_count = 1000;
	db->max_checkpoint_page_count = 10000;
}

void config_dir_defaults(struct dir_config *d)
{
	memset(d, 0, sizeof(*d));
	config_db_defaults(&d->db);
	d->watch = true;
	d->db.dir_events = true;
}

void config_replica_defaults(struct replica_config *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->part_size = CONFIG_PART_SIZE_DEFAULT;
	rc->retention_ms = 24 * 3600 * 1000LL;
	rc->retention_check_interval_ms = 3600 * 1000LL;
}

int config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->socket = strdup(CONFIG_DEFAULT_SOCKET);
	c->socket_mode = 0600;
	c->log_level = LOG_LEVEL_INFO;
	c->shutdown_sync_timeout_ms = 30 * 1000;
	c->log_format = LOG_FORMAT_TEXT;
	return c->socket == NULL ? -ENOMEM : 0;
}

/* ---- sections and keys, as the file is read ---------------------------------- */

/* The db or replica draft a new section s of kind stands for, with its defaults. */
static int add_entry(struct parser *p, struct section *s)
{
	void *grown;

	if (s->kind == SEC_DB) {
		struct db_config *db;

		grown = realloc(p->cfg.dbs, (p->cfg.n_dbs + 1) * sizeof(*p->cfg.dbs));
		if (grown == NULL)
			return oom(p);
		p->cfg.dbs = grown;
		db = &p->cfg.dbs[p->cfg.n_dbs];
		config_db_defaults(db);
		db->line = s->line;
		db->name = strdup(s->name);
		s->index = p->cfg.n_dbs++;
		if (db->name == NULL)
			return oom(p);
	} else if (s->kind == SEC_DIR) {
		struct dir_config *d;

		grown = realloc(p->cfg.dirs, (p->cfg.n_dirs + 1) * sizeof(*p->cfg.dirs));
		if (grown == NULL)
			return oom(p);
		p->cfg.dirs = grown;
		d = &p->cfg.dirs[p->cfg.n_dirs];
		config_dir_defaults(d);
		d->line = d->db.line = s->line;
		d->name = strdup(s->name);
		d->pattern = strdup("*.db");
		s->index = p->cfg.n_dirs++;
		if (d->name == NULL || d->pattern == NULL)
			return oom(p);
	} else if (s->kind == SEC_REPLICA) {
		struct replica_draft *d;

		grown = realloc(p->drafts, (p->n_drafts + 1) * sizeof(*p->drafts));
		if (grown == NULL)
			return oom(p);
		p->drafts = grown;
		d = &p->drafts[p->n_drafts];
		memset(d, 0, sizeof(*d));
		config_replica_defaults(&d->rc);
		d->rc.line = s->line;
		d->rc.name = strdup(s->name);
		s->index = p->n_drafts++;
		if (d->rc.name == NULL)
			return oom(p);
	}
	return 0;
}

/* A header config_ini.c has read: its kind checked, the section recorded. */
static int on_section(void *arg, const struct config_ini_section *h)
{
	struct parser *p = arg;
	struct section *s;
	enum section_kind kind;
	size_t i;
	void *grown;

	for (i = 0; i < N_KINDS; i++)
		if (strlen(section_kinds[i]) == h->kind_len &&
		    strncmp(section_kinds[i], h->title, h->kind_len) == 0)
			break;
	if (i == N_KINDS)
		return fail(p, h->line, NULL, NULL,
			    "[%.*s]: unknown section (want [litestream], [db NAME], [dir NAME] or "
			    "[replica NAME])",
			    (int)h->text_len, h->text);
	kind = (enum section_kind)i;
	if (kind != SEC_LITESTREAM && h->name == NULL)
		return fail(p, h->line, section_kinds[kind], NULL, "needs a name: [%s NAME]",
			    section_kinds[kind]);
	if (kind == SEC_LITESTREAM && h->name != NULL)
		return fail(p, h->line, NULL, NULL, "[%.*s]: [litestream] takes no name",
			    (int)h->text_len, h->text);

	grown = realloc(p->sections, (p->n_sections + 1) * sizeof(*p->sections));
	if (grown == NULL)
		return oom(p);
	p->sections = grown;
	s = &p->sections[p->n_sections];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->line = h->line;
	s->title = strdup(h->title);
	if (s->title == NULL)
		return oom(p);
	p->n_sections++;
	if (h->name != NULL)
		s->name = s->title + (h->name - h->title);
	if (add_entry(p, s) != 0)
		return p->e.rc;
	p->cur = p->n_sections - 1;
	return 0;
}

static int on_key(void *arg, int line, const char *key, const char *raw)
{
	struct parser *p = arg;
	struct section *s = &p->sections[p->cur];
	const struct option *o = find_option(s->kind, key);
	char *v;

	if (o == NULL)
		return fail(p, line, s->title, key, "unknown key");
	if (s->key_lines[o - options] != 0)
		return fail(p, line, s->title, key, "set twice (first on line %d)",
			    s->key_lines[o - options]);
	s->key_lines[o - options] = line;
	if (config_ini_expand(&p->e, line, s->title, key, raw, &v) != 0)
		return p->e.rc;
	set_value(p, line, s, o, v);
	free(v);
	return p->e.rc;
}

int config_options_read(struct parser *p)
{
	const struct config_ini_handler h = {on_section, on_key, p};

	return config_ini_read(&h, &p->e);
}
