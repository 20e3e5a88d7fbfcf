/* logins.c - the login throttle; see logins.h. */
#define _GNU_SOURCE
#include "logins.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
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

#define LOGINS_MAGIC 0x34534e49474f4c56ull /* "VLOGINS4" */
#define LOGINS_SLOTS 16384u                /* 512 KiB of entries */
#define LOGINS_RUN 16u                     /* slots a key may use */
#define LOGINS_WINDOW_MS (15u * 60u * 1000u)
#define LOGINS_FIRST_DELAY_MS 250u
#define LOGINS_MAX_DELAY_MS 8000u
#define LOGINS_LOCK_WAIT_MS 200u /* see s_lock */
/* A username and address that logged in are trusted this long (from the
 * last success), until LOGINS_PAIR_FREE failures of their own. */
#define LOGINS_TRUST_MS (30ull * 24 * 3600 * 1000)
#define LOGINS_PAIR_FREE 5u
#define LOGINS_RUN_PAIRS 4u /* trusted pairs a run of slots may hold */

/* The kinds that count (each with an allowance and an overflow entry);
 * a trusted pair counts only its own failures and never overflows. */
enum { KIND_USER, KIND_ADDR, KINDS, KIND_PAIR = KINDS };

#define ENTRY_TRUSTED 1u /* a trusted pair: until_ms is the end of the trust */

/* One username's or address's count, or a trusted pair of the two; h == 0:
 * never used. */
typedef struct entry {
    uint64_t h; /* keyed hash of the kind and the key */
    uint32_t count;
    uint32_t flags;
    uint64_t first_ms; /* when the count started (CLOCK_MONOTONIC) */
    uint64_t until_ms; /* attempts before this are refused */
} entry_t;

typedef struct table {
    uint64_t magic; /* written last when the table is made */
    uint32_t slots;
    uint32_t unused;
    unsigned char key[crypto_shorthash_KEYBYTES];
    entry_t overflow[KINDS]; /* for keys whose run is full */
    entry_t e[LOGINS_SLOTS];
} table_t;

struct logins {
    table_t *t; /* mapped shared, or private */
    int fd;     /* the mapped file, for flock; -1 when private */
    unsigned free[KINDS];
    uint64_t overflow_logged_ms;
    uint64_t lock_logged_ms;
};

/* Makes an empty table with a new key, unless t is one already. A new
 * file is all zeros: only its first page is written here (a page written
 * once is a page the disk must hold). */
static void s_init(table_t *t)
{
    if (t->magic == LOGINS_MAGIC && t->slots == LOGINS_SLOTS)
        return;
    if (t->magic != 0)
        memset(t, 0, sizeof *t); /* another layout: start over */
    randombytes_buf(t->key, sizeof t->key);
    t->slots = LOGINS_SLOTS;
    __atomic_store_n(&t->magic, LOGINS_MAGIC, __ATOMIC_RELEASE);
}

logins_t *logins_new(const char *data_dir, unsigned address_free)
{
    logins_t *l = xcalloc(1, sizeof *l);
    l->free[KIND_USER] = LOGINS_USER_FREE;
    l->free[KIND_ADDR] = address_free;
    l->fd = -1;
    char *old = xasprintf("%s/login-failures", data_dir);
    unlink(old); /* the table of an older version */
    free(old);
    char *path = xasprintf("%s/login-throttle", data_dir);
    l->t = sodium_init() < 0 ? NULL : file_map_shared(path, sizeof *l->t, &l->fd);
    if (!l->t) {
        log_err(errno, "logins: cannot map %s; login attempts are counted per worker",
                path);
        l->t = xcalloc(1, sizeof *l->t);
    }
    free(path);
    s_init(l->t);
    return l;
}

void logins_destroy(logins_t **lp)
{
    logins_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    if (l->fd >= 0) {
        munmap(l->t, sizeof *l->t);
        close(l->fd);
    } else {
        free(l->t);
    }
    free(l);
    *lp = NULL;
}

bool logins_shared(const logins_t *l)
{
    return l->fd >= 0;
}

/* The holder is another worker inside a few instructions: a few
 * non-blocking tries, then short sleeps while it is preempted there.
 * Counting without the lock lets two workers' updates overwrite each
 * other, and attempts go uncounted: it happens only when the table stays
 * locked past LOGINS_LOCK_WAIT_MS (a worker stopped while holding it: the
 * loop thread must not hang on it), or cannot be locked at all. */
static bool s_lock(logins_t *l)
{
    if (l->fd < 0)
        return false;
    uint64_t start = 0;
    for (int i = 0;; i++) {
        if (flock(l->fd, LOCK_EX | LOCK_NB) == 0)
            return true;
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        if (i < 100)
            continue;
        uint64_t now = now_ms();
        if (!start)
            start = now;
        else if (now - start >= LOGINS_LOCK_WAIT_MS)
            break;
        usleep(500);
    }
    int err = errno;
    uint64_t now = now_ms();
    if (now - l->lock_logged_ms > 60000) {
        l->lock_logged_ms = now;
        log_err(err, "logins: the throttle table stayed locked; counting without the "
                     "lock");
    }
    return false;
}

static void s_unlock(logins_t *l, bool locked)
{
    if (locked)
        flock(l->fd, LOCK_UN);
}

/* ---- keys and entries ---- */

/* peer's address as counted: IPv4 whole, IPv6 by its /64 (what one client
 * is usually given). Its length in out (8 bytes), 0 when none. */
static size_t s_addr(const struct sockaddr *peer, unsigned char *out)
{
    if (peer && peer->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        return 4;
    }
    if (peer && peer->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        bool v4 = IN6_IS_ADDR_V4MAPPED(a);
        memcpy(out, a->s6_addr + (v4 ? 12 : 0), v4 ? 4 : 8);
        return v4 ? 4 : 8;
    }
    return 0;
}

/* The keyed hash of kind's key: a username (peer NULL), peer's address
 * (username NULL), or the pair of both. 0: none (no address). */
static uint64_t s_hash_kind(const table_t *t, int kind, const char *username,
                            const struct sockaddr *peer)
{
    unsigned char in[1 + 128 + 8];
    size_t n = kind != KIND_ADDR ? strnlen(username, 127) : 0;
    in[0] = kind == KIND_ADDR ? 'a' : kind == KIND_PAIR ? 'p' : 'u';
    memcpy(in + 1, n ? username : "", n);
    if (kind == KIND_PAIR)
        in[1 + n++] = '\0';
    size_t na = kind != KIND_USER ? s_addr(peer, in + 1 + n) : 0;
    if (kind != KIND_USER && !na)
        return 0;
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, in, 1 + n + na, t->key);
    return h ? h : 1;
}

/* Whether e still counts: used, and its count or its delay not over. A
 * time ahead of now is from before a reboot (the clock is monotonic). */
static bool s_live(const entry_t *e, uint64_t now)
{
    if (e->h != 0 && (e->flags & ENTRY_TRUSTED))
        return e->until_ms > now && e->until_ms - now <= LOGINS_TRUST_MS;
    if (e->h == 0 || e->count == 0 || e->first_ms > now ||
        e->until_ms > now + LOGINS_MAX_DELAY_MS)
        return false;
    return now - e->first_ms <= LOGINS_WINDOW_MS || e->until_ms > now;
}

static void s_reset(entry_t *e, uint64_t h, uint64_t now)
{
    *e = (entry_t){.h = h, .first_ms = now};
}

/* The overflow entry of kind (logged at most once a minute). */
static entry_t *s_overflow(logins_t *l, int kind, uint64_t now)
{
    entry_t *e = &l->t->overflow[kind];
    if (!s_live(e, now))
        s_reset(e, 1, now);
    if (now - l->overflow_logged_ms > 60000 || !l->overflow_logged_ms) {
        l->overflow_logged_ms = now;
        log_warn("logins: the throttle table is full of counting %s; new ones are "
                 "counted together",
                 kind == KIND_USER ? "usernames" : "addresses");
    }
    return e;
}

/* The entry of h (kind), or with create a fresh one in a slot whose count
 * has lapsed, or the kind's overflow entry; NULL without create when h has
 * none. taken is never the fresh one: an entry made a moment ago for
 * another key has no count yet, so it looks lapsed, and sharing it would
 * merge two keys' counts. */
static entry_t *s_find(logins_t *l, int kind, uint64_t h, uint64_t now, bool create,
                       const entry_t *taken)
{
    entry_t *spare = NULL;
    for (uint32_t i = 0; i < LOGINS_RUN; i++) {
        entry_t *e = &l->t->e[(h + i) % LOGINS_SLOTS];
        if (e->h == h) {
            if (!s_live(e, now))
                s_reset(e, h, now);
            return e;
        }
        if (!spare && e != taken && !s_live(e, now))
            spare = e;
    }
    if (!create)
        return NULL;
    if (!spare)
        return s_overflow(l, kind, now);
    s_reset(spare, h, now);
    return spare;
}

/* The trusted pair of h, or with create a slot for it: a free one, or,
 * when LOGINS_RUN_PAIRS of the run are pairs already, the one whose trust
 * ends first (so pairs never crowd the counts out). Never an overflow
 * entry: trust is not shared. NULL when none. */
static entry_t *s_pair(logins_t *l, uint64_t h, uint64_t now, bool create)
{
    entry_t *spare = NULL, *oldest = NULL;
    unsigned pairs = 0;
    for (uint32_t i = 0; h && i < LOGINS_RUN; i++) {
        entry_t *e = &l->t->e[(h + i) % LOGINS_SLOTS];
        bool live = s_live(e, now);
        if (e->h == h && live)
            return e;
        bool pair = live && (e->flags & ENTRY_TRUSTED);
        pairs += pair;
        if (pair && (!oldest || e->until_ms < oldest->until_ms))
            oldest = e;
        if (!spare && (!live || e->h == h))
            spare = e;
    }
    if (!create)
        return NULL;
    return pairs >= LOGINS_RUN_PAIRS ? oldest : spare;
}

static uint64_t s_wait(const entry_t *e, uint64_t now)
{
    return e && e->until_ms > now ? e->until_ms - now : 0;
}

/* Holds e (counted up to its allowance) for its delay from now; false
 * when it is below its allowance. */
static bool s_hold(entry_t *e, unsigned free, uint64_t now)
{
    if (e->count < free)
        return false;
    unsigned over = e->count - free;
    uint64_t d = (uint64_t)LOGINS_FIRST_DELAY_MS << (over < 6 ? over : 6);
    d = now + (d < LOGINS_MAX_DELAY_MS ? d : LOGINS_MAX_DELAY_MS);
    if (d > e->until_ms)
        e->until_ms = d;
    return true;
}

/* Counts an admitted attempt; true when it reached the allowance (the
 * next ones wait). */
static bool s_count(entry_t *e, unsigned free, uint64_t now)
{
    e->count++;
    return s_hold(e, free, now);
}

/* ---- the throttle ---- */

static void s_log_held(const char *username, const struct sockaddr *peer,
                       const entry_t *u, const entry_t *a, uint64_t now)
{
    char addr[INET6_ADDRSTRLEN] = "?";
    if (peer)
        inet_ntop(peer->sa_family,
                  peer->sa_family == AF_INET
                      ? (const void *)&((const struct sockaddr_in *)peer)->sin_addr
                      : (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr,
                  addr, sizeof addr);
    log_warn("logins: %u attempts for \"%s\", %u from %s: the next is refused for "
             "%llu ms",
             u->count, username, a ? a->count : 0, addr,
             (unsigned long long)(s_wait(u, now) > s_wait(a, now) ? s_wait(u, now)
                                                                  : s_wait(a, now)));
}

uint64_t logins_admit(logins_t *l, const char *username, const struct sockaddr *peer)
{
    uint64_t now = now_ms(); /* CLOCK_MONOTONIC: one clock for all workers */
    bool locked = s_lock(l);
    entry_t *u = s_find(l, KIND_USER, s_hash_kind(l->t, KIND_USER, username, NULL), now,
                        true, NULL);
    uint64_t ah = l->free[KIND_ADDR] ? s_hash_kind(l->t, KIND_ADDR, NULL, peer) : 0;
    entry_t *a = ah ? s_find(l, KIND_ADDR, ah, now, true, u) : NULL;
    /* A username held by others' failures still admits the address it
     * logged in from (a flood cannot lock a user out, the agents' service
     * account included). */
    bool trusted =
        s_pair(l, s_hash_kind(l->t, KIND_PAIR, username, peer), now, false) != NULL;
    uint64_t wu = trusted ? 0 : s_wait(u, now);
    uint64_t wait = wu > s_wait(a, now) ? wu : s_wait(a, now);
    bool held = false;
    if (wait == 0) {
        held = s_count(u, l->free[KIND_USER], now);
        held |= a && s_count(a, l->free[KIND_ADDR], now);
    }
    s_unlock(l, locked);
    if (held)
        s_log_held(username, peer, u, a, now);
    return wait;
}

void logins_failed(logins_t *l, const char *username, const struct sockaddr *peer)
{
    uint64_t now = now_ms();
    bool locked = s_lock(l);
    entry_t *u = s_find(l, KIND_USER, s_hash_kind(l->t, KIND_USER, username, NULL), now,
                        false, NULL);
    if (u)
        s_hold(u, l->free[KIND_USER], now);
    uint64_t ah = l->free[KIND_ADDR] ? s_hash_kind(l->t, KIND_ADDR, NULL, peer) : 0;
    entry_t *a = ah ? s_find(l, KIND_ADDR, ah, now, false, NULL) : NULL;
    if (a)
        s_hold(a, l->free[KIND_ADDR], now);
    entry_t *p = s_pair(l, s_hash_kind(l->t, KIND_PAIR, username, peer), now, false);
    if (p && ++p->count >= LOGINS_PAIR_FREE)
        memset(p, 0, sizeof *p); /* no longer trusted */
    s_unlock(l, locked);
}

void logins_succeeded(logins_t *l, const char *username, const struct sockaddr *peer)
{
    uint64_t now = now_ms();
    bool locked = s_lock(l);
    entry_t *u = s_find(l, KIND_USER, s_hash_kind(l->t, KIND_USER, username, NULL), now,
                        false, NULL);
    if (u && u != &l->t->overflow[KIND_USER])
        memset(u, 0, sizeof *u);
    uint64_t ah = l->free[KIND_ADDR] ? s_hash_kind(l->t, KIND_ADDR, NULL, peer) : 0;
    entry_t *a = ah ? s_find(l, KIND_ADDR, ah, now, false, NULL) : NULL;
    if (a && a->count > 0 && --a->count < l->free[KIND_ADDR])
        a->until_ms = 0;
    uint64_t ph = s_hash_kind(l->t, KIND_PAIR, username, peer);
    entry_t *p = s_pair(l, ph, now, true);
    if (p) /* trusted (again), its own failures forgotten */
        *p = (entry_t){.h = ph,
                       .flags = ENTRY_TRUSTED,
                       .first_ms = now,
                       .until_ms = now + LOGINS_TRUST_MS};
    s_unlock(l, locked);
}

/* Takes one attempt back from e: it was counted but never checked. */
static void s_give_back(entry_t *e, unsigned free)
{
    if (e && e->count > 0 && --e->count < free)
        e->until_ms = 0;
}

void logins_release(logins_t *l, const char *username, const struct sockaddr *peer)
{
    uint64_t now = now_ms();
    bool locked = s_lock(l);
    entry_t *u = s_find(l, KIND_USER, s_hash_kind(l->t, KIND_USER, username, NULL), now,
                        false, NULL);
    if (u != &l->t->overflow[KIND_USER])
        s_give_back(u, l->free[KIND_USER]);
    uint64_t ah = l->free[KIND_ADDR] ? s_hash_kind(l->t, KIND_ADDR, NULL, peer) : 0;
    s_give_back(ah ? s_find(l, KIND_ADDR, ah, now, false, NULL) : NULL,
                l->free[KIND_ADDR]);
    s_unlock(l, locked);
}
