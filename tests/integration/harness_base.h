/* harness_base.h - what every part of the integration harness stands on:
 * monotonic time, free ports, temp files, the paths of the binaries under
 * test, and (at the end, for the harness's own modules only) the list
 * macros and deadline helpers they share.
 *
 * Errors are returned as 0 / -errno, pointers as NULL on failure. Nothing
 * here asserts: the criterion-aware helpers are in harness_assert.h. The
 * calls are thread-safe unless said otherwise. */
#ifndef VAPORA_TEST_HARNESS_BASE_H
#define VAPORA_TEST_HARNESS_BASE_H

#include <stdbool.h>
#include <stddef.h>

/* Default bounds (ms) used by the convenience calls. */
#define TH_READY_MS 5000 /* a worker must accept connections within this */
#define TH_EXIT_MS 5000  /* ... and exit within this after a signal */
#define TH_IO_MS 5000    /* one request/response exchange */

/* Monotonic milliseconds, for the tests' own timing. */
long long th_now_ms(void);

/* Sleeps ms milliseconds (restarted on EINTR). */
void th_sleep_ms(int ms);

/* Returns a free TCP port on 127.0.0.1 (bound to port 0, read back, closed),
 * or -errno. Another process may take it before it is used: th_start()
 * retries with a new port when the worker cannot bind. */
int th_free_port(void);

/* A fresh path "$VAPORA_TEST_TMP/<tag>-<pid>-<n><suffix>" (falls back to
 * /tmp). The caller owns the heap string. Main thread only. */
char *th_tmp_path(const char *tag, const char *suffix);

/* Writes text to a fresh temp file; returns its path (caller frees and
 * unlinks) or NULL. Main thread only. */
char *th_write_temp(const char *tag, const char *suffix, const char *text);

/* Writes text to path through a temp file and rename(), so a reader sees
 * the old or the new file, never half of one. Returns 0 or -errno. */
int th_replace_file(const char *path, const char *text);

/* Reads a whole file into a NUL-terminated heap string (caller frees), or
 * NULL when it cannot be read. *len, when non-NULL, receives its length. */
char *th_read_file(const char *path, size_t *len);

/* The path of a binary: "vapora-backend" -> $VAPORA_BIN_DIR/vapora-backend
 * (default build/bin); "vapora-testsvc" -> $VAPORA_BIN_DIR/../tests/...
 * The caller owns the heap string. */
char *th_bin_path(const char *name);

/* Whether $VAPORA_TEST_KEEP asks to keep the files of a test (logs,
 * configs, data directories) for a look after it. */
bool th_keep_files(void);

/* ---- internal to the harness modules ---- */

/* How many ports a start tries when the one it picked was taken meanwhile. */
#define TH_START_TRIES 3

/* Links x at the head of a list / unlinks it (any type with prev, next).
 * The harness keeps what a test holds on such lists, so that th_cleanup()
 * can release what a failed test left behind. */
#define TH_LINK(head, x)                                                               \
    do {                                                                               \
        (x)->prev = NULL;                                                              \
        (x)->next = (head);                                                            \
        if (head)                                                                      \
            (head)->prev = (x);                                                        \
        (head) = (x);                                                                  \
    } while (0)
#define TH_UNLINK(head, x)                                                             \
    do {                                                                               \
        if ((x)->prev)                                                                 \
            (x)->prev->next = (x)->next;                                               \
        else                                                                           \
            (head) = (x)->next;                                                        \
        if ((x)->next)                                                                 \
            (x)->next->prev = (x)->prev;                                               \
        (x)->prev = (x)->next = NULL;                                                  \
    } while (0)

/* Milliseconds left until deadline (th_now_ms() time), never negative. */
int th__left(long long deadline);

/* Waits for events on fd until deadline. Returns the revents, 0 on
 * timeout, or -errno. */
int th__poll(int fd, short events, long long deadline);

/* Writes all of len bytes to fd; returns 0 or -errno. */
int th__write_all(int fd, const char *data, size_t len);

#endif
