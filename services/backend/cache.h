/* cache.h - a worker's cache of task documents for GET /api/v1/tasks/{id}.
 *
 * DESIGN. Every worker process keeps the documents it served, each tagged
 * with store_version() as read before the database was asked. An entry is
 * served only while the version still has that value: any committed write
 * by any worker moves it (the store bumps a counter in a file every worker
 * maps), so what the cache returns is what the database would return. The
 * check is one atomic load; no SQLite call runs on the loop thread.
 * Direct-mapped by a hash of the id: a bounded number of slots, bodies up
 * to RCACHE_MAX_BODY bytes. Loop thread only. */
#ifndef VAPORA_BACKEND_CACHE_H
#define VAPORA_BACKEND_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define RCACHE_MAX_BODY 8192

typedef struct rcache rcache_t;

/* A cache of `slots` entries; NULL when slots is 0 (caching off). */
rcache_t *rcache_new(size_t slots);
void rcache_destroy(rcache_t **cp);
/* The body stored for id with tag == version, or NULL. Borrowed until the
 * next rcache_put. */
const char *rcache_get(rcache_t *c, const char *id, uint64_t version, size_t *len);
/* Stores a copy of body for id, tagged (bodies over RCACHE_MAX_BODY are not
 * kept). */
void rcache_put(rcache_t *c, const char *id, uint64_t tag, const char *body);
/* Lookups that found a current entry / did not. */
uint64_t rcache_hits(const rcache_t *c);
uint64_t rcache_misses(const rcache_t *c);

#endif
