/* http_peers.c - how many connections each client address holds, for the
 * per-address limit (max_connections_per_ip, as nginx's limit_conn).
 *
 * DESIGN. An address is one 64-bit key: an IPv4 address (IPv4-mapped IPv6
 * ones too) under a tag no IPv6 source can have, or the /64 prefix of an
 * IPv6 address, since whoever holds one IPv6 address usually holds its
 * whole /64. Keys live in an open-addressing table (linear probing,
 * deletion by backward shift, so no tombstones), grown at half full and
 * never shrunk below its first size. The hash is keyed with a random
 * per-process seed: the keys come from clients, who must not be able to
 * line them up in one probe run. See http_internal.h for the layer's files. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "http_internal.h"

#define HTTP_PEERS_MIN 256 /* slots at first; a power of two */
/* IPv4 keys: an IPv6 /64 starting ffff:ffff is multicast, never a source. */
#define HTTP_PEER_V4_TAG 0xffffffff00000000ull

typedef struct peer_slot {
    uint64_t key;
    unsigned count; /* 0: the slot is free */
} peer_slot_t;

struct http_peers {
    peer_slot_t *slots;
    size_t cap; /* a power of two */
    size_t used;
    uint64_t seed;
};

http_peers_t *http__peers_new(void)
{
    http_peers_t *t = xcalloc(1, sizeof *t);
    t->cap = HTTP_PEERS_MIN;
    t->slots = xcalloc(t->cap, sizeof *t->slots);
    if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != sizeof t->seed)
        t->seed = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ull;
    return t;
}

void http__peers_destroy(http_peers_t **tp)
{
    http_peers_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    free(t->slots);
    free(t);
    *tp = NULL;
}

bool http__peer_key(const struct sockaddr *sa, uint64_t *key)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *key = HTTP_PEER_V4_TAG | ntohl(in->sin_addr.s_addr);
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false; /* a Unix socket: no address to count */
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    const uint8_t *b = in6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                      (uint32_t)b[14] << 8 | b[15];
        *key = HTTP_PEER_V4_TAG | v4;
        return true;
    }
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k = k << 8 | b[i];
    *key = k;
    return true;
}

/* splitmix64's finaliser over the seeded key. */
static size_t s_slot(const http_peers_t *t, uint64_t key)
{
    uint64_t z = key ^ t->seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (size_t)(z ^ (z >> 31)) & (t->cap - 1);
}

static peer_slot_t *s_find(const http_peers_t *t, uint64_t key)
{
    for (size_t i = s_slot(t, key);; i = (i + 1) & (t->cap - 1)) {
        peer_slot_t *s = &t->slots[i];
        if (!s->count || s->key == key)
            return s;
    }
}

static void s_grow(http_peers_t *t)
{
    peer_slot_t *old = t->slots;
    size_t oldcap = t->cap;
    t->cap *= 2;
    t->slots = xcalloc(t->cap, sizeof *t->slots);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].count)
            *s_find(t, old[i].key) = old[i];
    free(old);
}

unsigned http__peer_count(const http_peers_t *t, uint64_t key)
{
    return s_find(t, key)->count;
}

bool http__peer_take(http_peers_t *t, uint64_t key, unsigned limit)
{
    peer_slot_t *s = s_find(t, key);
    if (s->count >= limit)
        return false;
    if (!s->count) {
        if (2 * (t->used + 1) > t->cap) {
            s_grow(t);
            s = s_find(t, key);
        }
        s->key = key;
        t->used++;
    }
    s->count++;
    return true;
}

void http__peer_release(http_peers_t *t, uint64_t key)
{
    peer_slot_t *s = s_find(t, key);
    VP_ASSERT(s->count > 0);
    if (--s->count)
        return;
    t->used--;
    /* Backward shift: pull later members of the probe run into the hole. */
    size_t mask = t->cap - 1, hole = (size_t)(s - t->slots);
    for (size_t i = (hole + 1) & mask; t->slots[i].count; i = (i + 1) & mask) {
        size_t home = s_slot(t, t->slots[i].key);
        /* Movable when its home is not within (hole, i], cyclically. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slots[hole] = t->slots[i];
            t->slots[i].count = 0;
            hole = i;
        }
    }
}

size_t http__peers_used(const http_peers_t *t)
{
    return t->used;
}
