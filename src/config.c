/*
 * Configuration loading; config.h states the file's rules, url.h the
 * replica URL forms.
 *
 * One table, options[], names every key: its section kind, how its value
 * is parsed and where it is stored. Per section the parser keeps the line
 * each key was set on (0: not set). That one array catches duplicate keys,
 * tells an explicit key from a default (an explicit `region` beats the
 * url's), and gives the checks made after the whole file is read a line to
 * point at.
 *
 * inih reads the file through on_read_line(), which hands it one physical
 * line per call, so the line number is known when inih calls on_key().
 * The reader does three more things inih cannot be asked to: it records
 * section headers itself (inih reports none, and a [db] with no keys under
 * it would go unseen; it also cuts names at 50 bytes), it drops indentation
 * (inih would read an indented `key = value` as a continuation of the
 * value before it), and it keeps a value too long for inih's buffer (200
 * bytes in Debian's build; a long exec command or endpoint needs more)
 * aside, handing inih only "key =" and on_key() the whole value. A section
 * header or key too long for the buffer is rejected. A syntax error is found there
 * too, so the first error is reported with its section, and parsing stops:
 * the reader returns NULL, which inih takes as the end of the file.
 *
 * Replicas may name a [db] that comes later in the file, so they are
 * collected as drafts and moved into their databases once all sections
 * have passed their checks.
 */
#include "config.h"

#include "duration.h"
#include "parse.h"
#include "strbuf.h"
#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum section_kind { SEC_LITESTREAM, SEC_DB, SEC_REPLICA };

static const char *const section_kinds[] = {"litestream", "db", "replica"};

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
};

#define OPT_S3_ONLY 1u

/* A replica section while the file is read; rc moves into its db at the end. */
struct replica_draft {
	struct replica_config rc;
	char *db;   /* the `db` key */
	char *type; /* the `type` key, as written */
};

struct option {
	struct config_key k;
	enum section_kind section;
	enum opt_type type;
	size_t offset; /* into struct config, struct db_config or struct replica_draft */
	unsigned flags;
};

#define L_OPT(key, type, field) \
	{{"litestream", key}, SEC_LITESTREAM, type, offsetof(struct config, field), 0}
#define D_OPT(key, type, field) {{"db", key}, SEC_DB, type, offsetof(struct db_config, field), 0}
#define R_OPT(key, type, field, flags) \
	{{"replica", key}, SEC_REPLICA, type, offsetof(struct replica_draft, field), flags}

static const struct option options[] = {
	L_OPT("socket", OPT_REQUIRED, socket),
	L_OPT("socket-mode", OPT_MODE, socket_mode),
	L_OPT("metrics-addr", OPT_ADDR, metrics_addr),
	L_OPT("log-level", OPT_LOG_LEVEL, log_level),
	L_OPT("exec", OPT_STRING, exec),
	D_OPT("path", OPT_REQUIRED, path),
	D_OPT("monitor-interval", OPT_DURATION, monitor_interval_ms),
	D_OPT("checkpoint-interval", OPT_DURATION, checkpoint_interval_ms),
	D_OPT("min-checkpoint-page-count", OPT_COUNT, min_checkpoint_page_count),
	D_OPT("max-checkpoint-page-count", OPT_COUNT, max_checkpoint_page_count),
	R_OPT("db", OPT_REQUIRED, db, 0),
	R_OPT("type", OPT_REQUIRED, type, 0),
	R_OPT("url", OPT_REQUIRED, rc.url, 0),
	R_OPT("path", OPT_REQUIRED, rc.path, 0),
	R_OPT("bucket", OPT_REQUIRED, rc.bucket, OPT_S3_ONLY),
	R_OPT("region", OPT_STRING, rc.region, OPT_S3_ONLY),
	R_OPT("endpoint", OPT_STRING, rc.endpoint, OPT_S3_ONLY),
	R_OPT("force-path-style", OPT_BOOL, rc.force_path_style, OPT_S3_ONLY),
	R_OPT("skip-verify", OPT_BOOL, rc.skip_verify, OPT_S3_ONLY),
	R_OPT("ca-file", OPT_STRING, rc.ca_file, OPT_S3_ONLY),
	R_OPT("access-key-id", OPT_STRING, rc.access_key_id, OPT_S3_ONLY),
	R_OPT("secret-access-key", OPT_STRING, rc.secret_access_key, OPT_S3_ONLY),
	R_OPT("sync-interval", OPT_DURATION, rc.sync_interval_ms, 0),
	R_OPT("retention", OPT_DURATION, rc.retention_ms, 0),
	R_OPT("retention-check-interval", OPT_DURATION, rc.retention_check_interval_ms, 0),
	R_OPT("snapshot-interval", OPT_DURATION, rc.snapshot_interval_ms, 0),
	R_OPT("validation-interval", OPT_DURATION, rc.validation_interval_ms, 0),
	R_OPT("part-size", OPT_SIZE, rc.part_size, OPT_S3_ONLY),
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

struct section {
	enum section_kind kind;
	char *title;              /* "db app", as messages show it between brackets */
	char *name;               /* NAME, NULL for [litestream] */
	int line;
	size_t index;             /* into cfg.dbs or drafts */
	int key_lines[N_OPTIONS]; /* line each key was set on, 0 if not */
};

struct parser {
	const char *path; /* the file, NULL in URL mode (messages then carry no location) */
	FILE *fp;
	char *buf;        /* getline()'s */
	size_t cap;
	int lineno;
	struct section *sections;
	size_t n_sections;
	size_t cur;       /* current section, SIZE_MAX before the first */
	struct config cfg;
	struct replica_draft *drafts;
	size_t n_drafts;
	int rc;           /* first error, 0 while all is well */
	char *long_value; /* the value of the line just read, when too long for inih */
	char *err;
	size_t errlen;
};

static int fail_rc(struct parser *p, int rc, int line, const char *title, const char *key,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * Records the first error as "FILE:LINE: [TITLE] KEY: message", leaving out
 * what is NULL; later errors are dropped. Returns the error code.
 */
static int fail_rc(struct parser *p, int rc, int line, const char *title, const char *key,
		   const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (p->rc != 0)
		return p->rc;
	p->rc = rc;
	if (rc == -ENOMEM)
		snprintf(msg, sizeof(msg), "out of memory");
	else {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	if (p->err == NULL || p->errlen == 0)
		return rc;
	if (p->path == NULL)
		snprintf(p->err, p->errlen, "%s", msg);
	else if (title != NULL && key != NULL)
		snprintf(p->err, p->errlen, "%s:%d: [%s] %s: %s", p->path, line, title, key, msg);
	else if (title != NULL)
		snprintf(p->err, p->errlen, "%s:%d: [%s]: %s", p->path, line, title, msg);
	else if (key != NULL)
		snprintf(p->err, p->errlen, "%s:%d: %s: %s", p->path, line, key, msg);
	else
		snprintf(p->err, p->errlen, "%s:%d: %s", p->path, line, msg);
	return rc;
}

#define fail(p, ...) fail_rc(p, -EINVAL, __VA_ARGS__)
#define oom(p) fail_rc(p, -ENOMEM, 0, NULL, NULL, "out of memory")

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

/* The line key was set on in s, 0 if it was not. */
static int key_line(const struct section *s, const char *key)
{
	const struct option *o = find_option(s->kind, key);

	return o != NULL ? s->key_lines[o - options] : 0;
}

static const char *type_name(enum replica_type t)
{
	return t == REPLICA_S3 ? "s3" : "file";
}

static bool is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Appends the value of the variable named s[0..n), nothing if it is unset. */
static void add_var(struct strbuf *b, const char *s, size_t n)
{
	char name[256];
	const char *v;

	if (n >= sizeof(name))
		return; /* no such variable could be set */
	memcpy(name, s, n);
	name[n] = '\0';
	v = getenv(name);
	if (v != NULL)
		strbuf_puts(b, v);
}

/*
 * Expands ${NAME} and $NAME in v (config.h has the rules) into a malloc'd
 * string. -EINVAL for a "${" without "}" or with an empty name; -ENOMEM.
 */
static int expand_env(const char *v, char **out)
{
	struct strbuf b = {0};

	while (*v != '\0') {
		if (v[0] == '$' && v[1] == '{') {
			const char *end = strchr(v + 2, '}');

			if (end == NULL || end == v + 2) {
				strbuf_free(&b);
				return -EINVAL;
			}
			add_var(&b, v + 2, (size_t)(end - v - 2));
			v = end + 1;
		} else if (v[0] == '$' && is_name_char(v[1])) {
			size_t n = 1;

			while (is_name_char(v[1 + n]))
				n++;
			add_var(&b, v + 1, n);
			v += 1 + n;
		} else {
			size_t n = strcspn(v + 1, "$") + 1;

			strbuf_add(&b, v, n);
			v += n;
		}
	}
	return strbuf_take(&b, out, NULL);
}

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

static void *field_of(struct parser *p, const struct section *s, const struct option *o)
{
	char *base;

	if (s->kind == SEC_LITESTREAM)
		base = (char *)&p->cfg;
	else if (s->kind == SEC_DB)
		base = (char *)&p->cfg.dbs[s->index];
	else
		base = (char *)&p->drafts[s->index];
	return base + o->offset;
}

/* Parses v as o says and stores it in section s. */
static int set_value(struct parser *p, const struct section *s, const struct option *o,
		     const char *v)
{
	const char *t = s->title, *k = o->k.key;
	void *field = field_of(p, s, o);
	int line = p->lineno;

	switch (o->type) {
	case OPT_STRING:
	case OPT_REQUIRED:
	case OPT_ADDR: {
		char *d;

		if (*v == '\0') {
			if (o->type == OPT_REQUIRED)
				return fail(p, line, t, k, "empty value");
			return 0;
		}
		if (o->type == OPT_ADDR && !addr_valid(v))
			return fail(p, line, t, k, "invalid address \"%s\" (want HOST:PORT)", v);
		d = strdup(v);
		if (d == NULL)
			return oom(p);
		free(*(char **)field);
		*(char **)field = d;
		return 0;
	}
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
		size_t n = strlen(v);
		long mode = 0;

		/* At most four digits, checked first: more would overflow mode. */
		for (size_t i = 0; i < n && n <= 4 && mode >= 0; i++)
			mode = v[i] >= '0' && v[i] <= '7' ? mode * 8 + (v[i] - '0') : -1;
		if (n == 0 || n > 4 || mode < 0 || mode > 0777)
			return fail(p, line, t, k, "invalid mode \"%s\" (want octal, e.g. 0600)", v);
		*(int *)field = (int)mode;
		return 0;
	}
	case OPT_LOG_LEVEL:
		if (log_level_parse(v, (enum log_level *)field) != 0)
			return fail(p, line, t, k,
				    "invalid log level \"%s\" (want debug, info, warn or error)", v);
		return 0;
	}
	return 0;
}

static int on_key(void *user, const char *section, const char *key, const char *raw)
{
	struct parser *p = user;
	const struct option *o;
	struct section *s;
	char *v;
	int rc;

	(void)section; /* the reader tracks sections; inih cuts long names */
	if (p->rc != 0)
		return 0;
	if (p->cur == SIZE_MAX) {
		fail(p, p->lineno, NULL, key, "not in any section");
		return 0;
	}
	s = &p->sections[p->cur];
	o = find_option(s->kind, key);
	if (o == NULL) {
		fail(p, p->lineno, s->title, key, "unknown key");
		return 0;
	}
	if (s->key_lines[o - options] != 0) {
		fail(p, p->lineno, s->title, key, "set twice (first on line %d)",
		     s->key_lines[o - options]);
		return 0;
	}
	s->key_lines[o - options] = p->lineno;
	rc = expand_env(p->long_value != NULL ? p->long_value : raw, &v);
	if (rc == -EINVAL) /* the value is not echoed: it may be a secret */
		fail(p, p->lineno, s->title, key, "unterminated \"${\" or empty \"${}\"");
	else if (rc != 0)
		oom(p);
	else {
		set_value(p, s, o, v);
		free(v);
	}
	return p->rc == 0;
}

static void db_defaults(struct db_config *db)
{
	memset(db, 0, sizeof(*db));
	db->monitor_interval_ms = 1000;
	db->checkpoint_interval_ms = 60 * 1000;
	db->min_checkpoint_page_count = 1000;
	db->max_checkpoint_page_count = 10000;
}

/* The sync interval waits for the type, known only at the end. */
static void replica_defaults(struct replica_config *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->part_size = CONFIG_PART_SIZE_DEFAULT;
	rc->retention_ms = 24 * 3600 * 1000LL;
	rc->retention_check_interval_ms = 3600 * 1000LL;
}

static int config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->socket = strdup(CONFIG_DEFAULT_SOCKET);
	c->socket_mode = 0600;
	c->log_level = LOG_LEVEL_INFO;
	return c->socket == NULL ? -ENOMEM : 0;
}

/* The title of the section current at line (for errors inih reports). */
static const char *title_at(const struct parser *p, int line)
{
	const char *t = NULL;

	for (size_t i = 0; i < p->n_sections && p->sections[i].line <= line; i++)
		t = p->sections[i].title;
	return t;
}

/* A header "[KIND NAME]" at line (which starts with '['): checked and recorded. */
static int on_section(struct parser *p, const char *line)
{
	const char *c = line + 1, *end, *kend, *name;
	const char *cur = p->cur == SIZE_MAX ? NULL : p->sections[p->cur].title;
	struct section *s;
	enum section_kind kind;
	size_t klen, nlen, i;
	void *grown;

	/* As inih: a ';' after whitespace starts a comment, even inside []. */
	for (end = c; *end != '\0' && *end != ']'; end++)
		if (*end == ';' && isspace((unsigned char)end[-1]))
			break;
	if (*end != ']')
		return fail(p, p->lineno, cur, NULL, "syntax error: no ']' closing the section");
	for (const char *a = end + 1; *a != '\0' && *a != ';' && *a != '#'; a++)
		if (!isspace((unsigned char)*a))
			return fail(p, p->lineno, cur, NULL, "syntax error: text after ']'");
	while (c < end && isspace((unsigned char)*c))
		c++;
	kend = c;
	while (kend < end && !isspace((unsigned char)*kend))
		kend++;
	klen = (size_t)(kend - c);
	name = kend;
	while (name < end && isspace((unsigned char)*name))
		name++;
	nlen = (size_t)(end - name);
	while (nlen > 0 && isspace((unsigned char)name[nlen - 1]))
		nlen--;

	for (i = 0; i < 3; i++)
		if (strlen(section_kinds[i]) == klen && strncmp(section_kinds[i], c, klen) == 0)
			break;
	if (i == 3)
		return fail(p, p->lineno, NULL, NULL,
			    "[%.*s]: unknown section (want [litestream], [db NAME] or "
			    "[replica NAME])",
			    (int)(end - line - 1), line + 1);
	kind = (enum section_kind)i;
	if (kind != SEC_LITESTREAM && nlen == 0)
		return fail(p, p->lineno, section_kinds[kind], NULL, "needs a name: [%s NAME]",
			    section_kinds[kind]);
	if (kind == SEC_LITESTREAM && nlen != 0)
		return fail(p, p->lineno, NULL, NULL, "[%.*s]: [litestream] takes no name",
			    (int)(end - line - 1), line + 1);

	grown = realloc(p->sections, (p->n_sections + 1) * sizeof(*p->sections));
	if (grown == NULL)
		return oom(p);
	p->sections = grown;
	s = &p->sections[p->n_sections];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->line = p->lineno;
	s->title = malloc(klen + nlen + 2);
	if (s->title == NULL)
		return oom(p);
	p->n_sections++;
	if (nlen > 0) {
		sprintf(s->title, "%s %.*s", section_kinds[kind], (int)nlen, name);
		s->name = s->title + klen + 1;
	} else {
		sprintf(s->title, "%s", section_kinds[kind]);
	}
	for (i = 0; i + 1 < p->n_sections; i++) {
		const struct section *o = &p->sections[i];

		if (o->kind == kind && strcmp(o->title, s->title) == 0)
			return fail(p, p->lineno, s->title, NULL,
				    "duplicate section (first on line %d)", o->line);
	}

	if (kind == SEC_DB) {
		struct db_config *db;

		grown = realloc(p->cfg.dbs, (p->cfg.n_dbs + 1) * sizeof(*p->cfg.dbs));
		if (grown == NULL)
			return oom(p);
		p->cfg.dbs = grown;
		db = &p->cfg.dbs[p->cfg.n_dbs];
		db_defaults(db);
		db->line = s->line;
		db->name = strdup(s->name);
		s->index = p->cfg.n_dbs++;
		if (db->name == NULL)
			return oom(p);
	} else if (kind == SEC_REPLICA) {
		struct replica_draft *d;

		grown = realloc(p->drafts, (p->n_drafts + 1) * sizeof(*p->drafts));
		if (grown == NULL)
			return oom(p);
		p->drafts = grown;
		d = &p->drafts[p->n_drafts];
		memset(d, 0, sizeof(*d));
		replica_defaults(&d->rc);
		d->rc.line = s->line;
		d->rc.name = strdup(s->name);
		s->index = p->n_drafts++;
		if (d->rc.name == NULL)
			return oom(p);
	}
	p->cur = p->n_sections - 1;
	return 0;
}

/* Whether line (no leading space) is "key = value" or "key: value" as inih reads it. */
static bool key_value_line(const char *line)
{
	const char *c;

	for (c = line; *c != '\0' && *c != '=' && *c != ':'; c++)
		if (*c == ';' && c > line && isspace((unsigned char)c[-1]))
			return false;
	return *c != '\0' && c > line;
}

/*
 * A "key = value" line longer than inih's buffer: the value, read as inih
 * reads one (from the first '=' or ':', surrounding space and an inline
 * " ;comment" removed), goes to p->long_value, and line is cut to "key =".
 * 0, or -1 with the error recorded (the key itself is too long).
 */
static int keep_long_value(struct parser *p, char *line, size_t max)
{
	char *sep = line + strcspn(line, "=:"), *v = sep + 1, *end;

	if ((size_t)(sep - line) + 1 > max) {
		fail(p, p->lineno, p->cur == SIZE_MAX ? NULL : p->sections[p->cur].title, NULL,
		     "key longer than %zu bytes", max);
		return -1;
	}
	while (isspace((unsigned char)*v))
		v++;
	for (end = v; *end != '\0'; end++)
		if (*end == ';' && end > v && isspace((unsigned char)end[-1]))
			break;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	p->long_value = strndup(v, (size_t)(end - v));
	if (p->long_value == NULL) {
		oom(p);
		return -1;
	}
	sep[1] = '\0';
	return 0;
}

/*
 * inih's reader: one physical line per call, without its indentation, its
 * line ending or a UTF-8 byte order mark; NULL at the end or on error.
 */
static char *on_read_line(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *cur;
	ssize_t n;
	size_t len;
	char *line;

	if (p->rc != 0)
		return NULL;
	errno = 0;
	n = getline(&p->buf, &p->cap, p->fp);
	if (n < 0) {
		if (ferror(p->fp)) {
			int e = errno != 0 ? errno : EIO;

			p->rc = -e;
			if (p->err != NULL && p->errlen > 0)
				snprintf(p->err, p->errlen, "read %s: %s", p->path, strerror(e));
		}
		return NULL;
	}
	p->lineno++;
	cur = p->cur == SIZE_MAX ? NULL : p->sections[p->cur].title;
	line = p->buf;
	len = (size_t)n;
	if (memchr(line, '\0', len) != NULL) {
		fail(p, p->lineno, cur, NULL, "a NUL byte in the line");
		return NULL;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (p->lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	while (isspace((unsigned char)*line)) {
		line++;
		len--;
	}
	free(p->long_value);
	p->long_value = NULL;
	/*
	 * Two bytes short of inih's buffer: one for the NUL, and one so that an
	 * inih built to grow its buffer never asks for the rest of a line.
	 */
	if (num >= 2 && len > (size_t)num - 2 && *line != '[' && key_value_line(line)) {
		if (keep_long_value(p, line, (size_t)num - 2) != 0)
			return NULL;
		len = strlen(line);
	}
	if (num < 2 || len > (size_t)num - 2) {
		fail(p, p->lineno, cur, NULL, "line longer than %d bytes", num - 2);
		return NULL;
	}
	if (*line == '[') {
		if (on_section(p, line) != 0)
			return NULL;
	} else if (*line != '\0' && *line != ';' && *line != '#' && !key_value_line(line)) {
		fail(p, p->lineno, cur, NULL, "syntax error: want \"key = value\"");
		return NULL;
	}
	memcpy(str, line, len + 1);
	return str;
}

static struct db_config *find_db_named(struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_dbs; i++)
		if (strcmp(c->dbs[i].name, name) == 0)
			return &c->dbs[i];
	return NULL;
}

/* Makes *path absolute in place; errors name key in section s. */
static int make_abs(struct parser *p, const struct section *s, const char *key, char **path)
{
	char *abs = NULL;
	int rc = replica_url_abs_path(*path, &abs);

	if (rc != 0)
		return fail_rc(p, rc == -ENOMEM ? rc : -EINVAL, key_line(s, key), s->title, key,
			       "\"%s\": %s", *path,
			       rc == -ENOENT ? "no home directory ($HOME is not set)" : strerror(-rc));
	free(*path);
	*path = abs;
	return 0;
}

static int finish_db(struct parser *p, const struct section *s)
{
	struct db_config *db = &p->cfg.dbs[s->index];
	const char *t = s->title;

	if (db->path == NULL)
		return fail(p, s->line, t, "path", "missing (the database file)");
	if (make_abs(p, s, "path", &db->path) != 0)
		return p->rc;
	for (size_t i = 0; i < s->index; i++)
		if (strcmp(p->cfg.dbs[i].path, db->path) == 0)
			return fail(p, key_line(s, "path"), t, "path",
				    "\"%s\" is also the path of [db %s] (line %d)", db->path,
				    p->cfg.dbs[i].name, p->cfg.dbs[i].line);
	if (db->min_checkpoint_page_count > db->max_checkpoint_page_count) {
		bool min_set = key_line(s, "min-checkpoint-page-count") != 0;
		const char *k = min_set ? "min-checkpoint-page-count" : "max-checkpoint-page-count";

		return fail(p, key_line(s, k), t, k,
			    "min-checkpoint-page-count (%ld) is greater than "
			    "max-checkpoint-page-count (%ld)",
			    db->min_checkpoint_page_count, db->max_checkpoint_page_count);
	}
	return 0;
}

/* Takes *from into *to unless *to is set already; *from ends NULL either way. */
static void take_unless_set(char **to, char **from)
{
	if (*to == NULL) {
		*to = *from;
		*from = NULL;
	}
}

/* The s3 half of finish_replica(); u is the parsed url or NULL. */
static int finish_s3(struct parser *p, const struct section *s, struct replica_config *rep,
		     struct replica_url *u)
{
	const char *t = s->title;
	char *e = NULL, msg[256];
	int rc;

	/* Normalised before merging so that an explicit endpoint is checked too. */
	if (rep->endpoint != NULL) {
		rc = replica_url_endpoint(rep->endpoint, &e, msg, sizeof(msg));
		if (rc != 0)
			return fail_rc(p, rc, key_line(s, "endpoint"), t, "endpoint", "%s", msg);
		free(rep->endpoint);
		rep->endpoint = e;
	}
	if (u != NULL) {
		rep->path = u->path;
		rep->bucket = u->bucket;
		u->path = u->bucket = NULL;
		take_unless_set(&rep->region, &u->region);
		take_unless_set(&rep->endpoint, &u->endpoint);
		if (key_line(s, "skip-verify") == 0)
			rep->skip_verify = u->skip_verify;
	} else {
		if (rep->bucket == NULL)
			return fail(p, s->line, t, "bucket", "missing (or give a url)");
		if (!replica_url_bucket_valid(rep->bucket))
			return fail(p, key_line(s, "bucket"), t, "bucket", "invalid bucket name \"%s\"",
				    rep->bucket);
		if (rep->path != NULL) {
			char *prefix;

			if (replica_url_s3_prefix(rep->path, &prefix) != 0)
				return oom(p);
			free(rep->path);
			rep->path = prefix;
		} else if ((rep->path = strdup("")) == NULL) {
			return oom(p);
		}
	}
	if (key_line(s, "force-path-style") == 0)
		rep->force_path_style = u != NULL && u->force_path_style_set ? u->force_path_style
									   : rep->endpoint != NULL;
	if (rep->ca_file != NULL && make_abs(p, s, "ca-file", &rep->ca_file) != 0)
		return p->rc;
	if (rep->part_size < CONFIG_PART_SIZE_MIN || rep->part_size > CONFIG_PART_SIZE_MAX)
		return fail(p, key_line(s, "part-size"), t, "part-size",
			    "%lld bytes is outside S3's part sizes (5MiB to 5GiB)",
			    (long long)rep->part_size);
	return 0;
}

/*
 * Settles a replica's type and location from its keys and url (config.h has
 * the rules) and fills the defaults that depend on the type. The `db` key
 * is the caller's to check.
 */
static int finish_replica(struct parser *p, const struct section *s, struct replica_draft *d)
{
	struct replica_config *rep = &d->rc;
	struct replica_url u = {0}, *up = NULL;
	const char *t = s->title;
	enum replica_type type = REPLICA_FILE;
	char msg[512];
	int rc;

	if (d->type != NULL) {
		if (strcmp(d->type, "file") == 0)
			type = REPLICA_FILE;
		else if (strcmp(d->type, "s3") == 0)
			type = REPLICA_S3;
		else
			return fail(p, key_line(s, "type"), t, "type",
				    "unknown replica type \"%s\" (want file or s3)", d->type);
	}
	if (rep->url != NULL) {
		rc = replica_url_parse(rep->url, &u, msg, sizeof(msg));
		if (rc != 0)
			return fail_rc(p, rc == -ENOMEM ? rc : -EINVAL, key_line(s, "url"), t, "url",
				       "%s", msg);
		up = &u;
		if (d->type != NULL && type != u.type) {
			fail(p, key_line(s, "type"), t, "type",
			     "\"%s\" does not match the url, which names a %s replica", d->type,
			     type_name(u.type));
			goto out;
		}
		type = u.type;
		if (rep->path != NULL) {
			fail(p, key_line(s, "path"), t, "path", "cannot be set beside url");
			goto out;
		}
		if (rep->bucket != NULL) {
			fail(p, key_line(s, "bucket"), t, "bucket", "cannot be set beside url");
			goto out;
		}
	} else if (d->type == NULL) {
		return fail(p, s->line, t, "type", "missing (a replica needs type or url)");
	}
	rep->type = type;

	if (type == REPLICA_FILE) {
		for (size_t i = 0; i < N_OPTIONS; i++) {
			if (options[i].section == SEC_REPLICA && (options[i].flags & OPT_S3_ONLY) &&
			    s->key_lines[i] != 0) {
				fail(p, s->key_lines[i], t, options[i].k.key,
				     "only for s3 replicas, and this is a file replica");
				goto out;
			}
		}
		if (up != NULL) {
			rep->path = u.path;
			u.path = NULL;
		} else if (rep->path == NULL) {
			fail(p, s->line, t, "path", "missing (the replica's directory)");
		} else if (replica_url_is_url(rep->path)) {
			fail(p, key_line(s, "path"), t, "path", "\"%s\" is a URL: give it as url",
			     rep->path);
		} else {
			make_abs(p, s, "path", &rep->path);
		}
	} else {
		if (up == NULL && rep->path != NULL && replica_url_is_url(rep->path))
			fail(p, key_line(s, "path"), t, "path", "\"%s\" is a URL: give it as url",
			     rep->path);
		else
			finish_s3(p, s, rep, up);
	}
	if (p->rc == 0 && key_line(s, "sync-interval") == 0)
		rep->sync_interval_ms = type == REPLICA_S3 ? 1000 : 0;
out:
	replica_url_free(&u);
	return p->rc;
}

/* Moves each draft into the replicas of its db, in file order. */
static int attach_replicas(struct parser *p)
{
	for (size_t i = 0; i < p->cfg.n_dbs; i++) {
		struct db_config *db = &p->cfg.dbs[i];
		size_t n = 0;

		for (size_t j = 0; j < p->n_drafts; j++)
			n += strcmp(p->drafts[j].db, db->name) == 0;
		if (n == 0)
			continue;
		db->replicas = calloc(n, sizeof(*db->replicas));
		if (db->replicas == NULL)
			return oom(p);
		for (size_t j = 0; j < p->n_drafts; j++) {
			if (strcmp(p->drafts[j].db, db->name) == 0) {
				db->replicas[db->n_replicas++] = p->drafts[j].rc;
				memset(&p->drafts[j].rc, 0, sizeof(p->drafts[j].rc));
			}
		}
	}
	return 0;
}

/* The checks that need the whole file, section by section in file order. */
static int finish_file(struct parser *p)
{
	for (size_t i = 0; i < p->n_sections && p->rc == 0; i++) {
		const struct section *s = &p->sections[i];

		if (s->kind == SEC_DB) {
			finish_db(p, s);
		} else if (s->kind == SEC_REPLICA) {
			struct replica_draft *d = &p->drafts[s->index];

			if (d->db == NULL)
				fail(p, s->line, s->title, "db",
				     "missing (the name of this replica's [db NAME] section)");
			else if (find_db_named(&p->cfg, d->db) == NULL)
				fail(p, key_line(s, "db"), s->title, "db", "no section [db %s]", d->db);
			else
				finish_replica(p, s, d);
		}
	}
	return p->rc == 0 ? attach_replicas(p) : p->rc;
}

static int parser_init(struct parser *p, const char *path, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->path = path;
	p->cur = SIZE_MAX;
	p->err = err;
	p->errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (config_defaults(&p->cfg) != 0)
		return oom(p);
	return 0;
}

/* Frees the parser's own state; p->cfg is the caller's to keep or free. */
static void parser_close(struct parser *p)
{
	for (size_t i = 0; i < p->n_sections; i++)
		free(p->sections[i].title);
	free(p->sections);
	for (size_t i = 0; i < p->n_drafts; i++) {
		replica_config_free(&p->drafts[i].rc);
		free(p->drafts[i].db);
		free(p->drafts[i].type);
	}
	free(p->drafts);
	free(p->buf);
	free(p->long_value);
	if (p->fp != NULL)
		fclose(p->fp);
}

/* Hands the result over: *out gets p->cfg on success and is zeroed otherwise. */
static int parser_done(struct parser *p, struct config *out)
{
	int rc = p->rc;

	if (rc == 0)
		*out = p->cfg;
	else {
		config_free(&p->cfg);
		memset(out, 0, sizeof(*out));
	}
	parser_close(p);
	return rc;
}

int config_load(const char *path, struct config *out, char *err, size_t errlen)
{
	struct parser p;
	int r;

	if (parser_init(&p, path, err, errlen) != 0)
		return parser_done(&p, out);
	p.fp = fopen(path, "r");
	if (p.fp == NULL) {
		p.rc = -errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "open %s: %s", path, strerror(-p.rc));
		return parser_done(&p, out);
	}
	r = ini_parse_stream(on_read_line, &p, on_key, &p);
	if (p.rc == 0 && r == -2)
		oom(&p);
	else if (p.rc == 0 && r != 0)
		fail(&p, r, title_at(&p, r), NULL, "syntax error");
	if (p.rc == 0)
		finish_file(&p);
	if (p.rc == 0 && (p.cfg.path = strdup(path)) == NULL)
		oom(&p);
	return parser_done(&p, out);
}

/*
 * One replica from a url alone, with every default: what URL mode and
 * `restore REPLICA_URL` take. Named by its type.
 */
static int replica_from_url(struct parser *p, const char *url, struct replica_config *out)
{
	struct section s = {.kind = SEC_REPLICA, .title = (char *)"replica"};
	struct replica_draft d;

	memset(&d, 0, sizeof(d));
	replica_defaults(&d.rc);
	d.rc.url = strdup(url);
	if (d.rc.url == NULL)
		return oom(p);
	if (finish_replica(p, &s, &d) == 0 && (d.rc.name = strdup(type_name(d.rc.type))) == NULL)
		oom(p);
	if (p->rc != 0) {
		replica_config_free(&d.rc);
		return p->rc;
	}
	*out = d.rc;
	return 0;
}

int config_replica_from_url(const char *url, struct replica_config *out, char *err, size_t errlen)
{
	struct parser p;
	struct config empty;
	int rc = parser_init(&p, NULL, err, errlen);

	if (rc == 0)
		rc = replica_from_url(&p, url, out);
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	parser_done(&p, &empty);
	config_free(&empty);
	return rc;
}

int config_from_args(const char *db_path, char *const *urls, size_t n_urls, struct config *out,
		     char *err, size_t errlen)
{
	struct parser p;
	struct db_config *db;
	char *abs = NULL;
	int rc;

	if (parser_init(&p, NULL, err, errlen) != 0)
		return parser_done(&p, out);
	if (n_urls == 0) {
		fail(&p, 0, NULL, NULL, "at least one replica URL is required for %s", db_path);
		return parser_done(&p, out);
	}
	rc = replica_url_abs_path(db_path, &abs);
	if (rc != 0) {
		fail_rc(&p, rc == -ENOMEM ? rc : -EINVAL, 0, NULL, NULL, "database path \"%s\": %s",
			db_path, strerror(-rc));
		return parser_done(&p, out);
	}
	p.cfg.dbs = calloc(1, sizeof(*p.cfg.dbs));
	if (p.cfg.dbs == NULL) {
		free(abs);
		oom(&p);
		return parser_done(&p, out);
	}
	db = &p.cfg.dbs[0];
	p.cfg.n_dbs = 1;
	db_defaults(db);
	db->path = abs;
	db->name = strdup(abs);
	db->replicas = calloc(n_urls, sizeof(*db->replicas));
	if (db->name == NULL || db->replicas == NULL) {
		oom(&p);
		return parser_done(&p, out);
	}
	for (size_t i = 0; i < n_urls; i++) {
		struct replica_config *r = &db->replicas[i];
		size_t same = 0;
		char name[32];

		if (replica_from_url(&p, urls[i], r) != 0)
			break;
		db->n_replicas++;
		for (size_t j = 0; j < i; j++)
			same += db->replicas[j].type == r->type;
		if (same == 0)
			continue;
		/* file, file2; s3, s3-2: a digit then a number would run together. */
		snprintf(name, sizeof(name), "%s%s%zu", r->name,
			 isdigit((unsigned char)r->name[strlen(r->name) - 1]) ? "-" : "", same + 1);
		free(r->name);
		if ((r->name = strdup(name)) == NULL) {
			oom(&p);
			break;
		}
	}
	return parser_done(&p, out);
}

struct db_config *config_find_db(struct config *c, const char *path)
{
	struct db_config *found = NULL;
	char *abs;

	if (replica_url_abs_path(path, &abs) != 0)
		return NULL;
	for (size_t i = 0; i < c->n_dbs && found == NULL; i++)
		if (c->dbs[i].path != NULL && strcmp(c->dbs[i].path, abs) == 0)
			found = &c->dbs[i];
	free(abs);
	return found;
}

void replica_config_free(struct replica_config *r)
{
	free(r->name);
	free(r->url);
	free(r->path);
	free(r->bucket);
	free(r->region);
	free(r->endpoint);
	free(r->ca_file);
	free(r->access_key_id);
	free(r->secret_access_key);
	memset(r, 0, sizeof(*r));
}

void config_free(struct config *c)
{
	free(c->path);
	free(c->socket);
	free(c->metrics_addr);
	free(c->exec);
	for (size_t i = 0; i < c->n_dbs; i++) {
		struct db_config *db = &c->dbs[i];

		free(db->name);
		free(db->path);
		for (size_t j = 0; j < db->n_replicas; j++)
			replica_config_free(&db->replicas[j]);
		free(db->replicas);
	}
	free(c->dbs);
	memset(c, 0, sizeof(*c));
}
