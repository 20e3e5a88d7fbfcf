/* test_router_usage.c - what the LLM router tells of its use: the model
 * list, usage totals by provider, model and role (a stream without usage
 * is estimated), and a vapora.llm.usage event on NATS per call. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "router_fixture.h"

Test(router_usage, models_are_listed_and_usage_is_totalled, .timeout = 60,
     .fini = th_cleanup)
{
    static const char *models[][2] = {{"gpt-a", "oai"},
                                      {"gpt-b", "oai"},
                                      {"claude-x", "claude"},
                                      {"gem-x", "gem"},
                                      {"llama", "local"}};
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    json_t *m = llm_get(sv, "/v1/models");
    cr_assert_str_eq(th_str(m, "object"), "list");
    for (size_t i = 0; i < 5; i++) {
        json_t *e = th_find(json_object_get(m, "data"), "id", models[i][0]);
        cr_assert_not_null(e, "%s is not listed", models[i][0]);
        cr_assert_str_eq(th_str(e, "object"), "model");
        cr_assert_str_eq(th_str(e, "owned_by"), models[i][1]);
        cr_assert(json_is_integer(json_object_get(e, "created")));
    }
    json_decref(m);
    char *ob = llm_body(false, "gpt-a", false, 0),
         *ab = llm_body(true, "claude-x", false, 100);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, ob, 200);
    llm_resp_clear(&r);
    r = llm_call(sv, LLM_OAI, NULL, ob, 200);
    llm_resp_clear(&r);
    r = llm_call(sv, LLM_ANT, NULL, ab, 200);
    llm_resp_clear(&r);
    free(ob);
    free(ab);
    /* Two workers flush their totals apart: wait for each provider's. */
    json_t *e, *u = llm_usage(sv, "group_by=provider", "provider", "claude", 1, &e);
    json_decref(u);
    u = llm_usage(sv, "group_by=provider", "provider", "oai", 2, &e);
    char *d = json_dumps(u, 0);
    cr_assert(e && th_num(e, "requests") == 2 && th_num(e, "errors") == 0 &&
                  th_num(e, "input_tokens") == 20 && th_num(e, "output_tokens") == 40 &&
                  LLM_CLOSE(th_num(e, "cost_usd"), 0.1),
              "usage %s", d);
    e = th_find(u, "provider", "claude");
    cr_assert(e && th_num(e, "requests") == 1 && th_num(e, "input_tokens") == 10 &&
                  th_num(e, "output_tokens") == 20 &&
                  LLM_CLOSE(th_num(e, "cost_usd"), 0.025),
              "usage %s", d);
    free(d);
    json_decref(u);
    u = llm_usage(sv, "group_by=model", "model", "gpt-a", 2, &e);
    cr_assert(e && th_num(e, "requests") == 2);
    json_decref(u);
    u = llm_usage(sv, "group_by=role", "role", "default", 3, &e);
    cr_assert(e && th_num(e, "requests") == 3);
    json_decref(u);
    char path[96]; /* nothing was used after since */
    snprintf(path, sizeof path, "/api/v1/usage?group_by=provider&since=%lld",
             (long long)time(NULL) + 3600);
    u = llm_get(sv, path);
    e = th_find(u, "provider", "oai");
    cr_assert(json_is_array(u) && (!e || th_num(e, "requests") == 0),
              "calls from before since were counted");
    json_decref(u);
}

Test(router_usage, a_stream_without_usage_is_estimated, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "gem", "{\"stream_usage\":false}");
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    char *body = llm_body(false, "gem-x", true, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    llm_oai_stream_t s = llm_oai_stream(r.body);
    cr_assert_str_eq(s.text, LLM_REPLY);
    char cost[32];
    cr_assert(llm_field(r.trailers, "X-Vapora-Cost-USD", cost, sizeof cost) &&
                  atof(cost) > 0,
              "trailers: %s", r.trailers ? r.trailers : "(none)");
    json_t *e, *u = llm_usage(sv, "group_by=provider", "provider", "gem", 1, &e);
    json_t *est = json_object_get(e, "estimated");
    char *d = json_dumps(u, 0);
    cr_assert(th_num(e, "output_tokens") > 0 && th_num(e, "cost_usd") > 0, "usage: %s",
              d);
    cr_assert(json_is_true(est) || json_number_value(est) > 0, "not estimated: %s", d);
    free(d);
    json_decref(u);
    /* The caller's usage chunk counts the estimate too (44 bytes ~ 11). */
    double out = s.usage ? th_num(s.usage, "completion_tokens") : 0;
    cr_assert(out >= 5 && out <= 22, "usage chunk %s in:\n%s", s.usage ? "" : "missing",
              r.body);
    json_decref(s.usage);
    llm_resp_clear(&r);
    free(body);
}

/* ---- usage events on NATS ---- */

static void s_nats_fini(void)
{
    th_cleanup();
    nats_CloseAndWait(2000);
}

/* With [nats] url set (nats-server as the supervisor's program), each
 * finished call publishes vapora.llm.usage with its role, provider, model,
 * tokens, cost and status, who called, the budget charged, and whether
 * the provider's usage was an anomaly. */
Test(router_usage, each_call_publishes_its_usage_on_nats, .timeout = 60,
     .fini = s_nats_fini)
{
    th_proc_t *fake = llm_fake();
    llm_opts_t o = {
        .extra = "[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"
                 "[program:nats]\ncommand = nats-server -a 127.0.0.1 -p @PORT2@\n"};
    th_sv_t *sv = llm_start(fake, &o);
    /* Both workers say healthy once their NATS connection is up. */
    long long end = th_now_ms() + 10000;
    int healthy = 0;
    while (th_now_ms() < end && healthy < 10) {
        healthy = th_call(sv->ports[0], "GET", "/health", NULL, NULL, NULL, 2000) == 200
                      ? healthy + 1
                      : 0;
        th_sleep_ms(20);
    }
    cr_assert_eq(healthy, 10, "the workers never reported NATS up");
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", sv->ports[1]);
    natsConnection *nc = NULL;
    cr_assert_eq(natsConnection_ConnectTo(&nc, url), NATS_OK);
    natsSubscription *sub = NULL;
    cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, "vapora.llm.usage"), NATS_OK);
    cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
    char *body = llm_body(false, "gpt-a", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, "X-Vapora-Role: developer\r\n", body, 200);
    llm_resp_clear(&r);
    free(body);
    natsMsg *msg = NULL;
    cr_assert_eq(natsSubscription_NextMsg(&msg, sub, 5000), NATS_OK,
                 "no vapora.llm.usage event within 5 s");
    json_t *ev =
        json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    cr_assert_not_null(ev);
    cr_assert_str_eq(th_str(ev, "type"), "llm.usage");
    cr_assert_str_eq(th_str(ev, "role"), "developer");
    cr_assert_str_eq(th_str(ev, "provider"), "oai");
    cr_assert_str_eq(th_str(ev, "model"), "gpt-a");
    cr_assert_eq(th_num(ev, "input_tokens"), 10);
    cr_assert_eq(th_num(ev, "output_tokens"), 20);
    cr_assert(LLM_CLOSE(th_num(ev, "cost_usd"), 0.05), "cost %g",
              th_num(ev, "cost_usd"));
    cr_assert_eq(th_num(ev, "status"), 200);
    cr_assert(json_is_false(json_object_get(ev, "estimated")));
    /* Who called (no key: anonymous), the budget charged (developer has
     * none of its own: the shared default), and no anomaly. */
    cr_assert_str_eq(th_str(ev, "caller"), "anonymous");
    cr_assert_str_eq(th_str(ev, "budget"), "default");
    cr_assert(json_is_false(json_object_get(ev, "anomaly")));
    json_decref(ev);
    natsMsg_Destroy(msg);
    /* A provider claiming more than the call could use: flagged. */
    llm_fake_set(fake, "oai", "{\"usage_out\":5000}");
    body = llm_body(false, "gpt-a", false, 100);
    r = llm_call(sv, LLM_OAI, "X-Vapora-Role: developer\r\n", body, 200);
    llm_resp_clear(&r);
    free(body);
    cr_assert_eq(natsSubscription_NextMsg(&msg, sub, 5000), NATS_OK);
    ev = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    cr_assert(json_is_true(json_object_get(ev, "anomaly")), "%s", th_dump(ev));
    cr_assert_eq(th_num(ev, "output_tokens"), 100, "%s", th_dump(ev));
    json_decref(ev);
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}
