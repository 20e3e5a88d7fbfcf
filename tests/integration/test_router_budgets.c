/* test_router_budgets.c - the LLM router's budgets: near takes the
 * cheapest model, exceeded only free ones, none left is 429 in either
 * format; two hundred concurrent calls never overspend; a worst case past
 * what int64 holds never fits; the spend survives a restart, a worker
 * killed mid-call and the whole router killed; a provider's
 * corrupt usage cannot overflow a budget, a call is charged at most what
 * it reserved, and counts sent as text are estimated, not free. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "router_fixture.h"

/* ---- budgets: near takes the cheapest model, exceeded only free ones,
 * none → 429 ---- */

/* The budget of role once spent_usd reached want and nothing is reserved
 * (polled for 5 s: the workers settle in batches); the last one seen
 * otherwise. The caller decrefs. */
static json_t *s_budget(th_sv_t *sv, const char *role, double want)
{
    json_t *b = NULL;
    long long end = th_now_ms() + 5000;
    do {
        json_decref(b);
        json_t *all = llm_get(sv, "/api/v1/budgets");
        b = json_incref(th_find(all, "role", role));
        json_decref(all);
        if (b && LLM_CLOSE(th_num(b, "spent_usd"), want) &&
            th_num(b, "reserved_usd") == 0)
            return b;
        th_sleep_ms(50);
    } while (th_now_ms() < end);
    return b;
}

/* Asserts the budget of role settles on spent_usd spent, nothing reserved,
 * in state. */
static void s_expect_budget(th_sv_t *sv, const char *role, double spent,
                            const char *state)
{
    json_t *b = s_budget(sv, role, spent);
    char *d = b ? json_dumps(b, 0) : strdup("(none)");
    cr_assert(b && LLM_CLOSE(th_num(b, "spent_usd"), spent) &&
                  th_num(b, "reserved_usd") == 0,
              "budget %s, want spent %f", d, spent);
    cr_assert_str_eq(th_str(b, "state"), state, "budget %s", d);
    free(d);
    json_decref(b);
}

/* A role-tiny gpt-a call (max_tokens 100) served by model in state. */
static void s_tiny_call(th_sv_t *sv, const char *model, const char *state,
                        const char *cost)
{
    char *body = llm_body(false, "gpt-a", false, 100);
    llm_resp_t r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 200);
    llm_expect_field(r.head, "X-Vapora-Model", model);
    llm_expect_field(r.head, "X-Vapora-Budget-State", state);
    llm_expect_field(r.head, "X-Vapora-Cost-USD", cost);
    llm_resp_clear(&r);
    free(body);
}

/* No model is free once llama has a price. */
#define PRICED_LLAMA                                                                   \
    "[model:llama]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n\n"
#define TINY_BUDGET(limit)                                                             \
    "[budget:tiny]\nwindow = daily\nlimit_usd = " limit "\nnear_percent = 80\n"

Test(router_budgets, near_takes_the_cheapest_model_and_exceeded_without_free_is_429,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    /* Each gpt-a call costs 10 in + 100 out = 0.21 USD, its worst case too. */
    llm_fake_set(fake, "oai", "{\"usage_out\":100}");
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.chain = "oai, claude",
                                      .extra = PRICED_LLAMA TINY_BUDGET("1")});
    for (int i = 1; i <= 4; i++) {
        s_tiny_call(sv, "gpt-a", "normal", "0.210000");
        s_expect_budget(sv, "tiny", 0.21 * i, i < 4 ? "normal" : "near");
    }
    /* 84 %: near, gpt-b (10 in + 100 out = 0.021 USD). */
    s_tiny_call(sv, "gpt-b", "near", "0.021000");
    s_expect_budget(sv, "tiny", 0.861, "near");
    /* A provider that reports more than asked for is charged no more than
     * the call reserved (100 out): it cannot push the budget over. */
    llm_fake_set(fake, "oai", "{\"usage_out\":1000}");
    s_tiny_call(sv, "gpt-b", "near", "0.021000");
    s_expect_budget(sv, "tiny", 0.882, "near");
    /* 90.3 %: the next call's worst case (claude-x's) no longer fits. */
    s_tiny_call(sv, "gpt-b", "near", "0.021000");
    s_expect_budget(sv, "tiny", 0.903, "near");
    json_t *all = llm_get(sv, "/api/v1/budgets");
    json_t *b = th_find(all, "role", "tiny");
    char *d = json_dumps(b, 0);
    cr_assert_str_eq(th_str(b, "window"), "daily", "%s", d);
    cr_assert(th_num(b, "limit_usd") == 1 && json_object_get(b, "resets_at"), "%s", d);
    free(d);
    json_decref(all);
    /* No model is free: 429 in either format. */
    char *body = llm_body(false, "gpt-a", false, 100);
    llm_resp_t r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 429);
    json_t *err = json_object_get(r.json, "error");
    cr_assert_str_eq(th_str(err, "type"), "budget_exceeded", "%s", r.body);
    cr_assert(strstr(th_str(err, "message") ?: "", "tiny"), "%s", r.body);
    llm_resp_clear(&r);
    free(body);
    body = llm_body(true, "gpt-a", false, 100);
    r = llm_call(sv, LLM_ANT, LLM_ROLE_TINY, body, 429);
    cr_assert_str_eq(th_str(r.json, "type"), "error", "%s", r.body);
    cr_assert_str_eq(th_str(json_object_get(r.json, "error"), "type"),
                     "budget_exceeded", "%s", r.body);
    llm_resp_clear(&r);
    free(body);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 7);
    /* Other roles share [budget:default]. */
    llm_expect_fallback(sv, "oai", "gpt-a", "1");
}

Test(router_budgets, exceeded_takes_the_free_model, .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", "{\"usage_out\":100}");
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.extra = TINY_BUDGET("0.1")});
    /* Worst case 10 in + 20 out = 0.05 fits, twice; the provider reports
     * 100 out, but a call is charged no more than it reserved. */
    char *body = llm_body(false, "gpt-a", false, 20);
    llm_resp_t r;
    for (int i = 1; i <= 2; i++) {
        r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 200);
        llm_expect_field(r.head, "X-Vapora-Model", "gpt-a");
        llm_expect_field(r.head, "X-Vapora-Cost-USD", "0.050000");
        llm_resp_clear(&r);
        s_expect_budget(sv, "tiny", 0.05 * i, i < 2 ? "normal" : "exceeded");
    }
    r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 200);
    llm_expect_field(r.head, "X-Vapora-Provider", "local");
    llm_expect_field(r.head, "X-Vapora-Model", "llama");
    llm_expect_field(r.head, "X-Vapora-Budget-State", "exceeded");
    llm_expect_field(r.head, "X-Vapora-Cost-USD", "0.000000");
    cr_assert(strstr(r.body, LLM_REPLY), "%s", r.body);
    llm_resp_clear(&r);
    free(body);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 2);
    cr_assert_eq(llm_fake_num(fake, "local", "requests"), 1);
}

/* ---- concurrent calls against a tiny budget never overspend ---- */

#define NCONC 200

typedef struct s_conc {
    int port;
    const char *body;
    int status;
} s_conc_t;

static void *s_conc_call(void *arg)
{
    s_conc_t *a = arg;
    a->status = th_call(a->port, "POST", LLM_OAI,
                        "Content-Type: application/json\r\n" LLM_ROLE_TINY, a->body,
                        NULL, 30000);
    return NULL;
}

Test(router_budgets, two_hundred_concurrent_calls_never_overspend, .timeout = 120,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", "{\"latency_ms\":300}");
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.chain = "oai", .extra = PRICED_LLAMA TINY_BUDGET("1")});
    char *body = llm_body(false, "gpt-a", false, 20);
    static s_conc_t calls[NCONC];
    static pthread_t th[NCONC];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < NCONC; i++) {
        calls[i] = (s_conc_t){.port = sv->ports[0], .body = body};
        cr_assert_eq(pthread_create(&th[i], NULL, s_conc_call, &calls[i]), 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    long ok = 0, refused = 0;
    int other = 0;
    for (int i = 0; i < NCONC; i++) {
        pthread_join(th[i], NULL);
        ok += calls[i].status == 200;
        refused += calls[i].status == 429;
        if (calls[i].status != 200 && calls[i].status != 429)
            other = calls[i].status;
    }
    free(body);
    cr_assert_eq(ok + refused, NCONC, "%ld ok, %ld 429, another answer was %d", ok,
                 refused, other);
    cr_assert(ok > 0 && refused > 0, "%ld ok, %ld 429", ok, refused);
    cr_log_info("%ld calls answered 200, %ld 429", ok, refused);
    th_sleep_ms(500);
    json_t *b = s_budget(sv, "tiny", NAN);
    char *d = json_dumps(b, 0);
    cr_assert(b && th_num(b, "reserved_usd") == 0, "budget %s", d);
    cr_assert(th_num(b, "spent_usd") > 0 &&
                  th_num(b, "spent_usd") <= th_num(b, "limit_usd") + 1e-9,
              "overspent: %s after %ld calls", d, ok);
    cr_log_info("budget after the calls: %s", d);
    free(d);
    json_decref(b);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), ok);
}

/* ---- a worst case past what int64 holds ---- */

/* A caller's max_tokens near 2^63 / gpt-a's 2e6 nano-USD per output token
 * makes a worst case just under 2^63 nano-USD: added to what the budget
 * used, it wrapped around below the limit and the call was admitted (and
 * the reserved total with it, opening the budget to every call). Swept
 * over 64 values, so that the prompt's bound (~10 tokens at 1e6) lands one
 * of them in the window whatever it is: every one is refused. And a
 * limit past what int64 holds counts as the largest, not as a negative. */
Test(router_budgets, a_worst_case_past_int64_never_wraps_the_budget_around,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.chain = "oai",
                            .extra = TINY_BUDGET("1") "\n[budget:huge]\nwindow = "
                                                      "daily\nlimit_usd = 1e11\n"});
    s_tiny_call(sv, "gpt-a", "normal", "0.050000"); /* 5e7 used: the window */
    long top = (long)(0x1p63 / 2e6);
    for (long k = 0; k < 64; k++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"model\":\"gpt-a\",\"max_tokens\":%ld,\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 top - k);
        llm_resp_t r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 429);
        llm_resp_clear(&r);
    }
    s_expect_budget(sv, "tiny", 0.05, "normal");
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 1);
    /* A limit past what int64 holds in nano-USD is the largest the book
     * counts, not a negative one (which made every call exceeded). */
    char *body = llm_body(false, "gpt-a", false, 100);
    llm_resp_t r = llm_call(sv, LLM_OAI, "X-Vapora-Role: huge\r\n", body, 200);
    llm_expect_field(r.head, "X-Vapora-Budget-State", "normal");
    llm_resp_clear(&r);
    free(body);
}

/* ---- the spend survives a restart on the same data_dir ---- */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* The book file removed between the two starts: the spend must come back
 * from the ledger, which a clean stop has written, whichever
 * [router] synchronous it runs with. */
static void s_rm_book(const char *dir)
{
    const char *const files[] = {"llm-router.db.book", "llm-router.db.book.lock"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        /* the book itself must be there: the test proves nothing otherwise */
        cr_assert(unlink(path) == 0 || (i > 0 && errno == ENOENT), "%s: %s", path,
                  strerror(errno));
    }
}

Test(router_budgets, spend_survives_a_restart, .timeout = 150, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    for (int full = 0; full < 2; full++) {
        char *tmpl = llm_config(
            fake->port, &(llm_opts_t){.router = full ? "synchronous = full\n" : NULL,
                                      .extra = TINY_BUDGET("10")});
        th_sv_t *sv = llm_start_in(NULL, tmpl, 2);
        s_tiny_call(sv, "gpt-a", "normal", "0.050000");
        s_tiny_call(sv, "gpt-a", "normal", "0.050000");
        s_expect_budget(sv, "tiny", 0.1, "normal");
        char *dir = strdup(sv->data_dir);
        th_sv_free(&sv);
        s_rm_book(dir);
        sv = llm_start_in(dir, tmpl, 2);
        s_expect_budget(sv, "tiny", 0.1, "normal");
        s_tiny_call(sv, "gpt-a", "normal", "0.050000");
        s_expect_budget(sv, "tiny", 0.15, "normal");
        th_sv_free(&sv);
        nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
        free(tmpl);
    }
}

/* ---- workers killed: their reservations go, their spend stays ---- */

/* llama priced at $1/M each way: the fake's 10 + 20 tokens cost this. The
 * local provider's timeout (120 s) lets the fake hold a call for long. */
#define LOCAL_COST 0.00003

/* A role-tiny llama call, answered at once. */
static void s_local_call(th_sv_t *sv, const char *body)
{
    llm_resp_t r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 200);
    llm_expect_field(r.head, "X-Vapora-Cost-USD", "0.000030");
    llm_resp_clear(&r);
}

/* Starts a role-tiny call in a thread of its own (every signal blocked)
 * that the fake holds for 60 s, and returns once the call is reserved in
 * the budget and the fake has it (the fake answers at once again). */
static pthread_t s_held_call(th_sv_t *sv, th_proc_t *fake, s_conc_t *call)
{
    long before = llm_fake_num(fake, "local", "requests");
    llm_fake_set(fake, "local", "{\"latency_ms\":60000}");
    call->port = sv->ports[0];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_conc_call, call), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cr_assert_eq(llm_fake_wait(fake, "local", "requests", before + 1, 10000),
                 before + 1, "the held call never reached the fake");
    llm_fake_set(fake, "local", "{\"latency_ms\":0}");
    json_t *b = llm_get(sv, "/api/v1/budgets");
    double reserved = th_num(th_find(b, "role", "tiny"), "reserved_usd");
    json_decref(b);
    cr_assert_gt(reserved, 0, "the held call is not reserved");
    return th;
}

/* Waits (20 s at most) until pid, SIGKILLed, is gone and the supervisor
 * runs n router workers again. */
static void s_wait_restarted(th_sv_t *sv, pid_t pid, unsigned n)
{
    long long end = th_now_ms() + 20000;
    while (kill(pid, 0) == 0 && th_now_ms() < end)
        th_sleep_ms(20);
    cr_assert(th_sv_wait_settled(sv, "llm-router", n, 20000), "no worker came back");
}

/* A worker killed (SIGKILL) while a call holds a reservation: the worker
 * that replaces it releases the reservation, the spend the dead one
 * settled stays, and the budget admits again. */
Test(router_budgets, a_worker_killed_mid_call_keeps_its_spend_and_frees_its_reservation,
     .timeout = 120, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.workers = 1,
                                      .chain = "local",
                                      .extra = PRICED_LLAMA TINY_BUDGET("1")});
    char *body = llm_body(false, "llama", false, 100);
    s_local_call(sv, body);
    s_conc_t held = {.body = body};
    pthread_t th = s_held_call(sv, fake, &held);
    pid_t pid = llm_worker_pid(sv);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    s_wait_restarted(sv, pid, 1);
    s_expect_budget(sv, "tiny", LOCAL_COST, "normal");
    s_local_call(sv, body);
    s_expect_budget(sv, "tiny", 2 * LOCAL_COST, "normal");
    pthread_join(th, NULL);
    cr_assert_neq(held.status, 200, "the killed worker's call was answered");
    free(body);
}

/* The whole router SIGKILLed (supervisor and workers) at once after a call
 * and with another in flight, then started again on the same data_dir:
 * the spend is there, the reservation of the call in flight is not. */
Test(router_budgets, the_whole_router_killed_keeps_its_spend, .timeout = 120,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    char *tmpl =
        llm_config(fake->port, &(llm_opts_t){.chain = "local",
                                             .extra = PRICED_LLAMA TINY_BUDGET("1")});
    th_sv_t *sv = llm_start_in(NULL, tmpl, 2);
    char *body = llm_body(false, "llama", false, 100);
    s_local_call(sv, body);
    s_conc_t held = {.body = body};
    pthread_t th = s_held_call(sv, fake, &held);
    json_t *st = th_sv_status(sv);
    json_t *ws = json_object_get(th_sv_find(st, "services", "llm-router"), "workers");
    /* All at once, as a power cut: each process is stopped before any is
     * killed (a worker outliving the supervisor even briefly is told to
     * stop, and a stopping worker ends its calls, charging them). */
    cr_assert_eq(kill(sv->proc->pid, SIGSTOP), 0);
    for (size_t i = 0; i < json_array_size(ws); i++)
        kill((pid_t)th_int(json_array_get(ws, i), "pid"), SIGSTOP);
    for (size_t i = 0; i < json_array_size(ws); i++)
        kill((pid_t)th_int(json_array_get(ws, i), "pid"), SIGKILL);
    cr_assert_eq(kill(sv->proc->pid, SIGKILL), 0);
    json_decref(st);
    char *dir = strdup(sv->data_dir);
    th_sv_free(&sv);
    pthread_join(th, NULL);
    sv = llm_start_in(dir, tmpl, 2);
    s_expect_budget(sv, "tiny", LOCAL_COST, "normal");
    s_local_call(sv, body);
    s_expect_budget(sv, "tiny", 2 * LOCAL_COST, "normal");
    th_sv_free(&sv);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
    free(tmpl);
    free(body);
}

/* A provider's absurd token counts are cut to the call's bounds (its
 * prompt's 10 tokens, default_max_tokens 1000 out): spend stays what the
 * call reserved at most, and the budget keeps counting. */
Test(router_budgets, corrupt_usage_from_a_provider_cannot_overflow_a_budget,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    llm_fake_set(fake, "oai",
                 "{\"usage_in\":4611686018427387904,"
                 "\"usage_out\":4611686018427387904}");
    char *ob = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, "X-Vapora-Role: tester\r\n", ob, 200);
    llm_resp_clear(&r);
    free(ob);
    json_t *e, *u = llm_usage(sv, "group_by=role", "role", "tester", 1, &e);
    char *d = json_dumps(u, 0);
    cr_assert(e && th_num(e, "input_tokens") == 10 &&
                  th_num(e, "output_tokens") == 1000 &&
                  LLM_CLOSE(th_num(e, "cost_usd"), 2.01),
              "usage %s", d);
    free(d);
    json_decref(u);

    /* A count no JSON number type holds leaves the usage unreadable: the
     * call is estimated, not free. */
    char cfg[600] = "{\"usage_in\":1";
    for (int i = 0; i < 400; i++)
        strcat(cfg, "0");
    strcat(cfg, "}");
    llm_fake_set(fake, "oai", cfg);
    ob = llm_body(false, "gpt-a", false, 0);
    r = llm_call(sv, LLM_OAI, "X-Vapora-Role: unreadable\r\n", ob, 200);
    llm_resp_clear(&r);
    free(ob);
    u = llm_usage(sv, "group_by=role", "role", "unreadable", 1, &e);
    d = json_dumps(u, 0);
    cr_assert(e && th_num(e, "estimated") == 1 && th_num(e, "input_tokens") > 0 &&
                  th_num(e, "output_tokens") > 0 && th_num(e, "cost_usd") > 0,
              "usage %s", d);
    free(d);
    json_decref(u);
}

/* Negative counts from a provider are no counts: every call (relayed whole
 * from its bytes, converted for an Anthropic caller, streamed) is
 * estimated and charged, never free. */
Test(router_budgets, negative_usage_from_a_provider_is_estimated_not_free,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.workers = 1});
    llm_fake_set(fake, "oai", "{\"usage_in\":-5,\"usage_out\":-7}");
    for (int i = 0; i < 3; i++) {
        char *body = llm_body(i == 1, "gpt-a", i == 2, 100);
        llm_resp_t r = llm_call(sv, i == 1 ? LLM_ANT : LLM_OAI,
                                "X-Vapora-Role: negative\r\n", body, 200);
        char buf[32];
        const char *cost =
            i == 2 ? NULL : llm_field(r.head, "X-Vapora-Cost-USD", buf, sizeof buf);
        cr_assert(i == 2 || (cost && atof(cost) > 0), "call %d: cost %s", i,
                  cost ? cost : "none");
        llm_resp_clear(&r);
        free(body);
    }
    json_t *e, *u = llm_usage(sv, "group_by=role", "role", "negative", 3, &e);
    char *d = json_dumps(u, 0);
    cr_assert(e && th_num(e, "estimated") == 3 && th_num(e, "input_tokens") > 0 &&
                  th_num(e, "output_tokens") > 0 && th_num(e, "cost_usd") > 0,
              "usage %s", d);
    free(d);
    json_decref(u);
}

/* ---- a call is charged at most what it reserved ---- */

/* A provider claiming 1e30 tokens each way: every call (relayed whole,
 * converted for an Anthropic caller, streamed) is charged its bounds, 10
 * prompt tokens and max_tokens 100 out, which is what it reserved; each is
 * logged and counted as an anomaly. */
Test(router_budgets, over_reported_usage_is_charged_at_most_the_reservation,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", "{\"usage_in\":1e30,\"usage_out\":1e30}");
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.workers = 1, .chain = "oai", .extra = TINY_BUDGET("10")});
    s_tiny_call(sv, "gpt-a", "normal", "0.210000");
    char *body = llm_body(true, "gpt-a", false, 100);
    llm_resp_t r = llm_call(sv, LLM_ANT, LLM_ROLE_TINY, body, 200);
    llm_expect_field(r.head, "X-Vapora-Cost-USD", "0.210000");
    cr_assert_eq(th_num(json_object_get(r.json, "usage"), "output_tokens"), 100, "%s",
                 r.body);
    llm_resp_clear(&r);
    free(body);
    body = llm_body(false, "gpt-a", true, 100);
    r = llm_call(sv, LLM_OAI, LLM_ROLE_TINY, body, 200);
    llm_expect_field(r.trailers, "X-Vapora-Cost-USD", "0.210000");
    llm_resp_clear(&r);
    free(body);
    s_expect_budget(sv, "tiny", 0.63, "normal");
    th_assert_log(sv->proc, "charged at most its reservation", "warn");
    char *m = NULL;
    cr_assert_eq(th_call(sv->ports[0], "GET", "/metrics", NULL, NULL, &m, 5000), 200);
    double n = th_metric(m, "vapora_router_usage_anomalies_total",
                         (const char *const[]){"provider=\"oai\"", NULL});
    cr_assert_eq(n, 3, "anomalies %g in:\n%s", n, m);
    free(m);
}

/* Counts sent as text cannot be read: the call is estimated (the prompt's
 * bound, the answer's text), never free, from every provider kind. */
Test(router_budgets, usage_sent_as_text_is_estimated_not_free, .timeout = 60,
     .fini = th_cleanup)
{
    static const char *scopes[][2] = {
        {"oai", "gpt-a"}, {"claude", "claude-x"}, {"gem", "gem-x"}};
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    for (size_t i = 0; i < 3; i++) {
        llm_fake_set(fake, scopes[i][0], "{\"usage_in\":\"10\",\"usage_out\":\"20\"}");
        for (int stream = 0; stream < 2; stream++) {
            char *body = llm_body(false, scopes[i][1], stream, 0), h[96], cost[32];
            snprintf(h, sizeof h, "X-Vapora-Provider: %s\r\nX-Vapora-Role: text\r\n",
                     scopes[i][0]);
            llm_resp_t r = llm_call(sv, LLM_OAI, h, body, 200);
            const char *c = llm_field(stream ? r.trailers : r.head, "X-Vapora-Cost-USD",
                                      cost, sizeof cost);
            cr_assert(c && atof(c) > 0, "%s%s: charged %s", scopes[i][0],
                      stream ? " (stream)" : "", c ? c : "nothing");
            llm_resp_clear(&r);
            free(body);
        }
    }
    json_t *e, *u = llm_usage(sv, "group_by=role", "role", "text", 6, &e);
    cr_assert(e && th_num(e, "requests") == 6 && th_num(e, "estimated") == 6 &&
                  th_num(e, "cost_usd") > 0,
              "usage %s", th_dump(u));
    json_decref(u);
}
