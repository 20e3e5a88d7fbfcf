/* util.h - small helpers every module uses: fatal allocation, monotonic and
 * wall-clock time, a growable string buffer, and fd flag helpers.
 *
 * Out of memory in a worker is fatal: x*alloc() abort with a log line instead
 * of returning NULL, so callers never check. */
#ifndef VAPORA_UTIL_H
#define VAPORA_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define VAPORA_VERSION "0.1.0"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

/* Asserted in release builds too: an invariant that does not hold is a bug
 * that must not run on. */
#define VP_ASSERT(cond)                                                                \
    do {                                                                               \
        if (!(cond))                                                                   \
            util__assert_fail(#cond, __FILE__, __LINE__);                              \
    } while (0)

void util__assert_fail(const char *cond, const char *file, int line)
    __attribute__((noreturn));

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds / nanoseconds on CLOCK_MONOTONIC. */
uint64_t time_now_ms(void);
uint64_t time_now_ns(void);
/* Writes an RFC 3339 UTC timestamp with milliseconds ("2026-11-24T10:00:00.123Z")
 * of the current wall-clock time into buf (at least 32 bytes). */
void time_iso8601(char *buf, size_t len);

/* Growable NUL-terminated byte buffer. Zero-initialise (`sbuf_t b = {0};`)
 * or use sbuf_init; release with sbuf_free. */
typedef struct sbuf {
    char *data;
    size_t len;
    size_t cap;
} sbuf_t;

void sbuf_reserve(sbuf_t *b, size_t extra);
void sbuf_append(sbuf_t *b, const void *data, size_t len);
void sbuf_puts(sbuf_t *b, const char *s);
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vprintf(sbuf_t *b, const char *fmt, va_list ap);
void sbuf_reset(sbuf_t *b);
void sbuf_free(sbuf_t *b);
/* Hands the heap string to the caller (never NULL) and empties b. */
char *sbuf_steal(sbuf_t *b);

/* mkdir -p: creates path and its missing parents (mode for each new one).
 * Returns 0 (also when it exists as a directory) or -errno. */
int dir_make(const char *path, unsigned mode);

/* Reads the whole file at path into a NUL-terminated heap string (*lenp,
 * when given, receives its length). NULL with errno set on failure. */
char *file_read_all(const char *path, size_t *lenp);

/* Returns a heap copy of the NUL-terminated s in which every byte that is
 * not part of a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) is replaced by U+FFFD, so that text
 * from a request (a percent-decoded path, say) can go into JSON. */
char *utf8_repair(const char *s);

/* Writes all len bytes of data to fd (a blocking fd), retrying short
 * writes and EINTR. Returns 0, or -errno (-EIO when write wrote nothing). */
int fd_write_all(int fd, const void *data, size_t len);

/* Sets O_NONBLOCK / FD_CLOEXEC on fd. Return 0 or -errno. */
int fd_set_nonblock(int fd);
int fd_set_cloexec(int fd);

/* Opens path (created, mode 0600) and waits for an exclusive flock on it,
 * which lasts until the returned fd is closed. Returns the fd or -errno.
 * For set-up that processes starting together must do one at a time. */
int file_lock(const char *path);
/* Maps len bytes of path (created with mode 0600, grown to len when
 * shorter) read-write and shared between processes. Returns the mapping
 * (munmap it) or NULL with errno set. With fdp, *fdp receives the open fd
 * (for flock; the caller closes it); otherwise the fd is closed. */
void *file_map_shared(const char *path, size_t len, int *fdp);

/* Parses "host:port" ("0.0.0.0:8001", "[::1]:8001", ":8001"). host receives
 * at most hostlen-1 bytes; an empty host means "all addresses"; port 0
 * (any free port) is accepted.
 * Returns 0 or -EINVAL. */
int addr_split(const char *addr, char *host, size_t hostlen, int *port);

/* Parses a whole base-10 integer in [min,max]; returns 0 or -EINVAL/-ERANGE. */
int parse_long(const char *s, long min, long max, long *out);
/* Parses a whole finite double; returns 0 or -EINVAL. */
int parse_double(const char *s, double *out);

#endif
