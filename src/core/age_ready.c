/*
 * age headers made ahead of the objects that use them; see age.h.
 *
 * A header costs an X25519 key pair and an exchange per recipient (about
 * 0.1 ms here), which would otherwise sit between a commit and its
 * segment in the replica. So a threadpool job makes the next AGE_READY
 * while the current object is on its way, and age_writer_begin() takes
 * one. Each holds its own random file key and is used for exactly one
 * object: taking it removes it, and it is wiped when used or freed. The
 * pool is the keys' only mutable part, behind its mutex.
 */
#include "core/age.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define AGE_READY 2

struct age_ready {
	pthread_mutex_t lock;
	struct age_prepared slot[AGE_READY];
	size_t n;
	bool filling; /* one age_keys_prepare() at a time */
};

struct age_ready *age_ready_new(void)
{
	struct age_ready *q = calloc(1, sizeof(*q));

	if (q != NULL && pthread_mutex_init(&q->lock, NULL) != 0) {
		free(q);
		return NULL;
	}
	return q;
}

void age_prepared_wipe(struct age_prepared *p)
{
	OPENSSL_cleanse(p->file_key, sizeof(p->file_key));
	free(p->hdr);
	p->hdr = NULL;
	p->n = 0;
}

void age_ready_free(struct age_ready *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n; i++)
		age_prepared_wipe(&q->slot[i]);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int age_prepared_make(const struct age_keys *k, struct age_prepared *p)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = age_random(p->file_key, sizeof(p->file_key))) != 0 ||
	    (rc = age_header_make(k, p->file_key, &p->hdr, &p->n)) != 0)
		age_prepared_wipe(p);
	return rc;
}

bool age_ready_take(const struct age_keys *k, struct age_prepared *p)
{
	struct age_ready *q = k->ready;
	bool got = false;

	if (q == NULL)
		return false;
	pthread_mutex_lock(&q->lock);
	if (q->n > 0) {
		*p = q->slot[--q->n];
		memset(&q->slot[q->n], 0, sizeof(q->slot[q->n]));
		got = true;
	}
	pthread_mutex_unlock(&q->lock);
	return got;
}

bool age_keys_want_prepare(const struct age_keys *k)
{
	struct age_ready *q = k != NULL ? k->ready : NULL;
	bool want;

	if (q == NULL)
		return false;
	pthread_mutex_lock(&q->lock);
	want = q->n < AGE_READY && !q->filling;
	pthread_mutex_unlock(&q->lock);
	return want;
}

int age_keys_prepare(const struct age_keys *k)
{
	struct age_ready *q = k != NULL ? k->ready : NULL;
	int rc = 0;

	if (q == NULL)
		return 0;
	pthread_mutex_lock(&q->lock);
	if (q->filling) {
		pthread_mutex_unlock(&q->lock);
		return 0;
	}
	q->filling = true;
	while (q->n < AGE_READY && rc == 0) {
		struct age_prepared p;
		/* Made outside the lock: a writer may take one meanwhile. */
		pthread_mutex_unlock(&q->lock);
		rc = age_prepared_make(k, &p);
		pthread_mutex_lock(&q->lock);
		if (rc == 0 && q->n < AGE_READY)
			q->slot[q->n++] = p;
		else if (rc == 0)
			age_prepared_wipe(&p);
	}
	q->filling = false;
	pthread_mutex_unlock(&q->lock);
	return rc;
}
