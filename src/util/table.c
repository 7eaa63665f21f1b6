/*
 * Tabwriter-compatible tables; see table.h for the layout rules.
 *
 * The layout is tabwriter's own recursion: format() finds, for the column
 * at depth `depth`, each block of consecutive rows that have a cell in it,
 * fixes that column's width for the block and recurses into the next
 * column within the block; rows outside every block of a column are
 * written with the widths known so far. Mirroring the recursion rather
 * than computing one width per column is what makes ragged tables (rows
 * with different cell counts) come out as Go prints them.
 */
#include "util/table.h"
#include "util/utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void table_init(struct table *t)
{
	memset(t, 0, sizeof(*t));
}

static void row_free(struct table_row *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->cells[i]);
	free(r->cells);
}

int table_add_row(struct table *t, const char *const *cells, size_t n)
{
	struct table_row r = {NULL, 0};

	if (n == 0)
		return -EINVAL;
	if (t->n_rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct table_row *v = realloc(t->rows, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		t->rows = v;
		t->cap = cap;
	}
	r.cells = calloc(n, sizeof(*r.cells));
	if (r.cells == NULL)
		return -ENOMEM;
	for (; r.n < n; r.n++) {
		r.cells[r.n] = strdup(cells[r.n] ? cells[r.n] : "");
		if (r.cells[r.n] == NULL) {
			row_free(&r);
			return -ENOMEM;
		}
	}
	t->rows[t->n_rows++] = r;
	if (n > t->max_cells)
		t->max_cells = n;
	return 0;
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n_rows; i++)
		row_free(&t->rows[i]);
	free(t->rows);
	table_init(t);
}

size_t table_text_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p != '\0') {
		size_t len = utf8_seq_len(p, strnlen((const char *)p, 4));
		/* An invalid byte is one code point (U+FFFD) for tabwriter. */
		p += len ? len : 1;
		n++;
	}
	return n;
}

struct layout {
	const struct table *t;
	FILE *out;
	size_t *widths; /* widths[0..depth) of the enclosing blocks */
	size_t depth;
};

static void write_rows(struct layout *l, size_t row0, size_t row1)
{
	for (size_t i = row0; i < row1; i++) {
		const struct table_row *r = &l->t->rows[i];
		for (size_t j = 0; j < r->n; j++) {
			fputs(r->cells[j], l->out);
			/* Only cells inside a column block are padded; the last never is. */
			if (j < l->depth) {
				size_t w = table_text_width(r->cells[j]);
				for (; w < l->widths[j]; w++)
					fputc(' ', l->out);
			}
		}
		fputc('\n', l->out);
	}
}

/* True if row i has a cell in column c that is not its last (trailing) cell. */
static int in_column(const struct layout *l, size_t i, size_t c)
{
	return c + 1 < l->t->rows[i].n;
}

static void format(struct layout *l, size_t row0, size_t row1)
{
	size_t column = l->depth;

	for (size_t i = row0; i < row1; i++) {
		size_t width = 0;

		if (!in_column(l, i, column))
			continue;
		/* Rows before the block only know the enclosing columns. */
		write_rows(l, row0, i);
		row0 = i;
		for (; i < row1 && in_column(l, i, column); i++) {
			size_t w = table_text_width(l->t->rows[i].cells[column]) + TABLE_PADDING;
			if (w > width)
				width = w;
		}
		l->widths[l->depth++] = width;
		format(l, row0, i);
		l->depth--;
		row0 = i;
		/* Row i (if any) ended the block, so it cannot start one: skip it as tabwriter does. */
		if (i == row1)
			break;
	}
	write_rows(l, row0, row1);
}

char *table_render(const struct table *t)
{
	struct layout l = {t, NULL, NULL, 0};
	char *text = NULL;
	size_t len = 0;

	l.widths = calloc(t->max_cells ? t->max_cells : 1, sizeof(*l.widths));
	if (l.widths == NULL)
		return NULL;
	l.out = open_memstream(&text, &len);
	if (l.out == NULL) {
		free(l.widths);
		return NULL;
	}
	format(&l, 0, t->n_rows);
	if (ferror(l.out)) {
		fclose(l.out);
		free(text);
		text = NULL;
	} else if (fclose(l.out) != 0) {
		free(text);
		text = NULL;
	}
	free(l.widths);
	return text;
}

int table_write(const struct table *t, FILE *out)
{
	char *text = table_render(t);
	int rc = 0;

	if (text == NULL)
		return -ENOMEM;
	if (fputs(text, out) == EOF || fflush(out) != 0)
		rc = -EIO;
	free(text);
	return rc;
}
