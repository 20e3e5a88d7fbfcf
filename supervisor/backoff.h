/* backoff.h - the restart policy shared by workers and programs: none for
 * the first failure after a process became ready, else 100 ms doubling per
 * consecutive failure up to 30 s, plus up to 25 % jitter; a process that
 * had been ready for 30 s starts a fresh count. A slot never restarts
 * faster than this allows (s6).
 *
 * Loop thread only (random() is not reseeded here: sv_new seeds it). */
#ifndef VAPORA_SV_BACKOFF_H
#define VAPORA_SV_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "proc.h"

#define SV_BACKOFF_MIN_MS 100
#define SV_BACKOFF_MAX_MS 30000
#define SV_HEALTHY_RESET_MS 30000

/* Records an exit of p at `now` (ms, monotonic) and returns the delay
 * before the next start. was_ready: the process had said it serves. */
uint64_t sv_backoff_after_exit(sv_proc_t *p, uint64_t now, bool was_ready);
/* Puts p in backoff until now + delay. */
void sv_enter_backoff(sv_proc_t *p, uint64_t now, uint64_t delay);

#endif
