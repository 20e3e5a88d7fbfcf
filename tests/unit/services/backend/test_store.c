/* test_store.c - unit tests for the backend's store
 * (services/backend/store*.c) on a temporary database: migrations,
 * projects, tasks under the rules, pages that stay whole while rows are
 * inserted, cascade delete. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "now.h"
#include "store.h"
#include "store_internal.h"
#include "store_outbox.h"
#include "store_projects.h"
#include "store_tasks.h"
#include "store_users.h"
#include "sbuf.h"

static char s_dir[] = "/tmp/vapora-store-XXXXXX";
static store_t *s_store;

static void s_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    s_store = store_open(path, SQLDB_SYNC_NORMAL, err, sizeof err);
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

/* The task writes answer the task's document; the tests read it as JSON
 * values (and check the id answered beside it). */
static int s_create(const store_task_new_t *f, json_t **out, store_err_t *e)
{
    char *doc = NULL, id[STORE_ID_MAX];
    int rc = store_task_create(s_store, f, &doc, id, e);
    *out = doc ? json_loads(doc, 0, NULL) : NULL;
    if (rc == 0) {
        cr_assert_str_eq(json_string_value(json_object_get(*out, "id")), id, "%s", doc);
        cr_assert(strlen(id) == 36 && id[8] == '-' && id[13] == '-' && id[14] == '7' &&
                      id[18] == '-' && strchr("89ab", id[19]) && id[23] == '-' &&
                      strspn(id, "0123456789abcdef-") == 36,
                  "not a UUID v7: %s", id);
    }
    free(doc);
    return rc;
}

static int s_update(const char *id, const json_t *patch, int64_t if_match, json_t **out,
                    store_err_t *e)
{
    char *doc = NULL;
    int rc = store_task_update(s_store, id, patch, if_match, &doc, e);
    *out = doc ? json_loads(doc, 0, NULL) : NULL;
    free(doc);
    return rc;
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
    cr_assert_eq(s_create(&f, &t, &e), 0, "%s", e.msg);
    char *id = strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    return id;
}

static int s_status(const char *id, const char *status, int64_t if_match,
                    store_err_t *e)
{
    json_t *patch = json_pack("{s:s}", "status", status), *out = NULL;
    int rc = s_update(id, patch, if_match, &out, e);
    json_decref(patch);
    json_decref(out);
    return rc;
}

Test(store, reopening_applies_no_migration_twice, .init = s_init, .fini = s_fini)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    store_t *again = store_open(path, SQLDB_SYNC_NORMAL, err, sizeof err);
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
    cr_assert_eq(s_create(&bad, &t, &e), VP_EINVALID);
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
        cr_assert_eq(store_task_page(s_store, &f, after, 7, &page, &next, &e), 0);
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
    cr_assert_eq(s_update(a, patch, -1, &out, &e), VP_EINVALID,
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
    cr_assert_eq(s_update(b, patch, -1, &out, &e), 0);
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
    json_t *patch = json_pack("{s:s,s:s}", "title", "same", "status", "todo"),
           *out = NULL;
    cr_assert_eq(s_update(t, patch, 1, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(json_integer_value(json_object_get(out, "version")), 1);
    json_decref(out);
    json_decref(patch);
    store_end(s_store);
    patch = json_pack("{s:s}", "title", "other");
    cr_assert_eq(s_update(t, patch, 1, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(json_integer_value(json_object_get(out, "version")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(out, "title")), "other");
    json_decref(out);
    json_decref(patch);
    free(t);
    free(p);
}

/* What jansson writes for the event of doc (the payload's own "at"). */
static char *s_jansson_event(const char *type, const char *doc, const char *payload)
{
    json_t *d = json_loads(doc, 0, NULL), *p = json_loads(payload, 0, NULL);
    cr_assert(d && p, "%s / %s", doc, payload);
    json_t *pid = json_object_get(d, "project_id"); /* a project's: its id */
    json_t *ev =
        json_pack("{s:s,s:O,s:O,s:O,s:O}", "type", type, "id", json_object_get(d, "id"),
                  "project_id", pid ? pid : json_object_get(d, "id"), "data", d, "at",
                  json_object_get(p, "at"));
    char *txt = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    json_decref(d);
    json_decref(p);
    return txt;
}

/* Every write stores, answers and queues the task's JSON written straight
 * as text: byte for byte what jansson makes of the same task, whatever
 * its strings, numbers and result hold. */
Test(store, documents_and_events_are_the_bytes_jansson_writes, .init = s_init,
     .fini = s_fini)
{
    store_outbox_set_max(s_store, 1000);
    char *p = s_project();
    char *a = s_task(p, "plain", NULL);
    json_t *bl = json_pack("[s]", a);
    char title[] =
        "q\"b\\s/ \x01\x1f\b\f\n\r\t \xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80 <>&";
    char *b = s_task(p, title, bl);
    json_decref(bl);
    const char *patches[] = {
        "{\"estimated_hours\":0.1,\"actual_hours\":2}",
        "{\"estimated_hours\":1e20,\"actual_hours\":12.5,\"result\":{\"x\":[1,2.5,"
        "\"\\u0001\"],"
        "\"y\":null,\"z\":true}}",
        "{\"result\":\"text \\\"quoted\\\"\",\"assigned_role\":\"tester\","
        "\"assigned_agent\":\"ag\\u00e9nt\",\"progress\":99}",
        "{\"result\":-3,\"estimated_hours\":100000}",
    };
    for (size_t i = 0; i < sizeof patches / sizeof *patches; i++) {
        json_t *patch = json_loads(patches[i], 0, NULL), *out = NULL;
        store_err_t e;
        cr_assert_eq(s_update(b, patch, -1, &out, &e), 0, "%s: %s", patches[i], e.msg);
        json_decref(out);
        json_decref(patch);
        char *doc = NULL;
        json_t *t = NULL;
        cr_assert_eq(store_task_get_doc(s_store, b, &doc, &e), 0);
        cr_assert_eq(store_task_get(s_store, b, &t, &e), 0);
        char *want = json_dumps(t, JSON_COMPACT);
        cr_assert_str_eq(doc, want, "after %s", patches[i]);
        free(want);
        free(doc);
        json_decref(t);
    }
    /* New tasks without blockers: their documents are written without
     * reading them back. */
    const double hours[] = {0.1, -0.0, 2, 1e5, 1.0 / 3};
    for (size_t i = 0; i < sizeof hours / sizeof *hours; i++) {
        store_task_new_t f = {.project_id = p,
                              .title = title,
                              .description = i % 2 ? NULL : title + 3,
                              .type = "bugfix",
                              .priority = "high",
                              .has_estimate = i > 0,
                              .estimated_hours = hours[i]};
        char *doc = NULL, *stored = NULL, id[STORE_ID_MAX], *want;
        json_t *t = NULL;
        store_err_t e;
        cr_assert_eq(store_task_create(s_store, &f, &doc, id, &e), 0, "%s", e.msg);
        cr_assert_eq(store_task_get_doc(s_store, id, &stored, &e), 0);
        cr_assert_eq(store_task_get(s_store, id, &t, &e), 0);
        cr_assert_str_eq(doc, stored);
        cr_assert_str_eq(stored, want = json_dumps(t, JSON_COMPACT), "hours %g",
                         hours[i]);
        free(want);
        free(stored);
        free(doc);
        json_decref(t);
    }
    store_event_t *evs = NULL;
    size_t n = 0;
    store_err_t e;
    store_end(s_store);
    cr_assert_eq(store_outbox_fetch(s_store, 100, &evs, &n, &e), 0);
    cr_assert_geq(n, 12, "the creates, the updates and an assignment");
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_loads(evs[i].payload, 0, NULL);
        json_t *data = json_object_get(ev, "data");
        char *doc = json_dumps(data, JSON_COMPACT);
        const char *type = json_string_value(json_object_get(ev, "type"));
        char *want = s_jansson_event(type, doc, evs[i].payload);
        cr_assert_str_eq(evs[i].payload, want);
        free(want);
        free(doc);
        json_decref(ev);
    }
    store_outbox_free(evs, n);
    free(a);
    free(b);
    free(p);
}

/* The store's timestamps read as now_iso8601's. */
Test(store, timestamps_are_written_as_now_iso8601_writes_them)
{
    for (int tries = 0;; tries++) {
        char a[40], b[STORE_TS_MAX], c[40];
        now_iso8601(a, sizeof a);
        store__now(b);
        now_iso8601(c, sizeof c);
        cr_assert_eq(strlen(b), strlen(a), "%s / %s", b, a);
        cr_assert(strcmp(a, b) <= 0 && strcmp(b, c) <= 0, "%s %s %s", a, b, c);
        if (strncmp(a, c, 19) == 0 || tries == 5) {
            cr_assert_eq(strncmp(a, b, 19), 0, "%s / %s", a, b);
            break;
        }
    }
}

/* Creates a task with a 2 KB title (a few frames each). */
static void s_create_big(const char *project)
{
    static char title[2000];
    if (!title[0])
        memset(title, 'y', sizeof title - 1);
    store_task_new_t f = {
        .project_id = project, .title = title, .type = "feature", .priority = "low"};
    char *doc = NULL, id[STORE_ID_MAX];
    store_err_t e;
    cr_assert_eq(store_task_create(s_store, &f, &doc, id, &e), 0, "%s", e.msg);
    free(doc);
}

/* Under a steady stream of writes the WAL starts over now and then (the
 * checkpointer lets it): it does not grow with every write made. */
Test(store, the_wal_stays_bounded_under_a_steady_stream_of_writes, .init = s_init,
     .fini = s_fini, .timeout = 120)
{
    char *p = s_project(), path[160];
    snprintf(path, sizeof path, "%s/t.db-wal", s_dir);
    off_t most = 0;
    for (int i = 0; i < 12000; i++) { /* ~100 MB of WAL without restarts */
        s_create_big(p);
        struct stat st;
        if (i % 100 == 0 && stat(path, &st) == 0 && st.st_size > most)
            most = st.st_size;
    }
    cr_assert_lt(most, 80 << 20, "the WAL grew to %lld bytes", (long long)most);
    free(p);
}

/* A row committed from another connection (another worker), then a
 * passive checkpoint of everything: what it leaves (0 when no read of
 * this thread holds an older snapshot). */
static int s_frames_held_back(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT OR REPLACE INTO meta(key,value) VALUES('t','x')",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    int frames = -1, done = -1, rc = SQLITE_BUSY;
    for (int i = 0; i < 100 && rc == SQLITE_BUSY; i++) { /* the checkpointer's turn */
        rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames,
                                       &done);
        if (rc == SQLITE_BUSY)
            usleep(10 * 1000);
    }
    cr_assert_eq(rc, SQLITE_OK);
    sqlite3_close(db);
    cr_assert_gt(frames, 0);
    return frames - done;
}

/* Reads end with what they read: the publisher's thread sleeps after
 * reading the outbox's backlog, a user's job hashes a password after
 * reading the user, and a snapshot kept meanwhile held every checkpoint
 * back from the frames committed since (the WAL could then start over
 * only when the writer checkpointed it whole under its lock). */
Test(store, reads_keep_no_snapshot_after_them, .init = s_init, .fini = s_fini)
{
    store_outbox_set_max(s_store, 1000);
    free(s_project()); /* one event */
    store_err_t e;
    cr_assert_eq(store_outbox_refresh(s_store, &e), 0);
    cr_assert_eq(store_outbox_backlog(s_store), 1);
    cr_assert_eq(s_frames_held_back(), 0, "after the outbox's backlog");
    json_t *u = NULL;
    cr_assert_eq(store_user_create(s_store, "ann", "hash", "member", &u, &e), 0, "%s",
                 e.msg);
    char *id = strdup(json_string_value(json_object_get(u, "id")));
    json_decref(u);
    int64_t ver = -1;
    cr_assert_eq(store_user_token(s_store, id, &ver, &e), 0);
    cr_assert_eq(s_frames_held_back(), 0, "after a user's token version");
    char *hash = NULL;
    cr_assert_eq(store_user_by_name(s_store, "ann", &u, &hash, &ver, &e), 0);
    json_decref(u);
    free(hash);
    cr_assert_eq(s_frames_held_back(), 0, "after a user by name");
    cr_assert_eq(store_user_get(s_store, id, &u, &e), 0);
    json_decref(u);
    cr_assert_eq(s_frames_held_back(), 0, "after a user by id");
    /* and a user made after such a read, another worker having written
     * since, is made (not SQLITE_BUSY_SNAPSHOT) */
    cr_assert_eq(store_user_token(s_store, id, &ver, &e), 0);
    s_frames_held_back();
    cr_assert_eq(store_user_create(s_store, "bob", "hash", "member", &u, &e), 0, "%s",
                 e.msg);
    json_decref(u);
    u = NULL;
    cr_assert_eq(store_user_create(s_store, "bob", "hash", "member", &u, &e),
                 VP_ECONFLICT);
    cr_assert_str_eq(e.code, "username_taken");
    cr_assert_null(u);
    free(id);
}

/* Ids are UUIDs of version 7: made in different milliseconds, they sort
 * in the order they were made (a new row's entry goes to the end of the id
 * index), and they never repeat. */
Test(store, ids_sort_in_the_order_they_were_made, .init = s_init, .fini = s_fini)
{
    char *p = s_project(), *prev = NULL;
    for (int i = 0; i < 20; i++) {
        char *id = s_task(p, "t", NULL);
        if (prev)
            cr_assert_lt(strcmp(prev, id), 0, "%s made before %s", prev, id);
        free(prev);
        prev = id;
        usleep(2000);
    }
    free(prev);
    free(p);
}

/* Frames in the WAL now, as a passive checkpoint from db sees them (in
 * turn with the store's checkpointer). */
static int s_wal_frames(sqlite3 *db)
{
    int frames = -1, done = -1;
    for (int i = 0; i < 1000; i++) {
        if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames,
                                      &done) != SQLITE_BUSY)
            break;
        usleep(1000);
    }
    cr_assert_geq(frames, 0, "%s", sqlite3_errmsg(db));
    return frames;
}

/* A read of another worker that keeps an old snapshot holds back every
 * frame after it. The checkpointer's RESTART, under the write lock that
 * every write waits for, waits for such a reader only briefly
 * (STORE_WAL_WAIT_NS): writes go on past STORE_WAL_RESTART_FRAMES and
 * STORE_WAL_MAX_FRAMES while the reader holds on (an unbounded wait hangs
 * them here), and once it lets go the WAL starts over. */
Test(store, a_reader_holding_an_old_snapshot_holds_up_no_write, .init = s_init,
     .fini = s_fini, .timeout = 120)
{
    char *p = s_project(), path[128];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    sqlite3 *rd = NULL, *mon = NULL; /* the reader; a connection that counts */
    cr_assert_eq(sqlite3_open(path, &rd), SQLITE_OK);
    cr_assert_eq(sqlite3_open(path, &mon), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(mon, "SELECT count(*) FROM meta", NULL, NULL, NULL),
                 SQLITE_OK); /* it reads: it knows the WAL */
    cr_assert_eq(
        sqlite3_exec(rd, "BEGIN; SELECT count(*) FROM tasks;", NULL, NULL, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(rd));
    int frames = 0, made = 0;
    while (frames <= STORE_WAL_MAX_FRAMES + 1000) {
        cr_assert_lt(made, 20000, "the WAL stayed at %d frames", frames);
        s_create_big(p);
        if (++made % 100 == 0)
            frames = s_wal_frames(mon);
    }
    cr_assert_eq(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 20000 && frames > STORE_WAL_RESTART_FRAMES; i++) {
        s_create_big(p);
        if (i % 10 == 0)
            frames = s_wal_frames(mon);
    }
    cr_assert_leq(frames, STORE_WAL_RESTART_FRAMES, "the WAL did not start over");
    sqlite3_close(rd);
    sqlite3_close(mon);
    free(p);
}

/* From the WAL index (the -shm file; its layout is SQLite's documented
 * wal-index format): the last frame committed (mxFrame, offset 16) and the
 * frames checkpointed (nBackfill, offset 96). */
static void s_wal_index(uint32_t *mx, uint32_t *backfill)
{
    char path[128];
    snprintf(path, sizeof path, "%s/t.db-shm", s_dir);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, mx, 4, 16), 4);
    cr_assert_eq(pread(fd, backfill, 4, 96), 4);
    close(fd);
}

/* One worker's checkpointer runs at a time (two at once made each other's
 * checkpoints end at once): a round finds the turn taken (the flock of
 * DATABASE-ckptlock, held here as another worker's checkpointer would)
 * and checkpoints nothing; once the turn is free, it catches up. */
Test(store, a_checkpointer_waits_its_turn, .init = s_init, .fini = s_fini,
     .timeout = 60)
{
    char *p = s_project(), path[128];
    snprintf(path, sizeof path, "%s/t.db-ckptlock", s_dir);
    int turn = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(turn, 0);
    cr_assert_eq(flock(turn, LOCK_EX), 0); /* after the round in progress */
    uint32_t mx0, bf0, mx, bf;
    s_wal_index(&mx0, &bf0);
    for (int i = 0; i < 50; i++)
        s_create_big(p);
    usleep(500 * 1000); /* five of its rounds (every 100 ms) */
    s_wal_index(&mx, &bf);
    cr_assert_gt(mx, mx0, "the writes added frames");
    cr_assert_eq(bf, bf0, "a checkpoint ran while another worker had the turn");
    cr_assert_eq(flock(turn, LOCK_UN), 0);
    for (int i = 0; i < 500 && bf < mx; i++) {
        usleep(10 * 1000);
        s_wal_index(&mx, &bf);
    }
    cr_assert_eq(bf, mx, "its turn came and it did not catch up");
    close(turn);
    free(p);
}
