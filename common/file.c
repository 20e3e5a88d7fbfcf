/* file.c - see file.h. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "sbuf.h"

char *file_read_all(const char *path, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    sbuf_t b = {0};
    for (;;) {
        sbuf_reserve(&b, 4096);
        ssize_t n = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            sbuf_free(&b);
            errno = e;
            return NULL;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
    }
    close(fd);
    b.data[b.len] = '\0';
    if (lenp)
        *lenp = b.len;
    return sbuf_steal(&b);
}

int file_mkdirs(const char *path, unsigned mode)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            struct stat st;
            if (mkdir(p, (mode_t)mode) < 0 &&
                (errno != EEXIST || stat(p, &st) < 0 || !S_ISDIR(st.st_mode))) {
                rc = errno == EEXIST ? -ENOTDIR : -errno;
                break;
            }
            if (end)
                break;
            *s = '/';
        }
    }
    free(p);
    return rc;
}

int file_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    return fd;
}

/* Gives fd's first len bytes real blocks. A page of a shared mapping that
 * has none (a sparse file, grown by ftruncate) gets its block when first
 * written, and on a full disk that write raises SIGBUS; with every block
 * allocated here, a full disk is an error now, never a signal later.
 * posix_fallocate keeps existing data and is cheap on blocks already
 * allocated. */
static int s_preallocate(int fd, size_t len)
{
    int rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc == EINTR)
        rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc == 0)
        return 0;
    errno = rc;
    return -1;
}

void *file_map_shared(const char *path, size_t len, int *fdp)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    void *p = MAP_FAILED;
    if (fd >= 0 && s_preallocate(fd, len) == 0)
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    if (fd >= 0 && (p == MAP_FAILED || !fdp))
        close(fd);
    errno = e;
    if (p == MAP_FAILED)
        return NULL;
    if (fdp)
        *fdp = fd;
    return p;
}
