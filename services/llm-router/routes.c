/* routes.c - the router's HTTP API: the OpenAI and Anthropic completion
 * endpoints (authenticate, parse, validate, hand over to call.c), the model list,
 * and the budget, provider and usage reports. Errors are written in the
 * caller's format: OpenAI's under /v1/chat and /v1/models, Anthropic's
 * under /v1/messages. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "routes.h"
#include "call.h"
#include "plan.h"
#include "usage.h"
#include "log.h"
#include "alloc.h"
#include "parse.h"

/* ---- errors in the caller's format ---- */

static const char *s_openai_type(unsigned status, const char *code)
{
    if (strcmp(code, "budget_exceeded") == 0)
        return "budget_exceeded";
    if (status == 401)
        return "authentication_error";
    if (status == 429)
        return "rate_limit_exceeded";
    if (status >= 500)
        return "api_error";
    return "invalid_request_error";
}

static const char *s_anthropic_type(unsigned status, const char *code)
{
    if (strcmp(code, "budget_exceeded") == 0)
        return "budget_exceeded";
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static char *s_error_body(const http_req_t *req, unsigned status, const char *code,
                          const char *message, void *ud)
{
    UNUSED(ud);
    const char *path = http_req_path(req);
    json_t *j;
    /* /v1/messages and what is under it; not /v1/messagesx. */
    if (path && strncmp(path, "/v1/messages", 12) == 0 &&
        (path[12] == '\0' || path[12] == '/'))
        j = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                      s_anthropic_type(status, code), "message", message);
    else if (path && strncmp(path, "/v1/", 4) == 0)
        j = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", message, "type",
                      s_openai_type(status, code), "param", "code", code);
    else
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* ---- caller authentication ---- */

/* Compares without stopping at the first differing byte. */
static bool s_key_equal(const char *given, const char *key)
{
    size_t lg = strlen(given), lk = strlen(key);
    unsigned diff = lg != lk;
    for (size_t i = 0; i < lk; i++)
        diff |=
            (unsigned)((unsigned char)(i < lg ? given[i] : 0) ^ (unsigned char)key[i]);
    return diff == 0;
}

static bool s_authorized(router_t *rt, http_req_t *req)
{
    if (rt->cfg->napi_keys == 0)
        return true;
    const char *h = http_req_header(req, "Authorization");
    const char *key = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    if (!key) /* the Anthropic SDKs send their key this way */
        key = http_req_header(req, "x-api-key");
    bool ok = false;
    for (size_t i = 0; key && i < rt->cfg->napi_keys; i++)
        ok |= s_key_equal(key, rt->cfg->api_keys[i]);
    if (!ok)
        http_reply_error(req, 401, "invalid_api_key",
                         key ? "the API key is not valid"
                             : "an API key is required: Authorization: Bearer <key>");
    return ok;
}

/* ---- completions ---- */

/* X-Vapora-Role names a budget: 1-63 characters a config name can have.
 * Replies 400 and returns false otherwise. */
static bool s_role_ok(http_req_t *req)
{
    const char *role = http_req_header(req, "X-Vapora-Role");
    if (!role || !*role || rt_role_name_ok(role)) /* empty: the default */
        return true;
    http_reply_error(req, 400, "invalid_request",
                     "X-Vapora-Role must be 1 to 63 characters of A-Z, a-z, 0-9 and "
                     ". _ : @ / -");
    return false;
}

static void s_chat(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_authorized(rt, req) || !s_role_ok(req))
        return;
    json_t *body = http_req_json(req);
    char err[256];
    if (wire_openai_validate(body, err, sizeof err) < 0) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    call_start(rt, req, CALL_OPENAI, json_incref(body));
}

static void s_messages(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_authorized(rt, req) || !s_role_ok(req))
        return;
    char err[256];
    json_t *canon = wire_from_anthropic_request(http_req_json(req), err, sizeof err);
    if (!canon) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    call_start(rt, req, CALL_ANTHROPIC, canon);
}

/* ---- reports ---- */

static void s_models(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_authorized(rt, req))
        return;
    json_t *data = json_array();
    const rt_config_t *cfg = rt->cfg;
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const rt_provider_t *p = &cfg->providers[i];
        for (size_t j = 0; j < p->nmodels; j++) {
            bool seen = false; /* a model served by two providers is listed once */
            for (size_t k = 0; k < i && !seen; k++)
                seen = rt_provider_serves(&cfg->providers[k], p->models[j]);
            if (!seen)
                json_array_append_new(
                    data, json_pack("{s:s,s:s,s:i,s:s}", "id", p->models[j], "object",
                                    "model", "created", 0, "owned_by", p->name));
        }
    }
    http_reply_json(req, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

typedef struct report {
    http_req_t *req;
    router_t *rt;
    const char *group_by;
    int64_t since;
    int64_t now;
    json_t *out;
} report_t;

static void s_budgets_work(void *ud)
{
    report_t *r = ud;
    router_t *rt = r->rt;
    r->out = json_array();
    for (size_t i = 0; i < rt->cfg->nbudgets; i++) {
        const rt_budget_t *b = &rt->cfg->budgets[i];
        int64_t start, end, spent = 0, reserved = 0;
        rt_window_bounds(b->window, r->now, &start, &end);
        ledger_balance(rt->ledger, b->role, start, &spent, &reserved);
        double used = (double)(spent + reserved) / LEDGER_NANO;
        const char *state = used >= b->limit_usd                           ? "exceeded"
                            : used >= b->limit_usd * b->near_percent / 100 ? "near"
                                                                           : "normal";
        char resets[32];
        time_t t = (time_t)end;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(resets, sizeof resets, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_array_append_new(
            r->out, json_pack("{s:s,s:s,s:f,s:f,s:f,s:s,s:s}", "role", b->role,
                              "window", rt_window_name(b->window), "limit_usd",
                              b->limit_usd, "spent_usd", (double)spent / LEDGER_NANO,
                              "reserved_usd", (double)reserved / LEDGER_NANO, "state",
                              state, "resets_at", resets));
    }
}

static void s_usage_work(void *ud)
{
    report_t *r = ud;
    r->out = ledger_usage(r->rt->ledger, r->group_by, r->since);
}

static void s_report_done(void *ud, int status)
{
    report_t *r = ud;
    if (status < 0 || !r->out)
        http_reply_error(r->req, 503, "ledger_unavailable",
                         "the ledger could not be read");
    else
        http_reply_json(r->req, 200, r->out), r->out = NULL;
    json_decref(r->out);
    free(r);
}

static void s_report(router_t *rt, report_t *r, void (*fn)(void *))
{
    r->now = time(NULL);
    if (usage_after_flush(rt->usage, fn, s_report_done, r) < 0) {
        http_reply_error(r->req, 503, "overloaded",
                         "the router is busy; retry shortly");
        free(r);
    }
}

/* GET /api/v1/providers: health as this worker sees it (state, failures in
 * a row, latency, its own attempts), and the calls each provider answered,
 * their tokens and cost across every worker (from the ledger, read on the
 * pool; the health is read here, on the loop thread, once that is back). */
static void s_providers_work(void *ud)
{
    report_t *r = ud;
    r->out = ledger_usage(r->rt->ledger, "provider", 0);
}

static json_t *s_provider_json(const rt_provider_t *p, const json_t *t, uint64_t now)
{
    bool ok = rt_provider_available(p, now);
    return json_pack(
        "{s:s,s:s,s:s,s:i,s:f,s:I,s:I,s:I,s:I,s:I,s:f,s:{s:I,s:I}}", "name", p->name,
        "kind", wire_kind_name(p->kind), "state", ok ? "available" : "cooldown",
        "consecutive_failures", (int)p->failures, "latency_ewma_ms", p->latency_ewma_ms,
        "cooldown_remaining_ms", (json_int_t)(ok ? 0 : p->cooldown_until - now),
        "requests", json_integer_value(json_object_get(t, "requests")), "errors",
        json_integer_value(json_object_get(t, "errors")), "input_tokens",
        json_integer_value(json_object_get(t, "input_tokens")), "output_tokens",
        json_integer_value(json_object_get(t, "output_tokens")), "cost_usd",
        json_real_value(json_object_get(t, "cost_usd")), "worker", "attempts",
        (json_int_t)p->requests, "failed_attempts", (json_int_t)p->errors);
}

static void s_providers_done(void *ud, int status)
{
    report_t *r = ud;
    router_t *rt = r->rt;
    if (status < 0 || !r->out) {
        http_reply_error(r->req, 503, "ledger_unavailable",
                         "the ledger could not be read");
    } else {
        json_t *list = json_array();
        uint64_t now = loop_now_ms(rt->loop);
        for (size_t i = 0; i < rt->cfg->nproviders; i++) {
            const rt_provider_t *p = &rt->cfg->providers[i];
            json_t *t = NULL, *e;
            size_t k;
            json_array_foreach(
                r->out, k,
                e) if (strcmp(json_string_value(json_object_get(e, "provider")),
                              p->name) == 0) t = e;
            json_array_append_new(list, s_provider_json(p, t, now));
        }
        http_reply_json(r->req, 200, list);
    }
    json_decref(r->out);
    free(r);
}

/* A report for req, answered once the ledger has what was recorded. */
static report_t *s_report_new(router_t *rt, http_req_t *req)
{
    report_t *r = xcalloc(1, sizeof *r);
    r->req = req;
    r->rt = rt;
    return r;
}

static void s_providers(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_authorized(rt, req))
        return;
    report_t *r = s_report_new(rt, req);
    if (usage_after_flush(rt->usage, s_providers_work, s_providers_done, r) < 0) {
        http_reply_error(req, 503, "overloaded", "the router is busy; retry shortly");
        free(r);
    }
}

static void s_budgets(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_authorized(rt, req))
        return;
    report_t *r = s_report_new(rt, req);
    s_report(rt, r, s_budgets_work);
}

/* since: unix seconds or an RFC 3339 UTC time ("2026-11-24T10:00:00Z"). */
static int s_parse_since(const char *s, int64_t *out)
{
    long v;
    if (parse_long(s, 0, 1L << 40, &v) == 0) {
        *out = v;
        return 0;
    }
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || (*end && strcmp(end, "Z") != 0 && strncmp(end, ".", 1) != 0))
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static void s_usage(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_authorized(rt, req))
        return;
    const char *g = http_req_query(req, "group_by");
    const char *since = http_req_query(req, "since");
    if (!g)
        g = "role";
    if (strcmp(g, "role") && strcmp(g, "provider") && strcmp(g, "model")) {
        http_reply_error(req, 400, "invalid_group_by",
                         "group_by must be role, provider or model, not '%s'", g);
        return;
    }
    report_t *r = s_report_new(rt, req);
    r->group_by = g;
    if (since && s_parse_since(since, &r->since) < 0) {
        free(r);
        http_reply_error(req, 400, "invalid_since",
                         "since must be unix seconds or an RFC 3339 time, not '%s'",
                         since);
        return;
    }
    s_report(rt, r, s_usage_work);
}

void routes_add(router_t *rt)
{
    http_server_t *srv = worker_http(rt->w);
    http_server_set_error_fn(srv, s_error_body, rt);
    http_route(srv, "POST", "/v1/chat/completions", HTTP_JSON_BODY, s_chat, rt);
    http_route(srv, "POST", "/v1/messages", HTTP_JSON_BODY, s_messages, rt);
    http_route(srv, "GET", "/v1/models", 0, s_models, rt);
    http_route(srv, "GET", "/api/v1/budgets", 0, s_budgets, rt);
    http_route(srv, "GET", "/api/v1/providers", 0, s_providers, rt);
    http_route(srv, "GET", "/api/v1/usage", 0, s_usage, rt);
}
