/* shwake.c - see shwake.h. */
#define _GNU_SOURCE
#include "shwake.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "file.h"

#define SHWAKE_LEN 4096

typedef struct {
    _Atomic uint32_t seq;
    _Atomic uint32_t sleepers;
} shwake_word_t;

struct shwake {
    shwake_word_t *word; /* in the shared mapping */
};

/* Where a NULL handle's kicks and waits go (one process only). */
static shwake_word_t s_private;

static shwake_word_t *s_word(shwake_t *w)
{
    return w ? w->word : &s_private;
}

/* A futex on a shared mapping must not use FUTEX_PRIVATE_FLAG; a private
 * word may. */
static int s_op(shwake_t *w, int op)
{
    return w ? op : op | FUTEX_PRIVATE_FLAG;
}

shwake_t *shwake_open(const char *path)
{
    void *p = file_map_shared(path, SHWAKE_LEN, NULL);
    if (!p)
        return NULL;
    shwake_t *w = xcalloc(1, sizeof *w);
    w->word = p;
    return w;
}

void shwake_close(shwake_t **wp)
{
    shwake_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    munmap(w->word, SHWAKE_LEN);
    free(w);
    *wp = NULL;
}

uint32_t shwake_seq(shwake_t *w)
{
    return atomic_load(&s_word(w)->seq);
}

void shwake_kick(shwake_t *w)
{
    shwake_word_t *x = s_word(w);
    atomic_fetch_add(&x->seq, 1);
    if (atomic_load(&x->sleepers) > 0)
        syscall(SYS_futex, &x->seq, s_op(w, FUTEX_WAKE), INT_MAX, NULL, NULL, 0);
}

bool shwake_wait(shwake_t *w, uint32_t seen, int ms)
{
    shwake_word_t *x = s_word(w);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    atomic_fetch_add(&x->sleepers, 1);
    /* The kernel sleeps only while seq still equals seen: a kick between
     * the caller's read and this call returns at once (EAGAIN). */
    long rc =
        atomic_load(&x->seq) != seen
            ? 0
            : syscall(SYS_futex, &x->seq, s_op(w, FUTEX_WAIT), seen, &ts, NULL, 0);
    int e = errno;
    atomic_fetch_sub(&x->sleepers, 1);
    return rc == 0 || e != ETIMEDOUT;
}
