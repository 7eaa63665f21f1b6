/*
 * The shadow WAL; see shadow.h for the layout and invariants.
 *
 * Continuity rules (when the real WAL no longer lines up with the shadow,
 * a new generation starts with the reason logged):
 *
 *  - the real WAL is shorter than the shadow: someone truncated it;
 *  - same header, but the last frame copied differs from the frame at the
 *    same offset in the real WAL: someone rewrote it;
 *  - a different header means SQLite restarted the WAL. That is followed
 *    into the next index only when it is exactly one restart later
 *    (salt-1 one more: SQLite adds one to it, in the shared wal-index
 *    header, on every restart; the checkpoint sequence is no help, as each
 *    connection counts its own) and either the last frame copied is still
 *    intact, so that frames of the old WAL not yet copied can still be
 *    read behind the new ones, or the index is complete (below). Anything
 *    else (two restarts, a header-only shadow) loses continuity.
 *
 * Proofs that rest on the caller's read transaction (shadow.h), from
 * SQLite's wal.c: a reader that begins while the WAL is fully backfilled
 * (nBackfill == mxFrame) takes read mark 0 and reads the database file
 * alone; while anyone holds mark 0 no checkpoint can backfill a frame (it
 * needs mark 0 exclusively), and a writer restarts the WAL only when its
 * own snapshot took mark 0, no reader holds a mark above 0, and nBackfill
 * > 0 (walRestartLog). So:
 *
 *  - complete index: the caller saw the WAL fully backfilled while this
 *    file held all of it (shadow_mark_backfilled), and then began its next
 *    read transaction. Every frame of that WAL is here. The next restart
 *    may overwrite the old frames with any amount of new ones before we
 *    look, but a second restart needs a backfill of the new WAL, which the
 *    caller's mark (0, or else one taken after copying the new frames)
 *    prevents until the shadow has followed. So salt-1 one more is proof
 *    enough, without looking at the old frames.
 *  - empty WAL: with a generation verified in this process under the
 *    read lock, an empty or missing real WAL (another connection's
 *    TRUNCATE checkpoint, which succeeds only while the caller sits on
 *    mark 0 with everything copied) copies nothing; the header that comes
 *    next is checked as above. At start-up (the generation only loaded
 *    from disk) nothing proves that frames were not checkpointed and
 *    removed while no one watched: a new generation starts.
 *  - headerless index: a generation started on an empty WAL holds the
 *    database file as it is; under the read lock no frame can be
 *    backfilled, so the first WAL header to appear, whatever its salts,
 *    starts index 0. A lost read lock (shadow_forget) drops it.
 *
 * Durability: what the contract needs is that an object the replica
 * acknowledged survives a host crash; the replica's backends see to that.
 * The shadow WAL needs no fsync for correctness: after a host crash, a
 * shadow tail that did not reach the disk is either copied again from the
 * real WAL (still there: nothing restarted over it) or detected (the last
 * frame kept no longer matches the real WAL, or a replica holds more than
 * the shadow) and answered with a new generation, never shipped wrong.
 * So frames are appended without fsync; the file is fdatasynced only
 * before the caller's checkpoints and when an index is sealed (a few times
 * a minute), which keeps a host crash from costing a new generation in
 * the common case.
 */
#include "db/shadow.h"

#include "util/fsutil.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MODE 0755
#define SHADOW_FRAME_MAX (WAL_FRAME_HEADER_SIZE + WAL_MAX_PAGE_SIZE)
/* Whole frames per read when scanning: fewer syscalls on large WALs. */
#define SHADOW_SCAN_BUF (256 * 1024 + SHADOW_FRAME_MAX)
#define FILE_MODE 0600

/*
 * Scratch for one sync: two frames and a scan buffer, 450 KB. Syncs run
 * one at a time per thread (the threadpool's, or the loop's at start), so
 * the buffers belong to the thread, not to the database: a thousand idle
 * databases do not each keep 450 KB. Freed when the thread ends.
 */
struct scratch {
	uint8_t frames[2 * SHADOW_FRAME_MAX];
	uint8_t scan[SHADOW_SCAN_BUF];
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_make(void)
{
	(void)pthread_key_create(&scratch_key, free);
}

/* This thread's scratch, or NULL when out of memory. */
static struct scratch *thread_scratch(void)
{
	struct scratch *sc;

	pthread_once(&scratch_once, scratch_key_make);
	if ((sc = pthread_getspecific(scratch_key)) == NULL && (sc = malloc(sizeof(*sc))) != NULL &&
	    pthread_setspecific(scratch_key, sc) != 0) {
		free(sc);
		sc = NULL;
	}
	return sc;
}

int shadow_init(struct shadow *s, const char *db_path)
{
	const char *slash = strrchr(db_path, '/');
	size_t dir_len = slash ? (size_t)(slash - db_path) : 0;
	const char *base = slash ? slash + 1 : db_path;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->db_path = strdup(db_path);
	s->wal_path = str_printf("%s-wal", db_path);
	if (slash == NULL)
		s->meta_dir = str_printf(".%s-litestream", base);
	else
		s->meta_dir = str_printf("%.*s/.%s-litestream", (int)(dir_len ? dir_len : 1),
					 dir_len ? db_path : "/", base);
	if (s->db_path == NULL || s->wal_path == NULL || s->meta_dir == NULL) {
		shadow_close(s);
		return -ENOMEM;
	}
	return 0;
}

void shadow_close(struct shadow *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->db_path);
	free(s->wal_path);
	free(s->meta_dir);
	s->db_path = s->wal_path = s->meta_dir = NULL;
}

char *shadow_generation_dir(const struct shadow *s, const char *generation)
{
	return str_printf("%s/generations/%s", s->meta_dir, generation);
}

char *shadow_file_path(const struct shadow *s, const char *generation, uint32_t index)
{
	char name[NAME_MAX_LEN];

	shadow_wal_name(name, sizeof(name), index);
	return str_printf("%s/generations/%s/wal/%s", s->meta_dir, generation, name);
}

int64_t shadow_index_size(const struct shadow *s, const char *generation, uint32_t index)
{
	char *p = shadow_file_path(s, generation, index);
	int64_t n;

	if (p == NULL)
		return -ENOMEM;
	n = fs_file_size(p);
	free(p);
	return n;
}

char *shadow_tmp_dir(const struct shadow *s)
{
	return str_printf("%s/tmp", s->meta_dir);
}

static void set_reason(struct shadow_sync_result *res, const char *reason)
{
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
}

/* The real WAL, open read-only, with its size and decoded header. */
struct real_wal {
	int fd;
	uint64_t size;
	uint8_t raw[WAL_HEADER_SIZE];
	struct wal_header hdr;
};

/* -ENODATA when the WAL is missing, short or has no valid header. */
static int real_wal_open(const struct shadow *s, struct real_wal *w)
{
	struct stat st;
	const char *why;

	w->fd = open(s->wal_path, O_RDONLY | O_CLOEXEC);
	if (w->fd < 0)
		return errno == ENOENT ? -ENODATA : -errno;
	if (fstat(w->fd, &st) != 0 || fs_pread_full(w->fd, w->raw, WAL_HEADER_SIZE, 0) < 0) {
		int rc = -errno;
		close(w->fd);
		return rc;
	}
	w->size = (uint64_t)st.st_size;
	if (w->size < WAL_HEADER_SIZE || wal_header_decode(w->raw, &w->hdr, &why) != 0) {
		close(w->fd);
		return -ENODATA;
	}
	return 0;
}

/* Replaces the current shadow file with a new one holding only raw. */
static int start_index(struct shadow *s, const char *generation, uint32_t index,
		       const uint8_t *raw, const struct wal_header *hdr)
{
	char *path = shadow_file_path(s, generation, index);
	int fd, rc;

	if (path == NULL)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
	if (fd < 0) {
		rc = -errno;
		free(path);
		return rc;
	}
	rc = fs_write_full(fd, raw, WAL_HEADER_SIZE);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (rc == 0)
		rc = fs_fsync_parent(path);
	free(path);
	if (rc != 0) {
		close(fd);
		return rc;
	}
	if (s->fd >= 0) {
		/* The sealed index is final: make it durable before moving on. */
		if (fdatasync(s->fd) != 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		close(s->fd);
	}
	s->fd = fd;
	if (generation != s->generation)
		snprintf(s->generation, sizeof(s->generation), "%s", generation);
	s->index = index;
	s->size = WAL_HEADER_SIZE;
	s->flushed = WAL_HEADER_SIZE;
	s->hdr = *hdr;
	s->cksum[0] = hdr->cksum1;
	s->cksum[1] = hdr->cksum2;
	s->complete = false;
	return 0;
}

/* A headerless index: index 0 of a generation, no file until a header. */
static void start_headerless(struct shadow *s, const char *generation)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	snprintf(s->generation, sizeof(s->generation), "%s", generation);
	s->index = 0;
	s->size = s->flushed = 0;
	memset(&s->hdr, 0, sizeof(s->hdr));
	s->complete = false;
}

static bool headerless(const struct shadow *s)
{
	return s->generation[0] != '\0' && s->fd < 0;
}

/* Appends the frames committed in the real WAL after the shadow's end. */
static int copy_committed(struct shadow *s, const struct real_wal *w, uint64_t *copied)
{
	struct wal_scan_result r;
	uint64_t n;
	int rc;

	struct scratch *sc = thread_scratch();

	if (sc == NULL)
		return -ENOMEM;
	rc = wal_scan(w->fd, &s->hdr, s->size, s->cksum, sc->scan, SHADOW_SCAN_BUF, &r);
	if (rc != 0 || r.commit_end == s->size)
		return rc;
	n = r.commit_end - s->size;
	if (lseek(s->fd, (off_t)s->size, SEEK_SET) < 0)
		return -errno;
	/*
	 * No fsync per copy: until SQLite checkpoints, the real WAL still
	 * holds these frames, and shadow_flush() runs before every checkpoint
	 * (and when an index is sealed). A crash of the machine can only cost
	 * an unsynced tail, which the real WAL re-supplies, or else a new
	 * generation.
	 */
	rc = fs_copy_range(w->fd, s->size, n, s->fd);
	if (rc != 0) {
		/* Leave the file at its last committed size (e.g. after ENOSPC). */
		if (ftruncate(s->fd, (off_t)s->size) != 0)
			LOG_WARN_ERR(s->db_path, NULL, strerror(errno),
				     "cannot cut shadow wal back after error");
		return rc;
	}
	s->size = r.commit_end;
	s->cksum[0] = r.cksum[0];
	s->cksum[1] = r.cksum[1];
	s->bytes_copied += n;
	s->complete = false;
	*copied += n;
	return 0;
}

/* Is the last frame copied still the same in the real WAL? */
static int last_frame_intact(struct shadow *s, const struct real_wal *w, bool *intact)
{
	size_t fsz = wal_frame_size(&s->hdr);
	struct scratch *sc = thread_scratch();
	uint8_t *mine, *theirs;
	uint64_t off;
	ssize_t n, m;

	if (sc == NULL)
		return -ENOMEM;
	mine = sc->frames;
	theirs = sc->frames + SHADOW_FRAME_MAX;
	*intact = true;
	if (s->size <= WAL_HEADER_SIZE)
		return 0;
	off = s->size - fsz;
	n = fs_pread_full(s->fd, mine, fsz, off);
	if (n < 0)
		return (int)n;
	m = fs_pread_full(w->fd, theirs, fsz, off);
	if (m < 0)
		return (int)m;
	*intact = (size_t)n == fsz && (size_t)m == fsz && memcmp(mine, theirs, fsz) == 0;
	return 0;
}

static int new_generation(struct shadow *s, const struct real_wal *w, const char *reason,
			  struct shadow_sync_result *res)
{
	char gen[GENERATION_LEN + 1], line[GENERATION_LEN + 2];
	char *dir, *gen_path;
	int rc;

	if ((rc = generation_new(gen)) != 0)
		return rc;
	dir = str_printf("%s/generations/%s/wal", s->meta_dir, gen);
	if (dir == NULL)
		return -ENOMEM;
	rc = fs_mkdir_p(dir, DIR_MODE);
	free(dir);
	if (rc != 0)
		return rc;
	if (w == NULL) {
		start_headerless(s, gen);
	} else {
		if ((rc = start_index(s, gen, 0, w->raw, &w->hdr)) != 0)
			return rc;
		if ((rc = copy_committed(s, w, &res->copied)) != 0)
			return rc;
	}
	/* Only now does the new generation become the current one. */
	gen_path = path_join(s->meta_dir, "generation");
	if (gen_path == NULL)
		return -ENOMEM;
	snprintf(line, sizeof(line), "%s\n", gen);
	rc = fs_write_atomic(gen_path, line, strlen(line), FILE_MODE);
	free(gen_path);
	if (rc != 0)
		return rc;
	res->new_generation = true;
	s->verified = true;
	s->swept = false;
	set_reason(res, reason);
	LOG_INFO(s->db_path, NULL, "new generation %s: %s", gen, reason);
	return 0;
}

/* Highest shadow index in a generation, or -ENOENT when it has none. */
static int find_current_index(const struct shadow *s, const char *gen, uint32_t *index)
{
	char *dir = str_printf("%s/generations/%s/wal", s->meta_dir, gen);
	DIR *d;
	struct dirent *e;
	bool found = false;
	uint32_t best = 0, idx;

	if (dir == NULL)
		return -ENOMEM;
	d = opendir(dir);
	free(dir);
	if (d == NULL)
		return errno == ENOENT ? -ENOENT : -errno;
	while ((e = readdir(d)) != NULL) {
		if (shadow_wal_name_parse(e->d_name, &idx) != 0)
			continue;
		if (!found || idx > best)
			best = idx;
		found = true;
	}
	closedir(d);
	if (!found)
		return -ENOENT;
	*index = best;
	return 0;
}

/*
 * The current generation (from the "generation" file) and its highest
 * shadow index, into gen[GENERATION_LEN + 1] and *index. Sets *reason
 * instead when there is none to load.
 */
static int load_locate(struct shadow *s, char *gen, size_t gen_size, uint32_t *index,
		       const char **reason)
{
	char *path = path_join(s->meta_dir, "generation");
	int rc;

	if (path == NULL)
		return -ENOMEM;
	rc = fs_read_small(path, gen, gen_size);
	free(path);
	if (rc == -ENOENT) {
		*reason = "no generation exists";
		return 0;
	}
	if (rc != 0)
		return rc;
	gen[strcspn(gen, "\r\n")] = '\0';
	if (!generation_valid(gen)) {
		*reason = "invalid generation file";
		return 0;
	}
	rc = find_current_index(s, gen, index);
	if (rc == -ENOENT) {
		*reason = "no shadow wal";
		return 0;
	}
	return rc;
}

/*
 * Opens shadow file gen/index, checks its header and scans its frames to
 * the last commit, cutting a torn tail there. On success *fd is open and
 * *hdr, *r describe it; sets *reason instead when the file is unusable.
 */
static int load_scan(struct shadow *s, const char *gen, uint32_t index, int *fd_out,
		     struct wal_header *hdr, struct wal_scan_result *r, const char **reason)
{
	uint8_t raw[WAL_HEADER_SIZE];
	struct scratch *sc = thread_scratch();
	struct stat st;
	const char *why;
	char *path;
	int fd, rc = 0;

	if (sc == NULL)
		return -ENOMEM;
	path = shadow_file_path(s, gen, index);
	if (path == NULL)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || fs_pread_full(fd, raw, sizeof(raw), 0) < 0)
		rc = -errno;
	else if (st.st_size < WAL_HEADER_SIZE)
		*reason = "short shadow wal";
	else if (wal_header_decode(raw, hdr, &why) != 0)
		*reason = "invalid shadow wal header";
	else
		rc = wal_scan(fd, hdr, WAL_HEADER_SIZE, (uint32_t[2]){hdr->cksum1, hdr->cksum2},
			      sc->scan, SHADOW_SCAN_BUF, r);
	if (rc == 0 && *reason == NULL && (uint64_t)st.st_size > r->commit_end) {
		LOG_WARN(s->db_path, NULL, "shadow wal %s/%08x: cutting %llu bytes past the last commit",
			 gen, index, (unsigned long long)((uint64_t)st.st_size - r->commit_end));
		if (ftruncate(fd, (off_t)r->commit_end) != 0 || fsync(fd) != 0)
			rc = -errno;
	}
	if (rc != 0 || *reason != NULL) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

/*
 * Loads the current generation's last shadow file after a start, cutting a
 * torn tail back to its last commit frame. Sets *reason when there is
 * nothing usable (then the caller starts a new generation).
 */
static int load(struct shadow *s, const char **reason)
{
	char gen[64];
	struct wal_header hdr;
	struct wal_scan_result r;
	uint32_t index = 0;
	int fd = -1, rc;

	*reason = NULL;
	rc = load_locate(s, gen, sizeof(gen), &index, reason);
	if (rc != 0 || *reason != NULL)
		return rc;
	rc = load_scan(s, gen, index, &fd, &hdr, &r, reason);
	if (rc != 0 || *reason != NULL)
		return rc;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	snprintf(s->generation, sizeof(s->generation), "%s", gen);
	s->index = index;
	s->size = s->flushed = r.commit_end;
	s->hdr = hdr;
	s->cksum[0] = r.cksum[0];
	s->cksum[1] = r.cksum[1];
	s->verified = s->complete = s->swept = false;
	return 0;
}

static bool header_equal(const struct wal_header *a, const struct wal_header *b)
{
	return a->magic == b->magic && a->version == b->version && a->page_size == b->page_size &&
	       a->checkpoint_seq == b->checkpoint_seq && a->salt1 == b->salt1 &&
	       a->salt2 == b->salt2 && a->cksum1 == b->cksum1 && a->cksum2 == b->cksum2;
}

/* Decides whether the real WAL continues the shadow; see the top comment. */
static int check_continuity(struct shadow *s, const struct real_wal *w, bool *restart,
			    const char **reason)
{
	struct stat st;
	bool intact;
	int rc;

	*restart = false;
	if (fstat(s->fd, &st) != 0)
		return -errno;
	if (st.st_nlink == 0 || (uint64_t)st.st_size < s->size) {
		*reason = "shadow wal missing or truncated";
		return 0;
	}
	if (s->complete && !header_equal(&w->hdr, &s->hdr)) {
		/* The whole old WAL is here: see "complete index" above. */
		if (w->hdr.page_size != s->hdr.page_size)
			*reason = "wal page size changed";
		else if (w->hdr.salt1 != s->hdr.salt1 + 1)
			*reason = "wal restarted more than once since the last sync";
		else
			*restart = true;
		return 0;
	}
	if (w->size < s->size) {
		*reason = "wal truncated by another process";
		return 0;
	}
	if (w->hdr.page_size != s->hdr.page_size) {
		*reason = "wal page size changed";
		return 0;
	}
	if (!header_equal(&w->hdr, &s->hdr)) {
		if (s->size == WAL_HEADER_SIZE) {
			*reason = "wal header only, mismatched";
			return 0;
		}
		if (w->hdr.salt1 != s->hdr.salt1 + 1) {
			LOG_DEBUG(s->db_path, NULL, "wal header: salt-1 %08x -> %08x", s->hdr.salt1,
				  w->hdr.salt1);
			*reason = "wal restarted more than once since the last sync";
			return 0;
		}
		*restart = true;
	}
	if ((rc = last_frame_intact(s, w, &intact)) != 0)
		return rc;
	if (!intact)
		*reason = "wal overwritten by another process";
	return 0;
}

/* The real WAL is empty or missing; see "empty WAL" above. */
static int sync_empty(struct shadow *s, struct shadow_sync_result *res)
{
	const char *reason = NULL;
	int rc;

	if (s->generation[0] != '\0' && (s->verified || headerless(s)))
		return 0;
	if (s->generation[0] == '\0' && (rc = load(s, &reason)) != 0)
		return rc;
	if (reason == NULL)
		reason = "wal empty or missing at start";
	return new_generation(s, NULL, reason, res);
}

int shadow_sync(struct shadow *s, struct shadow_sync_result *res)
{
	struct real_wal w;
	const char *reason = NULL;
	bool restart = false;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((rc = real_wal_open(s, &w)) == -ENODATA)
		return sync_empty(s, res);
	if (rc != 0)
		return rc;
	res->wal_size = w.size;
	if (headerless(s)) {
		/* The first header under the read lock: see "headerless index". */
		rc = start_index(s, s->generation, s->index, w.raw, &w.hdr);
		if (rc == 0)
			rc = copy_committed(s, &w, &res->copied);
		goto out;
	}
	if (s->generation[0] == '\0' && (rc = load(s, &reason)) != 0)
		goto out;
	if (reason == NULL && (rc = check_continuity(s, &w, &restart, &reason)) != 0)
		goto out;
	if (reason != NULL) {
		rc = new_generation(s, &w, reason, res);
		goto out;
	}
	s->verified = true;
	/*
	 * Frames of this index still to copy (of the old WAL, after a restart:
	 * none when the index is complete, and its frames may be overwritten).
	 */
	if (!(restart && s->complete) && (rc = copy_committed(s, &w, &res->copied)) != 0)
		goto out;
	if (restart) {
		rc = start_index(s, s->generation, s->index + 1, w.raw, &w.hdr);
		if (rc == 0)
			rc = copy_committed(s, &w, &res->copied);
		res->restarted = rc == 0;
	}
out:
	close(w.fd);
	return rc;
}

int shadow_flush(struct shadow *s)
{
	if (s->fd < 0 || s->flushed == s->size)
		return 0;
	if (fdatasync(s->fd) != 0)
		return -errno;
	s->flushed = s->size;
	return 0;
}

void shadow_mark_backfilled(struct shadow *s, uint64_t frames)
{
	if (s->fd >= 0 && s->verified && frames > 0 &&
	    s->size == WAL_HEADER_SIZE + frames * wal_frame_size(&s->hdr))
		s->complete = true;
}

void shadow_forget(struct shadow *s)
{
	s->verified = false;
	s->complete = false;
	if (headerless(s))
		s->generation[0] = '\0'; /* reload: no file, so a new generation */
}

int shadow_new_generation(struct shadow *s, const char *reason, struct shadow_sync_result *res)
{
	struct real_wal w;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((rc = real_wal_open(s, &w)) == -ENODATA)
		return new_generation(s, NULL, reason, res);
	if (rc != 0)
		return rc;
	res->wal_size = w.size;
	rc = new_generation(s, &w, reason, res);
	close(w.fd);
	return rc;
}
