/*
 * Text tables laid out byte for byte as Go's text/tabwriter lays them out
 * with NewWriter(w, 0, 8, 2, ' ', 0), which is how Litestream 0.3's listing
 * commands print: scripts that cut columns out of its output keep working.
 *
 * The rules, as tabwriter applies them with those settings:
 *
 * - A row is a list of cells. Every cell but the last one of a row belongs
 *   to a column; the last one is trailing text, written as is, never
 *   padded (so no line ends in spaces unless its last cell does).
 * - A column is aligned over a block of consecutive rows that all have a
 *   cell in it; a row with fewer cells ends the block, and the next row
 *   that has the column starts a new one with its own width. Blocks of
 *   column j+1 nest inside those of column j.
 * - A column's width is its widest cell in the block plus 2 (minwidth 0);
 *   a cell is padded with spaces to that width, empty cells included.
 * - Widths count Unicode code points of UTF-8 text, an invalid byte
 *   counting as one, as Go's utf8.RuneCount does.
 * - Every row ends with '\n'.
 *
 * Cells must not contain '\t' or '\n' (tabwriter would split them); the
 * writer does not check. Ownership: the table owns copies of its cells.
 */
#ifndef LITESTREAM_TABLE_H
#define LITESTREAM_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define TABLE_PADDING 2

struct table_row {
	char **cells;
	size_t n;
};

struct table {
	struct table_row *rows;
	size_t n_rows;
	size_t cap;
	size_t max_cells; /* most cells in one row */
};

void table_init(struct table *t);

/* Appends a row of n cells (copied; n >= 1). 0 or -ENOMEM (t unchanged). */
int table_add_row(struct table *t, const char *const *cells, size_t n);

/* The table as text, malloc'd and the caller's; NULL when out of memory. */
char *table_render(const struct table *t);

/* Writes table_render()'s text to out. 0, -ENOMEM or -EIO. */
int table_write(const struct table *t, FILE *out);

/* Frees the rows and leaves t empty and reusable. */
void table_free(struct table *t);

/* Display width of s as tabwriter counts it (code points). */
size_t table_text_width(const char *s);

#endif
