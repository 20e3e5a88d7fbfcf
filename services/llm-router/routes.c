/* routes.c - the router's HTTP API: the OpenAI and Anthropic completion
 * endpoints (parse, validate, plan, hand over to call.c), the model list,
 * and the budget, provider and usage reports. Errors are written in the
 * caller's format: OpenAI's under /v1/chat and /v1/models, Anthropic's
 * under /v1/messages. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
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

static bool s_authorized(gateway_t *gw, http_req_t *req)
{
    if (gw->cfg->napi_keys == 0)
        return true;
    const char *h = http_req_header(req, "Authorization");
    const char *key = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    if (!key) /* the Anthropic SDKs send their key this way */
        key = http_req_header(req, "x-api-key");
    bool ok = false;
    for (size_t i = 0; key && i < gw->cfg->napi_keys; i++)
        ok |= s_key_equal(key, gw->cfg->api_keys[i]);
    if (!ok)
        http_reply_error(req, 401, "invalid_api_key",
                         key ? "the API key is not valid"
                             : "an API key is required: Authorization: Bearer <key>");
    return ok;
}

/* ---- completions ---- */

static void s_call_id(call_t *c)
{
    static unsigned long seq;
    static pid_t pid;
    if (!pid)
        pid = getpid();
    snprintf(c->id, sizeof c->id, "%s%x%06lx%08lx",
             c->format == GW_ANTHROPIC ? "msg_vp" : "chatcmpl-vp", (unsigned)pid,
             ++seq & 0xffffff, (unsigned long)time(NULL));
}

static long s_max_tokens(const gateway_t *gw, const json_t *canon)
{
    json_t *v = json_object_get(canon, "max_completion_tokens");
    if (!json_is_integer(v))
        v = json_object_get(canon, "max_tokens");
    return json_is_integer(v) && json_integer_value(v) > 0
               ? (long)json_integer_value(v)
               : gw->cfg->default_max_tokens;
}

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

static call_t *s_new_call(gateway_t *gw, http_req_t *req, gw_format_t format,
                          json_t *canon)
{
    call_t *c = xcalloc(1, sizeof *c);
    c->gw = gw;
    c->req = req;
    c->format = format;
    c->canon = canon;
    c->stream = json_is_true(json_object_get(canon, "stream"));
    json_t *so = json_object_get(canon, "stream_options");
    c->include_usage =
        format == GW_OPENAI && json_is_true(json_object_get(so, "include_usage"));
    const char *role = http_req_header(req, "X-Vapora-Role");
    snprintf(c->role, sizeof c->role, "%s", role && *role ? role : "default");
    c->budget = rt_budget_find(gw->cfg, c->role);
    c->prompt_bound = wire_prompt_token_bound(canon);
    c->max_tokens = s_max_tokens(gw, canon);
    s_call_id(c);
    return c;
}

/* Plans c; replies and frees it when the request names nothing we know. */
static bool s_plan(gateway_t *gw, call_t *c)
{
    rt_request_t rq = {
        .model = json_string_value(json_object_get(c->canon, "model")),
        .task_type = http_req_header(c->req, "X-Vapora-Task-Type"),
        .provider = http_req_header(c->req, "X-Vapora-Provider"),
    };
    rt_plan_error_t rc = rt_plan(gw->cfg, &rq, loop_now_ms(gw->loop), c->plans);
    if (rc == RT_PLAN_UNKNOWN_MODEL)
        http_reply_error(
            c->req, 404, "model_not_found",
            "the model '%s' does not exist or is not configured (GET /v1/models "
            "lists them)",
            rq.model);
    else if (rc == RT_PLAN_UNKNOWN_PROVIDER)
        http_reply_error(c->req, 400, "unknown_provider",
                         "X-Vapora-Provider names no configured provider: '%s'",
                         rq.provider);
    if (rc != RT_PLAN_OK)
        call_free(c);
    return rc == RT_PLAN_OK;
}

static void s_chat(http_req_t *req, void *ud)
{
    gateway_t *gw = ud;
    if (!s_authorized(gw, req) || !s_role_ok(req))
        return;
    json_t *body = http_req_json(req);
    char err[256];
    if (wire_openai_validate(body, err, sizeof err) < 0) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    call_t *c = s_new_call(gw, req, GW_OPENAI, json_incref(body));
    if (s_plan(gw, c))
        call_start(c);
}

static void s_messages(http_req_t *req, void *ud)
{
    gateway_t *gw = ud;
    if (!s_authorized(gw, req) || !s_role_ok(req))
        return;
    char err[256];
    json_t *canon = wire_from_anthropic_request(http_req_json(req), err, sizeof err);
    if (!canon) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    call_t *c = s_new_call(gw, req, GW_ANTHROPIC, canon);
    if (s_plan(gw, c))
        call_start(c);
}

/* ---- reports ---- */

static void s_models(http_req_t *req, void *ud)
{
    gateway_t *gw = ud;
    if (!s_authorized(gw, req))
        return;
    json_t *data = json_array();
    const rt_config_t *cfg = gw->cfg;
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
    gateway_t *gw;
    const char *group_by;
    int64_t since;
    int64_t now;
    json_t *out;
} report_t;

static void s_budgets_work(gateway_t *gw, void *ud)
{
    report_t *r = ud;
    r->out = json_array();
    for (size_t i = 0; i < gw->cfg->nbudgets; i++) {
        const rt_budget_t *b = &gw->cfg->budgets[i];
        int64_t start, end, spent = 0, reserved = 0;
        rt_window_bounds(b->window, r->now, &start, &end);
        ledger_balance(gw->ledger, b->role, start, &spent, &reserved);
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

static void s_usage_work(gateway_t *gw, void *ud)
{
    report_t *r = ud;
    r->out = ledger_usage(gw->ledger, r->group_by, r->since);
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

static void s_report(gateway_t *gw, report_t *r, void (*fn)(gateway_t *, void *))
{
    r->now = time(NULL);
    if (usage_after_flush(gw, fn, s_report_done, r) < 0) {
        http_reply_error(r->req, 503, "overloaded",
                         "the router is busy; retry shortly");
        free(r);
    }
}

/* GET /api/v1/providers: health as this worker sees it (state, failures in
 * a row, latency, its own attempts), and the calls each provider answered,
 * their tokens and cost across every worker (from the ledger, read on the
 * pool; the health is read here, on the loop thread, once that is back). */
static void s_providers_work(gateway_t *gw, void *ud)
{
    report_t *r = ud;
    r->out = ledger_usage(gw->ledger, "provider", 0);
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
    gateway_t *gw = r->gw;
    if (status < 0 || !r->out) {
        http_reply_error(r->req, 503, "ledger_unavailable",
                         "the ledger could not be read");
    } else {
        json_t *list = json_array();
        uint64_t now = loop_now_ms(gw->loop);
        for (size_t i = 0; i < gw->cfg->nproviders; i++) {
            const rt_provider_t *p = &gw->cfg->providers[i];
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

static void s_providers(http_req_t *req, void *ud)
{
    gateway_t *gw = ud;
    if (!s_authorized(gw, req))
        return;
    report_t *r = xcalloc(1, sizeof *r);
    r->req = req;
    r->gw = gw;
    if (usage_after_flush(gw, s_providers_work, s_providers_done, r) < 0) {
        http_reply_error(req, 503, "overloaded", "the router is busy; retry shortly");
        free(r);
    }
}

static void s_budgets(http_req_t *req, void *ud)
{
    gateway_t *gw = ud;
    if (!s_authorized(gw, req))
        return;
    report_t *r = xcalloc(1, sizeof *r);
    r->req = req;
    s_report(gw, r, s_budgets_work);
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
    gateway_t *gw = ud;
    if (!s_authorized(gw, req))
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
    report_t *r = xcalloc(1, sizeof *r);
    r->req = req;
    r->group_by = g;
    if (since && s_parse_since(since, &r->since) < 0) {
        free(r);
        http_reply_error(req, 400, "invalid_since",
                         "since must be unix seconds or an RFC 3339 time, not '%s'",
                         since);
        return;
    }
    s_report(gw, r, s_usage_work);
}

void routes_add(gateway_t *gw)
{
    http_server_t *srv = worker_http(gw->w);
    http_server_set_error_fn(srv, s_error_body, gw);
    http_route(srv, "POST", "/v1/chat/completions", HTTP_JSON_BODY, s_chat, gw);
    http_route(srv, "POST", "/v1/messages", HTTP_JSON_BODY, s_messages, gw);
    http_route(srv, "GET", "/v1/models", 0, s_models, gw);
    http_route(srv, "GET", "/api/v1/budgets", 0, s_budgets, gw);
    http_route(srv, "GET", "/api/v1/providers", 0, s_providers, gw);
    http_route(srv, "GET", "/api/v1/usage", 0, s_usage, gw);
}
