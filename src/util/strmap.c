/*
 * String map (strmap.h): an array of bucket lists, each entry holding its
 * key inline after the struct. Growth rehashes every entry into a table
 * twice the size; a failed growth leaves the old table (only slower).
 */
#include "util/strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_entry {
	struct strmap_entry *next;
	size_t hash;
	void *value;
	char key[];
};

static size_t hash_of(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static struct strmap_entry **slot_of(const struct strmap *m, const char *key, size_t h)
{
	struct strmap_entry **e = &m->buckets[h & (m->n_buckets - 1)];

	while (*e != NULL && ((*e)->hash != h || strcmp((*e)->key, key) != 0))
		e = &(*e)->next;
	return e;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry **e;

	if (m->n_buckets == 0)
		return NULL;
	e = slot_of(m, key, hash_of(key));
	return *e != NULL ? (*e)->value : NULL;
}

static void grow(struct strmap *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
	struct strmap_entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	size_t h = hash_of(key), len = strlen(key);
	struct strmap_entry **slot, *e;

	if (m->n >= m->n_buckets)
		grow(m);
	if (m->n_buckets == 0)
		return -ENOMEM;
	slot = slot_of(m, key, h);
	if (*slot != NULL) {
		(*slot)->value = value;
		return 0;
	}
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL)
		return -ENOMEM;
	e->next = NULL;
	e->hash = h;
	e->value = value;
	memcpy(e->key, key, len + 1);
	*slot = e;
	m->n++;
	return 0;
}

void strmap_del(struct strmap *m, const char *key)
{
	struct strmap_entry **slot, *e;

	if (m->n_buckets == 0)
		return;
	slot = slot_of(m, key, hash_of(key));
	if ((e = *slot) == NULL)
		return;
	*slot = e->next;
	free(e);
	m->n--;
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	memset(m, 0, sizeof(*m));
}
