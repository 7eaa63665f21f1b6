/*
 * The checks that need the whole file, made once every line has been read
 * and passed its own checks (config_options.c): in file order, each [db]
 * (its path, made absolute and unique; its page counts), then each
 * [replica] (the [db] it names; its type and location, settled from
 * `type`, `url` and the other keys as config.h says). The first error
 * found is the one reported, as for the line checks. Then the replica
 * drafts move into their databases.
 *
 * config_check_replica() also serves URL mode (config.c), with a section
 * that has no keys set and a draft that holds only the url.
 */
#include "config/config_internal.h"

#include "config/parse.h"
#include "config/url.h"
#include "util/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const char *config_replica_type_name(enum replica_type t)
{
	return t == REPLICA_S3 ? "s3" : t == REPLICA_ABS ? "abs" : t == REPLICA_SFTP ? "sftp" : "file";
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
		return fail_rc(p, rc == -ENOMEM ? rc : -EINVAL, config_key_line(s, key), s->title, key,
			       "\"%s\": %s", *path,
			       rc == -ENOENT ? "no home directory ($HOME is not set)" : strerror(-rc));
	free(*path);
	*path = abs;
	return 0;
}

static struct dir_config *find_dir_named(struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_dirs; i++)
		if (strcmp(c->dirs[i].name, name) == 0)
			return &c->dirs[i];
	return NULL;
}

/* The page counts of a [db] or [dir] section s. */
static int check_page_counts(struct parser *p, const struct section *s, const struct db_config *db)
{
	const char *t = s->title;

	if (db->min_checkpoint_page_count > db->max_checkpoint_page_count) {
		bool min_set = config_key_line(s, "min-checkpoint-page-count") != 0;
		const char *k = min_set ? "min-checkpoint-page-count" : "max-checkpoint-page-count";

		return fail(p, config_key_line(s, k), t, k,
			    "min-checkpoint-page-count (%ld) is greater than "
			    "max-checkpoint-page-count (%ld)",
			    db->min_checkpoint_page_count, db->max_checkpoint_page_count);
	}
	return 0;
}

static int finish_db(struct parser *p, const struct section *s)
{
	struct db_config *db = &p->cfg.dbs[s->index];
	const char *t = s->title;

	if (db->path == NULL)
		return fail(p, s->line, t, "path", "missing (the database file)");
	if (make_abs(p, s, "path", &db->path) != 0)
		return p->e.rc;
	for (size_t i = 0; i < s->index; i++)
		if (strcmp(p->cfg.dbs[i].path, db->path) == 0)
			return fail(p, config_key_line(s, "path"), t, "path",
				    "\"%s\" is also the path of [db %s] (line %d)", db->path,
				    p->cfg.dbs[i].name, p->cfg.dbs[i].line);
	if (find_dir_named(&p->cfg, db->name) != NULL)
		return fail(p, s->line, t, NULL,
			    "[dir %s] has the same name: a replica's db = %s would name both",
			    db->name, db->name);
	return check_page_counts(p, s, db);
}

/* A [dir]: its directory made absolute, unique, without a trailing '/'; its pattern. */
static int finish_dir(struct parser *p, const struct section *s)
{
	struct dir_config *d = &p->cfg.dirs[s->index];
	const char *t = s->title;
	size_t n;

	if (d->path == NULL)
		return fail(p, s->line, t, "path", "missing (the directory of the databases)");
	if (make_abs(p, s, "path", &d->path) != 0)
		return p->e.rc;
	n = strlen(d->path);
	while (n > 1 && d->path[n - 1] == '/')
		d->path[--n] = '\0';
	for (size_t i = 0; i < s->index; i++)
		if (strcmp(p->cfg.dirs[i].path, d->path) == 0)
			return fail(p, config_key_line(s, "path"), t, "path",
				    "\"%s\" is also the path of [dir %s] (line %d)", d->path,
				    p->cfg.dirs[i].name, p->cfg.dirs[i].line);
	if (strchr(d->pattern, '/') != NULL)
		return fail(p, config_key_line(s, "pattern"), t, "pattern",
			    "\"%s\": a pattern matches file names and cannot hold '/'", d->pattern);
	return check_page_counts(p, s, &d->db);
}

/* Takes *from into *to unless *to is set already; *from ends NULL either way. */
static void take_unless_set(char **to, char **from)
{
	if (*to == NULL) {
		*to = *from;
		*from = NULL;
	}
}

/* The line of key in s, or of its url when the value came from there. */
static int sse_line(const struct section *s, const char *key)
{
	int line = config_key_line(s, key);

	return line != 0 ? line : config_key_line(s, "url");
}

/*
 * The encryption keys of an s3 replica: each explicit one checked, the
 * url's taken where no key is set, then the combinations checked.
 */
static int finish_sse(struct parser *p, const struct section *s, struct replica_config *rep,
		      struct replica_url *u)
{
	const char *t = s->title;
	char why[256];

	if (rep->sse != NULL && parse_sse(rep->sse, why, sizeof(why)) != 0)
		return fail(p, config_key_line(s, "sse"), t, "sse", "%s", why);
	if (rep->sse_customer_key != NULL &&
	    parse_sse_customer_key(rep->sse_customer_key, why, sizeof(why)) != 0)
		return fail(p, config_key_line(s, "sse-customer-key"), t, "sse-customer-key", "%s", why);
	if (rep->storage_class != NULL && parse_storage_class(rep->storage_class, why, sizeof(why)) != 0)
		return fail(p, config_key_line(s, "storage-class"), t, "storage-class", "%s", why);
	if (u != NULL) {
		take_unless_set(&rep->sse, &u->sse);
		take_unless_set(&rep->sse_kms_key_id, &u->sse_kms_key_id);
		take_unless_set(&rep->sse_customer_key, &u->sse_customer_key);
		take_unless_set(&rep->storage_class, &u->storage_class);
	}
	if (rep->sse_kms_key_id != NULL && (rep->sse == NULL || strcmp(rep->sse, "aws:kms") != 0))
		return fail(p, sse_line(s, "sse-kms-key-id"), t, "sse-kms-key-id",
			    "sse-kms-key-id needs sse = aws:kms");
	if (rep->sse_customer_key != NULL && rep->sse != NULL)
		return fail(p, sse_line(s, "sse-customer-key"), t, "sse-customer-key",
			    "sse-customer-key (SSE-C) cannot be combined with sse = %s: choose one",
			    rep->sse);
	return 0;
}

/* Normalises rep->endpoint in place; errors name the endpoint key of s. */
static int check_endpoint(struct parser *p, const struct section *s, struct replica_config *rep)
{
	char *e = NULL, msg[256];
	int rc;

	if (rep->endpoint == NULL)
		return 0;
	rc = replica_url_endpoint(rep->endpoint, &e, msg, sizeof(msg));
	if (rc != 0)
		return fail_rc(p, rc, config_key_line(s, "endpoint"), s->title, "endpoint", "%s", msg);
	free(rep->endpoint);
	rep->endpoint = e;
	return 0;
}

/* type = gcs: Google Cloud Storage's XML API unless endpoint and region say otherwise. */
static int gcs_defaults(struct parser *p, struct replica_config *rep)
{
	if (rep->endpoint == NULL && (rep->endpoint = strdup("https://storage.googleapis.com")) == NULL)
		return oom(p);
	if (rep->region == NULL && (rep->region = strdup("auto")) == NULL)
		return oom(p);
	return 0;
}

/* The s3 half of config_check_replica(); u is the parsed url or NULL. */
static int finish_s3(struct parser *p, const struct section *s, struct replica_config *rep,
		     struct replica_url *u)
{
	const char *t = s->title;

	/* Normalised before merging so that an explicit endpoint is checked too. */
	if (check_endpoint(p, s, rep) != 0)
		return p->e.rc;
	if (u != NULL) {
		rep->path = u->path;
		rep->bucket = u->bucket;
		u->path = u->bucket = NULL;
		take_unless_set(&rep->region, &u->region);
		take_unless_set(&rep->endpoint, &u->endpoint);
		if (config_key_line(s, "skip-verify") == 0)
			rep->skip_verify = u->skip_verify;
	} else {
		if (rep->bucket == NULL)
			return fail(p, s->line, t, "bucket", "missing (or give a url)");
		if (!replica_url_bucket_valid(rep->bucket))
			return fail(p, config_key_line(s, "bucket"), t, "bucket", "invalid bucket name \"%s\"",
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
	if (rep->gcs && gcs_defaults(p, rep) != 0)
		return p->e.rc;
	if (config_key_line(s, "force-path-style") == 0)
		rep->force_path_style = u != NULL && u->force_path_style_set ? u->force_path_style
									   : rep->endpoint != NULL;
	if (rep->ca_file != NULL && make_abs(p, s, "ca-file", &rep->ca_file) != 0)
		return p->e.rc;
	if (finish_sse(p, s, rep, u) != 0)
		return p->e.rc;
	if (rep->part_size < CONFIG_PART_SIZE_MIN || rep->part_size > CONFIG_PART_SIZE_MAX)
		return fail(p, config_key_line(s, "part-size"), t, "part-size",
			    "%lld bytes is outside S3's part sizes (5MiB to 5GiB)",
			    (long long)rep->part_size);
	return 0;
}

/* The abs half of config_check_replica(): as Litestream 0.3.13, explicit keys beat the url's. */
static int finish_abs(struct parser *p, const struct section *s, struct replica_config *rep,
		      struct replica_url *u)
{
	const char *t = s->title;
	unsigned char raw[128];
	size_t len;

	if (check_endpoint(p, s, rep) != 0)
		return p->e.rc;
	if (u != NULL) {
		rep->path = u->path;
		rep->bucket = u->bucket;
		u->path = u->bucket = NULL;
		take_unless_set(&rep->account_name, &u->account_name);
	} else {
		if (rep->bucket == NULL)
			return fail(p, s->line, t, "bucket", "missing (the container; or give a url)");
		if (!replica_url_container_valid(rep->bucket))
			return fail(p, config_key_line(s, "bucket"), t, "bucket",
				    "invalid container name \"%s\" (want 3 to 63 of a-z, 0-9, '-')",
				    rep->bucket);
		char *prefix;

		if (replica_url_s3_prefix(rep->path != NULL ? rep->path : "", &prefix) != 0)
			return oom(p);
		free(rep->path);
		rep->path = prefix;
	}
	if (rep->account_name == NULL && rep->endpoint == NULL)
		return fail(p, s->line, t, "account-name",
			    "missing (the storage account; or abs://ACCOUNT@CONTAINER/PATH)");
	if (rep->account_key != NULL &&
	    (base64_decode(rep->account_key, raw, sizeof(raw), &len) != 0 || len == 0)) {
		explicit_bzero(raw, sizeof(raw));
		return fail(p, config_key_line(s, "account-key"), t, "account-key",
			    "not base64 (want the key the portal or `az storage account keys list` "
			    "shows)");
	}
	explicit_bzero(raw, sizeof(raw));
	if (rep->account_key != NULL && rep->sas_token != NULL)
		return fail(p, config_key_line(s, "sas-token"), t, "sas-token",
			    "cannot be combined with account-key: choose one");
	if (rep->sas_token != NULL && rep->sas_token[0] == '?')
		memmove(rep->sas_token, rep->sas_token + 1, strlen(rep->sas_token));
	if (rep->ca_file != NULL && make_abs(p, s, "ca-file", &rep->ca_file) != 0)
		return p->e.rc;
	if (config_key_line(s, "part-size") == 0)
		rep->part_size = CONFIG_PART_SIZE_DEFAULT;
	if (rep->part_size < CONFIG_ABS_BLOCK_MIN || rep->part_size > CONFIG_ABS_BLOCK_MAX)
		return fail(p, config_key_line(s, "part-size"), t, "part-size",
			    "%lld bytes is outside the block sizes allowed (1MiB to 4000MiB)",
			    (long long)rep->part_size);
	return 0;
}

/*
 * A host-key value: a known_hosts line ("[HOST]:PORT TYPE BASE64 [COMMENT]")
 * or a public key ("TYPE BASE64 [COMMENT]"); the key itself is parsed when
 * the backend starts. True when a key type is followed by a base64 field.
 */
static bool host_key_shape(const char *v)
{
	const char *types[] = {"ssh-", "ecdsa-", "sk-", "rsa-"};
	const char *c = v;

	while (*c != '\0') {
		size_t n = strcspn(c, " \t");

		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			const char *next = c + n + strspn(c + n, " \t");

			if (strncmp(c, types[i], strlen(types[i])) == 0 && *next != '\0')
				return strspn(next, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						    "0123456789+/=") == strcspn(next, " \t");
		}
		c += n;
		c += strspn(c, " \t");
	}
	return false;
}

/* The sftp half of config_check_replica(): as Litestream 0.3.13, explicit keys beat the url's. */
static int finish_sftp(struct parser *p, const struct section *s, struct replica_config *rep,
		       struct replica_url *u)
{
	const char *t = s->title;
	char why[256], *path;

	if (u != NULL) {
		rep->path = u->path;
		u->path = NULL;
		take_unless_set(&rep->host, &u->host);
		take_unless_set(&rep->user, &u->user);
		take_unless_set(&rep->password, &u->password);
	}
	if (rep->host == NULL)
		return fail(p, s->line, t, "host", "missing (HOST[:PORT]; or sftp://USER@HOST/PATH)");
	if (replica_url_sftp_host(rep->host, NULL, NULL, why, sizeof(why)) != 0)
		return fail(p, config_key_line(s, "host"), t, "host", "%s", why);
	if (rep->user == NULL)
		return fail(p, s->line, t, "user", "missing (the SSH user; or sftp://USER@HOST/PATH)");
	if (u == NULL) {
		if (replica_url_sftp_path(rep->path != NULL ? rep->path : "", &path) != 0)
			return oom(p);
		free(rep->path);
		rep->path = path;
	}
	if (rep->key_path != NULL && make_abs(p, s, "key-path", &rep->key_path) != 0)
		return p->e.rc;
	if (rep->known_hosts_file != NULL &&
	    make_abs(p, s, "known-hosts-file", &rep->known_hosts_file) != 0)
		return p->e.rc;
	if (rep->host_key != NULL && !host_key_shape(rep->host_key))
		return fail(p, config_key_line(s, "host-key"), t, "host-key",
			    "\"%s\" is not a known_hosts line or public key (want e.g. \"ssh-ed25519 "
			    "AAAA...\", as ssh-keyscan prints it)",
			    rep->host_key);
	if (rep->host_key != NULL && rep->known_hosts_file != NULL)
		return fail(p, config_key_line(s, "known-hosts-file"), t, "known-hosts-file",
			    "cannot be combined with host-key: choose one");
	return 0;
}

/* The replica type named by the "type" key (file when absent); 0 or fail(). */
static int type_from_key(struct parser *p, const struct section *s, struct replica_draft *d,
			 enum replica_type *type)
{
	static const struct {
		const char *name;
		enum replica_type type;
		bool gcs;
	} names[] = {
		{"file", REPLICA_FILE, false}, {"s3", REPLICA_S3, false},
		{"abs", REPLICA_ABS, false},   {"gcs", REPLICA_S3, true},
		{"sftp", REPLICA_SFTP, false},
	};

	*type = REPLICA_FILE;
	if (d->type == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(d->type, names[i].name) == 0) {
			*type = names[i].type;
			d->rc.gcs = names[i].gcs;
			return 0;
		}
	}
	return fail(p, config_key_line(s, "type"), s->title, "type",
		    "unknown replica type \"%s\" (want file, s3, gcs, abs or sftp)", d->type);
}

/* A file replica's directory: from the url, or the path key made absolute. */
static void finish_file(struct parser *p, const struct section *s, struct replica_config *rep,
			struct replica_url *up)
{
	const char *t = s->title;

	if (up != NULL) {
		rep->path = up->path;
		up->path = NULL;
	} else if (rep->path == NULL) {
		fail(p, s->line, t, "path", "missing (the replica's directory)");
	} else if (replica_url_is_url(rep->path)) {
		fail(p, config_key_line(s, "path"), t, "path", "\"%s\" is a URL: give it as url",
		     rep->path);
	} else {
		make_abs(p, s, "path", &rep->path);
	}
}

int config_check_replica(struct parser *p, const struct section *s, struct replica_draft *d)
{
	struct replica_config *rep = &d->rc;
	struct replica_url u = {0}, *up = NULL;
	const char *t = s->title;
	enum replica_type type;
	const char *foreign, *types;
	char msg[512];
	int line, rc;

	if ((rc = type_from_key(p, s, d, &type)) != 0)
		return rc;
	if (rep->url != NULL) {
		rc = replica_url_parse(rep->url, &u, msg, sizeof(msg));
		if (rc != 0)
			return fail_rc(p, rc == -ENOMEM ? rc : -EINVAL, config_key_line(s, "url"), t, "url",
				       "%s", msg);
		up = &u;
		if (d->type != NULL && (type != u.type || rep->gcs != u.gcs)) {
			const char *named = u.gcs ? "gcs" : config_replica_type_name(u.type);

			fail(p, config_key_line(s, "type"), t, "type",
			     "\"%s\" does not match the url, which names %s %s replica", d->type,
			     u.type == REPLICA_FILE || u.gcs ? "a" : "an", named);
			goto out;
		}
		rep->gcs = u.gcs;
		type = u.type;
		if (rep->path != NULL) {
			fail(p, config_key_line(s, "path"), t, "path", "cannot be set beside url");
			goto out;
		}
		if (rep->bucket != NULL) {
			fail(p, config_key_line(s, "bucket"), t, "bucket", "cannot be set beside url");
			goto out;
		}
	} else if (d->type == NULL) {
		return fail(p, s->line, t, "type", "missing (a replica needs type or url)");
	}
	rep->type = type;
	if ((foreign = config_foreign_key(s, type, &line, &types)) != NULL) {
		fail(p, line, t, foreign, "only for %s replicas, and this is %s %s replica", types,
		     type == REPLICA_FILE ? "a" : "an", config_replica_type_name(type));
		goto out;
	}
	if (type == REPLICA_FILE)
		finish_file(p, s, rep, up);
	else if (up == NULL && rep->path != NULL && replica_url_is_url(rep->path))
		fail(p, config_key_line(s, "path"), t, "path", "\"%s\" is a URL: give it as url",
		     rep->path);
	else if (type == REPLICA_ABS)
		finish_abs(p, s, rep, up);
	else if (type == REPLICA_SFTP)
		finish_sftp(p, s, rep, up);
	else
		finish_s3(p, s, rep, up);
	if (p->e.rc == 0 && config_key_line(s, "sync-interval") == 0)
		rep->sync_interval_ms = type != REPLICA_FILE ? 1000 : 0;
out:
	replica_url_free(&u);
	return p->e.rc;
}

/* Moves the drafts that name db into its replicas, in file order. */
static int attach_to(struct parser *p, struct db_config *db)
{
	size_t n = 0;

	for (size_t j = 0; j < p->n_drafts; j++)
		n += strcmp(p->drafts[j].db, db->name) == 0;
	if (n == 0)
		return 0;
	db->replicas = calloc(n, sizeof(*db->replicas));
	if (db->replicas == NULL)
		return oom(p);
	for (size_t j = 0; j < p->n_drafts; j++) {
		if (strcmp(p->drafts[j].db, db->name) == 0) {
			db->replicas[db->n_replicas++] = p->drafts[j].rc;
			memset(&p->drafts[j].rc, 0, sizeof(p->drafts[j].rc));
		}
	}
	return 0;
}

/* Moves each draft into the replicas of its db or dir, in file order. */
static int attach_replicas(struct parser *p)
{
	for (size_t i = 0; i < p->cfg.n_dirs; i++) {
		/* The template is matched by the dir's name (db.name stays NULL after). */
		struct dir_config *d = &p->cfg.dirs[i];
		int rc;

		d->db.name = d->name;
		rc = attach_to(p, &d->db);
		d->db.name = NULL;
		if (rc != 0)
			return rc;
	}
	for (size_t i = 0; i < p->cfg.n_dbs; i++)
		if (attach_to(p, &p->cfg.dbs[i]) != 0)
			return p->e.rc;
	return 0;
}

int config_check_file(struct parser *p)
{
	for (size_t i = 0; i < p->n_sections && p->e.rc == 0; i++) {
		const struct section *s = &p->sections[i];

		if (s->kind == SEC_DB) {
			finish_db(p, s);
		} else if (s->kind == SEC_DIR) {
			finish_dir(p, s);
		} else if (s->kind == SEC_REPLICA) {
			struct replica_draft *d = &p->drafts[s->index];

			if (d->db == NULL)
				fail(p, s->line, s->title, "db",
				     "missing (the name of this replica's [db NAME] section)");
			else if (find_db_named(&p->cfg, d->db) == NULL &&
				 find_dir_named(&p->cfg, d->db) == NULL)
				fail(p, config_key_line(s, "db"), s->title, "db",
				     "no section [db %s] or [dir %s]", d->db, d->db);
			else
				config_check_replica(p, s, d);
		}
	}
	return p->e.rc == 0 ? attach_replicas(p) : p->e.rc;
}
