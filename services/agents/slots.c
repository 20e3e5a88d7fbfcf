/* slots.c - see slots.h. */
#define _GNU_SOURCE
#include "slots.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "file.h"
#include "now.h"

#define SLOTS_MAGIC 0x56534c4f54530002ull /* "VSLOTS" v2 */

typedef struct wentry {
    int32_t pid;
    uint64_t start; /* /proc/PID/stat starttime: tells a reused pid apart */
} wentry_t;

typedef struct aentry {
    char name[AGENT_NAME_MAX + 1];
    uint16_t held[SLOTS_WORKERS]; /* runs held by each registered worker */
    uint64_t last_ms;             /* wall clock of the last acquire */
} aentry_t;

typedef struct table {
    uint64_t magic;
    pthread_mutex_t mu;
    wentry_t workers[SLOTS_WORKERS];
    aentry_t agents[SLOTS_AGENTS];
} table_t;

struct slots {
    table_t *t;
    int me;           /* this process's index in workers[] */
    uint64_t reap_ms; /* monotonic ms of this process's last look for the dead */
};

#define SLOTS_REAP_EVERY_MS 100

/* The start time of pid (clock ticks since boot), 0 when it is gone. */
static uint64_t s_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long st = 0;
    /* After ")": state, then fields 4..21; starttime is field 22. */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        st = strtoull(p + 1, NULL, 10);
    return st;
}

static bool s_alive(const wentry_t *w)
{
    return w->pid > 0 && s_start_time(w->pid) == w->start;
}

/* Under the lock: forgets every dead worker and the runs it held. */
static void s_reap(table_t *t)
{
    for (int i = 0; i < SLOTS_WORKERS; i++) {
        if (t->workers[i].pid == 0 || s_alive(&t->workers[i]))
            continue;
        t->workers[i] = (wentry_t){0};
        for (int a = 0; a < SLOTS_AGENTS; a++)
            t->agents[a].held[i] = 0;
    }
}

/* Under the lock: looks for dead workers at most every SLOTS_REAP_EVERY_MS
 * (each look reads /proc for every registered worker). */
static void s_reap_sometimes(slots_t *s)
{
    uint64_t now = now_ms();
    if (now - s->reap_ms < SLOTS_REAP_EVERY_MS)
        return;
    s->reap_ms = now;
    s_reap(s->t);
}

static void s_lock(table_t *t)
{
    int rc = pthread_mutex_lock(&t->mu);
    if (rc == EOWNERDEAD) { /* its holder died inside: the table is whole */
        s_reap(t);
        pthread_mutex_consistent(&t->mu);
    }
}

static void s_unlock(table_t *t)
{
    pthread_mutex_unlock(&t->mu);
}

static void s_init(table_t *t)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->mu, &a);
    pthread_mutexattr_destroy(&a);
    t->magic = SLOTS_MAGIC;
}

/* Maps the table, initialising it once (under a set-up lock file). */
static table_t *s_map(const char *path)
{
    char *lpath = xasprintf("%s.lock", path);
    int lock = file_lock(lpath);
    free(lpath);
    if (lock < 0) {
        errno = -lock;
        return NULL;
    }
    table_t *t = file_map_shared(path, sizeof *t, NULL);
    if (t && t->magic != SLOTS_MAGIC) {
        memset(t, 0, sizeof *t);
        s_init(t);
    }
    int e = errno;
    close(lock);
    errno = e;
    return t;
}

static int s_register(table_t *t)
{
    s_lock(t);
    s_reap(t);
    int me = -1;
    for (int i = 0; i < SLOTS_WORKERS && me < 0; i++)
        if (t->workers[i].pid == 0)
            me = i;
    if (me >= 0)
        t->workers[me] = (wentry_t){.pid = getpid(), .start = s_start_time(getpid())};
    s_unlock(t);
    return me;
}

slots_t *slots_open(const char *path)
{
    table_t *t = s_map(path);
    if (!t)
        return NULL;
    int me = s_register(t);
    if (me < 0) {
        munmap(t, sizeof *t);
        errno = ENOSPC;
        return NULL;
    }
    slots_t *s = xcalloc(1, sizeof *s);
    s->t = t;
    s->me = me;
    return s;
}

void slots_destroy(slots_t **sp)
{
    slots_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    s_lock(s->t);
    for (int a = 0; a < SLOTS_AGENTS; a++)
        s->t->agents[a].held[s->me] = 0;
    s->t->workers[s->me] = (wentry_t){0};
    s_unlock(s->t);
    munmap(s->t, sizeof *s->t);
    free(s);
    *sp = NULL;
}

/* Under the lock: the entry of name (created when create), or NULL. */
static aentry_t *s_find(table_t *t, const char *name, bool create)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (int i = 0; i < SLOTS_AGENTS; i++) {
        aentry_t *e = &t->agents[(h + (uint64_t)i) % SLOTS_AGENTS];
        if (strcmp(e->name, name) == 0)
            return e;
        if (e->name[0] == '\0') {
            if (!create)
                return NULL;
            snprintf(e->name, sizeof e->name, "%s", name);
            return e;
        }
    }
    return NULL;
}

static unsigned s_sum(const table_t *t, const aentry_t *e)
{
    unsigned n = 0;
    for (int i = 0; i < SLOTS_WORKERS; i++)
        if (t->workers[i].pid)
            n += e->held[i];
    return n;
}

int slots_acquire(slots_t *s, const char *agent, unsigned max)
{
    if (!agent || !*agent || strlen(agent) > AGENT_NAME_MAX)
        return -EINVAL;
    s_lock(s->t);
    aentry_t *e = s_find(s->t, agent, true);
    int rc = e ? 0 : -ENOSPC;
    if (e && s_sum(s->t, e) >= max) {
        s_reap_sometimes(s); /* a dead worker's runs may be what fills it */
        rc = s_sum(s->t, e) >= max ? -EBUSY : 0;
    }
    if (rc == 0) {
        e->held[s->me]++;
        e->last_ms = (uint64_t)now_wall_ms();
    }
    s_unlock(s->t);
    return rc;
}

void slots_release(slots_t *s, const char *agent)
{
    s_lock(s->t);
    aentry_t *e = s_find(s->t, agent, false);
    if (e && e->held[s->me] > 0)
        e->held[s->me]--;
    s_unlock(s->t);
}

unsigned slots_in_flight(slots_t *s, const char *agent)
{
    s_lock(s->t);
    aentry_t *e = s_find(s->t, agent, false);
    unsigned n = e ? s_sum(s->t, e) : 0;
    s_unlock(s->t);
    return n;
}

uint64_t slots_last_used(slots_t *s, const char *agent)
{
    s_lock(s->t);
    aentry_t *e = s_find(s->t, agent, false);
    uint64_t v = e ? e->last_ms : 0;
    s_unlock(s->t);
    return v;
}
