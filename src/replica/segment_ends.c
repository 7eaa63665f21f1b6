/*
 * The local record of segment ends; see segment_ends.h. One record a
 * line, "NAME SIZE END" in decimal, oldest first; load() keeps the
 * newest SEGMENT_ENDS_KEEP.
 */
#include "replica/segment_ends.h"

#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_LEN 160

struct record {
	char name[64];
	uint64_t size, end;
};

/* Reads up to SEGMENT_ENDS_KEEP records; lines that do not parse are dropped. */
static size_t load(const char *path, struct record *v)
{
	FILE *f = fopen(path, "re");
	char line[LINE_MAX_LEN];
	size_t n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct record r;
		if (sscanf(line, "%63s %" SCNu64 " %" SCNu64, r.name, &r.size, &r.end) != 3)
			continue;
		if (n == SEGMENT_ENDS_KEEP) {
			memmove(v, v + 1, (n - 1) * sizeof(*v));
			n--;
		}
		v[n++] = r;
	}
	fclose(f);
	return n;
}

/* Rewrites path with only its newest records. */
static int compact(const char *path)
{
	struct record v[SEGMENT_ENDS_KEEP + 1];
	size_t n = load(path, v);
	char tmp[4096];
	FILE *f;
	int rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if ((f = fopen(tmp, "we")) == NULL)
		return -errno;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s %" PRIu64 " %" PRIu64 "\n", v[i].name, v[i].size, v[i].end);
	if (ferror(f))
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int segment_ends_record(const char *path, const char *name, uint64_t size, uint64_t end)
{
	char line[LINE_MAX_LEN];
	int n = snprintf(line, sizeof(line), "%s %" PRIu64 " %" PRIu64 "\n", name, size, end);
	int fd, rc = 0;
	struct stat st;

	if (n < 0 || (size_t)n >= sizeof(line) || strlen(name) >= sizeof(((struct record *)0)->name))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 && errno == ENOENT && (rc = fs_mkdir_parent(path, 0755)) == 0)
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return rc != 0 ? rc : -errno;
	rc = fs_write_full(fd, line, (size_t)n);
	if (rc == 0 && fstat(fd, &st) == 0 && st.st_size > SEGMENT_ENDS_COMPACT)
		rc = compact(path);
	close(fd);
	return rc;
}

int segment_ends_lookup(const char *path, const char *name, uint64_t size, uint64_t *end)
{
	struct record v[SEGMENT_ENDS_KEEP + 1];
	size_t n = load(path, v);
	bool found = false;
	uint64_t e = 0;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].name, name) != 0 || v[i].size != size)
			continue;
		if (found && v[i].end != e)
			return -ENOENT; /* the same name and size, two ends: no answer */
		found = true;
		e = v[i].end;
	}
	if (!found)
		return -ENOENT;
	*end = e;
	return 0;
}
