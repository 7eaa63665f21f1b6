/* The operation record of the blocking backends; see backend_job.h. */
#include "backend/backend_job.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int backend_job_init(struct backend_job *j, void *owner, enum backend_job_kind kind,
		     const char *key, const char *local, char *const *keys, size_t n_keys)
{
	memset(j, 0, sizeof(*j));
	j->req.data = owner;
	j->kind = kind;
	if ((key != NULL && (j->key = strdup(key)) == NULL) ||
	    (local != NULL && (j->local = strdup(local)) == NULL) ||
	    (j->keys = calloc(n_keys ? n_keys : 1, sizeof(char *))) == NULL)
		goto fail;
	for (; j->n_keys < n_keys; j->n_keys++)
		if ((j->keys[j->n_keys] = strdup(keys[j->n_keys])) == NULL)
			goto fail;
	return 0;
fail:
	backend_job_release(j);
	return -ENOMEM;
}

void backend_job_callback(struct backend_job *j, backend_done_cb done, backend_list_cb listed,
			  void *arg)
{
	j->done = done;
	j->listed = listed;
	j->arg = arg;
}

void backend_job_release(struct backend_job *j)
{
	free(j->key);
	free(j->local);
	for (size_t i = 0; i < j->n_keys; i++)
		free(j->keys[i]);
	free(j->keys);
	backend_list_free(&j->list);
	j->key = j->local = NULL;
	j->keys = NULL;
	j->n_keys = 0;
}

void backend_job_answer(struct backend_job *j, int rc, const char *err)
{
	if (rc == 0)
		err = NULL;
	else if (err == NULL || err[0] == '\0')
		err = strerror(-rc);
	if (j->kind == BACKEND_JOB_LIST)
		j->listed(j->arg, rc, err, &j->list);
	else
		j->done(j->arg, rc, err);
}

void backend_job_refuse(backend_done_cb done, backend_list_cb listed, void *arg, int rc,
			const char *why)
{
	if (listed != NULL)
		listed(arg, rc, why, NULL);
	else
		done(arg, rc, why);
}
