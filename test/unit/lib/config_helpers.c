/*
 * Config test fixtures; see config_helpers.h.
 */
#include "lib/config_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *base = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/litestream-config-XXXXXX",
		 base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/litestream.conf", f->dir);
	*state = f;
	return 0;
}

int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

void write_file(const char *path, const char *text, size_t n)
{
	FILE *fp = fopen(path, "wb");

	if (fp == NULL || fwrite(text, 1, n, fp) != n || fclose(fp) != 0)
		fail_msg("write %s: %m", path);
}

/* Writes text as the fixture's config file and loads it. */
int load(struct fixture *f, const char *text, struct config *c, char *err, size_t errlen)
{
	write_file(f->path, text, strlen(text));
	return config_load(f->path, c, err, errlen);
}

void load_ok(struct fixture *f, const char *text, struct config *c)
{
	char err[1024] = "";

	if (load(f, text, c, err, sizeof(err)) != 0)
		fail_msg("config rejected: %s\n%s", err, text);
}

/* The load fails with -EINVAL, *out is zeroed, and the message is PATH + want. */
void load_bad(struct fixture *f, const char *text, const char *want)
{
	struct config c, zero;
	char err[1024] = "", full[1400];
	int rc;

	memset(&c, 0x5a, sizeof(c));
	memset(&zero, 0, sizeof(zero));
	rc = load(f, text, &c, err, sizeof(err));
	if (rc == 0) {
		config_free(&c);
		fail_msg("config accepted:\n%s", text);
	}
	assert_int_equal(rc, -EINVAL);
	assert_memory_equal(&c, &zero, sizeof(c));
	snprintf(full, sizeof(full), "%s%s", f->path, want);
	if (strcmp(err, full) != 0)
		fail_msg("config:\n%s\ngot:  %s\nwant: %s", text, err, full);
}
