#include "util/shellwords.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct words {
	char **v;
	size_t n, cap;
};

static int push(struct words *w, const char *word, size_t len)
{
	char *copy;

	if (w->n + 2 > w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		char **v = realloc(w->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	copy = malloc(len + 1);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, word, len);
	copy[len] = '\0';
	w->v[w->n++] = copy;
	w->v[w->n] = NULL;
	return 0;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* Inside "...": the characters a backslash escapes. */
static bool dq_escapable(char c)
{
	return c == '\\' || c == '"' || c == '$' || c == '`' || c == '\n';
}

int shellwords_split(const char *s, char ***out, size_t *n, char *err, size_t errlen)
{
	struct words w = {0};
	size_t len = strlen(s), wl = 0;
	char *word = malloc(len + 1); /* no word is longer than the line */
	bool in_word = false;
	int rc = 0;

	if (word == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len && rc == 0; i++) {
		char c = s[i];

		if (blank(c)) {
			if (in_word)
				rc = push(&w, word, wl);
			in_word = false;
			wl = 0;
		} else if (c == '\'') {
			const char *end = strchr(s + i + 1, '\'');

			if (end == NULL) {
				snprintf(err, errlen, "unterminated ' (opened at character %zu)", i + 1);
				rc = -EINVAL;
				break;
			}
			size_t stop = (size_t)(end - s);

			memcpy(word + wl, s + i + 1, stop - i - 1);
			wl += stop - i - 1;
			i = stop;
			in_word = true;
		} else if (c == '"') {
			size_t open = i++;

			for (; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len && dq_escapable(s[i + 1])) {
					if (s[++i] != '\n')
						word[wl++] = s[i];
				} else {
					word[wl++] = s[i];
				}
			}
			if (i >= len) {
				snprintf(err, errlen, "unterminated \" (opened at character %zu)", open + 1);
				rc = -EINVAL;
				break;
			}
			in_word = true;
		} else if (c == '\\') {
			if (i + 1 >= len) {
				snprintf(err, errlen, "a backslash ends the command");
				rc = -EINVAL;
				break;
			}
			if (s[++i] != '\n') {
				word[wl++] = s[i];
				in_word = true;
			}
		} else {
			word[wl++] = c;
			in_word = true;
		}
	}
	if (rc == 0 && in_word)
		rc = push(&w, word, wl);
	free(word);
	if (rc == 0 && w.n == 0) {
		snprintf(err, errlen, "no command");
		rc = -EINVAL;
	}
	if (rc != 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		shellwords_free(w.v);
		return rc;
	}
	*out = w.v;
	*n = w.n;
	return 0;
}

void shellwords_free(char **words)
{
	if (words == NULL)
		return;
	for (char **p = words; *p != NULL; p++)
		free(*p);
	free(words);
}
