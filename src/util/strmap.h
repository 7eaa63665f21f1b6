/*
 * A map from strings to pointers: chained hashing (FNV-1a), doubling at
 * one entry per bucket, so that a lookup costs the same with a thousand
 * databases as with one. The map owns copies of its keys and borrows its
 * values. Not thread-safe (the loop's).
 */
#ifndef LITESTREAM_UTIL_STRMAP_H
#define LITESTREAM_UTIL_STRMAP_H

#include <stddef.h>

struct strmap_entry;

struct strmap {
	struct strmap_entry **buckets;
	size_t n_buckets;
	size_t n;
};

/* The value of key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);

/* Sets key to value (replacing what it held). 0 or -ENOMEM (then the map is unchanged). */
int strmap_put(struct strmap *m, const char *key, void *value);

/* Removes key; unknown keys are fine. */
void strmap_del(struct strmap *m, const char *key);

/* Frees the map's memory (not the values) and zeroes it. */
void strmap_free(struct strmap *m);

#endif
