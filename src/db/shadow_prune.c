/*
 * Removing what the shadow WAL no longer needs: other generations no
 * replica still reads from, and indexes of the current generation that
 * every replica has shipped. Apart from shadow.c, which writes the shadow
 * WAL; this only deletes files, on the job thread, after a sync.
 */
#include "db/shadow.h"

#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool kept(const char *name, char *const *keep, size_t n_keep)
{
	for (size_t i = 0; i < n_keep; i++)
		if (keep[i] != NULL && strcmp(keep[i], name) == 0)
			return true;
	return false;
}

int shadow_remove_shipped(struct shadow *s, uint32_t min_index, char *const *keep, size_t n_keep)
{
	char *dir;
	DIR *d;
	struct dirent *e;
	uint32_t idx;
	int rc = 0;

	if (s->generation[0] == '\0')
		return 0;
	/* Nothing new to remove: spare the directory scans (every sync asks). */
	if (s->swept && min_index <= s->swept_below && n_keep == s->swept_keep)
		return 0;
	/* Other generations that no replica still reads from. */
	dir = str_printf("%s/generations", s->meta_dir);
	if (dir == NULL)
		return -ENOMEM;
	d = opendir(dir);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL && rc == 0) {
			if (!generation_valid(e->d_name) || strcmp(e->d_name, s->generation) == 0 ||
			    kept(e->d_name, keep, n_keep))
				continue;
			char *gen_dir = path_join(dir, e->d_name);
			rc = gen_dir ? fs_remove_tree(gen_dir) : -ENOMEM;
			free(gen_dir);
		}
		closedir(d);
	}
	free(dir);
	/* Shipped indexes of the current generation. */
	dir = str_printf("%s/generations/%s/wal", s->meta_dir, s->generation);
	if (dir == NULL)
		return -ENOMEM;
	d = opendir(dir);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL && rc == 0) {
			if (shadow_wal_name_parse(e->d_name, &idx) != 0 || idx >= min_index ||
			    idx == s->index)
				continue;
			char *path = path_join(dir, e->d_name);
			if (path == NULL)
				rc = -ENOMEM;
			else if (unlink(path) != 0 && errno != ENOENT)
				rc = -errno;
			free(path);
		}
		closedir(d);
	}
	free(dir);
	if (rc == 0) {
		s->swept = true;
		s->swept_below = min_index;
		s->swept_keep = n_keep;
	}
	return rc;
}
