/*
 * The application's commits, seen through the WAL-index header; see
 * commit_watch.h.
 */
#include "db/commit_watch.h"
#include "util/clock.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The header's change counter iChange: its third 32-bit word. */
#define HDR_ICHANGE 2
/* After a commit, how long to try again without pausing. */
#define BURST_US 300

void commit_watch_init(struct commit_watch *w)
{
	w->fd = -1;
	w->hdr = NULL;
	w->seen = 0;
	w->burst_until_us = 0;
	w->quiet = false;
}

void commit_watch_reset(struct commit_watch *w)
{
	w->seen = 0;
	w->burst_until_us = 0;
	w->quiet = false;
}

void commit_watch_open(struct commit_watch *w, const char *db_path)
{
	char path[4096];
	struct stat st;
	void *p;

	if (w->fd >= 0)
		return;
	if (snprintf(path, sizeof(path), "%s-shm", db_path) >= (int)sizeof(path))
		return;
	w->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (w->fd < 0 || fstat(w->fd, &st) != 0 || st.st_size < 4096)
		return; /* keep the descriptor: see commit_watch.h */
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, w->fd, 0);
	if (p != MAP_FAILED)
		w->hdr = p;
}

void commit_watch_close(struct commit_watch *w)
{
	if (w->hdr != NULL)
		munmap((void *)w->hdr, 4096);
	if (w->fd >= 0)
		close(w->fd);
	commit_watch_init(w);
}

bool commit_watch_wait(struct commit_watch *w, int64_t max_spin_us)
{
	int64_t now = clock_mono_us(), until = now + max_spin_us;

	if (w->hdr == NULL)
		return false;
	if (now < w->burst_until_us)
		return true;
	if (w->seen == 0)
		w->seen = __atomic_load_n(&w->hdr[HDR_ICHANGE], __ATOMIC_ACQUIRE);
	do {
		uint32_t c = __atomic_load_n(&w->hdr[HDR_ICHANGE], __ATOMIC_ACQUIRE);
		if (c != w->seen) {
			w->seen = c;
			w->quiet = false;
			w->burst_until_us = clock_mono_us() + BURST_US;
			return true;
		}
		now = clock_mono_us();
	} while (!w->quiet && now < until);
	w->quiet = true;
	return false;
}
