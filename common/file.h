/* file.h - whole files and directories: read a file, make a directory
 * path, a set-up lock file, and a file mapped shared between processes.
 * Blocking calls: not for the loop thread of a busy worker, except at
 * set-up. */
#ifndef VAPORA_FILE_H
#define VAPORA_FILE_H

#include <stddef.h>

/* Reads the whole file at path into a NUL-terminated heap string (*lenp,
 * when given, receives its length). NULL with errno set on failure. */
char *file_read_all(const char *path, size_t *lenp);

/* mkdir -p: creates path and its missing parents (mode for each new one).
 * Returns 0 (also when it exists as a directory) or -errno. */
int file_mkdirs(const char *path, unsigned mode);

/* Opens path (created, mode 0600) and waits for an exclusive flock on it,
 * which lasts until the returned fd is closed. Returns the fd or -errno.
 * For set-up that processes starting together must do one at a time. */
int file_lock(const char *path);

/* Maps len bytes of path (created with mode 0600, grown to len when
 * shorter) read-write and shared between processes. Every block of the
 * first len bytes is allocated first, so that writing the mapping can never
 * raise SIGBUS on a full disk: then this fails with ENOSPC instead. Returns
 * the mapping (munmap it) or NULL with errno set. With fdp, *fdp receives
 * the open fd (for flock; the caller closes it); otherwise the fd is
 * closed. */
void *file_map_shared(const char *path, size_t len, int *fdp);

#endif
