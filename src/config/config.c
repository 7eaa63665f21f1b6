/*
 * Configuration loading, the public entry; config.h states the file's
 * rules, url.h the replica URL forms, config_internal.h how the work is
 * divided between config_ini.c (lines), config_options.c (keys and
 * values) and config_check.c (what needs the whole file).
 *
 * Each entry point runs one struct parser: config_load() through the
 * reader and the checks, URL mode (config_from_args(),
 * config_replica_from_url()) straight to config_check_replica() with one
 * keyless section per URL, so that both modes settle replicas alike and
 * report errors alike (without a file:line in URL mode).
 */
#include "config/config_internal.h"

#include "config/url.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parser_init(struct parser *p, const char *path, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->e.path = path;
	p->cur = SIZE_MAX;
	p->e.msg = err;
	p->e.msglen = errlen;
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
}

/* Hands the result over: *out gets p->cfg on success and is zeroed otherwise. */
static int parser_done(struct parser *p, struct config *out)
{
	int rc = p->e.rc;

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

	if (parser_init(&p, path, err, errlen) != 0)
		return parser_done(&p, out);
	if (config_options_read(&p) == 0)
		config_check_file(&p);
	if (p.e.rc == 0 && (p.cfg.path = strdup(path)) == NULL)
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
	config_replica_defaults(&d.rc);
	d.rc.url = strdup(url);
	if (d.rc.url == NULL)
		return oom(p);
	if (config_check_replica(p, &s, &d) == 0 &&
	    (d.rc.name = strdup(config_replica_type_name(d.rc.type))) == NULL)
		oom(p);
	if (p->e.rc != 0) {
		replica_config_free(&d.rc);
		return p->e.rc;
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

/* Whether one of the first n databases of c is called name. */
static bool name_taken(const struct config *c, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (c->dbs[i].name != NULL && strcmp(c->dbs[i].name, name) == 0)
			return true;
	return false;
}

int config_name_by_file(struct config *c)
{
	for (size_t i = 0; i < c->n_dbs; i++) {
		struct db_config *db = &c->dbs[i];
		const char *slash = strrchr(db->path, '/');
		const char *base = slash != NULL && slash[1] != '\0' ? slash + 1 : db->path;
		size_t len = strlen(base) + 24;
		char *name = malloc(len);

		if (name == NULL)
			return -ENOMEM;
		snprintf(name, len, "%s", base);
		for (unsigned k = 2; name_taken(c, i, name); k++)
			snprintf(name, len, "%s-%u", base, k);
		free(db->name);
		db->name = name;
	}
	return 0;
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
	config_db_defaults(db);
	db->path = abs;
	db->replicas = calloc(n_urls, sizeof(*db->replicas));
	if (config_name_by_file(&p.cfg) != 0 || db->replicas == NULL) {
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

/* A database of one of c's [dir] sections at abs, appended to c->dbs; NULL if none. */
static struct db_config *find_in_dirs(struct config *c, const char *abs)
{
	for (size_t i = 0; i < c->n_dirs; i++) {
		struct db_config *grown;
		const char *rel;

		if (!config_dir_match(&c->dirs[i], abs, &rel))
			continue;
		grown = realloc(c->dbs, (c->n_dbs + 1) * sizeof(*c->dbs));
		if (grown == NULL)
			return NULL;
		c->dbs = grown;
		if (config_dir_db(&c->dirs[i], rel, &c->dbs[c->n_dbs]) != 0)
			return NULL;
		return &c->dbs[c->n_dbs++];
	}
	return NULL;
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
	if (found == NULL)
		found = find_in_dirs(c, abs);
	free(abs);
	return found;
}

/*
 * Every string member of struct replica_config, once: freeing, copying and
 * comparing a replica's settings all walk this table, so a key added to the
 * struct is added here and nowhere else. Secrets are wiped before free.
 */
static const struct {
	size_t offset;
	bool secret;
} replica_strings[] = {
#define S(m, secret) {offsetof(struct replica_config, m), secret}
	S(name, false), S(url, false), S(path, false), S(bucket, false), S(region, false),
	S(endpoint, false), S(ca_file, false), S(access_key_id, false),
	S(secret_access_key, true), S(sse, false), S(sse_kms_key_id, false),
	S(sse_customer_key, true), S(storage_class, false), S(age_recipients, false),
	S(age_identities, true), S(account_name, false), S(account_key, true),
	S(sas_token, true), S(host, false), S(user, false), S(password, true),
	S(key_path, false), S(host_key, false), S(known_hosts_file, false),
#undef S
};

#define N_REPLICA_STRINGS (sizeof(replica_strings) / sizeof(replica_strings[0]))

static char **replica_string(struct replica_config *r, size_t i)
{
	return (char **)(void *)((char *)r + replica_strings[i].offset);
}

static const char *replica_string_of(const struct replica_config *r, size_t i)
{
	return *(char *const *)(const void *)((const char *)r + replica_strings[i].offset);
}

void replica_config_free(struct replica_config *r)
{
	for (size_t i = 0; i < N_REPLICA_STRINGS; i++) {
		char **s = replica_string(r, i);

		if (*s != NULL && replica_strings[i].secret)
			explicit_bzero(*s, strlen(*s));
		free(*s);
	}
	memset(r, 0, sizeof(*r));
}

int replica_config_copy(const struct replica_config *from, struct replica_config *to)
{
	int rc = 0;

	*to = *from;
	for (size_t i = 0; i < N_REPLICA_STRINGS; i++) {
		char **s = replica_string(to, i);

		if (rc == 0 && *s != NULL && (*s = strdup(*s)) == NULL)
			rc = -ENOMEM;
		else if (rc != 0)
			*s = NULL; /* so that the free below frees only copies */
	}
	if (rc != 0)
		replica_config_free(to);
	return rc;
}

bool replica_config_equal(const struct replica_config *a, const struct replica_config *b)
{
	for (size_t i = 0; i < N_REPLICA_STRINGS; i++)
		if (!config_str_eq(replica_string_of(a, i), replica_string_of(b, i)))
			return false;
	return a->type == b->type && a->gcs == b->gcs && a->force_path_style == b->force_path_style &&
	       a->skip_verify == b->skip_verify && a->part_size == b->part_size &&
	       a->sync_interval_ms == b->sync_interval_ms && a->retention_ms == b->retention_ms &&
	       a->retention_check_interval_ms == b->retention_check_interval_ms &&
	       a->snapshot_interval_ms == b->snapshot_interval_ms &&
	       a->validation_interval_ms == b->validation_interval_ms;
}

void config_free(struct config *c)
{
	free(c->path);
	free(c->socket);
	free(c->metrics_addr);
	free(c->exec);
	for (size_t i = 0; i < c->n_dbs; i++)
		config_db_free(&c->dbs[i]);
	free(c->dbs);
	for (size_t i = 0; i < c->n_dirs; i++)
		config_dir_free(&c->dirs[i]);
	free(c->dirs);
	memset(c, 0, sizeof(*c));
}
