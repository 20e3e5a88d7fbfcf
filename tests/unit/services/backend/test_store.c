/* test_store.c - unit tests for the backend's store
 * (services/backend/store*.c) on a temporary database: migrations,
 * projects, tasks under the rules, pages that stay whole while rows are
 * inserted, cascade delete. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_projects.h"
#include "store_tasks.h"
#include "sbuf.h"

static char s_dir[] = "/tmp/vapora-store-XXXXXX";
static store_t *s_store;

static void s_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    s_store = store_open(path, err, sizeof err);
    cr_assert_not_null(s_store, "%s", err);
}

static void s_fini(void)
{
    store_end(s_store);
    store_destroy(&s_store);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

static char *s_project(void)
{
    json_t *p = NULL;
    store_err_t e;
    cr_assert_eq(store_project_create(s_store, "P", "d", &p, &e), 0);
    char *id = strdup(json_string_value(json_object_get(p, "id")));
    json_decref(p);
    return id;
}

static char *s_task(const char *project, const char *title, json_t *blockers)
{
    store_task_new_t f = {.project_id = project,
                          .title = title,
                          .type = "feature",
                          .priority = "medium",
                          .blocked_by = blockers};
    json_t *t = NULL;
    store_err_t e;
    cr_assert_eq(store_task_create(s_store, &f, &t, &e), 0, "%s", e.msg);
    char *id = strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    return id;
}

static int s_status(const char *id, const char *status, int64_t if_match,
                           store_err_t *e)
{
    json_t *patch = json_pack("{s:s}", "status", status), *out = NULL;
    int rc = store_task_update(s_store, id, patch, if_match, &out, e);
    json_decref(patch);
    json_decref(out);
    return rc;
}

Test(store, reopening_applies_no_migration_twice, .init = s_init, .fini = s_fini)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    store_t *again = store_open(path, err, sizeof err);
    cr_assert_not_null(again, "%s", err);
    store_destroy(&again);
}

Test(store, tasks_follow_the_rules_in_one_transaction, .init = s_init, .fini = s_fini)
{
    store_err_t e;
    char *p = s_project();
    char *a = s_task(p, "a", NULL);
    json_t *bl = json_pack("[s]", a);
    char *b = s_task(p, "b", bl);
    json_decref(bl);
    cr_assert_eq(s_status(b, "in-progress", -1, &e), VP_ECONFLICT);
    cr_assert_str_eq(e.code, "blocked");
    cr_assert_eq(s_status(a, "review", -1, &e), VP_ECONFLICT);
    cr_assert_str_eq(e.code, "invalid_transition");
    cr_assert_eq(s_status(a, "in-progress", 2, &e), VP_EPRECONDITION);
    cr_assert_eq(s_status(a, "in-progress", 1, &e), 0);
    cr_assert_eq(s_status(a, "review", -1, &e), 0);
    cr_assert_eq(s_status(a, "done", -1, &e), 0);
    cr_assert_eq(s_status(b, "in-progress", -1, &e), 0, "%s", e.msg);
    json_t *t = NULL;
    cr_assert_eq(store_task_get(s_store, a, &t, &e), 0);
    cr_assert_eq(json_integer_value(json_object_get(t, "version")), 4);
    json_decref(t);
    json_t *unknown = json_pack("[s]", "no-such-task");
    store_task_new_t bad = {.project_id = p,
                            .title = "c",
                            .type = "feature",
                            .priority = "low",
                            .blocked_by = unknown};
    cr_assert_eq(store_task_create(s_store, &bad, &t, &e), VP_EINVALID);
    cr_assert_str_eq(e.code, "invalid_blocked_by");
    json_decref(unknown);
    cr_assert_eq(store_project_delete(s_store, p, false, &e), VP_ECONFLICT);
    cr_assert_eq(store_project_delete(s_store, p, true, &e), 0);
    cr_assert_eq(store_task_get(s_store, a, &t, &e), VP_ENOTFOUND);
    free(a);
    free(b);
    free(p);
}

Test(store, pages_have_no_gaps_or_duplicates_while_inserting, .init = s_init,
     .fini = s_fini)
{
    char *p = s_project();
    char *ids[60];
    for (int i = 0; i < 50; i++)
        ids[i] = s_task(p, "t", NULL);
    store_task_filter_t f = {.project_id = p};
    int64_t after = 0, next = 0;
    int seen[60] = {0}, inserted = 50;
    store_err_t e;
    do {
        sbuf_t page = {0};
        cr_assert_eq(store_task_page(s_store, &f, after, 7, &page, &next, &e),
                     0);
        json_t *items = json_loads(page.data, 0, NULL);
        sbuf_free(&page);
        cr_assert(json_is_array(items));
        size_t i;
        json_t *t;
        json_array_foreach(items, i, t)
        {
            const char *id = json_string_value(json_object_get(t, "id"));
            for (int k = 0; k < inserted; k++)
                if (strcmp(ids[k], id) == 0)
                    seen[k]++;
        }
        json_decref(items);
        if (next && inserted < 60) /* rows keep arriving between pages */
            ids[inserted++] = s_task(p, "late", NULL);
        after = next;
    } while (next);
    for (int k = 0; k < inserted; k++) {
        cr_assert_eq(seen[k], 1, "task %d seen %d times", k, seen[k]);
        free(ids[k]);
    }
    free(p);
}

Test(store, cycles_are_refused_and_deleting_a_blocker_bumps_its_dependents,
     .init = s_init, .fini = s_fini)
{
    store_err_t e;
    char *p = s_project();
    char *a = s_task(p, "a", NULL);
    json_t *bl = json_pack("[s]", a);
    char *b = s_task(p, "b", bl); /* b waits on a */
    json_decref(bl);
    bl = json_pack("[s]", b);
    char *c = s_task(p, "c", bl); /* c waits on b */
    json_decref(bl);
    json_t *patch = json_pack("{s:[s]}", "blocked_by", c), *out = NULL;
    cr_assert_eq(store_task_update(s_store, a, patch, -1, &out, &e), VP_EINVALID,
                 "a -> c -> b -> a accepted");
    cr_assert_str_eq(e.code, "invalid_blocked_by");
    cr_assert(strstr(e.msg, "cycle"), "%s", e.msg);
    json_decref(patch);
    cr_assert_eq(store_task_delete(s_store, a, &e), 0);
    json_t *t = NULL;
    cr_assert_eq(store_task_get(s_store, b, &t, &e), 0);
    cr_assert_eq(json_array_size(json_object_get(t, "blocked_by")), 0);
    cr_assert_eq(json_integer_value(json_object_get(t, "version")), 2,
                 "a dependent's version did not move");
    json_decref(t);
    free(a);
    free(b);
    free(c);
    free(p);
}

/* The stored document always equals the task built from its columns. */
static void s_assert_doc_fresh(const char *id)
{
    store_err_t e;
    json_t *t = NULL;
    char *doc = NULL;
    cr_assert_eq(store_task_get(s_store, id, &t, &e), 0);
    cr_assert_eq(store_task_get_doc(s_store, id, &doc, &e), 0);
    json_t *d = json_loads(doc, 0, NULL);
    cr_assert(json_equal(t, d), "stored %s", doc);
    json_decref(d);
    json_decref(t);
    free(doc);
}

Test(store, stored_documents_follow_every_write, .init = s_init, .fini = s_fini)
{
    store_err_t e;
    char *p = s_project();
    char *a = s_task(p, "a", NULL);
    json_t *bl = json_pack("[s]", a);
    char *b = s_task(p, "b", bl);
    json_decref(bl);
    s_assert_doc_fresh(b);
    json_t *patch = json_pack("{s:s,s:i}", "title", "b2", "progress", 40), *out = NULL;
    cr_assert_eq(store_task_update(s_store, b, patch, -1, &out, &e), 0);
    json_decref(patch);
    json_decref(out);
    s_assert_doc_fresh(b);
    cr_assert_eq(store_task_delete(s_store, a, &e), 0);
    s_assert_doc_fresh(b); /* its blocked_by lost a */
    sbuf_t page = {0};
    int64_t next;
    store_task_filter_t f = {.project_id = p};
    cr_assert_eq(store_task_page(s_store, &f, 0, 10, &page, &next, &e), 0);
    json_t *arr = json_loads(page.data, 0, NULL);
    cr_assert_eq(json_array_size(arr), 1, "%s", page.data);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_array_get(arr, 0), "title")), "b2");
    json_decref(arr);
    sbuf_free(&page);
    free(a);
    free(b);
    free(p);
}

/* A PATCH that changes nothing is not a change: the version stays, and
 * the next real change moves it by one. */
Test(store, a_patch_that_changes_nothing_keeps_the_version, .init = s_init,
     .fini = s_fini)
{
    char *p = s_project();
    char *t = s_task(p, "same", NULL);
    store_err_t e;
    json_t *patch = json_pack("{s:s,s:s}", "title", "same", "status", "todo"), *out = NULL;
    cr_assert_eq(store_task_update(s_store, t, patch, 1, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(json_integer_value(json_object_get(out, "version")), 1);
    json_decref(out);
    json_decref(patch);
    store_end(s_store);
    patch = json_pack("{s:s}", "title", "other");
    cr_assert_eq(store_task_update(s_store, t, patch, 1, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(json_integer_value(json_object_get(out, "version")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(out, "title")), "other");
    json_decref(out);
    json_decref(patch);
    free(t);
    free(p);
}
