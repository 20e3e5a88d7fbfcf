/* loadshare.c - see loadshare.h. */
#define _GNU_SOURCE
#include "loadshare.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "file.h"

#define LOADSHARE_SLOTS 64

/* One worker's entry. pid 0: free. */
typedef struct slot {
    atomic_int pid;
    atomic_uint conns;
    atomic_uint_least64_t beat_ms;
    char pad[64 - 2 * sizeof(int) - sizeof(uint64_t)]; /* a cache line each */
} slot_t;

struct loadshare {
    slot_t *slots; /* LOADSHARE_SLOTS of them, shared */
    slot_t *mine;
};

/* Whether the process pid is gone (its slot may be taken). */
static bool s_gone(int pid)
{
    return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* Takes a free slot, or one whose process is gone; NULL when all are held. */
static slot_t *s_claim(slot_t *slots, int me)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < LOADSHARE_SLOTS; i++) {
            int cur = atomic_load(&slots[i].pid);
            if (cur == me)
                return &slots[i]; /* ours already (a pid reused) */
            bool take = pass == 0 ? cur == 0 : s_gone(cur);
            if (take && atomic_compare_exchange_strong(&slots[i].pid, &cur, me))
                return &slots[i];
        }
    }
    return NULL;
}

loadshare_t *loadshare_open(const char *path)
{
    size_t len = LOADSHARE_SLOTS * sizeof(slot_t);
    slot_t *slots = file_map_shared(path, len, NULL);
    if (!slots)
        return NULL;
    slot_t *mine = s_claim(slots, (int)getpid());
    if (!mine) {
        munmap(slots, len);
        errno = ENOSPC;
        return NULL;
    }
    atomic_store(&mine->conns, 0);
    atomic_store(&mine->beat_ms, 0); /* not waited for until it says it lives */
    loadshare_t *a = xcalloc(1, sizeof *a);
    a->slots = slots;
    a->mine = mine;
    return a;
}

void loadshare_close(loadshare_t **ap)
{
    loadshare_t *a = ap ? *ap : NULL;
    if (!a)
        return;
    atomic_store(&a->mine->beat_ms, 0);
    atomic_store(&a->mine->conns, 0);
    atomic_store(&a->mine->pid, 0);
    munmap(a->slots, LOADSHARE_SLOTS * sizeof(slot_t));
    free(a);
    *ap = NULL;
}

void loadshare_set(loadshare_t *a, unsigned conns, uint64_t now_ms)
{
    atomic_store_explicit(&a->mine->conns, conns, memory_order_relaxed);
    atomic_store_explicit(&a->mine->beat_ms, now_ms, memory_order_relaxed);
}

/* The fewest a live sibling holds; UINT32_MAX when none is live. */
static unsigned s_least(const loadshare_t *a, uint64_t now_ms)
{
    unsigned least = UINT32_MAX;
    for (int i = 0; i < LOADSHARE_SLOTS; i++) {
        const slot_t *s = &a->slots[i];
        if (s == a->mine || atomic_load_explicit(&s->pid, memory_order_relaxed) == 0)
            continue;
        uint64_t beat = atomic_load_explicit(&s->beat_ms, memory_order_relaxed);
        if (!beat || now_ms > beat + LOADSHARE_STALE_MS)
            continue;
        unsigned n = atomic_load_explicit(&s->conns, memory_order_relaxed);
        if (n < least)
            least = n;
    }
    return least;
}

bool loadshare_should_yield(const loadshare_t *a, unsigned conns, uint64_t now_ms)
{
    unsigned least = s_least(a, now_ms);
    return least != UINT32_MAX && conns > least + 1 + least / 16;
}

unsigned loadshare_shed_excess(const loadshare_t *a, unsigned conns, uint64_t now_ms)
{
    unsigned least = s_least(a, now_ms);
    if (least == UINT32_MAX)
        return 0;
    uint64_t bound = (uint64_t)least + 4 + least / 8;
    return conns > bound ? conns - (unsigned)bound : 0;
}
