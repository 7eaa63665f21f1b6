#include "lib/sqlite_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *th_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	tmpl = malloc(strlen(base) + 32);
	sprintf(tmpl, "%s/litestream-unit-XXXXXX", base);
	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp: %m");
	return tmpl;
}

void th_rmrf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fail_msg("could not remove %s", dir);
}

char *th_path(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	sprintf(p, "%s/%s", dir, name);
	return p;
}

sqlite3 *th_open(const char *path, int page_size)
{
	sqlite3 *db;
	char sql[64];

	if (sqlite3_open(path, &db) != SQLITE_OK)
		fail_msg("open %s: %s", path, sqlite3_errmsg(db));
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if (page_size > 0) {
		snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", page_size);
		th_exec(db, sql);
	}
	th_exec(db, "PRAGMA journal_mode=WAL");
	th_exec(db, "PRAGMA wal_autocheckpoint=0");
	return db;
}

void th_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

uint8_t *th_read_file(const char *path, size_t *n)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0)
		fail_msg("open %s: %m", path);
	buf = malloc((size_t)st.st_size + 1);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size)
		fail_msg("read %s: %m", path);
	close(fd);
	*n = (size_t)st.st_size;
	return buf;
}

void th_write_file(const char *path, const uint8_t *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		fail_msg("write %s: %m", path);
	close(fd);
}
