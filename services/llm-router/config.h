/* config.h - the LLM router's configuration: providers, priced models,
 * routes, budgets and the routing settings ([provider:*], [model:*],
 * [routing], [route:*], [budget:*], [router]), and the lookups over it.
 *
 * DESIGN. The configuration is loaded once per worker into an rt_config_t
 * that never changes afterwards, except for the per-worker provider health
 * kept beside each provider (rt_provider_t; see plan.h), which only the
 * loop thread touches. Lookups are pure reads: any thread. */
#ifndef VAPORA_ROUTER_CONFIG_H
#define VAPORA_ROUTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "sbuf.h"
#include "sqldb.h"
#include "wire.h"

/* Providers in [routing] fallback_chain, at most (a plan's attempts). */
#define RT_MAX_CHAIN 8

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
    /* Its kind needs a key (openai, anthropic, gemini) and it has none: it
     * is left out of every plan (plan.h). */
    bool keyless;
    char **models;
    size_t nmodels;
    long timeout_s;
    /* Health, per worker, loop thread only (plan.h). */
    unsigned failures;       /* in a row */
    uint64_t cooldown_until; /* loop_now_ms; 0: available */
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
    long default_max_tokens;  /* for reservations and Anthropic upstreams */
    sqldb_sync_t synchronous; /* [router] synchronous, for the ledger */
} rt_config_t;

/* Loads and checks the router's sections. NULL with a one-line reason
 * naming the section and key in err. The caller owns the result. */
rt_config_t *rt_config_load(const cfg_t *cfg, char *err, size_t errlen);
/* Frees c (NULL is fine) and sets *cp to NULL. */
void rt_config_destroy(rt_config_t **cp);

/* The [provider:NAME] section, or NULL. */
rt_provider_t *rt_provider_find(const rt_config_t *c, const char *name);
/* The [model:NAME] section, or NULL (an unpriced model costs 0). */
const rt_model_t *rt_model_find(const rt_config_t *c, const char *name);
/* p's own copy of the name model (borrowed from the config, so that plans
 * never point into a request), or NULL when p does not serve it. */
const char *rt_provider_model(const rt_provider_t *p, const char *model);
bool rt_provider_serves(const rt_provider_t *p, const char *model);
/* Whether some provider serves model. */
bool rt_model_known(const rt_config_t *c, const char *model);
/* Whether name can be a role (a budget's name, X-Vapora-Role): 1 to 63
 * characters of A-Z, a-z, 0-9 and . _ : @ / -. */
bool rt_role_name_ok(const char *name);
/* The [budget:ROLE] section, or NULL. */
const rt_budget_t *rt_budget_find(const rt_config_t *c, const char *role);
/* The budget role spends from: its own [budget:ROLE], else [budget:default],
 * one pool shared by every role without a section of its own (so that a
 * new role name buys no fresh budget); NULL when neither exists (the role
 * may not spend). */
const rt_budget_t *rt_budget_for(const rt_config_t *c, const char *role);
/* Appends the names of the keyless providers (their kind needs a key and
 * they have none: left out of every plan), ", "-separated, to out;
 * returns how many. */
size_t rt_keyless_names(const rt_config_t *c, sbuf_t *out);
/* USD for the tokens at model's prices. */
double rt_cost(const rt_config_t *c, const char *model, long in_tokens,
               long out_tokens);

/* The current window [start, end) of w containing `now` (unix seconds, UTC
 * calendar: days, ISO weeks from Monday, months). */
void rt_window_bounds(rt_window_t w, int64_t now, int64_t *start, int64_t *end);
/* "daily" | "weekly" | "monthly". */
const char *rt_window_name(rt_window_t w);

#endif
