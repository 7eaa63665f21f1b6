/*
 * One HTTP client per loop, shared (http_client.h): curl's connection
 * cache in one multi handle keeps connections per host, so every S3
 * replica of a process going to the same endpoint shares one pool and one
 * set of loop handles, instead of a thousand replicas holding a thousand
 * multi handles and idle connections. Reference-counted: the last release
 * closes it. A handful of loops at most (the tests'); a small table.
 */
#include "net/http_client.h"

#include <errno.h>
#include <stddef.h>

#define MAX_LOOPS 16

static struct {
	uv_loop_t *loop;
	struct http_client *client;
	unsigned refs;
} shared[MAX_LOOPS];

int http_client_shared(uv_loop_t *loop, struct http_client **out)
{
	size_t free_slot = MAX_LOOPS;
	int rc;

	for (size_t i = 0; i < MAX_LOOPS; i++) {
		if (shared[i].client != NULL && shared[i].loop == loop) {
			shared[i].refs++;
			*out = shared[i].client;
			return 0;
		}
		if (shared[i].client == NULL && free_slot == MAX_LOOPS)
			free_slot = i;
	}
	if (free_slot == MAX_LOOPS)
		return http_client_new(loop, out); /* unshared: http_client_release() closes it */
	if ((rc = http_client_new(loop, &shared[free_slot].client)) != 0)
		return rc;
	shared[free_slot].loop = loop;
	shared[free_slot].refs = 1;
	*out = shared[free_slot].client;
	return 0;
}

void http_client_release(struct http_client *c, http_client_close_cb cb, void *data)
{
	for (size_t i = 0; i < MAX_LOOPS; i++) {
		if (shared[i].client != c)
			continue;
		if (--shared[i].refs > 0) {
			if (cb != NULL)
				cb(data);
			return;
		}
		shared[i].client = NULL;
		shared[i].loop = NULL;
		break;
	}
	http_client_close(c, cb, data);
}
