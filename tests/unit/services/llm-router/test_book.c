/* test_book.c - unit tests for the budget book (book.c) on a real file in
 * a temporary directory: admission that degrades then refuses, settling,
 * handles on one file acting as workers (threads, and processes) that
 * never overspend, the release of what workers that died held (also one
 * killed while holding the book's mutex), windows that roll over and spend
 * that outlives every handle. (The admission tests were the ledger's when
 * admission ran in SQLite: same figures, same assertions.) */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "book.c" /* s_lock: to die holding the mutex */
#include "tmpdir_test.h"

static void s_book_init(void)
{
    tmpdir_make("vapora-book", "l.db.book");
}

static void s_book_fini(void)
{
    tmpdir_remove();
}

static book_t *s_open(void)
{
    char err[256] = "";
    book_t *b = book_open(s_path, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    return b;
}

/* Budget "dev", window 100, limit 1000, near at 80 %. */
static book_admit_t s_admit_in(book_t *b, int64_t window, int64_t normal, int64_t near,
                               int64_t exceeded)
{
    int slot = book_track(b, "dev", 100, 0);
    cr_assert_geq(slot, 0);
    book_admit_t a = {.window_start = window,
                      .limit = 1000,
                      .near_percent = 80,
                      .amounts = {normal, near, exceeded}};
    book_admit(b, slot, &a);
    return a;
}

static book_admit_t s_admit(book_t *b, int64_t normal, int64_t near, int64_t exceeded)
{
    return s_admit_in(b, 100, normal, near, exceeded);
}

static void s_expect_balance(book_t *b, int64_t spent, int64_t reserved)
{
    int64_t s = -1, r = -1;
    book_balance(b, book_track(b, "dev", 100, 0), 100, &s, &r);
    cr_assert_eq(s, spent, "spent %lld, want %lld", (long long)s, (long long)spent);
    cr_assert_eq(r, reserved, "reserved %lld, want %lld", (long long)r,
                 (long long)reserved);
}

static void s_settle(book_t *b, const book_admit_t *a, int64_t cost)
{
    book_settle(b, book_track(b, "dev", 100, 0), a->window, a->reserved_amount, cost);
}

Test(router_book, admission_degrades_then_refuses, .init = s_book_init,
     .fini = s_book_fini)
{
    book_t *b = s_open();
    book_admit_t first = s_admit(b, 700, 100, -1);
    cr_assert_eq(first.rc, 0);
    cr_assert_eq(first.state, RT_NORMAL);
    cr_assert_eq(first.plan, RT_NORMAL);
    book_admit_t a = s_admit(b, 700, 100, 0); /* 700 more does not fit: near does */
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.plan, RT_NEAR);
    cr_assert_eq(a.reserved, 700);
    a = s_admit(b, 700, 300, -1); /* used 800 = 80 %: near; 300 does not fit */
    cr_assert_eq(a.state, RT_NEAR);
    cr_assert_eq(a.rc, 1);
    a = s_admit(b, 700, 300, 0); /* the free plan always fits */
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.plan, RT_EXCEEDED);
    cr_assert_eq(a.reserved_amount, 0);
    /* Settling releases the reservation and adds the real cost. */
    s_settle(b, &first, 650);
    s_expect_balance(b, 650, 100);
    book_destroy(&b);
    cr_assert_null(b);
}

/* A worst case near INT64_MAX (a caller's max_tokens of 10^15 at a
 * model's price) never fits, whatever is used already: used + amount
 * would wrap around below the limit and admit it, and the total reserved
 * would then wrap too, opening the budget to every other call. A limit
 * beyond BOOK_MAX_LIMIT is counted as that. */
Test(router_book, a_worst_case_near_int64_max_never_fits, .init = s_book_init,
     .fini = s_book_fini)
{
    book_t *b = s_open();
    book_admit_t a = s_admit(b, 30, 30, -1);
    s_settle(b, &a, 30); /* 30 spent */
    for (int64_t k = 0; k < 64; k++) {
        a = s_admit(b, INT64_MAX - k, INT64_MAX - k, -1);
        cr_assert_eq(a.rc, 1, "a worst case of INT64_MAX - %lld was admitted",
                     (long long)k);
    }
    s_expect_balance(b, 30, 0);
    a = s_admit(b, 900, 900, -1);
    cr_assert(a.rc == 0 && a.plan == RT_NORMAL);
    cr_assert_eq(s_admit(b, 100, 100, -1).rc, 1, "930 used: 100 does not fit");
    int slot = book_track(b, "dev", 100, 0);
    book_admit_t big = {.window_start = 100,
                        .limit = INT64_MAX,
                        .near_percent = 80,
                        .amounts = {BOOK_MAX_LIMIT - 930, BOOK_MAX_LIMIT, -1}};
    book_admit(b, slot, &big);
    cr_assert(big.rc == 0 && big.plan == RT_NORMAL, "fits under the largest limit");
    big.amounts[RT_NORMAL] = INT64_MAX;
    book_admit(b, slot, &big);
    cr_assert_eq(big.rc, 1, "beyond the largest limit");
    book_destroy(&b);
}

typedef struct racer {
    book_t *b; /* kept open until every racer has raced */
    int admitted;
} racer_t;

static void *s_race(void *arg)
{
    racer_t *r = arg;
    char err[256];
    r->b = book_open(s_path, err, sizeof err);
    for (int i = 0; r->b && i < 50; i++)
        r->admitted += s_admit(r->b, 30, 30, -1).rc == 0;
    return NULL;
}

/* Four handles (as four workers would) race for a 1000 limit in 30s:
 * exactly 33 reservations fit, never 34. */
Test(router_book, concurrent_admission_never_overspends, .init = s_book_init,
     .fini = s_book_fini)
{
    book_t *b = s_open();
    pthread_t t[4];
    racer_t r[4] = {0};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, s_race, &r[i]);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_not_null(r[i].b);
        total += r[i].admitted;
    }
    cr_assert_eq(total, 33, "admitted %d", total);
    s_expect_balance(b, 0, 990);
    cr_assert_eq(book_release_dead(b), 0); /* every handle is alive */
    for (int i = 0; i < 4; i++)
        book_destroy(&r[i].b);
    s_expect_balance(b, 0, 0); /* each closed handle gave its own back */
    book_destroy(&b);
}

/* Two handles on one file, as two workers have: each sees what the other
 * reserved, the limit holds, and a settled call counts for both. */
Test(router_book, two_handles_share_one_budget, .init = s_book_init,
     .fini = s_book_fini)
{
    book_t *a = s_open(), *b = s_open();
    book_admit_t r1 = s_admit(a, 600, 100, -1);
    cr_assert_eq(r1.rc, 0);
    cr_assert_eq(r1.plan, RT_NORMAL);
    book_admit_t r2 = s_admit(b, 600, 300, -1); /* 1200 > 1000: the near plan */
    cr_assert_eq(r2.rc, 0);
    cr_assert_eq(r2.state, RT_NORMAL);
    cr_assert_eq(r2.plan, RT_NEAR);
    cr_assert_eq(r2.reserved, 600, "b sees a's reservation");
    book_admit_t r3 = s_admit(a, 200, 200, -1); /* used 900: near, 1100 > 1000 */
    cr_assert_eq(r3.rc, 1);
    cr_assert_eq(r3.state, RT_NEAR);
    cr_assert_eq(r3.spent + r3.reserved, 900);
    s_settle(a, &r1, 250);
    s_expect_balance(a, 250, 300);
    s_expect_balance(b, 250, 300);
    book_admit_t r4 = s_admit(a, 450, 100, -1); /* 550 + 450 = 1000 fits */
    cr_assert_eq(r4.rc, 0);
    cr_assert_eq(r4.plan, RT_NORMAL);
    s_expect_balance(b, 250, 750);
    book_destroy(&a);
    s_expect_balance(b, 250, 300); /* a's worker ended: what it held went */
    book_destroy(&b);
}

/* A worker in a process of its own: opens the book, admits `tries` calls
 * of 30, says how many on `report`, and exits without releasing anything
 * once `die` closes, as a worker that dies does (alive until then, so
 * that two such workers race each other, not each other's ghosts). */
static pid_t s_worker(int tries, const int report[2], const int die[2])
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid > 0)
        return pid;
    close(report[0]);
    close(die[1]); /* else this worker would keep its own `die` open */
    char err[256], x;
    book_t *b = book_open(s_path, err, sizeof err);
    unsigned char admitted = 0;
    for (int i = 0; b && i < tries; i++)
        admitted += s_admit(b, 30, 30, -1).rc == 0;
    if (write(report[1], &admitted, 1) != 1 || read(die[0], &x, 1) < 0)
        _exit(1);
    _exit(0);
}

/* Two worker processes race for a 1000 limit in 30s: exactly 33 fit. They
 * die holding their reservations; a live worker releases them, and its
 * own stay until it releases them. */
Test(router_book, dead_workers_never_overspend_and_are_released, .init = s_book_init,
     .fini = s_book_fini, .timeout = 60)
{
    book_t *b = s_open(); /* a live worker: the book is not new to the dead */
    int report[2], die[2];
    cr_assert(pipe(report) == 0 && pipe(die) == 0);
    pid_t w[2] = {s_worker(40, report, die), s_worker(40, report, die)};
    unsigned char n[2];
    cr_assert(read(report[0], &n[0], 1) == 1 && read(report[0], &n[1], 1) == 1);
    cr_assert_eq(n[0] + n[1], 33, "admitted %d", n[0] + n[1]);
    close(die[1]); /* both die now */
    for (int i = 0; i < 2; i++)
        cr_assert_eq(waitpid(w[i], NULL, 0), w[i]);
    close(die[0]);
    close(report[0]);
    close(report[1]);
    s_expect_balance(b, 0, 990);
    cr_assert_eq(s_admit(b, 30, 30, -1).rc, 1, "the limit is reached");
    cr_assert_eq(book_release_dead(b), 2);
    s_expect_balance(b, 0, 0);
    book_admit_t mine = s_admit(b, 30, 30, -1);
    cr_assert_eq(mine.rc, 0);
    cr_assert_eq(book_release_dead(b), 0, "this process is alive");
    s_expect_balance(b, 0, 30);
    book_destroy(&b);
    b = s_open(); /* the first to open it again: nothing is held */
    s_expect_balance(b, 0, 0);
    book_destroy(&b);
}

/* A worker killed (SIGKILL) while it holds the book's mutex: the next
 * worker to lock it is told, recounts, and the books still balance. */
Test(router_book, a_worker_killed_holding_the_mutex_leaves_it_usable,
     .init = s_book_init, .fini = s_book_fini, .timeout = 60)
{
    book_t *b = s_open();
    book_admit_t held = s_admit(b, 100, 100, -1);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        book_t *c = book_open(s_path, (char[64]){0}, 64);
        s_admit(c, 200, 200, -1);
        /* Half of a settle: this worker's own count lowered, the total
         * not yet, as a worker killed in the middle would leave it. */
        s_lock(c);
        c->sh->workers[c->me].reserved[0] -= 200;
        cr_assert_eq(write(go[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    char x;
    cr_assert_eq(read(go[0], &x, 1), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s_expect_balance(b, 0, 100); /* locks: EOWNERDEAD, recounted from the slots */
    cr_assert_eq(book_release_dead(b), 1);
    s_expect_balance(b, 0, 100);
    s_settle(b, &held, 40);
    s_expect_balance(b, 40, 0);
    close(go[0]);
    close(go[1]);
    book_destroy(&b);
}

/* A window that ends: the next admission starts the new one at 0 spent;
 * a call admitted in the old one still holds its reservation until it
 * settles, and its cost no longer counts in the new window. */
Test(router_book, windows_roll_over, .init = s_book_init, .fini = s_book_fini)
{
    book_t *b = s_open();
    book_admit_t old = s_admit(b, 300, 300, -1);
    book_admit_t spent = s_admit(b, 200, 200, -1);
    s_settle(b, &spent, 200);
    s_expect_balance(b, 200, 300);
    book_admit_t now = s_admit_in(b, 200, 100, 100, -1);
    cr_assert_eq(now.rc, 0);
    cr_assert_eq(now.window, 200);
    cr_assert_eq(now.spent, 0, "a new window starts at 0");
    cr_assert_eq(now.reserved, 300, "the old call is still in flight");
    s_settle(b, &old, 250); /* its cost went to window 100, in the ledger */
    int64_t s, r;
    book_balance(b, book_track(b, "dev", 100, 0), 200, &s, &r);
    cr_assert(s == 0 && r == 100, "spent %lld reserved %lld", (long long)s,
              (long long)r);
    book_balance(b, book_track(b, "dev", 100, 0), 100, &s, &r);
    cr_assert_eq(s, 0, "the book keeps only the current window");
    book_destroy(&b);
}

/* Spend outlives every handle (the file keeps it); a budget tracked anew
 * takes the ledger's spend when that is larger, a later window's from the
 * ledger alone. */
Test(router_book, spend_outlives_the_workers, .init = s_book_init, .fini = s_book_fini)
{
    book_t *b = s_open();
    book_admit_t a = s_admit(b, 300, 300, -1);
    s_settle(b, &a, 120);
    book_destroy(&b);
    b = s_open();
    s_expect_balance(b, 120, 0);
    cr_assert_eq(book_track(b, "dev", 100, 90), book_track(b, "dev", 100, 0));
    s_expect_balance(b, 120, 0); /* the ledger lags: the book's is kept */
    book_track(b, "dev", 100, 150);
    s_expect_balance(b, 150, 0); /* the book was lost: the ledger's */
    int slot = book_track(b, "dev", 300, 7);
    int64_t s, r;
    book_balance(b, slot, 300, &s, &r);
    cr_assert_eq(s, 7);
    int other = book_track(b, "ops", 300, 0);
    cr_assert(other >= 0 && other != slot);
    book_destroy(&b);
}

/* A file that is not a book of this layout is replaced, not trusted. */
Test(router_book, a_foreign_file_is_replaced, .init = s_book_init, .fini = s_book_fini)
{
    FILE *f = fopen(s_path, "w");
    cr_assert_not_null(f);
    fputs("not a book", f);
    fclose(f);
    book_t *b = s_open();
    s_expect_balance(b, 0, 0);
    cr_assert_eq(s_admit(b, 10, 10, -1).rc, 0);
    book_destroy(&b);
}
