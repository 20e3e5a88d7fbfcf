/* test_cache.c - unit tests for services/backend/cache.c, the per-worker
 * cache of task documents, on a real database in a temporary directory:
 * entries are tagged with store_version(), which every store handle maps
 * from the same `<database>-version` file, so a write through one handle
 * (another worker) makes what a second handle's cache holds stale. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "store.h"
#include "store_projects.h"
#include "store_tasks.h"

static char s_dir[] = "/tmp/vapora-cache-XXXXXX";
static store_t *s_a, *s_b; /* two workers' handles on one database */

static store_t *s_open(void)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    store_t *s = store_open(path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    store_end(s); /* as every job does: no read stays open */
    return s;
}

static void s_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    s_a = s_open();
    s_b = s_open();
    cr_assert(store_version_known(s_a) && store_version_known(s_b));
}

static void s_fini(void)
{
    store_end(s_a);
    store_end(s_b);
    store_destroy(&s_a);
    store_destroy(&s_b);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

/* A project created through s (a committed write): its id. */
static char *s_write(store_t *s)
{
    json_t *p = NULL;
    store_err_t e;
    cr_assert_eq(store_project_create(s, "P", NULL, &p, &e), 0, "%s", e.msg);
    char *id = strdup(json_string_value(json_object_get(p, "id")));
    json_decref(p);
    store_end(s);
    return id;
}

Test(cache, zero_slots_is_no_cache)
{
    rcache_t *c = rcache_new(0);
    cr_assert_null(c);
    rcache_destroy(&c); /* accepts NULL */
}

Test(cache, serves_an_entry_only_while_the_version_holds, .init = s_init,
     .fini = s_fini)
{
    rcache_t *c = rcache_new(16);
    uint64_t v = store_version(s_a);
    size_t len = 0;
    cr_assert_null(rcache_get(c, "t1", v, &len), "empty cache");
    rcache_put(c, "t1", v, "{\"id\":\"t1\"}");
    const char *body = rcache_get(c, "t1", v, &len);
    cr_assert_not_null(body);
    cr_assert_eq(len, strlen("{\"id\":\"t1\"}"));
    cr_assert_str_eq(body, "{\"id\":\"t1\"}");
    cr_assert_null(rcache_get(c, "t2", v, &len), "another id");
    free(s_write(s_a));
    cr_assert_gt(store_version(s_a), v, "a commit moves the version");
    cr_assert_null(rcache_get(c, "t1", store_version(s_a), &len), "stale after a write");
    cr_assert_eq(rcache_hits(c), 1);
    cr_assert_eq(rcache_misses(c), 3);
    rcache_destroy(&c);
    cr_assert_null(c);
}

/* Worker A caches a task document; worker B (its own store handle and
 * cache) changes the task: neither serves the old document any more. */
Test(cache, a_write_by_another_worker_invalidates, .init = s_init, .fini = s_fini)
{
    char *pid = s_write(s_a);
    store_task_new_t nt = {
        .project_id = pid, .title = "a", .type = "feature", .priority = "low"};
    char *t = NULL, id[STORE_ID_MAX];
    store_err_t e;
    cr_assert_eq(store_task_create(s_a, &nt, &t, id, &e), 0, "%s", e.msg);
    rcache_t *ca = rcache_new(64), *cb = rcache_new(64);
    uint64_t tag = store_version(s_a); /* read before the database is asked */
    char *doc = NULL;
    cr_assert_eq(store_task_get_doc(s_a, id, &doc, &e), 0);
    store_end(s_a);
    rcache_put(ca, id, tag, doc);
    rcache_put(cb, id, store_version(s_b), doc);
    size_t len;
    cr_assert_not_null(rcache_get(ca, id, store_version(s_a), &len));
    cr_assert_not_null(rcache_get(cb, id, store_version(s_b), &len));
    json_t *patch = json_pack("{s:s}", "title", "b");
    char *out = NULL;
    cr_assert_eq(store_task_update(s_b, id, patch, -1, &out, &e), 0, "%s", e.msg);
    store_end(s_b);
    cr_assert_eq(store_version(s_a), store_version(s_b), "one shared counter");
    cr_assert_null(rcache_get(ca, id, store_version(s_a), &len),
                   "worker A served a document worker B replaced");
    cr_assert_null(rcache_get(cb, id, store_version(s_b), &len));
    json_decref(patch);
    free(out);
    free(t);
    free(doc);
    free(pid);
    rcache_destroy(&ca);
    rcache_destroy(&cb);
}

Test(cache, bounded_slots_and_bodies)
{
    rcache_t *c = rcache_new(1); /* every id shares the one slot */
    size_t len;
    rcache_put(c, "a", 7, "A");
    rcache_put(c, "b", 7, "B");
    cr_assert_null(rcache_get(c, "a", 7, &len), "replaced by b");
    cr_assert_str_eq(rcache_get(c, "b", 7, &len), "B");
    char *big = malloc(RCACHE_MAX_BODY + 2);
    memset(big, 'x', RCACHE_MAX_BODY + 1);
    big[RCACHE_MAX_BODY + 1] = '\0';
    rcache_put(c, "big", 7, big);
    cr_assert_null(rcache_get(c, "big", 7, &len), "a body over the limit was kept");
    char longid[80];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    rcache_put(c, longid, 7, "L");
    cr_assert_null(rcache_get(c, longid, 7, &len), "an id too long to keep");
    rcache_put(c, "n", 7, NULL); /* nothing to keep */
    cr_assert_null(rcache_get(c, "n", 7, &len));
    free(big);
    rcache_destroy(&c);
}
