/*
 * The sftp backend's jobs (see backend_sftp_internal.h), each a sequence
 * of blocking SFTP calls on the replica's one session, run on the
 * threadpool:
 *
 * - list: the names directly under a directory (".", "..", hidden names
 *   and *.tmp leftovers of an interrupted put skipped); a missing
 *   directory is an empty list.
 * - put: KEY.tmp written in the target directory (created with its
 *   parents when missing), closed, then renamed to KEY, so that a reader
 *   never sees part of an object. libssh 0.10 has no call for
 *   posix-rename@openssh.com and OpenSSH's plain rename does not replace,
 *   so a KEY that exists already (a retried put whose reply was lost) is
 *   removed first: it then briefly is missing, never partial.
 * - get: KEY read into the local file.
 * - remove: each key unlinked (missing ones are fine), then the
 *   directories this left empty removed, deepest first, up to the root,
 *   as the file backend does, so that a removed generation leaves no
 *   empty directory for listings to find.
 *
 * A write that fails with SSH_FX_FAILURE (OpenSSH's answer to ENOSPC as to
 * most errors) asks the server for the file system's free space
 * (statvfs@openssh.com) to say whether the disk is full.
 */
#include "backend/backend_sftp_internal.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define REMOTE_MODE 0644
#define REMOTE_DIR_MODE 0755

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int list_add(struct backend_list *l, sftp_attributes a)
{
	struct backend_entry *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	v[l->n].name = strdup(a->name);
	if (v[l->n].name == NULL)
		return -ENOMEM;
	v[l->n].size = a->size;
	v[l->n].mtime_ms = (int64_t)a->mtime * 1000;
	v[l->n].is_dir = a->type == SSH_FILEXFER_TYPE_DIRECTORY ||
			 ((a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) && S_ISDIR(a->permissions));
	l->n++;
	return 0;
}

int sftp_job_list(struct sftp_backend *sb, const char *dir, struct backend_list *out,
		  struct sftp_result *res)
{
	char *path = sftp_remote_path(sb, dir);
	sftp_dir d = NULL;
	sftp_attributes a;
	int rc;

	if (path == NULL)
		return -ENOMEM;
	if ((rc = sftp_conn_open(sb, res)) != 0)
		goto out;
	if ((d = sftp_opendir(sb->sftp, path)) == NULL) {
		rc = sftp_conn_fail(sb, res, "list", path);
		if (rc == -ENOENT) {
			rc = 0;
			res->err[0] = '\0';
		}
		goto out;
	}
	while ((a = sftp_readdir(sb->sftp, d)) != NULL) {
		sftp_conn_progress(sb);
		if (a->name[0] != '.' && !ends_with(a->name, ".tmp"))
			rc = list_add(out, a);
		sftp_attributes_free(a);
		if (rc != 0)
			goto out;
	}
	if (!sftp_dir_eof(d))
		rc = sftp_conn_fail(sb, res, "list", path);
out:
	if (d != NULL && sb->sftp != NULL)
		sftp_closedir(d);
	free(path);
	return rc;
}

/* Creates dir and its missing parents below the root. */
static int mkdir_p(struct sftp_backend *sb, const char *dir, struct sftp_result *res)
{
	char *p = strdup(dir);
	int rc = 0;

	if (p == NULL)
		return -ENOMEM;
	for (char *c = p + 1; rc == 0; c++) {
		if (*c != '/' && *c != '\0')
			continue;
		char was = *c;

		*c = '\0';
		if (sftp_mkdir(sb->sftp, p, REMOTE_DIR_MODE) != 0) {
			sftp_attributes a = sftp_stat(sb->sftp, p);

			if (a == NULL || a->type != SSH_FILEXFER_TYPE_DIRECTORY)
				rc = sftp_conn_fail(sb, res, "mkdir", p);
			sftp_attributes_free(a);
		}
		*c = was;
		if (was == '\0')
			break;
	}
	free(p);
	return rc;
}

/* After a failed write to tmp: a full disk says so. */
static int write_failed(struct sftp_backend *sb, struct sftp_result *res, const char *tmp)
{
	int rc = sftp_conn_fail(sb, res, "write", tmp);
	sftp_statvfs_t v;

	if (rc != -EIO || sb->sftp == NULL ||
	    !sftp_extension_supported(sb->sftp, "statvfs@openssh.com", "2"))
		return rc;
	if ((v = sftp_statvfs(sb->sftp, tmp)) == NULL)
		return rc;
	if (v->f_bavail * v->f_frsize < CHUNK) {
		snprintf(res->err, sizeof(res->err),
			 "write %s on %s: no space left on the remote file system (%llu bytes free)",
			 tmp, sb->where, (unsigned long long)(v->f_bavail * v->f_frsize));
		rc = -ENOSPC;
	}
	sftp_statvfs_free(v);
	return rc;
}

/* Copies the local file fd to the open remote file f (tmp). */
static int upload(struct sftp_backend *sb, int fd, sftp_file f, const char *tmp,
		  struct sftp_result *res)
{
	char *buf = malloc(CHUNK);
	int rc = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(res->err, sizeof(res->err), "put: read the local file: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (sftp_write(f, buf, (size_t)n) != n) {
			rc = write_failed(sb, res, tmp);
			break;
		}
		sftp_conn_progress(sb);
	}
	free(buf);
	return rc;
}

/* tmp over final: a plain rename, else (final exists) remove it and rename. */
static int rename_over(struct sftp_backend *sb, const char *tmp, const char *final,
		       struct sftp_result *res)
{
	sftp_attributes a;

	if (sftp_rename(sb->sftp, tmp, final) == 0)
		return 0;
	if ((a = sftp_lstat(sb->sftp, final)) == NULL)
		return sftp_conn_fail(sb, res, "rename to", final);
	sftp_attributes_free(a);
	if (sftp_unlink(sb->sftp, final) != 0 || sftp_rename(sb->sftp, tmp, final) != 0)
		return sftp_conn_fail(sb, res, "rename to", final);
	return 0;
}

static int put_file(struct sftp_backend *sb, int fd, const char *final, const char *tmp,
		    struct sftp_result *res)
{
	sftp_file f = sftp_open(sb->sftp, tmp, O_WRONLY | O_CREAT | O_TRUNC, REMOTE_MODE);
	char *dir, *slash;
	int rc;

	if (f == NULL && sftp_get_error(sb->sftp) == SSH_FX_NO_SUCH_FILE &&
	    (slash = strrchr(tmp, '/')) != NULL && slash != tmp) {
		/* The first object in this directory. */
		if ((dir = strndup(tmp, (size_t)(slash - tmp))) == NULL)
			return -ENOMEM;
		rc = mkdir_p(sb, dir, res);
		free(dir);
		if (rc != 0)
			return rc;
		f = sftp_open(sb->sftp, tmp, O_WRONLY | O_CREAT | O_TRUNC, REMOTE_MODE);
	}
	if (f == NULL)
		return sftp_conn_fail(sb, res, "create", tmp);
	rc = upload(sb, fd, f, tmp, res);
	if (sftp_close(f) != 0 && rc == 0)
		rc = write_failed(sb, res, tmp);
	if (rc == 0)
		rc = rename_over(sb, tmp, final, res);
	if (rc != 0 && !sb->broken)
		sftp_unlink(sb->sftp, tmp);
	return rc;
}

int sftp_job_put(struct sftp_backend *sb, const char *key, const char *local,
		 struct sftp_result *res)
{
	char *final = sftp_remote_path(sb, key);
	char *tmp = final != NULL ? str_printf("%s.tmp", final) : NULL;
	int fd = -1, rc;

	if (tmp == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((fd = open(local, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(res->err, sizeof(res->err), "put %s: open %s: %s", key, local, strerror(errno));
		goto out;
	}
	if ((rc = sftp_conn_open(sb, res)) == 0)
		rc = put_file(sb, fd, final, tmp, res);
out:
	if (fd >= 0)
		close(fd);
	free(final);
	free(tmp);
	return rc;
}

int sftp_job_get(struct sftp_backend *sb, const char *key, const char *local,
		 struct sftp_result *res)
{
	char *path = sftp_remote_path(sb, key), *buf = malloc(CHUNK);
	sftp_file f = NULL;
	int fd = -1, rc;
	ssize_t n;

	if (path == NULL || buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = sftp_conn_open(sb, res)) != 0)
		goto out;
	if ((f = sftp_open(sb->sftp, path, O_RDONLY, 0)) == NULL) {
		rc = sftp_conn_fail(sb, res, "get", path);
		goto out;
	}
	unlink(local);
	if ((fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		snprintf(res->err, sizeof(res->err), "get %s: create %s: %s", path, local,
			 strerror(errno));
		goto out;
	}
	while ((n = sftp_read(f, buf, CHUNK)) > 0) {
		sftp_conn_progress(sb);
		if ((rc = fs_write_full(fd, buf, (size_t)n)) != 0) {
			snprintf(res->err, sizeof(res->err), "get %s: write %s: %s", path, local,
				 strerror(-rc));
			goto out;
		}
	}
	if (n < 0)
		rc = sftp_conn_fail(sb, res, "read", path);
out:
	if (f != NULL && sb->sftp != NULL)
		sftp_close(f);
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0 && fd >= 0)
		unlink(local);
	free(path);
	free(buf);
	return rc;
}

static int by_depth(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

/* rmdir of each parent of keys below the root, deepest first; a failure (not empty) is fine. */
static void remove_empty_dirs(struct sftp_backend *sb, char *const *keys, size_t n)
{
	char **dirs = NULL;
	size_t nd = 0;

	for (size_t i = 0; i < n; i++) {
		char *d = strdup(keys[i]), *slash;

		while (d != NULL && (slash = strrchr(d, '/')) != NULL) {
			*slash = '\0';
			bool seen = false;
			for (size_t j = 0; j < nd && !seen; j++)
				seen = strcmp(dirs[j], d) == 0;
			char **v = seen ? dirs : realloc(dirs, (nd + 1) * sizeof(*dirs));
			char *copy = seen ? NULL : strdup(d);

			if (!seen && (v == NULL || copy == NULL)) {
				free(copy);
				dirs = v != NULL ? v : dirs;
				break;
			}
			dirs = v;
			if (!seen)
				dirs[nd++] = copy;
		}
		free(d);
	}
	qsort(dirs, nd, sizeof(*dirs), by_depth);
	for (size_t i = 0; i < nd; i++) {
		char *p = sftp_remote_path(sb, dirs[i]);

		if (p != NULL && sb->sftp != NULL)
			sftp_rmdir(sb->sftp, p);
		free(p);
		free(dirs[i]);
	}
	free(dirs);
}

int sftp_job_remove(struct sftp_backend *sb, char *const *keys, size_t n,
		    struct sftp_result *res)
{
	int rc;

	if ((rc = sftp_conn_open(sb, res)) != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *p = sftp_remote_path(sb, keys[i]);

		if (p == NULL)
			return -ENOMEM;
		if (sftp_unlink(sb->sftp, p) != 0 && (rc = sftp_conn_fail(sb, res, "remove", p)) == -ENOENT) {
			rc = 0;
			res->err[0] = '\0';
		}
		sftp_conn_progress(sb);
		free(p);
	}
	if (rc == 0)
		remove_empty_dirs(sb, keys, n);
	return rc;
}
