/* fd.h - helpers on file descriptors: flags and a whole write. Any thread. */
#ifndef VAPORA_FD_H
#define VAPORA_FD_H

#include <stddef.h>

/* Sets O_NONBLOCK / FD_CLOEXEC on fd. Return 0 or -errno. */
int fd_set_nonblock(int fd);
int fd_set_cloexec(int fd);

/* Writes all len bytes of data to fd (a blocking fd), retrying short
 * writes and EINTR. Returns 0, or -errno (-EIO when write wrote nothing). */
int fd_write_all(int fd, const void *data, size_t len);

#endif
