/* test_store_outbox.c - unit tests for the outbox
 * (services/backend/store_outbox.c) as two workers share it: each worker's
 * store counts the events it queued since its last look, while the other
 * worker's publisher may have sent them all meanwhile. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_outbox.h"
#include "store_projects.h"

static char s_dir[] = "/tmp/vapora-outbox-XXXXXX";
static store_t *s_mine, *s_theirs; /* two workers' stores on one database */

static store_t *s_open(void)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", s_dir);
    store_t *s = store_open(path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    return s;
}

static void s_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    s_mine = s_open();
    s_theirs = s_open();
}

static void s_fini(void)
{
    store_end(s_mine);
    store_end(s_theirs);
    store_destroy(&s_mine);
    store_destroy(&s_theirs);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

/* A write on s that queues one event (a project created). */
static void s_write(store_t *s)
{
    json_t *p = NULL;
    store_err_t e;
    cr_assert_eq(store_project_create(s, "P", "d", &p, &e), 0, "%s", e.msg);
    json_decref(p);
}

/* What the other worker's publisher does: sends every event (here: reads
 * them) and forgets them. */
static size_t s_publish_all(store_t *s)
{
    store_event_t *evs = NULL;
    size_t n = 0;
    store_err_t e;
    cr_assert_eq(store_outbox_fetch(s, 1000, &evs, &n, &e), 0, "%s", e.msg);
    if (n > 0)
        cr_assert_eq(store_outbox_delete_upto(s, evs[n - 1].seq, &e), 0, "%s", e.msg);
    store_outbox_free(evs, n);
    store_end(s);
    return n;
}

/* The limit is on events waiting, not on those this worker queued: once
 * the other worker's publisher sent them, more fit, though this worker
 * has not looked since (its estimate still says full). */
Test(outbox, events_another_worker_sent_free_their_room, .init = s_init, .fini = s_fini)
{
    enum { MAX = 5 };
    store_outbox_set_max(s_mine, MAX);
    store_outbox_set_max(s_theirs, MAX);
    for (int i = 0; i < MAX; i++)
        s_write(s_mine);
    cr_assert_eq(store_outbox_backlog(s_mine), MAX);
    cr_assert_eq(s_publish_all(s_theirs), MAX);
    for (int i = 0; i < MAX; i++)
        s_write(s_mine);
    cr_assert_eq(store_outbox_dropped(s_mine), 0,
                 "events dropped with the outbox empty");
    cr_assert_eq(s_publish_all(s_theirs), MAX, "an event was lost");
}

/* A full outbox still drops (the writes succeed), and counts what it
 * dropped; room made by a publish is taken again. */
Test(outbox, a_full_outbox_drops_and_counts, .init = s_init, .fini = s_fini)
{
    enum { MAX = 3 };
    store_outbox_set_max(s_mine, MAX);
    store_outbox_set_max(s_theirs, MAX);
    for (int i = 0; i < MAX + 2; i++)
        s_write(s_mine);
    cr_assert_eq(store_outbox_dropped(s_mine), 2);
    cr_assert_eq(s_publish_all(s_theirs), MAX);
    s_write(s_mine);
    cr_assert_eq(store_outbox_dropped(s_mine), 2, "dropped with room");
    cr_assert_eq(s_publish_all(s_mine), 1);
}
