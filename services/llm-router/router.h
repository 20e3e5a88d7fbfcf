/* router.h - the LLM router's configuration and routing decisions.
 *
 * DESIGN. The configuration ([provider:*], [model:*], [routing], [route:*],
 * [budget:*], [router]) is loaded once per worker into an rt_config_t that
 * never changes afterwards. The mutable, per-worker provider health
 * (failures in a row, cooldown, latency) sits beside it in rt_provider_t and
 * is touched only on the loop thread. rt_plan() turns a request's context
 * into an ordered list of attempts (provider, model) for each budget state;
 * it is pure apart from reading provider health, so unit tests drive it
 * directly. */
#ifndef VAPORA_ROUTER_H
#define VAPORA_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "wire.h"

typedef struct rt_model {
    char *name;
    double input_usd_per_mtok;
    double output_usd_per_mtok;
    char **equivalents;
    size_t nequivalents;
} rt_model_t;

typedef struct rt_provider {
    char *name; /* the section's NAME: [provider:NAME] */
    wire_kind_t kind;
    char *base_url; /* without a trailing '/' */
    char *api_key;  /* may be empty */
    char **models;
    size_t nmodels;
    long timeout_s;
    /* Health, per worker, loop thread only. */
    unsigned failures;        /* in a row */
    uint64_t cooldown_until;  /* loop_now_ms; 0: available */
    double latency_ewma_ms;
    uint64_t requests, errors, input_tokens, output_tokens;
    double cost_usd;
} rt_provider_t;

typedef struct rt_route {
    char *name;
    char **task_types;
    size_t ntask_types;
    char *model;
} rt_route_t;

typedef enum rt_window { RT_DAILY, RT_WEEKLY, RT_MONTHLY } rt_window_t;

typedef struct rt_budget {
    char *role;
    rt_window_t window;
    double limit_usd;
    double near_percent;
} rt_budget_t;

typedef struct rt_config {
    rt_provider_t *providers;
    size_t nproviders;
    rt_model_t *models;
    size_t nmodels;
    rt_route_t *routes;
    size_t nroutes;
    rt_budget_t *budgets;
    size_t nbudgets;
    rt_provider_t **chain; /* [routing] fallback_chain */
    size_t nchain;
    char *default_model;
    long retries;
    long cooldown_failures;
    double cooldown_s;
    char **api_keys; /* [router] api_keys; none: no caller auth */
    size_t napi_keys;
    long default_max_tokens; /* for reservations and Anthropic upstreams */
} rt_config_t;

/* Loads and checks the router's sections. NULL with a one-line reason
 * naming the section and key in err. The caller owns the result. */
rt_config_t *rt_config_load(const cfg_t *cfg, char *err, size_t errlen);
void rt_config_destroy(rt_config_t **cp);

rt_provider_t *rt_provider_find(const rt_config_t *c, const char *name);
/* The [model:NAME] section, or NULL (an unpriced model costs 0). */
const rt_model_t *rt_model_find(const rt_config_t *c, const char *name);
bool rt_provider_serves(const rt_provider_t *p, const char *model);
/* Whether some provider serves model. */
bool rt_model_known(const rt_config_t *c, const char *model);
/* Whether name can be a role (a budget's name, X-Vapora-Role): 1 to 63
 * characters of A-Z, a-z, 0-9 and . _ : @ / -. */
bool rt_role_name_ok(const char *name);
const rt_budget_t *rt_budget_find(const rt_config_t *c, const char *role);
/* USD for the tokens at model's prices. */
double rt_cost(const rt_config_t *c, const char *model, long in_tokens, long out_tokens);

/* Budget states, in the order of the plans. */
typedef enum rt_state { RT_NORMAL, RT_NEAR, RT_EXCEEDED } rt_state_t;
const char *rt_state_name(rt_state_t s);

#define RT_MAX_ATTEMPTS 8

typedef struct rt_attempt {
    rt_provider_t *provider;
    const char *model; /* borrowed from the config */
} rt_attempt_t;

typedef struct rt_plan {
    rt_attempt_t attempts[RT_MAX_ATTEMPTS];
    size_t n; /* 0: no model may serve this request in this state */
} rt_plan_t;

/* What a request asks for. */
typedef struct rt_request {
    const char *model;     /* the body's model; NULL or "auto": rules */
    const char *task_type; /* X-Vapora-Task-Type or NULL */
    const char *provider;  /* X-Vapora-Provider or NULL */
} rt_request_t;

typedef enum rt_plan_error {
    RT_PLAN_OK = 0,
    RT_PLAN_UNKNOWN_MODEL = -1,    /* model names no configured model */
    RT_PLAN_UNKNOWN_PROVIDER = -2, /* X-Vapora-Provider names no provider */
} rt_plan_error_t;

/* Fills plans[RT_NORMAL..RT_EXCEEDED] for rq at time now (loop_now_ms):
 *  normal   - the chosen model on the first chain provider serving it (or
 *             the override provider, alone), then every other available
 *             chain provider with the model standing in for it there;
 *  near     - the cheapest model among available chain providers, then
 *             the others as above;
 *  exceeded - only models priced 0.
 * Providers in cooldown are left out unless every one is. */
rt_plan_error_t rt_plan(const rt_config_t *c, const rt_request_t *rq, uint64_t now,
                        rt_plan_t plans[3]);

/* The model that stands in for `model` on provider p: model itself when p
 * serves it, else the first of its equivalents p serves, else p's first. */
const char *rt_stand_in(const rt_config_t *c, const rt_provider_t *p, const char *model);

/* Health bookkeeping after an attempt (loop thread). */
void rt_provider_success(const rt_config_t *c, rt_provider_t *p, double latency_ms);
void rt_provider_failure(const rt_config_t *c, rt_provider_t *p, uint64_t now);
bool rt_provider_available(const rt_provider_t *p, uint64_t now);

/* The current window [start, end) of w containing `now` (unix seconds, UTC
 * calendar: days, ISO weeks from Monday, months). */
void rt_window_bounds(rt_window_t w, int64_t now, int64_t *start, int64_t *end);
const char *rt_window_name(rt_window_t w);

#endif
