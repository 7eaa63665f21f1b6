/*
 * A growing, NUL-terminated string for building request lines, XML bodies
 * and expanded config values. Appending never fails on the spot: running
 * out of memory sets oom, later appends do nothing, and the builder checks
 * once at the end (strbuf_take()).
 */
#ifndef LITESTREAM_STRBUF_H
#define LITESTREAM_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *p;    /* NULL until something is reserved; then always NUL-terminated */
	size_t len; /* excluding the NUL */
	size_t cap;
	bool oom;
};

/* Room for more bytes (and the NUL) after len. */
void strbuf_reserve(struct strbuf *b, size_t more);
void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_putc(struct strbuf *b, char c);
void strbuf_free(struct strbuf *b);

/*
 * Hands the string over: 0 with *out malloc'd (never NULL, "" when empty)
 * and *len its length (len may be NULL), or -ENOMEM (the buffer is freed).
 */
int strbuf_take(struct strbuf *b, char **out, size_t *len);

#endif
