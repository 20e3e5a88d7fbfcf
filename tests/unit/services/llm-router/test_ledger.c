/* test_ledger.c - unit tests for the router's ledger (ledger.c) on a real
 * SQLite file in a temporary directory: admission that degrades then
 * refuses, settling, usage totals, handles on one file acting as workers
 * (threads, and processes) that never overspend, and the release of the
 * reservations of workers that died. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ledger.h"

static char s_dir[] = "/tmp/vapora-ledger-XXXXXX";
static char s_path[128];

static void s_ledger_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/l.db", s_dir);
}

static void s_ledger_fini(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

static ledger_admit_t s_admit(ledger_t *l, int64_t normal, int64_t near,
                              int64_t exceeded)
{
    ledger_admit_t a = {.role = "dev",
                        .window_start = 100,
                        .limit = 1000,
                        .near_percent = 80,
                        .amounts = {normal, near, exceeded}};
    ledger_admit(l, &a);
    return a;
}

Test(router_ledger, admission_degrades_then_refuses, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256];
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    ledger_admit_t a = s_admit(l, 700, 100, -1);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.state, RT_NORMAL);
    cr_assert_eq(a.plan, RT_NORMAL);
    a = s_admit(l, 700, 100, 0); /* 700 more does not fit: the near plan does */
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.plan, RT_NEAR);
    cr_assert_eq(a.reserved, 700);
    a = s_admit(l, 700, 300, -1); /* used 800 = 80 %: near; 300 does not fit */
    cr_assert_eq(a.state, RT_NEAR);
    cr_assert_eq(a.rc, 1);
    a = s_admit(l, 700, 300, 0); /* the free plan always fits */
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.plan, RT_EXCEEDED);
    cr_assert_eq(a.reservation, 0);
    /* Settling releases the reservation and adds the real cost. */
    ledger_entry_t e = {
        .reservation = 1, .window_start = 100, .minute = 1, .cost = 650, .requests = 1};
    strcpy(e.role, "dev");
    strcpy(e.provider, "p");
    strcpy(e.model, "m");
    cr_assert_eq(ledger_apply(l, &e, 1), 0);
    int64_t spent, reserved;
    ledger_balance(l, "dev", 100, &spent, &reserved);
    cr_assert_eq(spent, 650);
    cr_assert_eq(reserved, 100);
    json_t *u = ledger_usage(l, "provider", 0);
    cr_assert_eq(json_array_size(u), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(u, 0), "requests")),
                 1);
    json_decref(u);
    ledger_destroy(&l);
}

typedef struct racer {
    int admitted;
} racer_t;

static void *s_race(void *arg)
{
    racer_t *r = arg;
    char err[256];
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    for (int i = 0; i < 50; i++) {
        ledger_admit_t a = s_admit(l, 30, 30, -1);
        if (a.rc == 0)
            r->admitted++;
    }
    ledger_destroy(&l);
    return NULL;
}

/* Four connections (as four workers would) race for a 1000 limit in 30s:
 * exactly 33 reservations fit, never 34. */
Test(router_ledger, concurrent_admission_never_overspends, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256];
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    pthread_t t[4];
    racer_t r[4] = {0};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, s_race, &r[i]);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += r[i].admitted;
    }
    cr_assert_eq(total, 33, "admitted %d", total);
    int64_t spent, reserved;
    ledger_balance(l, "dev", 100, &spent, &reserved);
    cr_assert_eq(reserved, 990);
    cr_assert_eq(ledger_release_dead(l), 0); /* this process is alive */
    ledger_destroy(&l);
}

/* A finished call to apply: role dev, window 100, provider p, model m. */
static ledger_entry_t s_entry(int64_t reservation, int64_t minute, int64_t cost)
{
    ledger_entry_t e = {.reservation = reservation,
                        .window_start = 100,
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

static void s_expect_balance(ledger_t *l, int64_t spent, int64_t reserved)
{
    int64_t s = -1, r = -1;
    cr_assert_eq(ledger_balance(l, "dev", 100, &s, &r), 0);
    cr_assert_eq(s, spent, "spent %lld, want %lld", (long long)s, (long long)spent);
    cr_assert_eq(r, reserved, "reserved %lld, want %lld", (long long)r,
                 (long long)reserved);
}

/* Two handles on one file, as two workers have: each sees what the other
 * reserved, one settles what the other reserved, and the limit holds. */
Test(router_ledger, two_handles_share_one_budget, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256];
    ledger_t *a = ledger_open(s_path, err, sizeof err);
    ledger_t *b = ledger_open(s_path, err, sizeof err);
    cr_assert(a && b, "%s", err);
    ledger_admit_t r1 = s_admit(a, 600, 100, -1);
    cr_assert_eq(r1.rc, 0);
    cr_assert_eq(r1.plan, RT_NORMAL);
    ledger_admit_t r2 = s_admit(b, 600, 300, -1); /* 1200 > 1000: the near plan */
    cr_assert_eq(r2.rc, 0);
    cr_assert_eq(r2.state, RT_NORMAL);
    cr_assert_eq(r2.plan, RT_NEAR);
    cr_assert_eq(r2.reserved, 600, "b sees a's reservation");
    ledger_admit_t r3 = s_admit(a, 200, 200, -1); /* used 900: near, 1100 > 1000 */
    cr_assert_eq(r3.rc, 1);
    cr_assert_eq(r3.state, RT_NEAR);
    cr_assert_eq(r3.spent + r3.reserved, 900);
    ledger_entry_t e = s_entry(r1.reservation, 1, 250);
    cr_assert_eq(ledger_apply(b, &e, 1), 0); /* b settles a's call */
    s_expect_balance(a, 250, 300);
    s_expect_balance(b, 250, 300);
    ledger_admit_t r4 = s_admit(a, 450, 100, -1); /* 550 + 450 = 1000 fits */
    cr_assert_eq(r4.rc, 0);
    cr_assert_eq(r4.plan, RT_NORMAL);
    s_expect_balance(b, 250, 750);
    ledger_destroy(&a);
    ledger_destroy(&b);
    cr_assert_null(a);
}

/* What is not a budgeted, priced call adds no spend, only usage; a spend
 * and the usage totals survive closing and opening again. */
Test(router_ledger, settling_adds_spend_only_for_budgets, .init = s_ledger_init,
     .fini = s_ledger_fini)
{
    char err[256];
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    ledger_entry_t e[3] = {s_entry(0, 1, 70), s_entry(0, 1, 0), s_entry(0, 1, 30)};
    e[1].window_start = 0; /* no budget */
    e[1].cost = 999;
    cr_assert_eq(ledger_apply(l, e, 3), 0);
    s_expect_balance(l, 100, 0);
    int64_t spent = -1, reserved = -1;
    cr_assert_eq(ledger_balance(l, "dev", 0, &spent, &reserved), 0);
    cr_assert_eq(spent, 0, "no budget, no spend");
    ledger_destroy(&l);
    l = ledger_open(s_path, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    s_expect_balance(l, 100, 0);
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
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    ledger_entry_t e[4] = {s_entry(0, 10, 1), s_entry(0, 10, 2), s_entry(0, 20, 4),
                           s_entry(0, 30, 8)};
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

/* A worker in a process of its own: opens the ledger, admits `tries`
 * calls of 30 and exits without releasing anything, as a worker that dies
 * does. Its exit status is how many it was admitted. */
static pid_t s_worker(int tries)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid > 0)
        return pid;
    char err[256];
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    int admitted = 0;
    for (int i = 0; l && i < tries; i++)
        admitted += s_admit(l, 30, 30, -1).rc == 0;
    _exit(l ? admitted : 255);
}

static int s_wait(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Two worker processes race for a 1000 limit in 30s: exactly 33 fit. They
 * die holding their reservations; the next worker to start releases them,
 * and a live worker's stay until it releases its own. */
Test(router_ledger, dead_workers_never_overspend_and_are_released,
     .init = s_ledger_init, .fini = s_ledger_fini, .timeout = 60)
{
    pid_t w1 = s_worker(40), w2 = s_worker(40);
    int total = s_wait(w1) + s_wait(w2);
    cr_assert_eq(total, 33, "admitted %d", total);
    char err[256];
    ledger_t *l = ledger_open(s_path, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    s_expect_balance(l, 0, 990);
    cr_assert_eq(s_admit(l, 30, 30, -1).rc, 1, "the limit is reached");
    cr_assert_gt(ledger_release_dead(l), 0);
    s_expect_balance(l, 0, 0);
    ledger_admit_t mine = s_admit(l, 30, 30, -1);
    cr_assert_eq(mine.rc, 0);
    cr_assert_eq(ledger_release_dead(l), 0, "this process is alive");
    s_expect_balance(l, 0, 30);
    ledger_release_pid(l, getpid());
    s_expect_balance(l, 0, 0);
    ledger_destroy(&l);
}
