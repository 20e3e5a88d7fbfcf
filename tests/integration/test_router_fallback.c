/* test_router_fallback.c - the LLM router's fallback: a failed attempt
 * (500, 429, timeout, refused) goes to the next provider of the chain with
 * its stand-in (gpt-a's equivalent claude-x); retries stay on the same
 * provider first; when every attempt fails the caller gets 502 or the last
 * status; a provider failing cooldown_failures times in a row is skipped
 * for cooldown seconds, then tried again; a corrupt answer (not JSON, not
 * UTF-8) is never relayed and its provider not asked again; a provider
 * without the key its kind needs is never asked. */
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

/* A provider whose network cannot be reached at all (the connect fails at
 * once, ENETUNREACH: a LAN provider seen from a laptop offline) is a
 * failed attempt like a refused one, not an error of the router's. */
Test(router_fallback, on_an_unreachable_network_the_next_provider_answers,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    const char *extra =
        "[provider:far]\nkind = openai\nbase_url = http://224.0.0.1:9/v1\n"
        "api_key = sk-far\nmodels = gpt-a\n";
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.chain = "far, claude, gem", .extra = extra});
    llm_expect_fallback(sv, "claude", "claude-x", "2");
    llm_expect_fallback(sv, "claude", "claude-x", "2");
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

/* ---- corrupt answers are not relayed ---- */

/* An answer that is not JSON, or not UTF-8, is never passed on: not even
 * to an OpenAI caller from an OpenAI provider, whose answers are otherwise
 * relayed byte for byte. The next provider answers (the corrupt one is not
 * asked again, retries or not); when none is left the caller gets 502. */
Test(router_fallback, corrupt_answers_go_to_the_next_provider, .timeout = 60,
     .fini = th_cleanup)
{
    static const char *modes[] = {"json", "utf8"};
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(
        fake,
        &(llm_opts_t){.retries = 2, .chain = "oai, claude", .cooldown_failures = 100});
    for (size_t m = 0; m < 2; m++) {
        char cfg[64];
        snprintf(cfg, sizeof cfg, "{\"corrupt\":\"%s\"}", modes[m]);
        llm_fake_set(fake, "oai", cfg);
        llm_expect_fallback(sv, "claude", "claude-x", "2");
        char *body = llm_body(true, "gpt-a", false, 100);
        llm_resp_t r = llm_call(sv, LLM_ANT, NULL, body, 200);
        llm_expect_field(r.head, "X-Vapora-Provider", "claude");
        cr_assert(strstr(r.body, LLM_REPLY), "%s", r.body);
        llm_resp_clear(&r);
        free(body);
        body = llm_body(false, "gpt-a", true, 0);
        r = llm_call(sv, LLM_OAI, NULL, body, 200);
        llm_expect_field(r.head, "X-Vapora-Provider", "claude");
        llm_oai_stream_t st = llm_oai_stream(r.body);
        cr_assert(strcmp(st.text, LLM_REPLY) == 0 && !st.error && st.done_last, "%s",
                  r.body);
        json_decref(st.usage);
        llm_resp_clear(&r);
        free(body);
    }
    cr_assert_eq(llm_fake_num(fake, "oai", "requests"), 6, "oai was asked again");
    cr_assert_eq(llm_fake_num(fake, "claude", "requests"), 6);
    llm_fake_set(fake, "claude", "{\"corrupt\":\"json\"}");
    char *body = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 502);
    const char *msg = th_str(json_object_get(r.json, "error"), "message");
    cr_assert(msg && strstr(msg, "not valid JSON"), "%s", r.body);
    llm_expect_field(r.head, "X-Vapora-Attempts", "2");
    llm_resp_clear(&r);
    free(body);
}

/* ---- providers without the key their kind needs ---- */

/* An anthropic and a gemini provider without api_key are left out of every
 * plan (no attempt wasted on them), which GET /health and the providers'
 * report say; when nothing else may be asked the error names them. */
Test(router_keyless, providers_without_their_key_are_skipped_and_said_so, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    char extra[512];
    snprintf(
        extra, sizeof extra,
        "[provider:nokey]\nkind = anthropic\nbase_url = http://127.0.0.1:%d/s/nokey\n"
        "models = claude-x\n\n"
        "[provider:nokey2]\nkind = gemini\nbase_url = http://127.0.0.1:%d/s/nokey2\n"
        "models = gem-x\n",
        fake->port, fake->port);
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.chain = "nokey, nokey2, claude", .extra = extra});
    char *body = llm_body(false, "claude-x", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    llm_expect_field(r.head, "X-Vapora-Provider", "claude");
    llm_expect_field(r.head, "X-Vapora-Attempts", "1");
    llm_resp_clear(&r);
    char *health = NULL;
    cr_assert_eq(th_call(sv->ports[0], "GET", "/health", NULL, NULL, &health, 5000),
                 200);
    cr_assert(strstr(health, "provider nokey: no api_key, skipped") &&
                  strstr(health, "provider nokey2: no api_key, skipped"),
              "%s", health);
    free(health);
    json_t *ps = llm_get(sv, "/api/v1/providers");
    cr_assert_str_eq(th_str(th_find(ps, "name", "nokey"), "state"), "skipped");
    json_decref(ps);
    r = llm_call(sv, LLM_OAI, "X-Vapora-Provider: nokey\r\n", body, 503);
    const char *msg = th_str(json_object_get(r.json, "error"), "message");
    cr_assert(msg && strstr(msg, "nokey") && strstr(msg, "api_key"), "%s", r.body);
    cr_assert_str_eq(th_str(json_object_get(r.json, "error"), "code"), "no_provider");
    llm_resp_clear(&r);
    llm_fake_set(fake, "claude", "{\"fail_status\":500,\"fail_count\":-1}");
    r = llm_call(sv, LLM_OAI, NULL, body, 502);
    msg = th_str(json_object_get(r.json, "error"), "message");
    cr_assert(msg && strstr(msg, "skipped") && strstr(msg, "nokey, nokey2"), "%s",
              r.body);
    llm_resp_clear(&r);
    free(body);
    cr_assert_eq(llm_fake_num(fake, "nokey", "requests"), 0);
    cr_assert_eq(llm_fake_num(fake, "nokey2", "requests"), 0);
}

/* ---- broken HTTP from a provider ---- */

/* A provider reached over plain HTTP goes through the builtin client
 * (common/h1c.c), which reads its answer strictly: a head that can be read
 * two ways (both Content-Length and Transfer-Encoding, a folded header,
 * two different lengths), a body shorter than its length, a peer that is
 * not HTTP at all, one that closes without answering, or a redirect or
 * 304 (no API answers those; only a 4xx is the caller's), fail the attempt
 * and the next provider answers; nothing of it reaches the caller. With
 * none left the caller gets 502 with the reason. */
Test(router_fallback, broken_http_from_a_provider_goes_to_the_next_one, .timeout = 90,
     .fini = th_cleanup)
{
    static const char *answers[] = {
        "HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: "
        "chunked\\r\\n\\r\\n"
        "0\\r\\n\\r\\n",
        "HTTP/1.1 200 OK\\r\\nX-A: 1\\r\\n folded\\r\\nContent-Length: 2\\r\\n\\r\\n{}",
        "HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Length: 3\\r\\n\\r\\n{}",
        "HTTP/1.1 200 OK\\r\\nContent-Length: 99\\r\\n\\r\\n{\\\"id\\\":",
        "SSH-2.0-OpenSSH_9.2\\r\\n",
        "HTTP/1.1 304 Not Modified\\r\\nContent-Length: 0\\r\\n\\r\\n",
        "HTTP/1.1 302 Found\\r\\nLocation: http://127.0.0.1:1/\\r\\nContent-Length: "
        "0\\r\\n\\r\\n",
        "",
    };
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.chain = "oai, claude", .cooldown_failures = 100});
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++) {
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"raw_answer\":\"%s\"}", answers[i]);
        llm_fake_set(fake, "oai", cfg);
        llm_expect_fallback(sv, "claude", "claude-x", "2");
    }
    cr_assert_eq(llm_fake_num(fake, "claude", "requests"), 8);
    llm_fake_set(fake, "claude",
                 "{\"raw_answer\":\"HTTP/1.1 200 OK\\r\\nContent-Length: "
                 "1\\r\\nContent-Length: 2\\r\\n\\r\\n{}\"}");
    char *body = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 502);
    const char *msg = th_str(json_object_get(r.json, "error"), "message");
    cr_assert(msg && strstr(msg, "claude: Weird server reply"), "%s", r.body);
    llm_resp_clear(&r);
    free(body);
}
