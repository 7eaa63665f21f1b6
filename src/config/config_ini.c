/*
 * The INI reader; config_ini.h has its contract, config.h the syntax.
 *
 * inih reads the file through on_read_line(), which hands it one physical
 * line per call, so the line number is known when inih calls on_ini_key().
 * The reader does three more things inih cannot be asked to: it records
 * section headers itself (inih reports none, and a [db] with no keys under
 * it would go unseen; it also cuts names at 50 bytes), it drops indentation
 * (inih would read an indented `key = value` as a continuation of the
 * value before it), and it keeps a value too long for inih's buffer (200
 * bytes in Debian's build; a long exec command or endpoint needs more)
 * aside, handing inih only "key =" and the caller the whole value. A
 * section header or key too long for the buffer is rejected. A syntax
 * error is found there too, so the first error is reported with its
 * section, and parsing stops: the reader returns NULL, which inih takes
 * as the end of the file.
 */
#include "config/config_ini.h"

#include "util/strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* A header already read: for duplicates, and for errors inih reports. */
struct seen_section {
	char *title;
	int line;
};

struct reader {
	struct config_ini_error *e;
	const struct config_ini_handler *h;
	FILE *fp;
	char *buf;        /* getline()'s */
	size_t cap;
	int lineno;
	char *long_value; /* the value of the line just read, when too long for inih */
	struct seen_section *sections;
	size_t n_sections;
};

#define fail(r, ...) config_ini_fail((r)->e, -EINVAL, __VA_ARGS__)
#define oom(r) config_ini_fail((r)->e, -ENOMEM, 0, NULL, NULL, "out of memory")

int config_ini_fail(struct config_ini_error *e, int rc, int line, const char *title,
		    const char *key, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (e->rc != 0)
		return e->rc;
	e->rc = rc;
	if (rc == -ENOMEM)
		snprintf(msg, sizeof(msg), "out of memory");
	else {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	if (e->msg == NULL || e->msglen == 0)
		return rc;
	if (e->path == NULL)
		snprintf(e->msg, e->msglen, "%s", msg);
	else if (title != NULL && key != NULL)
		snprintf(e->msg, e->msglen, "%s:%d: [%s] %s: %s", e->path, line, title, key, msg);
	else if (title != NULL)
		snprintf(e->msg, e->msglen, "%s:%d: [%s]: %s", e->path, line, title, msg);
	else if (key != NULL)
		snprintf(e->msg, e->msglen, "%s:%d: %s: %s", e->path, line, key, msg);
	else
		snprintf(e->msg, e->msglen, "%s:%d: %s", e->path, line, msg);
	return rc;
}

/* An error of the file itself ("open PATH: reason"), with no line. */
static int fail_io(struct config_ini_error *e, int err, const char *what)
{
	if (e->rc != 0)
		return e->rc;
	e->rc = -err;
	if (e->msg != NULL && e->msglen > 0)
		snprintf(e->msg, e->msglen, "%s %s: %s", what, e->path, strerror(err));
	return e->rc;
}

/* ---- ${VAR} expansion ------------------------------------------------------ */

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

/* Expands v into *out; -EINVAL for a "${" without "}" or with an empty name; -ENOMEM. */
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

int config_ini_expand(struct config_ini_error *e, int line, const char *title, const char *key,
		      const char *v, char **out)
{
	int rc = expand_env(v, out);

	if (rc == -EINVAL) /* the value is not echoed: it may be a secret */
		return config_ini_fail(e, rc, line, title, key, "unterminated \"${\" or empty \"${}\"");
	if (rc != 0)
		return config_ini_fail(e, -ENOMEM, 0, NULL, NULL, "out of memory");
	return 0;
}

/* ---- lines ------------------------------------------------------------------ */

static const char *current_title(const struct reader *r)
{
	return r->n_sections > 0 ? r->sections[r->n_sections - 1].title : NULL;
}

/* The title of the section current at line (for errors inih reports). */
static const char *title_at(const struct reader *r, int line)
{
	const char *t = NULL;

	for (size_t i = 0; i < r->n_sections && r->sections[i].line <= line; i++)
		t = r->sections[i].title;
	return t;
}

/* Records the header title at the current line; 0, or -1 with the error recorded. */
static int add_section(struct reader *r, char *title)
{
	struct seen_section *grown;

	for (size_t i = 0; i < r->n_sections; i++) {
		if (strcmp(r->sections[i].title, title) == 0) {
			fail(r, r->lineno, title, NULL, "duplicate section (first on line %d)",
			     r->sections[i].line);
			free(title);
			return -1;
		}
	}
	grown = realloc(r->sections, (r->n_sections + 1) * sizeof(*r->sections));
	if (grown == NULL) {
		free(title);
		oom(r);
		return -1;
	}
	r->sections = grown;
	r->sections[r->n_sections].title = title;
	r->sections[r->n_sections++].line = r->lineno;
	return 0;
}

/* A header "[KIND NAME]" at line (which starts with '['): checked, recorded, handed over. */
static int read_section(struct reader *r, const char *line)
{
	const char *c = line + 1, *end, *kend, *name, *cur = current_title(r);
	struct config_ini_section s;
	size_t klen, nlen;
	char *title;

	/* As inih: a ';' after whitespace starts a comment, even inside []. */
	for (end = c; *end != '\0' && *end != ']'; end++)
		if (*end == ';' && isspace((unsigned char)end[-1]))
			break;
	if (*end != ']')
		return fail(r, r->lineno, cur, NULL, "syntax error: no ']' closing the section");
	for (const char *a = end + 1; *a != '\0' && *a != ';' && *a != '#'; a++)
		if (!isspace((unsigned char)*a))
			return fail(r, r->lineno, cur, NULL, "syntax error: text after ']'");
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

	title = malloc(klen + nlen + 2);
	if (title == NULL)
		return oom(r);
	if (nlen > 0)
		sprintf(title, "%.*s %.*s", (int)klen, c, (int)nlen, name);
	else
		sprintf(title, "%.*s", (int)klen, c);
	if (add_section(r, title) != 0)
		return r->e->rc;
	s.title = title;
	s.kind_len = klen;
	s.name = nlen > 0 ? title + klen + 1 : NULL;
	s.text = line + 1;
	s.text_len = (size_t)(end - line - 1);
	s.line = r->lineno;
	return r->h->on_section(r->h->arg, &s);
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
 * " ;comment" removed), goes to r->long_value, and line is cut to "key =".
 * 0, or -1 with the error recorded (the key itself is too long).
 */
static int keep_long_value(struct reader *r, char *line, size_t max)
{
	char *sep = line + strcspn(line, "=:"), *v = sep + 1, *end;

	if ((size_t)(sep - line) + 1 > max) {
		fail(r, r->lineno, current_title(r), NULL, "key longer than %zu bytes", max);
		return -1;
	}
	while (isspace((unsigned char)*v))
		v++;
	for (end = v; *end != '\0'; end++)
		if (*end == ';' && end > v && isspace((unsigned char)end[-1]))
			break;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	r->long_value = strndup(v, (size_t)(end - v));
	if (r->long_value == NULL) {
		oom(r);
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
	struct reader *r = stream;
	const char *cur;
	ssize_t n;
	size_t len;
	char *line;

	if (r->e->rc != 0)
		return NULL;
	errno = 0;
	n = getline(&r->buf, &r->cap, r->fp);
	if (n < 0) {
		if (ferror(r->fp))
			fail_io(r->e, errno != 0 ? errno : EIO, "read");
		return NULL;
	}
	r->lineno++;
	cur = current_title(r);
	line = r->buf;
	len = (size_t)n;
	if (memchr(line, '\0', len) != NULL) {
		fail(r, r->lineno, cur, NULL, "a NUL byte in the line");
		return NULL;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (r->lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	while (isspace((unsigned char)*line)) {
		line++;
		len--;
	}
	free(r->long_value);
	r->long_value = NULL;
	/*
	 * Two bytes short of inih's buffer: one for the NUL, and one so that an
	 * inih built to grow its buffer never asks for the rest of a line.
	 */
	if (num >= 2 && len > (size_t)num - 2 && *line != '[' && key_value_line(line)) {
		if (keep_long_value(r, line, (size_t)num - 2) != 0)
			return NULL;
		len = strlen(line);
	}
	if (num < 2 || len > (size_t)num - 2) {
		fail(r, r->lineno, cur, NULL, "line longer than %d bytes", num - 2);
		return NULL;
	}
	if (*line == '[') {
		if (read_section(r, line) != 0)
			return NULL;
	} else if (*line != '\0' && *line != ';' && *line != '#' && !key_value_line(line)) {
		fail(r, r->lineno, cur, NULL, "syntax error: want \"key = value\"");
		return NULL;
	}
	memcpy(str, line, len + 1);
	return str;
}

static int on_ini_key(void *user, const char *section, const char *key, const char *raw)
{
	struct reader *r = user;

	(void)section; /* the reader tracks sections; inih cuts long names */
	if (r->e->rc != 0)
		return 0;
	if (r->n_sections == 0) {
		fail(r, r->lineno, NULL, key, "not in any section");
		return 0;
	}
	r->h->on_key(r->h->arg, r->lineno, key, r->long_value != NULL ? r->long_value : raw);
	return r->e->rc == 0;
}

int config_ini_read(const struct config_ini_handler *h, struct config_ini_error *e)
{
	struct reader r = {.e = e, .h = h};
	int n;

	r.fp = fopen(e->path, "r");
	if (r.fp == NULL)
		return fail_io(e, errno, "open");
	n = ini_parse_stream(on_read_line, &r, on_ini_key, &r);
	if (e->rc == 0 && n == -2)
		oom(&r);
	else if (e->rc == 0 && n != 0)
		fail(&r, n, title_at(&r, n), NULL, "syntax error");
	for (size_t i = 0; i < r.n_sections; i++)
		free(r.sections[i].title);
	free(r.sections);
	free(r.buf);
	free(r.long_value);
	fclose(r.fp);
	return e->rc;
}
