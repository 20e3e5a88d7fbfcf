/* shwake.h - a wake-up shared between processes: a sequence number and a
 * count of sleepers in a small file mapped by every process that opens the
 * same path (a futex on shared memory). A process that made work for
 * another (say, queued rows for a publisher in a sibling worker) kicks;
 * the one that does the work waits for the sequence to move past the value
 * it saw before it last looked for work, so a kick is never missed.
 * Kicking costs an atomic add, and a system call only while someone
 * sleeps. Any thread may kick or wait. */
#ifndef VAPORA_SHWAKE_H
#define VAPORA_SHWAKE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct shwake shwake_t;

/* Maps path (created, mode 0600). When it cannot be mapped (errno
 * logged by the caller), NULL: kick and wait on NULL then act on a word
 * private to this process, so waiting still times out and kicks from this
 * process still wake it. */
shwake_t *shwake_open(const char *path);
void shwake_close(shwake_t **wp);

/* The current sequence: read it before looking for work. */
uint32_t shwake_seq(shwake_t *w);

/* Moves the sequence on and wakes every sleeper. */
void shwake_kick(shwake_t *w);

/* Sleeps until the sequence differs from seen, or ms pass. Returns true
 * when woken (by a kick, a signal, or the sequence had already moved),
 * false when the time ran out. */
bool shwake_wait(shwake_t *w, uint32_t seen, int ms);

#endif
