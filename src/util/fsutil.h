/*
 * File helpers for durable writes: every file that must survive a crash
 * appears whole (temporary name, fsync, rename, fsync of the directory).
 * All functions return 0 or a negative errno; none allocate unless said.
 */
#ifndef LITESTREAM_FSUTIL_H
#define LITESTREAM_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* dir + "/" + name, malloc'd (NULL on allocation failure). */
char *path_join(const char *dir, const char *name);

/* printf into a malloc'd string (NULL on failure). */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mkdir -p; existing directories are fine. */
int fs_mkdir_p(const char *path, mode_t mode);

int fs_fsync_dir(const char *dir);

/*
 * The directory part of path, everything before its last '/', into buf
 * ("a/b/c" gives "a/b", "/x" gives ""). -EINVAL when path has no '/' or
 * that part does not fit in n bytes; buf is then untouched.
 */
int fs_parent_dir(const char *path, char *buf, size_t n);

/* mkdir -p of fs_parent_dir(path); -EINVAL as that one. */
int fs_mkdir_parent(const char *path, mode_t mode);

/* fsync of the directory that holds path. */
int fs_fsync_parent(const char *path);

/* Writes buf to path atomically: path.tmp, fsync, rename, fsync dir. */
int fs_write_atomic(const char *path, const void *buf, size_t n, mode_t mode);

/* Reads up to cap-1 bytes of a small file and NUL-terminates. -ENOENT if missing. */
int fs_read_small(const char *path, char *buf, size_t cap);

/* pread/write that retry short transfers and EINTR. pread returns bytes read (short at EOF). */
ssize_t fs_pread_full(int fd, void *buf, size_t n, uint64_t off);
int fs_write_full(int fd, const void *buf, size_t n);

/* Copies len bytes from in at in_off to out at its current offset. -EIO if in is short. */
int fs_copy_range(int in, uint64_t in_off, uint64_t len, int out);

/* Copies a whole file to dst (created with mode, O_EXCL); fsyncs dst. */
int fs_copy_file(const char *src, const char *dst, mode_t mode);

/* rm -rf path (missing is fine). */
int fs_remove_tree(const char *path);

/* Size of the file at path, or -errno. */
int64_t fs_file_size(const char *path);

#endif
