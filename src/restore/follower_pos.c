/*
 * The follower's position file, PATH.follow, written whole (temporary
 * name, fsync, rename): text, one field per line, so a person can read
 * it.
 *
 *   litestream-follow 1
 *   replica file:///backups/app
 *   entry COUNTER PAGE1_CRC GENERATION INDEX OFFSET APPLIED_MS CHAIN
 *   entry ...
 *
 * COUNTER is decimal, PAGE1_CRC 16 hex digits, INDEX 8 hex digits,
 * OFFSET and APPLIED_MS decimal, CHAIN "-" or the index's WAL header (64
 * hex digits) and the running checksum (two times 8 hex digits, joined by
 * ':'). One or two entries: see follower.h.
 */
#include "restore/follower_internal.h"

#include "util/fsutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_entry(char *buf, size_t n, const struct follow_pos *p)
{
	uint8_t raw[WAL_HEADER_SIZE];
	char chain[128] = "-";

	if (p->have_chain) {
		struct wal_header h = p->hdr;
		size_t k = 0;
		wal_header_encode(&h, raw);
		for (size_t i = 0; i < sizeof(raw); i++)
			k += (size_t)snprintf(chain + k, sizeof(chain) - k, "%02x", raw[i]);
		snprintf(chain + k, sizeof(chain) - k, ":%08x:%08x", p->cksum[0], p->cksum[1]);
	}
	snprintf(buf, n, "entry %" PRIu32 " %016" PRIx64 " %s %08" PRIx32 " %" PRIu64 " %" PRId64 " %s\n",
		 p->counter, p->page1_crc, p->generation, p->index, p->offset, p->applied_ms, chain);
}

int follow_pos_save(const char *path, const char *replica, const struct follow_pos *a,
		    const struct follow_pos *b, char *err, size_t errlen)
{
	char buf[2048], e[512];
	size_t k;
	int rc;

	k = (size_t)snprintf(buf, sizeof(buf), "litestream-follow 1\nreplica %s\n", replica);
	put_entry(e, sizeof(e), a);
	k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s", e);
	if (b != NULL) {
		put_entry(e, sizeof(e), b);
		k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s", e);
	}
	if (k >= sizeof(buf))
		return snprintf(err, errlen, "%s: position too long", path), -EINVAL;
	if ((rc = fs_write_atomic(path, buf, k, 0644)) != 0)
		snprintf(err, errlen, "write %s: %s", path, strerror(-rc));
	return rc;
}

static int parse_chain(const char *s, struct follow_pos *p)
{
	uint8_t raw[WAL_HEADER_SIZE];
	const char *why;

	p->have_chain = false;
	if (strcmp(s, "-") == 0)
		return 0;
	if (strlen(s) != 2 * WAL_HEADER_SIZE + 18 || s[64] != ':' || s[73] != ':')
		return -EBADMSG;
	for (size_t i = 0; i < sizeof(raw); i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EBADMSG;
		raw[i] = (uint8_t)v;
	}
	if (wal_header_decode(raw, &p->hdr, &why) != 0 ||
	    sscanf(s + 65, "%8" SCNx32 ":%8" SCNx32, &p->cksum[0], &p->cksum[1]) != 2)
		return -EBADMSG;
	p->have_chain = true;
	return 0;
}

int follow_pos_load(const char *path, const char *replica, struct follow_pos *out, size_t *n,
		    char *err, size_t errlen)
{
	char buf[4096], *line, *save = NULL;
	size_t got = 0;
	int lineno = 0, rc;

	if ((rc = fs_read_small(path, buf, sizeof(buf))) != 0) {
		if (rc != -ENOENT)
			snprintf(err, errlen, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		struct follow_pos p;
		char gen[64], chain[128];
		lineno++;
		memset(&p, 0, sizeof(p));
		if (lineno == 1 && strcmp(line, "litestream-follow 1") == 0)
			continue;
		if (lineno == 1)
			goto bad;
		if (strncmp(line, "replica ", 8) == 0) {
			if (strcmp(line + 8, replica) != 0) {
				snprintf(err, errlen, "%s follows %s, not %s", path, line + 8, replica);
				return -EBADMSG;
			}
			continue;
		}
		if (got == 2 ||
		    sscanf(line, "entry %" SCNu32 " %" SCNx64 " %63s %" SCNx32 " %" SCNu64 " %" SCNd64 " %127s",
			   &p.counter, &p.page1_crc, gen, &p.index, &p.offset, &p.applied_ms, chain) != 7 ||
		    !generation_valid(gen) || parse_chain(chain, &p) != 0)
			goto bad;
		snprintf(p.generation, sizeof(p.generation), "%s", gen);
		out[got++] = p;
	}
	if (got == 0)
		goto bad;
	*n = got;
	return 0;
bad:
	snprintf(err, errlen, "%s: line %d is not a position this follower wrote", path, lineno);
	return -EBADMSG;
}
