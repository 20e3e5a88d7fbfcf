/* test_router_formats.c - the LLM router's formats: both caller formats
 * (OpenAI, Anthropic), whole and streamed, against every provider kind
 * (OpenAI, Anthropic, Gemini, Ollama), each provider getting its own wire
 * format and its own key and never the caller's; providers named by host
 * name; relayed answers kept byte for byte with their real usage. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_fixture.h"

/* ---- every caller format against every provider kind ----
 * The reply is the fake's text, the usage its 10 + 20 tokens, the cost
 * those at the model's prices; the provider got its own wire format. */

typedef struct s_kind {
    const char *provider, *model, *kind, *path, *cost;
} s_kind_t;

static const s_kind_t s_kinds[] = {
    {"oai", "gpt-a", "openai", "/v1/chat/completions", "0.050000"},
    {"claude", "claude-x", "anthropic", "/v1/messages", "0.025000"},
    {"gem", "gem-x", "gemini", "/v1beta/models/gem-x:", "0.010000"},
    {"local", "llama", "ollama", "/api/chat", "0.000000"},
};

/* Checks the X-Vapora-* fields of a reply k served at the first attempt. */
static void s_check_served(const llm_resp_t *r, const s_kind_t *k, bool stream)
{
    llm_expect_field(r->head, "X-Vapora-Provider", k->provider);
    llm_expect_field(r->head, "X-Vapora-Model", k->model);
    llm_expect_field(r->head, "X-Vapora-Attempts", "1");
    llm_expect_field(r->head, "X-Vapora-Budget-State", "normal");
    llm_expect_field(stream ? r->trailers : r->head, "X-Vapora-Cost-USD", k->cost);
}

/* Checks that k's scope got exactly one request, in its kind's format. */
static void s_check_upstream(const th_proc_t *fake, const s_kind_t *k, bool stream)
{
    char key[32];
    snprintf(key, sizeof key, "by_kind.%s", k->kind);
    cr_assert_eq(llm_fake_num(fake, k->provider, "requests"), 1, "%s", k->provider);
    cr_assert_eq(llm_fake_num(fake, k->provider, key), 1, "%s", k->provider);
    json_t *last = llm_fake_last(fake, k->provider);
    const char *path = th_str(last, "path");
    cr_assert(path && strncmp(path, k->path, strlen(k->path)) == 0, "%s: path %s",
              k->provider, path);
    if (strcmp(k->kind, "gemini") == 0) {
        cr_assert_str_eq(strchr(path, ':') + 1,
                         stream ? "streamGenerateContent" : "generateContent");
        if (stream)
            cr_assert_str_eq(th_str(json_object_get(last, "query"), "alt"), "sse");
    }
    json_decref(last);
}

Test(router_formats, openai_callers_get_every_kind, .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = llm_body(false, k->model, false, 0);
        llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
        cr_assert_not_null(r.json, "%s: not JSON: %s", k->provider, r.body);
        cr_assert_str_eq(th_str(r.json, "object"), "chat.completion");
        json_t *c0 = json_array_get(json_object_get(r.json, "choices"), 0);
        json_t *msg = json_object_get(c0, "message");
        cr_assert_str_eq(th_str(msg, "role"), "assistant");
        cr_assert_str_eq(th_str(msg, "content"), LLM_REPLY, "%s: %s", k->provider,
                         r.body);
        cr_assert_str_eq(th_str(c0, "finish_reason"), "stop", "%s", k->provider);
        json_t *u = json_object_get(r.json, "usage");
        cr_assert(th_num(u, "prompt_tokens") == 10 &&
                      th_num(u, "completion_tokens") == 20 &&
                      th_num(u, "total_tokens") == 30,
                  "%s: usage %s", k->provider, r.body);
        s_check_served(&r, k, false);
        s_check_upstream(fake, k, false);
        llm_resp_clear(&r);
        free(body);
    }
}

Test(router_formats, openai_streams_from_every_kind, .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = llm_body(false, k->model, true, 0), hdr[64];
        snprintf(hdr, sizeof hdr, "X-Vapora-Provider: %s\r\n", k->provider);
        llm_resp_t r = llm_call(sv, LLM_OAI, hdr, body, 200);
        char ct[128];
        cr_assert(strstr(llm_field(r.head, "Content-Type", ct, sizeof ct) ?: "",
                         "text/event-stream"),
                  "%s: content type %s", k->provider, ct);
        llm_oai_stream_t s = llm_oai_stream(r.body);
        cr_assert_str_eq(s.text, LLM_REPLY, "%s: stream:\n%s", k->provider, r.body);
        cr_assert(s.done_last, "%s: [DONE] is not last:\n%s", k->provider, r.body);
        cr_assert_null(s.error, "%s: an error chunk:\n%s", k->provider, r.body);
        cr_assert_str_eq(s.finish, "stop", "%s", k->provider);
        cr_assert(s.usage && th_num(s.usage, "prompt_tokens") == 10 &&
                      th_num(s.usage, "completion_tokens") == 20 &&
                      th_num(s.usage, "total_tokens") == 30,
                  "%s: no right usage chunk:\n%s", k->provider, r.body);
        s_check_served(&r, k, true);
        s_check_upstream(fake, k, true);
        json_decref(s.usage);
        llm_resp_clear(&r);
        free(body);
    }
}

Test(router_formats, anthropic_callers_get_every_kind, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = llm_body(true, k->model, false, 100);
        llm_resp_t r = llm_call(sv, LLM_ANT, NULL, body, 200);
        cr_assert_not_null(r.json, "%s: not JSON: %s", k->provider, r.body);
        cr_assert_str_eq(th_str(r.json, "type"), "message");
        cr_assert_str_eq(th_str(r.json, "role"), "assistant");
        json_t *c0 = json_array_get(json_object_get(r.json, "content"), 0);
        cr_assert_str_eq(th_str(c0, "type"), "text", "%s", r.body);
        cr_assert_str_eq(th_str(c0, "text"), LLM_REPLY, "%s: %s", k->provider, r.body);
        cr_assert_not_null(th_str(r.json, "stop_reason"), "%s", r.body);
        json_t *u = json_object_get(r.json, "usage");
        cr_assert(th_num(u, "input_tokens") == 10 && th_num(u, "output_tokens") == 20,
                  "%s: usage %s", k->provider, r.body);
        s_check_served(&r, k, false);
        s_check_upstream(fake, k, false);
        llm_resp_clear(&r);
        free(body);
    }
}

Test(router_formats, anthropic_streams_from_every_kind, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    for (size_t i = 0; i < 4; i++) {
        const s_kind_t *k = &s_kinds[i];
        char *body = llm_body(true, k->model, true, 100), hdr[64];
        snprintf(hdr, sizeof hdr, "X-Vapora-Provider: %s\r\n", k->provider);
        llm_resp_t r = llm_call(sv, LLM_ANT, hdr, body, 200);
        llm_ant_stream_t s = llm_ant_stream(r.body);
        cr_assert_str_eq(s.names, LLM_ANT_SEQUENCE, "%s: stream:\n%s", k->provider,
                         r.body);
        cr_assert_str_eq(s.text, LLM_REPLY, "%s", k->provider);
        cr_assert_eq(s.output_tokens, 20, "%s: stream:\n%s", k->provider, r.body);
        s_check_served(&r, k, true);
        s_check_upstream(fake, k, true);
        llm_resp_clear(&r);
        free(body);
    }
}

/* ---- provider keys go to their provider only, never the caller's ---- */

Test(router_keys, each_provider_gets_its_own_key_and_never_the_callers, .timeout = 60,
     .fini = th_cleanup)
{
    static const char *secrets[] = {"sk-oai-secret", "sk-ant-secret", "g-secret",
                                    "test-key"};
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", "{\"expect_key\":\"sk-oai-secret\"}");
    llm_fake_set(fake, "claude", "{\"expect_key\":\"sk-ant-secret\"}");
    llm_fake_set(fake, "gem", "{\"expect_key\":\"g-secret\"}");
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.router = "api_keys = test-key-1, test-key-2\n"});
    for (size_t i = 0; i < 8; i++) {
        const s_kind_t *k = &s_kinds[i % 4];
        bool ant = i >= 4;
        char *body = llm_body(ant, k->model, false, 100), hdr[128];
        snprintf(hdr, sizeof hdr, "X-Vapora-Provider: %s\r\n%s", k->provider,
                 ant ? "x-api-key: test-key-2\r\n"
                     : "Authorization: Bearer test-key-1\r\n");
        llm_resp_t r = llm_call(sv, ant ? LLM_ANT : LLM_OAI, hdr, body, 200);
        json_t *last = llm_fake_last(fake, k->provider);
        json_t *h = json_object_get(last, "headers"), *v;
        const char *name;
        json_object_foreach(h, name, v)
        {
            for (size_t s = 0; s < 4; s++) {
                if (s != i % 4)
                    cr_assert_null(strstr(json_string_value(v), secrets[s]),
                                   "%s got %s: %s", k->provider, name,
                                   json_string_value(v));
            }
        }
        char *q = json_dumps(json_object_get(last, "query"), 0);
        cr_assert_null(strstr(q, "test-key"), "%s got query %s", k->provider, q);
        free(q);
        /* Every provider is told who calls, and what the body is. */
        const char *ua = th_str(h, "user-agent");
        cr_assert(ua && strncmp(ua, "vapora-llm-router/", 18) == 0,
                  "%s got user-agent %s", k->provider, ua ? ua : "(none)");
        cr_assert_str_eq(th_str(h, "content-type"), "application/json");
        if (i % 4 == 0)
            cr_assert_str_eq(th_str(h, "authorization"), "Bearer sk-oai-secret");
        if (i % 4 == 1) {
            cr_assert_str_eq(th_str(h, "x-api-key"), "sk-ant-secret");
            cr_assert_not_null(th_str(h, "anthropic-version"));
        }
        if (i % 4 == 2)
            cr_assert_str_eq(th_str(h, "x-goog-api-key"), "g-secret");
        if (i % 4 == 3)
            cr_assert(!json_object_get(h, "authorization") &&
                          !json_object_get(h, "x-api-key"),
                      "ollama got a key");
        json_decref(last);
        llm_resp_clear(&r);
        free(body);
    }
}

/* ---- upstreams by host name ---- */

/* A base_url with a host name goes through curl's threaded resolver, whose
 * own socket curl watches and closes by itself (each host:port is resolved
 * once); with providers refusing connections in between, fd numbers are
 * reused all the time. Calls keep working and no socket error is logged. */
Test(router_formats, providers_named_by_host_name_keep_working, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    int dead[3];
    for (int i = 0; i < 3; i++)
        dead[i] = th_free_port();
    char *extra = NULL;
    cr_assert_gt(
        asprintf(&extra,
                 "[provider:d0]\nkind = openai\nbase_url = http://localhost:%d/v1\n"
                 "api_key = k0\nmodels = by-name\n\n"
                 "[provider:d1]\nkind = anthropic\nbase_url = http://localhost:%d\n"
                 "api_key = k1\nmodels = by-name\n\n"
                 "[provider:d2]\nkind = ollama\nbase_url = http://localhost:%d\n"
                 "models = by-name\n\n"
                 "[provider:byname]\nkind = openai\n"
                 "base_url = http://localhost:%d/s/oai/v1\napi_key = k3\n"
                 "models = by-name\n",
                 dead[0], dead[1], dead[2], fake->port),
        0);
    th_sv_t *sv = llm_start(
        fake,
        &(llm_opts_t){.workers = 1, .extra = extra, .chain = "d0, d1, d2, byname"});
    free(extra);
    for (int i = 0; i < 12; i++) {
        char *body = llm_body(i % 2, "by-name", i % 4 < 2, 50);
        llm_resp_t r = llm_call(sv, i % 2 ? LLM_ANT : LLM_OAI, NULL, body, 200);
        cr_assert(strstr(r.body, "fox"), "call %d: %.300s", i, r.body);
        llm_resp_clear(&r);
        free(body);
    }
    char *log = th_log(sv->proc);
    cr_assert_null(strstr(log, "curlm:"), "socket errors in the log:\n%s", log);
    cr_assert_null(strstr(log, "curl_multi_socket_action"), "curl errors:\n%s", log);
    free(log);
}

/* A proxy named in the environment (http_proxy) is used for a provider's
 * calls: the router tells curl "no proxy" only when no such variable is
 * set. Here the proxy is the fake itself and the provider's own address is
 * dead (port 9): the call succeeds only through the proxy. */
Test(router_formats, a_proxy_from_the_environment_is_used, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", fake->port);
    setenv("http_proxy", proxy, 1); /* inherited by the supervisor and workers */
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    th_sv_t *sv = llm_start(
        fake, &(llm_opts_t){.workers = 1,
                            .extra = "[provider:far]\nkind = openai\n"
                                     "base_url = http://127.0.0.1:9/s/oai/v1\n"
                                     "api_key = k-far\nmodels = far-model\n",
                            .chain = "far"});
    unsetenv("http_proxy");
    char *body = llm_body(false, "far-model", false, 50);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    cr_assert(strstr(r.body, "fox"), "%.300s", r.body);
    json_t *last = llm_fake_last(fake, "oai");
    const char *target = th_str(last, "target");
    cr_assert(target && strncmp(target, "http://127.0.0.1:9/", 19) == 0,
              "the proxy got target %s", target ? target : "(none)");
    json_decref(last);
    llm_resp_clear(&r);
    free(body);
}

/* An OpenAI answer to an OpenAI caller is relayed byte for byte and only
 * its top-level usage is read: text that looks like a usage member inside
 * the content changes nothing. */
Test(router_formats, relayed_answers_keep_their_bytes_and_real_usage, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai",
                 "{\"reply\":\"x\\\"usage\\\":{\\\"prompt_tokens\\\":999}\","
                 "\"usage_in\":10,\"usage_out\":20}");
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    char *body = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    free(body);
    char cost[32];
    cr_assert_not_null(llm_field(r.head, "X-Vapora-Cost-USD", cost, sizeof cost));
    cr_assert_str_eq(cost, "0.050000");
    json_t *msg = json_object_get(json_array_get(json_object_get(r.json, "choices"), 0),
                                  "message");
    cr_assert_str_eq(th_str(msg, "content"), "x\"usage\":{\"prompt_tokens\":999}");
    cr_assert_eq(th_num(json_object_get(r.json, "usage"), "prompt_tokens"), 10);
    llm_resp_clear(&r);
}
