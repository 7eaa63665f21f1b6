/*
 * The INI reader under config_load(): it reads the file line by line
 * (through inih), checks the syntax, reports each section header and each
 * `key = value` to its caller, expands ${VAR} in values when asked, and
 * formats every error as "FILE:LINE: [SECTION] KEY: message". What the
 * sections and keys mean is the caller's (config_options.c); config.h has
 * the syntax as users see it.
 *
 * What the reader settles itself, before a callback sees the line:
 * - indentation, line endings and a UTF-8 byte order mark are dropped;
 *   there are no continuation lines (inih would read an indented line as
 *   one, so the reader never lets it see the indentation);
 * - `;` and `#` start a comment line, ` ;` a comment after a value;
 * - a section header is `[KIND NAME]` or `[KIND]`, with nothing but a
 *   comment after the `]`; no two headers may give the same KIND and NAME;
 * - a key before any section header is an error;
 * - lines are at most inih's buffer (198 bytes), except a `key = value`
 *   line, whose value may be longer: only the key has to fit.
 *
 * Errors: the first one is kept in a struct config_ini_error, which the
 * caller's own checks share, so that all messages have one form; once one
 * is recorded, reading stops. Single-threaded, like the rest of config.
 */
#ifndef LITESTREAM_CONFIG_INI_H
#define LITESTREAM_CONFIG_INI_H

#include <stddef.h>

/* Where the first error goes; zero it, then set path and the buffer. */
struct config_ini_error {
	const char *path; /* the file messages name; NULL: messages carry no location */
	int rc;           /* the first error, 0 while there is none */
	char *msg;        /* the caller's, for the message; may be NULL */
	size_t msglen;
};

/*
 * Records an error unless one is recorded already (later ones are dropped)
 * and returns e->rc. The message reads "PATH:LINE: [TITLE] KEY: text",
 * leaving out what is NULL ("PATH:LINE: [TITLE]: text" without a key),
 * or just "text" when e->path is NULL. For -ENOMEM the text is
 * "out of memory" whatever fmt says.
 */
int config_ini_fail(struct config_ini_error *e, int rc, int line, const char *title,
		    const char *key, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* A section header as the reader hands it over; the strings are the reader's. */
struct config_ini_section {
	const char *title; /* "KIND NAME", or "KIND": as messages show it between brackets */
	size_t kind_len;   /* title[0..kind_len) is KIND */
	const char *name;  /* NAME, inside title; NULL when there is none */
	const char *text;  /* what stands between the brackets, as written */
	size_t text_len;
	int line;
};

/*
 * The caller's side. Each callback returns 0 to go on; to stop, it records
 * its error with config_ini_fail() on the reader's struct config_ini_error
 * and returns that.
 */
struct config_ini_handler {
	int (*on_section)(void *arg, const struct config_ini_section *s);
	/* key = value under the last section; value as written, not expanded. */
	int (*on_key)(void *arg, int line, const char *key, const char *value);
	void *arg;
};

/*
 * Reads the file e->path names (e->rc must be 0), calling h for each
 * header and key in file order. Returns 0, or e->rc: -EINVAL for a syntax
 * error or one a callback recorded, the error of open(2) or read(2)
 * ("open PATH: reason", "read PATH: reason"), -ENOMEM.
 */
int config_ini_read(const struct config_ini_handler *h, struct config_ini_error *e);

/*
 * Expands ${NAME} and $NAME in v (config.h has the rules; an unset
 * variable is "") into a malloc'd *out. On failure records the error at
 * line, [title] key, and returns it: -EINVAL for an unterminated or empty
 * "${" (the value is not echoed: it may hold a secret), -ENOMEM.
 */
int config_ini_expand(struct config_ini_error *e, int line, const char *title, const char *key,
		      const char *v, char **out);

#endif
