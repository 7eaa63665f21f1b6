/*
 * The path halves of replica URLs and config paths: Go's path.Clean, "~"
 * and the working directory for local paths, and the cleaned remote paths
 * of sftp and S3 (see url.h). Kept apart from url.c, which splits and
 * checks whole URLs, because these only rewrite a path and know no scheme.
 */
#include "config/url.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Go's path.Clean over p[0..len): repeated '/' collapse, "." elements go,
 * ".." removes the element before it (and is dropped at the root), the
 * result has no trailing '/' unless it is "/", and is "." if empty.
 * Malloc'd; NULL when out of memory.
 */
static char *path_clean(const char *p, size_t len)
{
	bool rooted = len > 0 && p[0] == '/';
	size_t i = 0, n = 0, floor = 0; /* ".." never backs up below out[floor] */
	char *out = malloc(len + 2);

	if (out == NULL)
		return NULL;
	if (rooted) {
		out[n++] = '/';
		i = floor = 1;
	}
	while (i < len) {
		bool end1 = i + 1 == len || p[i + 1] == '/';

		if (p[i] == '/') {
			i++;
		} else if (p[i] == '.' && end1) {
			i++;
		} else if (p[i] == '.' && i + 1 < len && p[i + 1] == '.' &&
			   (i + 2 == len || p[i + 2] == '/')) {
			i += 2;
			if (n > floor) {
				n--;
				while (n > floor && out[n] != '/')
					n--;
			} else if (!rooted) {
				if (n > 0)
					out[n++] = '/';
				out[n++] = '.';
				out[n++] = '.';
				floor = n;
			}
		} else {
			if (n != (rooted ? 1u : 0u))
				out[n++] = '/';
			while (i < len && p[i] != '/')
				out[n++] = p[i++];
		}
	}
	if (n == 0)
		out[n++] = '.';
	out[n] = '\0';
	return out;
}

/*
 * $HOME, or the password database's home when $HOME is unset or not
 * absolute (a relative home would make a relative "absolute" path).
 */
static char *home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (h != NULL && h[0] == '/')
		return strdup(h);
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) != 0 || res == NULL ||
	    pw.pw_dir == NULL || pw.pw_dir[0] != '/')
		return NULL;
	return strdup(pw.pw_dir);
}

int replica_url_abs_path(const char *path, char **out)
{
	char *base = NULL, *joined, *clean;
	const char *rest = path;
	int rc;

	if (*path == '\0')
		return -EINVAL;
	if (path[0] == '~' && (path[1] == '\0' || path[1] == '/')) {
		errno = 0;
		base = home_dir();
		if (base == NULL)
			return errno == ENOMEM ? -ENOMEM : -ENOENT;
		rest = path + 1;
	} else if (path[0] != '/') {
		base = getcwd(NULL, 0);
		if (base == NULL)
			return -errno;
	}
	if (base != NULL) {
		joined = malloc(strlen(base) + strlen(rest) + 2);
		if (joined != NULL)
			sprintf(joined, "%s/%s", base, rest);
		free(base);
	} else {
		joined = strdup(path);
	}
	if (joined == NULL)
		return -ENOMEM;
	clean = path_clean(joined, strlen(joined));
	rc = clean == NULL ? -ENOMEM : 0;
	free(joined);
	if (rc == 0)
		*out = clean;
	return rc;
}
int replica_url_sftp_path(const char *path, char **out)
{
	char *clean = path_clean(path, strlen(path));

	if (clean == NULL)
		return -ENOMEM;
	if (strcmp(clean, ".") == 0)
		clean[0] = '\0';
	*out = clean;
	return 0;
}

int replica_url_s3_prefix(const char *path, char **out)
{
	char *rooted = malloc(strlen(path) + 2), *clean = NULL, *prefix = NULL;

	if (rooted != NULL) {
		sprintf(rooted, "/%s", path);
		clean = path_clean(rooted, strlen(rooted));
	}
	if (clean != NULL)
		prefix = strdup(clean + 1);
	free(rooted);
	free(clean);
	if (prefix == NULL)
		return -ENOMEM;
	*out = prefix;
	return 0;
}
