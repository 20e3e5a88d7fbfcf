/* book.c - the budget book in a mapping shared by the router workers; see
 * book.h for the design and what survives which crash. */
#define _GNU_SOURCE
#include "book.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "base.h"
#include "file.h"
#include "log.h"

#define BOOK_MAGIC 0x314b4f4f42505655ull /* "UVPBOOK1" */
#define BOOK_VERSION 1
/* Worker slot i is alive while byte BOOK_LOCKS + i of the file is locked
 * (beyond the mapping: a lock needs no data under it). */
#define BOOK_LOCKS (1 << 30)

typedef struct book_budget {
    char name[64];  /* "": free */
    int64_t window; /* start of the window spent counts */
    int64_t spent;
    int64_t reserved; /* the sum of the live workers' reserved[] */
} book_budget_t;

typedef struct book_worker {
    int64_t in_use; /* 1 while claimed (its byte lock tells if it lives) */
    int64_t pid;    /* for the log */
    int64_t reserved[BOOK_BUDGETS];
} book_worker_t;

typedef struct book_shared {
    uint64_t magic; /* written last: a book half made is remade */
    uint64_t version;
    uint64_t size;
    pthread_mutex_t mu; /* robust, process-shared */
    book_budget_t budgets[BOOK_BUDGETS];
    book_worker_t workers[BOOK_WORKERS];
} book_shared_t;

struct book {
    book_shared_t *sh;
    int fd;
    int me; /* our worker slot */
};

/* ---- the mutex ---- */

/* The reserved totals again from the worker slots (a worker died holding
 * the mutex: a total may miss its last change). */
static void s_recount(book_shared_t *sh)
{
    for (size_t i = 0; i < BOOK_BUDGETS; i++) {
        int64_t sum = 0;
        for (size_t w = 0; w < BOOK_WORKERS; w++)
            if (sh->workers[w].in_use)
                sum += sh->workers[w].reserved[i];
        sh->budgets[i].reserved = sum;
    }
}

static void s_lock(book_t *b)
{
    int rc = pthread_mutex_lock(&b->sh->mu);
    if (rc == EOWNERDEAD) {
        log_warn("llm-router: a worker died while changing the budget book; "
                 "recounting its reservations");
        s_recount(b->sh);
        pthread_mutex_consistent(&b->sh->mu);
    } else {
        VP_ASSERT(rc == 0);
    }
}

static void s_unlock(book_t *b)
{
    pthread_mutex_unlock(&b->sh->mu);
}

/* ---- worker slots ---- */

/* Locks (F_WRLCK) or asks about (F_GETLK) the byte of worker slot w. For
 * F_OFD_GETLK: true when no other open file holds it. */
static bool s_slot_lock(int fd, int cmd, size_t w)
{
    struct flock fl = {.l_type = F_WRLCK,
                       .l_whence = SEEK_SET,
                       .l_start = (off_t)(BOOK_LOCKS + w),
                       .l_len = 1};
    if (fcntl(fd, cmd, &fl) < 0)
        return false;
    return cmd == F_OFD_GETLK ? fl.l_type == F_UNLCK : true;
}

/* Gives back what worker slot w holds and frees it. Under the mutex. */
static void s_release(book_shared_t *sh, size_t w)
{
    book_worker_t *k = &sh->workers[w];
    for (size_t i = 0; i < BOOK_BUDGETS; i++) {
        if (!k->reserved[i])
            continue;
        sh->budgets[i].reserved -= k->reserved[i];
        k->reserved[i] = 0;
    }
    k->in_use = 0;
}

static int s_release_dead(book_t *b)
{
    int n = 0;
    for (size_t w = 0; w < BOOK_WORKERS; w++) {
        book_worker_t *k = &b->sh->workers[w];
        if (!k->in_use || (int)w == b->me || !s_slot_lock(b->fd, F_OFD_GETLK, w))
            continue;
        log_info("llm-router: releasing the reservations of worker pid %lld, gone",
                 (long long)k->pid);
        s_release(b->sh, w);
        n++;
    }
    return n;
}

int book_release_dead(book_t *b)
{
    s_lock(b);
    int n = s_release_dead(b);
    s_unlock(b);
    return n;
}

/* Claims a free slot (after releasing the dead). Under the mutex. */
static int s_claim(book_t *b)
{
    s_release_dead(b);
    for (size_t w = 0; w < BOOK_WORKERS; w++) {
        book_worker_t *k = &b->sh->workers[w];
        if (k->in_use || !s_slot_lock(b->fd, F_OFD_SETLK, w))
            continue;
        memset(k->reserved, 0, sizeof k->reserved);
        k->pid = getpid();
        k->in_use = 1;
        return (int)w;
    }
    return -1;
}

/* ---- the mapping ---- */

static int s_init_mutex(pthread_mutex_t *mu)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(mu, &at);
    pthread_mutexattr_destroy(&at);
    return -rc;
}

static bool s_valid(const book_shared_t *sh)
{
    return sh->magic == BOOK_MAGIC && sh->version == BOOK_VERSION &&
           sh->size == sizeof *sh;
}

/* Maps path; a file that is not a book of this layout is replaced by a new
 * one (workers of another layout keep the old file, now unlinked). Under
 * the set-up lock. */
static book_shared_t *s_map(const char *path, int *fd, char *err, size_t errlen)
{
    for (int tries = 0; tries < 2; tries++) {
        struct stat st;
        bool fresh = stat(path, &st) < 0 || st.st_size == 0;
        book_shared_t *sh = file_map_shared(path, sizeof *sh, fd);
        if (!sh) {
            snprintf(err, errlen, "mapping %s: %s", path, strerror(errno));
            return NULL;
        }
        if (s_valid(sh))
            return sh;
        if (fresh) {
            sh->version = BOOK_VERSION;
            sh->size = sizeof *sh;
            sh->magic = BOOK_MAGIC; /* last: a book half made is made again */
            return sh;
        }
        log_warn("llm-router: %s is not a budget book of this version; making "
                 "a new one (spend comes back from the ledger)",
                 path);
        munmap(sh, sizeof *sh);
        close(*fd);
        unlink(path);
    }
    snprintf(err, errlen, "%s: could not make a budget book", path);
    return NULL;
}

/* Whether some worker slot's byte is locked (a worker uses the book). */
static bool s_any_alive(int fd)
{
    struct flock fl = {.l_type = F_WRLCK,
                       .l_whence = SEEK_SET,
                       .l_start = BOOK_LOCKS,
                       .l_len = BOOK_WORKERS};
    return fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type != F_UNLCK;
}

/* The first worker to open the book since none lives (a start, a restart,
 * a reboot): whatever the mutex and the slots say is stale (a mutex locked
 * before a reboot would never be released), and every reservation with
 * them. Under the set-up lock, so that nobody else can be using it. */
static int s_reset(book_shared_t *sh)
{
    for (size_t w = 0; w < BOOK_WORKERS; w++)
        if (sh->workers[w].in_use)
            s_release(sh, w);
    s_recount(sh);
    return s_init_mutex(&sh->mu);
}

/* Maps the book and claims a slot, under the set-up lock. */
static int s_attach(book_t *b, const char *path, char *err, size_t errlen)
{
    b->sh = s_map(path, &b->fd, err, errlen);
    if (!b->sh)
        return -1;
    if (!s_any_alive(b->fd) && s_reset(b->sh) < 0) {
        snprintf(err, errlen, "%s: could not make its mutex", path);
        return -1;
    }
    s_lock(b);
    b->me = s_claim(b);
    s_unlock(b);
    if (b->me < 0) {
        snprintf(err, errlen, "%s: no free worker slot (%d workers at most)", path,
                 BOOK_WORKERS);
        return -1;
    }
    return 0;
}

book_t *book_open(const char *path, char *err, size_t errlen)
{
    char *lock_path = xasprintf("%s.lock", path);
    int lfd = file_lock(lock_path);
    free(lock_path);
    if (lfd < 0) {
        snprintf(err, errlen, "locking %s.lock: %s", path, strerror(-lfd));
        return NULL;
    }
    book_t *b = xcalloc(1, sizeof *b);
    b->fd = -1;
    b->me = -1;
    int rc = s_attach(b, path, err, errlen);
    close(lfd);
    if (rc < 0)
        book_destroy(&b);
    return b;
}

void book_destroy(book_t **bp)
{
    book_t *b = bp ? *bp : NULL;
    if (!b)
        return;
    if (b->me >= 0) {
        s_lock(b);
        s_release(b->sh, (size_t)b->me);
        s_unlock(b);
    }
    if (b->sh)
        munmap(b->sh, sizeof *b->sh);
    if (b->fd >= 0)
        close(b->fd); /* drops the slot's byte lock */
    free(b);
    *bp = NULL;
}

/* ---- budgets ---- */

int book_track(book_t *b, const char *name, int64_t window_start, int64_t persisted)
{
    book_shared_t *sh = b->sh;
    int slot = -1;
    s_lock(b);
    for (size_t i = 0; i < BOOK_BUDGETS && slot < 0; i++)
        if (strcmp(sh->budgets[i].name, name) == 0)
            slot = (int)i;
    for (size_t i = 0; i < BOOK_BUDGETS && slot < 0; i++) {
        book_budget_t *g = &sh->budgets[i];
        if (g->name[0] == '\0') {
            snprintf(g->name, sizeof g->name, "%s", name);
            g->window = window_start;
            g->spent = persisted;
            slot = (int)i;
        }
    }
    if (slot >= 0) {
        book_budget_t *g = &sh->budgets[slot];
        if (window_start > g->window) {
            g->spent = persisted;
            g->window = window_start;
        } else if (window_start == g->window && persisted > g->spent) {
            g->spent = persisted;
        }
    }
    s_unlock(b);
    return slot >= 0 ? slot : -ENOSPC;
}

static rt_state_t s_state(int64_t used, int64_t limit, double near_percent)
{
    if (used >= limit)
        return RT_EXCEEDED;
    if ((double)used >= (double)limit * near_percent / 100.0)
        return RT_NEAR;
    return RT_NORMAL;
}

/* spent + reserved, saturated (neither is negative). */
static int64_t s_used(int64_t spent, int64_t reserved)
{
    int64_t used;
    return __builtin_add_overflow(spent, reserved, &used) ? INT64_MAX : used;
}

void book_admit(book_t *b, int slot, book_admit_t *a)
{
    VP_ASSERT(slot >= 0 && slot < BOOK_BUDGETS);
    book_budget_t *g = &b->sh->budgets[slot];
    int64_t *mine = &b->sh->workers[b->me].reserved[slot];
    int64_t limit = a->limit < BOOK_MAX_LIMIT ? a->limit : BOOK_MAX_LIMIT;
    s_lock(b);
    if (a->window_start > g->window) { /* a new window: nothing spent yet */
        g->spent = 0;
        g->window = a->window_start;
    }
    a->window = g->window;
    a->spent = g->spent;
    a->reserved = g->reserved;
    int64_t used = s_used(a->spent, a->reserved);
    a->state = s_state(used, limit, a->near_percent);
    a->rc = 1;
    a->reserved_amount = 0;
    for (int s = (int)a->state; s <= RT_EXCEEDED; s++) {
        int64_t amount = a->amounts[s];
        /* Against the room left: used + amount could wrap around. */
        if (amount < 0 || (amount > 0 && (used > limit || amount > limit - used)))
            continue;
        a->plan = s;
        a->rc = 0;
        a->reserved_amount = amount;
        *mine += amount; /* the truth first (see s_recount), then the total */
        g->reserved += amount;
        break;
    }
    s_unlock(b);
}

void book_settle(book_t *b, int slot, int64_t window, int64_t reserved, int64_t cost)
{
    VP_ASSERT(slot >= 0 && slot < BOOK_BUDGETS);
    book_budget_t *g = &b->sh->budgets[slot];
    int64_t *mine = &b->sh->workers[b->me].reserved[slot];
    s_lock(b);
    if (window == g->window) /* spent first: a death now leaves it reserved too */
        g->spent += cost;
    *mine -= reserved;
    g->reserved -= reserved;
    s_unlock(b);
}

void book_balance(book_t *b, int slot, int64_t window_start, int64_t *spent,
                  int64_t *reserved)
{
    VP_ASSERT(slot >= 0 && slot < BOOK_BUDGETS);
    const book_budget_t *g = &b->sh->budgets[slot];
    s_lock(b);
    *spent = g->window == window_start ? g->spent : 0;
    *reserved = g->reserved;
    s_unlock(b);
}
