/*
 * Helpers shared by the libFuzzer targets in this directory (see README.md).
 *
 * Every target calls only pure parsing functions of src/ on its input and
 * frees what they return, so that AddressSanitizer's leak check at exit and
 * its heap checks during the run see every allocation they make.
 *
 * FUZZ_CHECK(cond) is an invariant the header of the function under test
 * promises (a round trip, a value in range). Those checks are compiled only
 * with -DFUZZ_INVARIANTS: a broken invariant is a logic error rather than a
 * memory error, and a run hunting memory errors should not stop at it.
 */
#ifndef LITESTREAM_FUZZ_H
#define LITESTREAM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef FUZZ_INVARIANTS
#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                    \
			abort();                                                           \
		}                                                                          \
	} while (0)
#else
#define FUZZ_CHECK(cond) ((void)0)
#endif

/* A malloc'd NUL-terminated copy of data[0..size) (it may hold NULs); aborts on ENOMEM. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * Writes data to an anonymous memory file and returns its descriptor, with
 * a path that opens it in path[] ("/proc/self/fd/N"). -1 on failure.
 */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
