/* logins.c - the login slow-down; see logins.h. */
#define _GNU_SOURCE
#include "logins.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "file.h"
#include "log.h"
#include "now.h"

#define LOGINS_SLOTS 256
#define LOGINS_FREE 5
#define LOGINS_WINDOW_MS (15u * 60u * 1000u)

typedef struct login_fail {
    char username[64];
    unsigned count;
    uint64_t first_ms;
} login_fail_t;

struct logins {
    login_fail_t *fails; /* LOGINS_SLOTS, mapped shared or private */
    int fd;              /* the mapped file, for flock; -1 when private */
    bool shared;
};

logins_t *logins_new(const char *data_dir)
{
    logins_t *l = xcalloc(1, sizeof *l);
    char *path = xasprintf("%s/login-failures", data_dir);
    l->fd = -1;
    void *p = file_map_shared(path, LOGINS_SLOTS * sizeof(login_fail_t), &l->fd);
    if (!p) {
        log_err(errno, "auth: sharing %s (login failures are counted per worker)", path);
        l->fails = xcalloc(LOGINS_SLOTS, sizeof *l->fails);
    } else {
        l->fails = p;
        l->shared = true;
    }
    free(path);
    return l;
}

void logins_destroy(logins_t **lp)
{
    logins_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    if (l->shared)
        munmap(l->fails, LOGINS_SLOTS * sizeof *l->fails);
    else
        free(l->fails);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
    *lp = NULL;
}

bool logins_shared(const logins_t *l)
{
    return l->shared;
}

/* A few non-blocking tries: the holder is another worker inside a few
 * instructions; the loop thread never waits on it. */
static bool s_lock(logins_t *l)
{
    for (int i = 0; l->fd >= 0 && i < 1000; i++)
        if (flock(l->fd, LOCK_EX | LOCK_NB) == 0)
            return true;
    return false;
}

static void s_unlock(logins_t *l, bool locked)
{
    if (locked)
        flock(l->fd, LOCK_UN);
}

static login_fail_t *s_slot(logins_t *l, const char *username)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = username; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &l->fails[h % LOGINS_SLOTS];
}

uint64_t logins_failure_delay(logins_t *l, const char *username)
{
    login_fail_t *f = s_slot(l, username);
    uint64_t now = now_ms(); /* CLOCK_MONOTONIC: one clock for all workers */
    bool locked = s_lock(l);
    if (strncmp(f->username, username, sizeof f->username) != 0 ||
        now - f->first_ms > LOGINS_WINDOW_MS) {
        snprintf(f->username, sizeof f->username, "%s", username);
        f->count = 0;
        f->first_ms = now;
    }
    unsigned count = ++f->count;
    s_unlock(l, locked);
    if (count <= LOGINS_FREE)
        return 0;
    unsigned over = count - LOGINS_FREE - 1;
    uint64_t d = 250ull << (over < 5 ? over : 5);
    return d > 8000 ? 8000 : d;
}

void logins_forget(logins_t *l, const char *username)
{
    login_fail_t *f = s_slot(l, username);
    bool locked = s_lock(l);
    if (strncmp(f->username, username, sizeof f->username) == 0)
        memset(f, 0, sizeof *f);
    s_unlock(l, locked);
}
