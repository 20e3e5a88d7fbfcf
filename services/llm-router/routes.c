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
#include "admit.h"
#include "call.h"
#include "caller.h"
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
    if (status == 403)
        return "permission_error";
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

/* ---- callers (caller.h) ---- */

/* The caller of req, or NULL once answered 401: its key (Authorization:
 * Bearer, or x-api-key as the Anthropic SDKs send it), or none. */
static const caller_t *s_caller(router_t *rt, http_req_t *req)
{
    const char *h = http_req_header(req, "Authorization");
    const char *key = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    if (!key)
        key = http_req_header(req, "x-api-key");
    bool local = caller_addr_is_loopback(http_req_peer(req));
    const caller_t *who;
    caller_id_t id = callers_identify(rt->callers, key, local, &who);
    if (id == CALLER_KEY_INVALID)
        http_reply_error(req, 401, "invalid_api_key", "the API key is not valid");
    else if (id == CALLER_KEY_REQUIRED)
        http_reply_error(req, 401, "invalid_api_key",
                         "an API key is required: Authorization: Bearer <key>%s",
                         callers_anonymous(rt->callers) == CALLER_ANON_LOOPBACK
                             ? " (calls without one are taken from loopback only)"
                             : "");
    return id == CALLER_OK ? who : NULL;
}

/* Who pays for req: its caller, the role (X-Vapora-Role, one of the
 * caller's roles; else its default role) and that role's budget. false
 * once answered: 401 (no caller), 400 (not a role name), 403 (a role the
 * caller may not spend from, or one without a budget). */
static bool s_who(router_t *rt, http_req_t *req, call_who_t *out)
{
    const caller_t *who = s_caller(rt, req);
    if (!who)
        return false;
    const char *role = http_req_header(req, "X-Vapora-Role");
    if (!role || !*role) /* empty: the default */
        role = who->default_role;
    if (!rt_role_name_ok(role)) {
        http_reply_error(req, 400, "invalid_request",
                         "X-Vapora-Role must be 1 to 63 characters of A-Z, a-z, 0-9 "
                         "and . _ : @ / -");
        return false;
    }
    if (!caller_may_use(who, role)) {
        http_reply_error(req, 403, "role_not_allowed",
                         "the key of caller '%s' may not spend from role '%s'",
                         who->name, role);
        return false;
    }
    *out = (call_who_t){
        .caller = who->name, .role = role, .budget = rt_budget_for(rt->cfg, role)};
    if (!out->budget)
        http_reply_error(req, 403, "no_budget",
                         "role '%s' has no [budget:%s] and there is no "
                         "[budget:default] to share",
                         role, role);
    return out->budget != NULL;
}

/* ---- completions ---- */

static void s_chat(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    call_who_t who;
    if (!s_who(rt, req, &who))
        return;
    json_t *body = http_req_json(req);
    char err[256];
    if (wire_openai_validate(body, err, sizeof err) < 0) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    call_start(rt, req, CALL_OPENAI, json_incref(body), &who);
}

static void s_messages(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    call_who_t who;
    if (!s_who(rt, req, &who))
        return;
    char err[256];
    json_t *canon = wire_from_anthropic_request(http_req_json(req), err, sizeof err);
    if (!canon) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    call_start(rt, req, CALL_ANTHROPIC, canon, &who);
}

/* ---- reports ---- */

static void s_models(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_caller(rt, req))
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
    json_t *out;
} report_t;

/* One budget's line of GET /api/v1/budgets, from the book (admit.h). */
static json_t *s_budget_json(router_t *rt, const rt_budget_t *b, int64_t now)
{
    int64_t start, end, spent = 0, reserved = 0;
    rt_window_bounds(b->window, now, &start, &end);
    admit_balance(rt, b, now, &spent, &reserved);
    double used = (double)(spent + reserved) / LEDGER_NANO;
    const char *state = used >= b->limit_usd                           ? "exceeded"
                        : used >= b->limit_usd * b->near_percent / 100 ? "near"
                                                                       : "normal";
    char resets[32];
    time_t t = (time_t)end;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(resets, sizeof resets, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s,s:s,s:f,s:f,s:f,s:s,s:s}", "role", b->role, "window",
                     rt_window_name(b->window), "limit_usd", b->limit_usd, "spent_usd",
                     (double)spent / LEDGER_NANO, "reserved_usd",
                     (double)reserved / LEDGER_NANO, "state", state, "resets_at",
                     resets);
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
        "kind", wire_kind_name(p->kind), "state",
        p->keyless ? "skipped"
        : ok       ? "available"
                   : "cooldown",
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
    if (!s_caller(rt, req))
        return;
    report_t *r = s_report_new(rt, req);
    if (usage_after_flush(rt->usage, s_providers_work, s_providers_done, r) < 0) {
        http_reply_error(req, 503, "overloaded", "the router is busy; retry shortly");
        free(r);
    }
}

/* GET /api/v1/budgets: the book is exact at every moment, across the
 * workers: read here, at once. */
static void s_budgets(http_req_t *req, void *ud)
{
    router_t *rt = ud;
    if (!s_caller(rt, req))
        return;
    json_t *out = json_array();
    int64_t now = time(NULL);
    for (size_t i = 0; i < rt->cfg->nbudgets; i++)
        json_array_append_new(out, s_budget_json(rt, &rt->cfg->budgets[i], now));
    http_reply_json(req, 200, out);
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
    if (!s_caller(rt, req))
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
