/*
 * What the configuration loader's files share; not for use outside them.
 *
 *   config.c          the public entry: load, URL mode, lookups, free
 *   config_options.c  the table of keys, their value parsers and defaults,
 *                     and the sections as config_ini.c reads them
 *   config_check.c    the checks that need the whole file, and the
 *                     settling of a replica's type and location
 *   config_ini.c      the line reader, ${VAR} expansion and the messages
 *
 * One struct parser lives for one config_load(), config_from_args() or
 * config_replica_from_url() call. It owns everything in it until the
 * caller takes cfg (config.c's parser_done()). Per section it keeps the
 * line each key was set on (0: not set). That one array catches duplicate
 * keys, tells an explicit key from a default (an explicit `region` beats
 * the url's), and gives the checks made after the whole file is read a
 * line to point at.
 *
 * Replicas may name a [db] that comes later in the file, so they are
 * collected as drafts and moved into their databases once all sections
 * have passed their checks.
 *
 * Every function that can fail records the first error in p->e (see
 * config_ini_fail()) and returns it; once p->e.rc is set, the others
 * leave the state alone.
 */
#ifndef LITESTREAM_CONFIG_INTERNAL_H
#define LITESTREAM_CONFIG_INTERNAL_H

#include "config/config.h"
#include "config/config_ini.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

enum section_kind { SEC_LITESTREAM, SEC_DB, SEC_REPLICA, SEC_DIR };

/* How many keys config_options.c's table has (it checks this at compile time). */
#define CONFIG_N_OPTIONS 53

/* A replica section while the file is read; rc moves into its db at the end. */
struct replica_draft {
	struct replica_config rc;
	char *db;   /* the `db` key */
	char *type; /* the `type` key, as written */
};

struct section {
	enum section_kind kind;
	char *title;                     /* "db app", as messages show it between brackets */
	char *name;                      /* NAME (inside title), NULL for [litestream] */
	int line;
	size_t index;                    /* into cfg.dbs, cfg.dirs or drafts */
	int key_lines[CONFIG_N_OPTIONS]; /* line each key was set on, 0 if not */
};

struct parser {
	struct config_ini_error e; /* e.path: the file, NULL in URL mode */
	struct section *sections;
	size_t n_sections;
	size_t cur;                /* current section, SIZE_MAX before the first */
	struct config cfg;
	struct replica_draft *drafts;
	size_t n_drafts;
};

#define fail_rc(p, ...) config_ini_fail(&(p)->e, __VA_ARGS__)
#define fail(p, ...) config_ini_fail(&(p)->e, -EINVAL, __VA_ARGS__)
#define oom(p) config_ini_fail(&(p)->e, -ENOMEM, 0, NULL, NULL, "out of memory")

/* ---- config_options.c ---- */

/* Reads the file p->e.path into p: sections, keys and their values, checked one by one. */
int config_options_read(struct parser *p);

/* The line key was set on in s, 0 if it was not. */
int config_key_line(const struct section *s, const char *key);

/*
 * The first key set in replica section s that a replica of type does not
 * take (an s3 key on a file or abs replica, an abs key on s3...), or NULL;
 * *line is where and *types the types that take it ("s3", "abs", "s3 and
 * abs", "sftp").
 */
const char *config_foreign_key(const struct section *s, enum replica_type type, int *line,
			       const char **types);

/* Defaults; the replica's sync interval waits for its type (config_check_replica()). */
int config_defaults(struct config *c);
void config_db_defaults(struct db_config *db);
void config_dir_defaults(struct dir_config *d);
void config_replica_defaults(struct replica_config *rc);

/* ---- config_check.c ---- */

/* The checks that need the whole file, then the replicas moved into their dbs. */
int config_check_file(struct parser *p);

/*
 * Settles a replica's type and location from its keys and url (config.h
 * has the rules) and fills the defaults that depend on the type. The `db`
 * key is the caller's to check.
 */
int config_check_replica(struct parser *p, const struct section *s, struct replica_draft *d);

/* "file", "s3", "abs" or "sftp". */
const char *config_replica_type_name(enum replica_type t);

/* Whether two optional strings are equal (both NULL counts). */
static inline bool config_str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

#endif
