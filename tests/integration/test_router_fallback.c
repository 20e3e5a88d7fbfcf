/* test_router_fallback.c - the LLM router's fallback: a failed attempt
 * (500, 429, timeout, refused) goes to the next provider of the chain with
 * its stand-in (gpt-a's equivalent claude-x); retries stay on the same
 * provider first; when every attempt fails the caller gets 502 or the last
 * status; a provider failing cooldown_failures times in a row is skipped
 * for cooldown seconds, then tried again. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_fixture.h"

/* ---- fallback and retries ----
 * A failed attempt (500, 429, timeout, refused) goes to the next provider of
 * the chain with its stand-in (gpt-a's equivalent claude-x); retries stay
 * on the same provider first. */

Test(router_fallback, on_500_and_on_429_the_next_provider_answers, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    llm_fake_set(fake, "oai", "{\"fail_status\":500,\"fail_count\":1}");
    llm_expect_fallback(sv, "claude", "claude-x", "2");
    cr_assert_eq(llm_fake_num(fake, "oai", "failed"), 1);
    llm_fake_set(fake, "oai",
                 "{\"fail_status\":429,\"fail_count\":1,\"retry_after\":1}");
    llm_expect_fallback(sv, "claude", "claude-x", "2");
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 2);
    cr_assert_eq(llm_fake_num(fake, "oai", "failed"), 2);
    cr_assert_eq(llm_fake_num(fake, "claude", "requests"), 2);
}

Test(router_fallback, on_timeout_the_next_provider_answers, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    llm_fake_set(fake, "oai", "{\"stall\":true}");
    long long t0 = th_now_ms();
    llm_expect_fallback(sv, "claude", "claude-x", "2");
    long long took = th_now_ms() - t0;
    cr_assert(took >= 1900 && took < 4000, "took %lld ms with a 2 s provider timeout",
              took);
    cr_assert_eq(llm_fake_num(fake, "oai", "stalled"), 1);
}

Test(router_fallback, on_refused_connection_the_next_provider_answers, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    char extra[256];
    snprintf(extra, sizeof extra,
             "[provider:dead]\nkind = openai\nbase_url = http://127.0.0.1:%d/v1\n"
             "api_key = sk-dead\nmodels = gpt-a\n",
             th_free_port());
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.chain = "dead, claude, gem", .extra = extra});
    llm_expect_fallback(sv, "claude", "claude-x", "2");
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 0);
}

Test(router_fallback, retries_stay_on_the_provider_and_honour_retry_after,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.retries = 1});
    llm_fake_set(fake, "oai", "{\"fail_status\":500,\"fail_count\":1}");
    llm_expect_fallback(sv, "oai", "gpt-a", "2");
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 2);
    llm_fake_set(fake, "oai",
                 "{\"fail_status\":429,\"fail_count\":1,\"retry_after\":1}");
    long long t0 = th_now_ms();
    llm_expect_fallback(sv, "oai", "gpt-a", "2");
    long long took = th_now_ms() - t0;
    cr_assert(took >= 900, "the retry came %lld ms after Retry-After: 1", took);
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 4);
    cr_assert_eq(llm_fake_num(fake, "claude", "requests"), 0);
}

Test(router_fallback, every_attempt_failing_is_502_or_the_last_status, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.chain = "oai, claude"});
    llm_fake_set(fake, "oai", "{\"fail_status\":500,\"fail_count\":-1}");
    llm_fake_set(fake, "claude", "{\"fail_status\":500,\"fail_count\":1}");
    char *body = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 502);
    json_t *err = json_object_get(r.json, "error");
    cr_assert(json_is_object(err), "not an OpenAI error: %s", r.body);
    cr_assert(strstr(r.body, "upstream_error"), "%s", r.body);
    llm_expect_field(r.head, "X-Vapora-Attempts", "2");
    llm_resp_clear(&r);
    llm_fake_set(fake, "claude", "{\"fail_status\":503,\"fail_count\":1}");
    r = llm_call(sv, LLM_OAI, NULL, body, 503);
    llm_resp_clear(&r);
    /* Other 4xx are passed back as they are, without fallback. */
    llm_fake_set(fake, "oai", "{\"fail_status\":400,\"fail_count\":1}");
    r = llm_call(sv, LLM_OAI, NULL, body, 400);
    cr_assert_eq(llm_fake_num(fake, "claude", "requests"), 2);
    llm_resp_clear(&r);
    free(body);
}

/* ---- cooldown: a provider failing cooldown_failures times in a row is
 * skipped for cooldown seconds (one worker: health is per worker) ---- */

Test(router_cooldown, a_failing_provider_is_skipped_then_tried_again, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.workers = 1, .cooldown_s = 3});
    llm_fake_set(fake, "oai", "{\"fail_status\":500,\"fail_count\":-1}");
    for (int i = 0; i < 3; i++)
        llm_expect_fallback(sv, "claude", "claude-x", "2");
    json_t *ps = llm_get(sv, "/api/v1/providers");
    json_t *oai = th_find(ps, "name", "oai");
    cr_assert_not_null(oai, "no oai in /api/v1/providers");
    char *dump = json_dumps(oai, 0);
    cr_assert_str_eq(th_str(oai, "state"), "cooldown", "%s", dump);
    cr_assert_eq(th_num(oai, "consecutive_failures"), 3, "%s", dump);
    cr_assert(th_num(oai, "cooldown_remaining_ms") > 0 &&
                  th_num(oai, "cooldown_remaining_ms") <= 3000,
              "%s", dump);
    cr_assert_str_eq(th_str(oai, "kind"), "openai");
    free(dump);
    json_decref(ps);
    for (int i = 0; i < 2; i++) {
        char *body = llm_body(false, "gpt-a", false, 0);
        llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
        long asked = llm_fake_num(fake, "oai", "requests");
        cr_assert_eq(asked, 3,
                     "oai in cooldown was asked (%ld requests); the answer:\n%s", asked,
                     r.head);
        llm_expect_field(r.head, "X-Vapora-Provider", "claude");
        llm_expect_field(r.head, "X-Vapora-Attempts", "1");
        llm_resp_clear(&r);
        free(body);
    }
    llm_fake_set(fake, "oai", "{\"fail_count\":0}");
    th_sleep_ms(3300);
    llm_expect_fallback(sv, "oai", "gpt-a", "1");
    ps = llm_get(sv, "/api/v1/providers");
    oai = th_find(ps, "name", "oai");
    cr_assert_str_eq(th_str(oai, "state"), "available");
    /* Calls answered (all workers, from the ledger) and this worker's
     * attempts: claude answered the 5 fallbacks, oai 1 call in 4 tries. */
    json_t *claude = th_find(ps, "name", "claude");
    cr_assert_eq(th_num(claude, "requests"), 5, "%s", json_dumps(claude, 0));
    cr_assert(LLM_CLOSE(th_num(claude, "cost_usd"), 0.125), "%s",
              json_dumps(claude, 0));
    cr_assert_eq(th_num(claude, "output_tokens"), 100);
    cr_assert_eq(th_num(oai, "requests"), 1);
    cr_assert_eq(th_num(json_object_get(oai, "worker"), "attempts"), 4);
    cr_assert_eq(th_num(json_object_get(oai, "worker"), "failed_attempts"), 3);
    json_decref(ps);
}
