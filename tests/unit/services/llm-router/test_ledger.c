/* test_ledger.c - unit tests for the router's ledger (ledger.c) on a real
 * SQLite file in a temporary directory: spend per budget and window,
 * usage totals, what survives closing and opening again. (Admission moved
 * to the budget book: test_book.c.) */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.c" /* struct ledger: its connection, for PRAGMA synchronous */
#include "tmpdir_test.h"

static void s_ledger_init(void)
{
    tmpdir_make("vapora-ledger", "l.db");
}

static void s_ledger_fini(void)
{
    tmpdir_remove();
}

/* A finished call to apply: role dev, window 100, provider p, model m. */
static ledger_entry_t s_entry(int64_t minute, int64_t cost)
{
    ledger_entry_t e = {.window_start = 100,
                        .minute = minute,
                        .cost = cost,
                        .input_tokens = 10,
                        .output_tokens = 5,
                        .requests = 1};
    strcpy(e.role, "dev");
    strcpy(e.provider, "p");
    strcpy(e.model, "m");
    return e;
}

static void s_expect_spent(ledger_t *l, int64_t spent)
{
    int64_t s = -1;
    cr_assert_eq(ledger_spent(l, "dev", 100, &s), 0);
    cr_assert_eq(s, spent, "spent %lld, want %lld", (long long)s, (long long)spent);
}

/* What is not a budgeted, priced call adds no spend, only usage; a spend
 * and the usage totals survive closing and opening again. */
Test(router_ledger, settling_adds_spend_only_for_budgets, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256];
    ledger_t *l = ledger_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    ledger_entry_t e[3] = {s_entry(1, 70), s_entry(1, 0), s_entry(1, 30)};
    e[1].window_start = 0; /* no budget */
    e[1].cost = 999;
    cr_assert_eq(ledger_apply(l, e, 3), 0);
    s_expect_spent(l, 100);
    int64_t spent = -1;
    cr_assert_eq(ledger_spent(l, "dev", 0, &spent), 0);
    cr_assert_eq(spent, 0, "no budget, no spend");
    ledger_destroy(&l);
    l = ledger_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    s_expect_spent(l, 100);
    json_t *u = ledger_usage(l, "role", 0);
    json_t *dev = json_array_get(u, 0);
    cr_assert_eq(json_array_size(u), 1);
    cr_assert_eq(json_integer_value(json_object_get(dev, "requests")), 3);
    cr_assert_float_eq(json_real_value(json_object_get(dev, "cost_usd")),
                       1099 / LEDGER_NANO, 1e-15);
    json_decref(u);
    ledger_destroy(&l);
}

static json_int_t s_field(const json_t *row, const char *key)
{
    return json_integer_value(json_object_get(row, key));
}

/* Totals grouped by role, provider or model, from a minute on; batches
 * add up into the same rows. */
Test(router_ledger, usage_totals_by_group_and_since, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256];
    ledger_t *l = ledger_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    ledger_entry_t e[4] = {s_entry(10, 1), s_entry(10, 2), s_entry(20, 4),
                           s_entry(30, 8)};
    strcpy(e[1].provider, "q");
    strcpy(e[2].model, "n");
    strcpy(e[3].role, "ops");
    e[3].errors = 1;
    e[3].estimated = 1;
    e[3].requests = 5; /* five calls added up by the worker */
    cr_assert_eq(ledger_apply(l, e, 2), 0);
    cr_assert_eq(ledger_apply(l, e + 2, 2), 0);
    cr_assert_eq(ledger_apply(l, e, 1), 0); /* same key: the same row grows */
    json_t *u = ledger_usage(l, "provider", 0);
    cr_assert_eq(json_array_size(u), 2);
    json_t *p = json_array_get(u, 0);
    cr_assert_str_eq(json_string_value(json_object_get(p, "provider")), "p");
    cr_assert_eq(s_field(p, "requests"), 8);
    cr_assert_eq(s_field(p, "input_tokens"), 40);
    cr_assert_eq(s_field(p, "errors"), 1);
    cr_assert_eq(s_field(p, "estimated"), 1);
    json_decref(u);
    u = ledger_usage(l, "model", 0);
    cr_assert_eq(json_array_size(u), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(u, 1), "model")),
                     "n");
    json_decref(u);
    u = ledger_usage(l, "role", 20 * 60); /* minutes 20 and 30 */
    cr_assert_eq(json_array_size(u), 2);
    cr_assert_eq(s_field(json_array_get(u, 0), "requests"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(u, 1), "role")),
                     "ops");
    json_decref(u);
    u = ledger_usage(l, "role", 31 * 60);
    cr_assert_eq(json_array_size(u), 0);
    json_decref(u);
    ledger_destroy(&l);
}

/* PRAGMA synchronous on the ledger's own connection: 1 NORMAL, 2 FULL. */
static long s_sync_level(ledger_t *l)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(l->db, "PRAGMA synchronous", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* [router] synchronous reaches the ledger's connection; a file that cannot
 * be opened is named, and nothing is left to free. */
Test(router_ledger, opens_with_the_sync_it_is_given, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256] = "";
    ledger_t *l = ledger_open(s_path, SQLDB_SYNC_FULL, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    cr_assert_eq(s_sync_level(l), 2);
    ledger_destroy(&l);
    l = ledger_open(s_path, SQLDB_SYNC_NORMAL, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    cr_assert_eq(s_sync_level(l), 1);
    ledger_destroy(&l);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no-such-dir/l.db", s_dir);
    cr_assert_null(ledger_open(bad, SQLDB_SYNC_FULL, err, sizeof err));
    cr_assert(strstr(err, bad), "%s", err);
}
