/* sigfd.h - signals as loop events, for the worker and the supervisor.
 *
 * sigfd_new() blocks the given signals in the calling thread (threads
 * started later inherit the mask), ignores SIGPIPE, and opens a signalfd
 * (non-blocking, close-on-exec) on them, registered on the loop: each
 * signal that arrives is read there and handed to fn on the loop thread.
 * No work ever happens in a signal handler (nginx, s6).
 *
 * Call it on the loop thread, before starting threads that must not take
 * these signals. Loop thread only. */
#ifndef VAPORA_SIGFD_H
#define VAPORA_SIGFD_H

#include <stddef.h>

#include "loop.h"

typedef struct sigfd sigfd_t;

/* Called once per signal read, in arrival order, with its number. */
typedef void (*sigfd_fn)(int signo, void *ud);

/* Takes the n signals of signals (SIGTERM, ...) through fn. Returns NULL
 * with errno set on failure (signalfd or loop_add_fd). The caller owns the
 * result. */
sigfd_t *sigfd_new(loop_t *loop, const int *signals, size_t n, sigfd_fn fn, void *ud);
/* Unregisters and closes the signalfd; the signals stay blocked. Accepts
 * NULL; sets *sp = NULL. */
void sigfd_destroy(sigfd_t **sp);

#endif
