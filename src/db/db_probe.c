/*
 * The header check of db_probe.h. SQLite writes the header whole in its
 * first transaction, so a header shorter than 100 bytes is a file being
 * created and worth asking about again; one with the magic string and
 * versions other than 2 is a database in rollback-journal mode (1), which
 * Litestream cannot follow: it has no WAL to copy.
 */
#include "db/db_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HEADER_MAGIC "SQLite format 3"

int db_probe(const char *path, char *why, size_t n)
{
	unsigned char h[100];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	got = pread(fd, h, sizeof(h), 0);
	if (got < 0) {
		int rc = -errno;

		close(fd);
		snprintf(why, n, "cannot read: %s", strerror(-rc));
		return rc;
	}
	close(fd);
	if (got < (ssize_t)sizeof(h)) {
		if (got >= 16 && memcmp(h, HEADER_MAGIC, 16) != 0)
			goto not_sqlite;
		snprintf(why, n, "too short to be a database yet (%zd bytes)", got);
		return -EAGAIN;
	}
	if (memcmp(h, HEADER_MAGIC, 16) != 0)
		goto not_sqlite;
	if (h[18] != 2 || h[19] != 2) {
		snprintf(why, n, "a SQLite database in rollback-journal mode, not WAL "
				 "(PRAGMA journal_mode=WAL makes it replicable)");
		return -EPROTO;
	}
	return 0;
not_sqlite:
	snprintf(why, n, "not a SQLite database");
	return -EINVAL;
}
