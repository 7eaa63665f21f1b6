/*
 * The file backend: a replica in a local directory (or any mounted file
 * system). Each operation is a blocking job on libuv's threadpool.
 *
 * Objects appear whole: a file is written under KEY.tmp, fsynced, renamed
 * to KEY, and the directory fsynced. Listings skip *.tmp files, which are
 * leftovers of an interrupted write.
 */
#include "backend/backend_job.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MODE 0755
#define FILE_MODE 0644

struct file_backend {
	struct backend base;
	char *root;
};

struct file_op {
	struct backend_job job;
	struct file_backend *fb;
	int rc;
	char err[512];
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int fail(struct file_op *op, int rc, const char *what, const char *path)
{
	snprintf(op->err, sizeof(op->err), "%s %s: %s", what, path, strerror(-rc));
	return rc;
}

static int do_list(struct file_op *op)
{
	char *dir = path_join(op->fb->root, op->job.key);
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (dir == NULL)
		return -ENOMEM;
	d = opendir(dir);
	if (d == NULL) {
		rc = errno == ENOENT ? 0 : fail(op, -errno, "list", dir);
		free(dir);
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (e->d_name[0] == '.' || ends_with(e->d_name, ".tmp"))
			continue;
		char *p = path_join(dir, e->d_name);
		if (p == NULL || stat(p, &st) != 0) {
			free(p);
			continue; /* removed meanwhile */
		}
		free(p);
		struct backend_entry *v = realloc(op->job.list.v, (op->job.list.n + 1) * sizeof(*v));
		if (v == NULL) {
			rc = -ENOMEM;
			break;
		}
		op->job.list.v = v;
		v[op->job.list.n].name = strdup(e->d_name);
		v[op->job.list.n].size = (uint64_t)st.st_size;
		v[op->job.list.n].mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		v[op->job.list.n].is_dir = S_ISDIR(st.st_mode);
		if (v[op->job.list.n].name == NULL) {
			rc = -ENOMEM;
			break;
		}
		op->job.list.n++;
	}
	closedir(d);
	free(dir);
	return rc;
}

static int do_put(struct file_op *op)
{
	char *final = path_join(op->fb->root, op->job.key);
	char *tmp = final ? str_printf("%s.tmp", final) : NULL;
	char dir[4096];
	int rc;

	if (tmp == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = fs_parent_dir(final, dir, sizeof(dir))) != 0) {
		fail(op, rc, "put", final);
		goto out;
	}
	if (strcmp(op->job.local, tmp) != 0) {
		unlink(tmp);
		rc = fs_copy_file(op->job.local, tmp, FILE_MODE);
		if (rc == -ENOENT && access(op->job.local, F_OK) == 0) {
			/* First object in this directory. */
			if ((rc = fs_mkdir_p(dir, DIR_MODE)) != 0) {
				fail(op, rc, "mkdir", dir);
				goto out;
			}
			rc = fs_copy_file(op->job.local, tmp, FILE_MODE);
		}
		if (rc != 0) {
			fail(op, rc, "write", tmp);
			unlink(tmp);
			goto out;
		}
	}
	if (rename(tmp, final) != 0) {
		rc = fail(op, -errno, "rename", final);
		unlink(tmp);
		goto out;
	}
	if ((rc = fs_fsync_dir(dir)) != 0)
		fail(op, rc, "fsync", dir);
out:
	free(final);
	free(tmp);
	return rc;
}

static int do_get(struct file_op *op)
{
	char *src = path_join(op->fb->root, op->job.key);
	int rc;

	if (src == NULL)
		return -ENOMEM;
	unlink(op->job.local);
	rc = fs_copy_file(src, op->job.local, 0600);
	if (rc != 0)
		fail(op, rc, "read", src);
	free(src);
	return rc;
}

static int do_remove(struct file_op *op)
{
	int rc = 0;

	for (size_t i = 0; i < op->job.n_keys; i++) {
		char *p = path_join(op->fb->root, op->job.keys[i]);
		if (p == NULL)
			return -ENOMEM;
		if (unlink(p) != 0 && errno != ENOENT && rc == 0)
			rc = fail(op, -errno, "remove", p);
		/* Drop directories the removal left empty, up to the root. */
		char dir[4096];
		while (fs_parent_dir(p, dir, sizeof(dir)) == 0 && strlen(dir) > strlen(op->fb->root) &&
		       rmdir(dir) == 0)
			strcpy(p, dir);
		free(p);
	}
	return rc;
}

static void on_work(uv_work_t *req)
{
	struct file_op *op = req->data;

	switch (op->job.kind) {
	case BACKEND_JOB_LIST:
		op->rc = do_list(op);
		break;
	case BACKEND_JOB_PUT:
		op->rc = do_put(op);
		break;
	case BACKEND_JOB_GET:
		op->rc = do_get(op);
		break;
	case BACKEND_JOB_REMOVE:
		op->rc = do_remove(op);
		break;
	}
}

static void on_after(uv_work_t *req, int status)
{
	struct file_op *op = req->data;

	if (status == UV_ECANCELED) {
		op->rc = -ECANCELED;
		snprintf(op->err, sizeof(op->err), "cancelled");
	}
	backend_job_answer(&op->job, op->rc, op->err);
	backend_job_release(&op->job);
	free(op);
}

/* Queues the job, or answers at once with the error. */
static void submit(struct backend *b, enum backend_job_kind kind, const char *key,
		   const char *local, char *const *keys, size_t n_keys, backend_done_cb done,
		   backend_list_cb listed, void *arg)
{
	struct file_op *op = calloc(1, sizeof(*op));
	int rc;

	if (op == NULL || backend_job_init(&op->job, op, kind, key, local, keys, n_keys) != 0) {
		free(op);
		backend_job_refuse(done, listed, arg, -ENOMEM, "out of memory");
		return;
	}
	op->fb = (struct file_backend *)b;
	backend_job_callback(&op->job, done, listed, arg);
	rc = uv_queue_work(b->loop, &op->job.req, on_work, on_after);
	if (rc != 0) {
		op->rc = rc;
		snprintf(op->err, sizeof(op->err), "%s", uv_strerror(rc));
		on_after(&op->job.req, 0);
	}
}

static void file_list(struct backend *b, const char *dir, backend_list_cb cb, void *arg)
{
	submit(b, BACKEND_JOB_LIST, dir, NULL, NULL, 0, NULL, cb, arg);
}

static void file_put(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		     void *arg)
{
	submit(b, BACKEND_JOB_PUT, key, local_path, NULL, 0, cb, NULL, arg);
}

static void file_get(struct backend *b, const char *key, const char *local_path, backend_done_cb cb,
		     void *arg)
{
	submit(b, BACKEND_JOB_GET, key, local_path, NULL, 0, cb, NULL, arg);
}

static void file_remove(struct backend *b, char *const *keys, size_t n, backend_done_cb cb, void *arg)
{
	submit(b, BACKEND_JOB_REMOVE, NULL, NULL, keys, n, cb, NULL, arg);
}

static char *file_stage_path(struct backend *b, const char *key)
{
	struct file_backend *fb = (struct file_backend *)b;

	return str_printf("%s/%s.tmp", fb->root, key);
}

static char *file_local_path(struct backend *b, const char *key)
{
	struct file_backend *fb = (struct file_backend *)b;

	return path_join(fb->root, key);
}

static void file_free(struct backend *b)
{
	struct file_backend *fb = (struct file_backend *)b;

	free(fb->root);
	age_keys_free(b->age);
	free(b->describe);
	free(fb);
}

static const struct backend_ops file_ops = {
	.type = "file",
	.list = file_list,
	.put = file_put,
	.get = file_get,
	.remove = file_remove,
	.stage_path = file_stage_path,
	.local_path = file_local_path,
	.free = file_free,
};

int backend_file_new(uv_loop_t *loop, const char *root, struct backend **out)
{
	struct file_backend *fb = calloc(1, sizeof(*fb));

	if (fb == NULL)
		return -ENOMEM;
	fb->base.ops = &file_ops;
	fb->base.loop = loop;
	fb->root = strdup(root);
	fb->base.describe = str_printf("file://%s", root);
	if (fb->root == NULL || fb->base.describe == NULL) {
		file_free(&fb->base);
		return -ENOMEM;
	}
	*out = &fb->base;
	return 0;
}
