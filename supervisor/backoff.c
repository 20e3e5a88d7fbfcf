/* backoff.c - see backoff.h. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include "backoff.h"

uint64_t sv_backoff_after_exit(sv_proc_t *p, uint64_t now, bool was_ready)
{
    if (was_ready && now - p->started_ms >= SV_HEALTHY_RESET_MS)
        p->failures = 0;
    p->failures++;
    if (p->failures == 1 && was_ready)
        return 0;
    unsigned shift = p->failures - (was_ready ? 2 : 1);
    uint64_t d = SV_BACKOFF_MIN_MS;
    while (shift-- > 0 && d < SV_BACKOFF_MAX_MS)
        d *= 2;
    if (d > SV_BACKOFF_MAX_MS)
        d = SV_BACKOFF_MAX_MS;
    return d + (uint64_t)(random() % (long)(d / 4 + 1));
}

void sv_enter_backoff(sv_proc_t *p, uint64_t now, uint64_t delay)
{
    p->state = SV_BACKOFF;
    p->next_attempt_ms = now + delay;
    p->next_attempt_wall = time(NULL) + (time_t)((delay + 999) / 1000);
}
