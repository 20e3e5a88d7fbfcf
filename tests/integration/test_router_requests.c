/* test_router_requests.c - how the LLM router reads a request: malformed
 * ones get their 4xx in the caller's format, and the model is the body's,
 * else a route's by task type, else the default model. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_fixture.h"

/* ---- malformed requests: the right 4xx, in the caller's format ---- */

#define TH_JSON_CT "Content-Type: application/json\r\n"
#define CT_TEXT "Content-Type: text/plain\r\n"
#define KEY_O "Authorization: Bearer test-key-1\r\n"
#define KEY_A "x-api-key: test-key-1\r\nanthropic-version: 2023-06-01\r\n"
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

typedef struct s_bad {
    const char *path, *hdrs, *body; /* body NULL: 2 MiB */
    int status;
    const char *type, *code; /* NULL: not checked */
} s_bad_t;

static const s_bad_t s_bads[] = {
    {LLM_OAI, TH_JSON_CT KEY_O, "{\"model\":", 400, NULL, NULL},
    {LLM_OAI, TH_JSON_CT KEY_O, "{\"model\":\"gpt-a\"}", 400, NULL, NULL},
    {LLM_OAI, CT_TEXT KEY_O, "{\"model\":\"gpt-a\"," MSGS "}", 415, NULL, NULL},
    {LLM_OAI, TH_JSON_CT KEY_O, "{\"model\":\"nope\"," MSGS "}", 404, NULL,
     "model_not_found"},
    {LLM_OAI, TH_JSON_CT, "{\"model\":\"gpt-a\"," MSGS "}", 401, "authentication_error",
     NULL},
    {LLM_OAI, TH_JSON_CT "Authorization: Bearer test-key-3\r\n",
     "{\"model\":\"gpt-a\"," MSGS "}", 401, "authentication_error", NULL},
    {LLM_OAI, TH_JSON_CT KEY_O, NULL, 413, NULL, NULL},
    {LLM_ANT, TH_JSON_CT KEY_A, "{\"model\":", 400, NULL, NULL},
    {LLM_ANT, TH_JSON_CT KEY_A, "{\"model\":\"claude-x\",\"max_tokens\":10}", 400, NULL,
     NULL},
    {LLM_ANT, TH_JSON_CT KEY_A, "{\"model\":\"claude-x\"," MSGS "}", 400, NULL, NULL},
    {LLM_ANT, CT_TEXT KEY_A, "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 415,
     NULL, NULL},
    {LLM_ANT, TH_JSON_CT KEY_A, "{\"model\":\"nope\",\"max_tokens\":10," MSGS "}", 404,
     NULL, NULL},
    {LLM_ANT, TH_JSON_CT "anthropic-version: 2023-06-01\r\n",
     "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 401, "authentication_error",
     NULL},
    {LLM_ANT, TH_JSON_CT "x-api-key: test-key-3\r\n",
     "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 401, "authentication_error",
     NULL},
    {LLM_ANT, TH_JSON_CT KEY_A, NULL, 413, NULL, NULL},
    /* Only /v1/messages itself answers in Anthropic's format. */
    {"/v1/messagesx", TH_JSON_CT KEY_O, "{}", 404, NULL, NULL},
    /* A role names a budget: not any bytes at all. */
    {LLM_OAI,
     TH_JSON_CT KEY_O "X-Vapora-Role: \xff"
                      "bad\r\n",
     "{\"model\":\"gpt-a\"," MSGS "}", 400, NULL, "invalid_request"},
    {LLM_ANT, TH_JSON_CT KEY_A "X-Vapora-Role: two words\r\n",
     "{\"model\":\"claude-x\",\"max_tokens\":10," MSGS "}", 400, NULL, NULL},
};

/* Checks that r is an error in the format of path's API. */
static void s_check_error(const llm_resp_t *r, const s_bad_t *b)
{
    json_t *e = json_object_get(r->json, "error");
    cr_assert(json_is_object(e), "%s %d: not an error body: %s", b->path, b->status,
              r->body);
    if (strcmp(b->path, LLM_ANT) == 0) {
        cr_assert_str_eq(th_str(r->json, "type"), "error", "%s", r->body);
    } else {
        cr_assert(json_is_null(json_object_get(e, "param")) &&
                      json_object_get(e, "code"),
                  "%s", r->body);
        if (b->code)
            cr_assert_str_eq(th_str(e, "code") ?: "", b->code, "%s", r->body);
    }
    cr_assert(th_str(e, "type") && th_str(e, "message"), "%s", r->body);
    if (b->type)
        cr_assert_str_eq(th_str(e, "type"), b->type, "%s", r->body);
}

Test(router_errors, malformed_requests_get_their_4xx_in_the_callers_format,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv =
        llm_start(fake, &(llm_opts_t){.router = "api_keys = test-key-1, test-key-2\n"
                                                "anonymous = no\n"});
    size_t big_len = 2u << 20;
    char *big = malloc(big_len + 128);
    int n =
        sprintf(big, "{\"model\":\"gpt-a\",\"max_tokens\":10,\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"");
    memset(big + n, 'x', big_len);
    strcpy(big + n + big_len, "\"}]}");
    for (size_t i = 0; i < sizeof s_bads / sizeof *s_bads; i++) {
        const s_bad_t *b = &s_bads[i];
        llm_resp_t r = llm_send(sv->ports[0], "POST", b->path, b->hdrs,
                                b->body ? b->body : big, 10000);
        cr_assert_eq(r.status, b->status, "case %zu: %s %s: %d, want %d: %.300s", i,
                     b->path, b->body ? b->body : "(2 MiB)", r.status, b->status,
                     r.body);
        s_check_error(&r, b);
        llm_resp_clear(&r);
    }
    free(big);
    const char *scopes[] = {"oai", "claude", "gem", "local"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(llm_fake_num(fake, scopes[i], "requests"), 0, "%s was asked",
                     scopes[i]);
}

/* ---- model choice: the body's model, else a route by task type, else the
 * default model ---- */

Test(router_routing, task_type_rules_and_the_default_model, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    static const struct {
        const char *model, *hdr, *want;
    } cases[] = {
        {"auto", "X-Vapora-Task-Type: design\r\n", "claude-x"},
        {NULL, "X-Vapora-Task-Type: architecture\r\n", "claude-x"},
        {"gpt-b", "X-Vapora-Task-Type: design\r\n", "gpt-b"},
        {NULL, "X-Vapora-Task-Type: chat\r\n", "gpt-a"},
        {NULL, NULL, "gpt-a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *body = llm_body(false, cases[i].model, false, 0);
        llm_resp_t r = llm_call(sv, LLM_OAI, cases[i].hdr, body, 200);
        llm_expect_field(r.head, "X-Vapora-Model", cases[i].want);
        llm_resp_clear(&r);
        free(body);
    }
}

/* ---- the output bound reaches the provider ---- */

/* An OpenAI request without max_tokens is sent with the router's bound
 * (default_max_tokens, 1000 here) as max_completion_tokens, whether it is
 * relayed as its own bytes (no such key at all, trailing spaces) or
 * rendered (max_tokens null); one with its own bound is sent as it is. */
Test(router_requests, the_output_bound_reaches_the_provider, .timeout = 60,
     .fini = th_cleanup)
{
    static const struct {
        const char *body;
        long want_mct, want_mt; /* -1: absent */
    } cases[] = {
        {"{\"model\":\"gpt-a\"," MSGS "}  \n", 1000, -1},
        {"{\"model\":\"gpt-a\",\"max_tokens\":null," MSGS "}", 1000, -1},
        {"{\"model\":\"gpt-a\",\"max_tokens\":77," MSGS "}", -1, 77},
    };
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llm_resp_t r = llm_call(sv, LLM_OAI, NULL, cases[i].body, 200);
        llm_resp_clear(&r);
        json_t *last = llm_fake_last(fake, "oai");
        json_t *body = json_object_get(last, "body");
        json_t *mct = json_object_get(body, "max_completion_tokens");
        json_t *mt = json_object_get(body, "max_tokens");
        char *d = json_dumps(body, 0);
        cr_assert_eq(mct ? json_integer_value(mct) : -1, cases[i].want_mct, "%zu: %s",
                     i, d);
        cr_assert_eq(mt && !json_is_null(mt) ? json_integer_value(mt) : -1,
                     cases[i].want_mt, "%zu: %s", i, d);
        free(d);
        json_decref(last);
    }
}
