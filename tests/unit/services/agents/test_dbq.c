/* test_dbq.c - unit tests for services/agents/dbq.c (with db.c's
 * adb_batch) on a real SQLite file and a real pool: writes queued while a
 * batch is on the pool go together into the next one, in order; each op
 * hears of its write only once it is committed (another connection sees
 * it); without a pool they are written in place. */
#include "dbq.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "loop.h"
#include "vp_error.h"

typedef struct op {
    dbq_op_t op;
    run_row_t row;
    int rc;
} op_t;

#include "tmpdir_test.h"

static adb_t *s_db, *s_other; /* s_other: a second connection, as another worker */
static loop_t *s_loop;
static char s_order[16];
static size_t s_ndone, s_nwant;
static bool s_all_seen;

static void s_setup(void)
{
    tmpdir_make("vapora-dbq", "agents.db");
    char err[256];
    s_db = adb_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(s_db, "%s", err);
    s_other = adb_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(s_other, "%s", err);
    s_loop = loop_new();
    s_ndone = 0;
    s_all_seen = true;
    memset(s_order, 0, sizeof s_order);
}

static void s_teardown(void)
{
    loop_destroy(&s_loop);
    adb_destroy(&s_other);
    adb_destroy(&s_db);
    tmpdir_remove();
}

static void s_work(dbq_op_t *o, adb_t *db)
{
    op_t *op = container_of(o, op_t, op);
    bool created;
    op->rc = adb_run_admit(db, &op->row, &created);
}

static void s_done(dbq_op_t *o, int status)
{
    op_t *op = container_of(o, op_t, op);
    cr_assert_eq(status, 0);
    cr_assert_eq(op->rc, 0);
    s_order[s_ndone++] = op->row.id[4];
    run_row_t seen = {0};
    /* Committed: another connection reads it. */
    s_all_seen = s_all_seen && adb_run_get(s_other, op->row.id, &seen) == 0;
    run_row_clear(&seen);
    if (s_ndone == s_nwant)
        loop_stop(s_loop);
}

static void s_op(op_t *op, const char *id)
{
    *op = (op_t){.op = {.work = s_work, .done = s_done}};
    snprintf(op->row.id, sizeof op->row.id, "%s", id);
    snprintf(op->row.task_id, sizeof op->row.task_id, "t-%s", id);
    snprintf(op->row.project_id, sizeof op->row.project_id, "p1");
    snprintf(op->row.state, sizeof op->row.state, RUN_QUEUED);
}

Test(dbq, writes_queued_meanwhile_go_in_one_batch_reported_after_its_commit,
     .init = s_setup, .fini = s_teardown)
{
    pool_t *pool = pool_new(s_loop, 2, 64);
    cr_assert_not_null(pool);
    dbq_t q = {0};
    dbq_init(&q);
    op_t ops[5];
    const char *ids[] = {"run_a", "run_b", "run_c", "run_d", "run_e"};
    s_nwant = ARRAY_LEN(ops);
    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        s_op(&ops[i], ids[i]);
        dbq_submit(&q, pool, s_db, &ops[i].op);
    }
    cr_assert_eq(loop_run(s_loop), 0);
    cr_assert_str_eq(s_order, "abcde", "done() in the order of the writes");
    cr_assert(s_all_seen, "a write is reported only once another connection sees it");
    cr_assert_eq(q.batches, 2, "the first write alone, the four queued behind it together "
                               "(got %u batches)", q.batches);
    pool_destroy(&pool);
}

Test(dbq, without_a_pool_writes_are_made_in_place, .init = s_setup, .fini = s_teardown)
{
    dbq_t q = {0};
    dbq_init(&q);
    op_t op;
    s_op(&op, "run_z");
    s_nwant = 1;
    dbq_submit(&q, NULL, s_db, &op.op);
    cr_assert_eq(s_ndone, 1, "written and reported before dbq_submit returns");
    cr_assert(s_all_seen);
}

static void s_batch_fn(adb_t *db, void *ud)
{
    int *calls = ud;
    ++*calls;
    run_row_t a = {.task_version = 1}, b = {.task_version = 1};
    snprintf(a.id, sizeof a.id, "run_1");
    snprintf(b.id, sizeof b.id, "run_2");
    snprintf(a.task_id, sizeof a.task_id, "t1");
    snprintf(b.task_id, sizeof b.task_id, "t1");
    snprintf(a.state, sizeof a.state, RUN_QUEUED);
    snprintf(b.state, sizeof b.state, RUN_FAILED);
    bool created;
    cr_assert_eq(adb_run_admit(db, &a, &created), 0);
    cr_assert_eq(adb_run_admit(db, &b, &created), 0);
    exec_row_t e = {.success = false, .at = 1};
    snprintf(e.run_id, sizeof e.run_id, "run_2");
    snprintf(e.agent, sizeof e.agent, "dev");
    snprintf(e.task_type, sizeof e.task_type, "feature");
    bool added;
    cr_assert_eq(adb_exec_add(db, &e, "t1", &added), 0, "an execution inside a batch");
    cr_assert(added);
    cr_assert_eq(adb_exec_add(db, &e, "t1", &added), 0);
    cr_assert_not(added, "once per run, inside a batch too");
    run_row_t seen = {0};
    cr_assert_eq(adb_run_get(s_other, "run_1", &seen), VP_ENOTFOUND,
                 "nothing of a batch is visible before its commit");
}

static void s_count_failures(const char *agent, long failures, void *ud)
{
    cr_assert_str_eq(agent, "dev");
    *(long *)ud = failures;
}

Test(dbq, a_batch_commits_its_writes_together, .init = s_setup, .fini = s_teardown)
{
    int calls = 0;
    adb_batch(s_db, s_batch_fn, &calls);
    cr_assert_eq(calls, 1);
    run_row_t seen = {0};
    cr_assert_eq(adb_run_get(s_other, "run_1", &seen), 0);
    cr_assert_eq(adb_run_get(s_other, "run_2", &seen), 0);
    run_row_clear(&seen);
    long failures = 0;
    cr_assert_eq(adb_streaks(s_other, "t1", s_count_failures, &failures), 0);
    cr_assert_eq(failures, 1, "the execution's failure counted once");
}
