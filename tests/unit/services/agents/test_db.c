/* test_db.c - unit tests for services/agents/db.c on a real SQLite file:
 * a run is admitted once, saved and read back, pages filter and resume,
 * an execution counts once per run, and failures in a row reset. */
#include "db.c" /* struct adb: its connection, for PRAGMA synchronous */

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vp_error.h"

#include "tmpdir_test.h"

static adb_t *s_db;

static void s_setup(void)
{
    tmpdir_make("vapora-adb", "agents.db");
    char err[256];
    s_db = adb_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(s_db, "%s", err);
}

static void s_teardown(void)
{
    adb_destroy(&s_db);
    tmpdir_remove();
}

static run_row_t s_run(const char *id, const char *task, const char *agent)
{
    run_row_t r = {.task_version = 2, .attempts = 0, .created_ms = 1000};
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.task_id, sizeof r.task_id, "%s", task);
    snprintf(r.project_id, sizeof r.project_id, "p1");
    snprintf(r.agent, sizeof r.agent, "%s", agent);
    snprintf(r.role, sizeof r.role, "developer");
    snprintf(r.task_type, sizeof r.task_type, "feature");
    snprintf(r.state, sizeof r.state, RUN_QUEUED);
    return r;
}

Test(adb, a_run_is_admitted_once_and_reads_back_as_saved, .init = s_setup,
     .fini = s_teardown)
{
    run_row_t r = s_run("run_a", "t1", "dev");
    bool created;
    cr_assert_eq(adb_run_admit(s_db, &r, &created), 0);
    cr_assert(created);
    run_row_t again = s_run("run_a", "t1", "other");
    cr_assert_eq(adb_run_admit(s_db, &again, &created), 0);
    cr_assert_not(created);
    cr_assert_str_eq(again.agent, "dev", "a second admission keeps the first");
    snprintf(r.state, sizeof r.state, RUN_SUCCEEDED);
    r.content = strdup("the answer");
    r.cost_usd = 0.25;
    r.attempts = 2;
    cr_assert_eq(adb_run_save(s_db, &r), 0);
    run_row_t got = {0};
    cr_assert_eq(adb_run_get(s_db, "run_a", &got), 0);
    cr_assert_str_eq(got.state, RUN_SUCCEEDED);
    cr_assert_str_eq(got.content, "the answer");
    cr_assert_null(got.error);
    cr_assert_eq(got.attempts, 2);
    cr_assert_float_eq(got.cost_usd, 0.25, 1e-12);
    cr_assert(run_state_final(got.state));
    cr_assert_not(run_state_final(RUN_RUNNING));
    run_row_t review = {0};
    cr_assert_eq(adb_run_awaiting_review(s_db, "t1", &review), 0);
    cr_assert_str_eq(review.id, "run_a");
    cr_assert_eq(adb_run_get(s_db, "nope", &got), VP_ENOTFOUND);
    run_row_t ghost = s_run("run_ghost", "t9", "dev");
    cr_assert_eq(adb_run_save(s_db, &ghost), VP_ENOTFOUND);
    run_row_clear(&r);
    run_row_clear(&again);
    run_row_clear(&got);
    run_row_clear(&review);
}

Test(adb, pages_filter_and_resume, .init = s_setup, .fini = s_teardown)
{
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof id, "run_%d", i);
        run_row_t r = s_run(id, i % 2 ? "odd" : "even", "dev");
        bool created;
        cr_assert_eq(adb_run_admit(s_db, &r, &created), 0);
        run_row_clear(&r);
    }
    run_row_t rows[3];
    size_t n;
    bool more;
    run_filter_t f = {.task_id = "even", .limit = 3};
    cr_assert_eq(adb_run_page(s_db, &f, rows, &n, &more), 0);
    cr_assert_eq(n, 3);
    cr_assert(more);
    cr_assert_str_eq(rows[2].id, "run_4");
    f.after = rows[2].seq;
    for (size_t i = 0; i < n; i++)
        run_row_clear(&rows[i]);
    cr_assert_eq(adb_run_page(s_db, &f, rows, &n, &more), 0);
    cr_assert_eq(n, 1);
    cr_assert_not(more);
    cr_assert_str_eq(rows[0].id, "run_6");
    run_row_clear(&rows[0]);
    run_filter_t g = {.state = RUN_RUNNING, .limit = 3};
    cr_assert_eq(adb_run_page(s_db, &g, rows, &n, &more), 0);
    cr_assert_eq(n, 0);
}

static void s_count(const exec_row_t *e, void *ud)
{
    int *n = ud;
    cr_assert_str_eq(e->agent, "dev");
    (*n)++;
}

static void s_one_streak(const char *agent, long failures, void *ud)
{
    if (strcmp(agent, "dev") == 0)
        *(long *)ud = failures;
}

static long s_streak(const char *task)
{
    long n = 0;
    cr_assert_eq(adb_streaks(s_db, task, s_one_streak, &n), 0);
    return n;
}

Test(adb, executions_count_once_and_streaks_reset, .init = s_setup, .fini = s_teardown)
{
    exec_row_t e = {.success = false, .latency_ms = 10, .at = 5};
    snprintf(e.agent, sizeof e.agent, "dev");
    snprintf(e.task_type, sizeof e.task_type, "feature");
    bool added;
    for (int i = 0; i < 3; i++) {
        snprintf(e.run_id, sizeof e.run_id, "run_%d", i);
        cr_assert_eq(adb_exec_add(s_db, &e, "t1", &added), 0);
        cr_assert(added);
    }
    cr_assert_eq(adb_exec_add(s_db, &e, "t1", &added), 0);
    cr_assert_not(added, "the same run counted twice");
    cr_assert_eq(s_streak("t1"), 3);
    e.success = true;
    snprintf(e.run_id, sizeof e.run_id, "run_ok");
    cr_assert_eq(adb_exec_add(s_db, &e, "t1", &added), 0);
    cr_assert_eq(s_streak("t1"), 0);
    int n = 0;
    int64_t last = 0;
    cr_assert_eq(adb_exec_since(s_db, 0, s_count, &n, &last), 0);
    cr_assert_eq(n, 4);
    n = 0;
    cr_assert_eq(adb_exec_since(s_db, last, s_count, &n, &last), 0);
    cr_assert_eq(n, 0);
}

static void s_streak_seen(const char *agent, long failures, void *ud)
{
    long *seen = ud;
    if (strcmp(agent, "dev") == 0)
        seen[0] = failures;
    else
        seen[1] = failures;
}

Test(adb, streaks_of_a_task_come_in_one_read, .init = s_setup, .fini = s_teardown)
{
    exec_row_t e = {.success = false, .at = 5};
    snprintf(e.task_type, sizeof e.task_type, "feature");
    bool added;
    const char *agents[] = {"dev", "dev", "qa"};
    for (int i = 0; i < 3; i++) {
        snprintf(e.agent, sizeof e.agent, "%s", agents[i]);
        snprintf(e.run_id, sizeof e.run_id, "run_s%d", i);
        cr_assert_eq(adb_exec_add(s_db, &e, "t7", &added), 0);
    }
    long seen[2] = {0, 0};
    cr_assert_eq(adb_streaks(s_db, "t7", s_streak_seen, seen), 0);
    cr_assert_eq(seen[0], 2);
    cr_assert_eq(seen[1], 1);
    seen[0] = seen[1] = -1;
    cr_assert_eq(adb_streaks(s_db, "none", s_streak_seen, seen), 0);
    cr_assert_eq(seen[0], -1, "a task without failures has no streaks");
}

/* [agents] synchronous reaches the database's connection (PRAGMA
 * synchronous: 1 NORMAL, 2 FULL). */
Test(adb, opens_with_the_sync_it_is_given, .init = s_setup, .fini = s_teardown)
{
    for (int full = 0; full < 2; full++) {
        char err[256] = "";
        adb_t *db = adb_open(s_path, full ? SQLDB_SYNC_FULL : SQLDB_SYNC_NORMAL, err,
                             sizeof err);
        cr_assert_not_null(db, "%s", err);
        sqlite3_stmt *st = NULL;
        cr_assert_eq(sqlite3_prepare_v2(db->db, "PRAGMA synchronous", -1, &st, NULL),
                     SQLITE_OK);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(st, 0), full ? 2 : 1);
        sqlite3_finalize(st);
        adb_destroy(&db);
    }
}
