/* cache.c - the task-document cache; see cache.h. */
#include "cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef struct slot {
    char id[64];
    uint64_t tag;
    char *body;
    size_t len;
} slot_t;

struct rcache {
    slot_t *slots;
    size_t n;
    uint64_t hits, misses;
};

rcache_t *rcache_new(size_t slots)
{
    if (slots == 0)
        return NULL;
    rcache_t *c = xcalloc(1, sizeof *c);
    c->slots = xcalloc(slots, sizeof *c->slots);
    c->n = slots;
    return c;
}

void rcache_destroy(rcache_t **cp)
{
    rcache_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->slots[i].body);
    free(c->slots);
    free(c);
    *cp = NULL;
}

/* FNV-1a. */
static slot_t *s_slot(rcache_t *c, const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return &c->slots[h % c->n];
}

const char *rcache_get(rcache_t *c, const char *id, uint64_t version, size_t *len)
{
    slot_t *s = s_slot(c, id);
    if (s->body && s->tag == version && strcmp(s->id, id) == 0) {
        c->hits++;
        *len = s->len;
        return s->body;
    }
    c->misses++;
    return NULL;
}

void rcache_put(rcache_t *c, const char *id, uint64_t tag, const char *body)
{
    size_t len = body ? strlen(body) : 0;
    if (!body || len > RCACHE_MAX_BODY || strlen(id) >= sizeof c->slots[0].id)
        return;
    slot_t *s = s_slot(c, id);
    free(s->body);
    memcpy(s->id, id, strlen(id) + 1);
    s->tag = tag;
    s->body = xstrndup(body, len);
    s->len = len;
}

uint64_t rcache_hits(const rcache_t *c)
{
    return c->hits;
}

uint64_t rcache_misses(const rcache_t *c)
{
    return c->misses;
}
