/* plan.c - routing decisions: which model, on which providers, in which
 * order, for each budget state; provider health; budget windows. */
#define _GNU_SOURCE
#include <string.h>
#include <strings.h>
#include <time.h>

#include "router.h"
#include "base.h"

rt_provider_t *rt_provider_find(const rt_config_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->nproviders; i++)
        if (strcmp(c->providers[i].name, name) == 0)
            return &c->providers[i];
    return NULL;
}

const rt_model_t *rt_model_find(const rt_config_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->nmodels; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    return NULL;
}

/* p's own copy of the name model (so plans never point into a request),
 * or NULL when p does not serve it. */
static const char *s_served(const rt_provider_t *p, const char *model)
{
    for (size_t i = 0; model && i < p->nmodels; i++)
        if (strcmp(p->models[i], model) == 0)
            return p->models[i];
    return NULL;
}

bool rt_provider_serves(const rt_provider_t *p, const char *model)
{
    return s_served(p, model) != NULL;
}

bool rt_model_known(const rt_config_t *c, const char *model)
{
    for (size_t i = 0; i < c->nproviders; i++)
        if (rt_provider_serves(&c->providers[i], model))
            return true;
    return false;
}

const rt_budget_t *rt_budget_find(const rt_config_t *c, const char *role)
{
    for (size_t i = 0; role && i < c->nbudgets; i++)
        if (strcmp(c->budgets[i].role, role) == 0)
            return &c->budgets[i];
    return NULL;
}

static double s_price(const rt_config_t *c, const char *model)
{
    const rt_model_t *m = rt_model_find(c, model);
    return m ? m->input_usd_per_mtok + m->output_usd_per_mtok : 0;
}

double rt_cost(const rt_config_t *c, const char *model, long in_tokens, long out_tokens)
{
    const rt_model_t *m = rt_model_find(c, model);
    if (!m)
        return 0;
    return ((double)in_tokens * m->input_usd_per_mtok +
            (double)out_tokens * m->output_usd_per_mtok) /
           1e6;
}

const char *rt_state_name(rt_state_t s)
{
    static const char *const names[] = {"normal", "near", "exceeded"};
    return names[s];
}

const char *rt_stand_in(const rt_config_t *c, const rt_provider_t *p, const char *model)
{
    const char *own = s_served(p, model);
    if (own)
        return own;
    const rt_model_t *m = rt_model_find(c, model);
    for (size_t i = 0; m && i < m->nequivalents; i++)
        for (size_t j = 0; j < p->nmodels; j++)
            if (strcmp(p->models[j], m->equivalents[i]) == 0)
                return p->models[j];
    return p->models[0];
}

bool rt_provider_available(const rt_provider_t *p, uint64_t now)
{
    return p->cooldown_until == 0 || now >= p->cooldown_until;
}

void rt_provider_success(const rt_config_t *c, rt_provider_t *p, double latency_ms)
{
    UNUSED(c);
    p->failures = 0;
    p->cooldown_until = 0;
    p->latency_ewma_ms = p->latency_ewma_ms == 0
                             ? latency_ms
                             : 0.8 * p->latency_ewma_ms + 0.2 * latency_ms;
}

void rt_provider_failure(const rt_config_t *c, rt_provider_t *p, uint64_t now)
{
    p->errors++;
    if (++p->failures >= (unsigned)c->cooldown_failures)
        p->cooldown_until = now + (uint64_t)(c->cooldown_s * 1000);
}

static bool s_in_chain(const rt_config_t *c, const rt_provider_t *p)
{
    for (size_t i = 0; i < c->nchain; i++)
        if (c->chain[i] == p)
            return true;
    return false;
}

/* Whether at least one chain provider is out of cooldown. */
static bool s_any_available(const rt_config_t *c, uint64_t now)
{
    for (size_t i = 0; i < c->nchain; i++)
        if (rt_provider_available(c->chain[i], now))
            return true;
    return false;
}

static void s_push(rt_plan_t *plan, rt_provider_t *p, const char *model)
{
    for (size_t i = 0; i < plan->n; i++)
        if (plan->attempts[i].provider == p)
            return;
    if (plan->n < RT_MAX_ATTEMPTS)
        plan->attempts[plan->n++] = (rt_attempt_t){p, model};
}

/* The model first, on the first usable chain provider serving it (or on the
 * first provider outside the chain serving it), then the rest of the chain
 * with stand-ins. free_only keeps only models priced 0. */
static const char *s_provider_cheapest(const rt_config_t *c, const rt_provider_t *p);

static void s_fill(const rt_config_t *c, const char *model, bool use_all, uint64_t now,
                   bool free_only, bool cheap, rt_plan_t *plan)
{
    plan->n = 0;
    for (size_t i = 0; i < c->nchain; i++) {
        rt_provider_t *p = c->chain[i];
        if ((use_all || rt_provider_available(p, now)) && rt_provider_serves(p, model))
            s_push(plan, p, s_served(p, model));
    }
    for (size_t i = 0; plan->n == 0 && i < c->nproviders; i++) {
        rt_provider_t *p = &c->providers[i];
        if (!s_in_chain(c, p) && (use_all || rt_provider_available(p, now)) &&
            rt_provider_serves(p, model))
            s_push(plan, p, s_served(p, model));
    }
    for (size_t i = 0; i < c->nchain; i++) {
        rt_provider_t *p = c->chain[i];
        if (use_all || rt_provider_available(p, now))
            s_push(plan, p,
                   cheap ? s_provider_cheapest(c, p) : rt_stand_in(c, p, model));
    }
    if (!free_only)
        return;
    size_t k = 0;
    for (size_t i = 0; i < plan->n; i++)
        if (s_price(c, plan->attempts[i].model) == 0)
            plan->attempts[k++] = plan->attempts[i];
    plan->n = k;
}

/* The cheapest model of one provider (ties: its order). */
static const char *s_provider_cheapest(const rt_config_t *c, const rt_provider_t *p)
{
    const char *best = p->models[0];
    for (size_t j = 1; j < p->nmodels; j++)
        if (s_price(c, p->models[j]) < s_price(c, best))
            best = p->models[j];
    return best;
}

/* The cheapest model served by a usable chain provider (ties: chain order). */
static const char *s_cheapest(const rt_config_t *c, bool use_all, uint64_t now,
                              const char *fallback)
{
    const char *best = NULL;
    double best_price = 0;
    for (size_t i = 0; i < c->nchain; i++) {
        rt_provider_t *p = c->chain[i];
        if (!use_all && !rt_provider_available(p, now))
            continue;
        for (size_t j = 0; j < p->nmodels; j++) {
            double price = s_price(c, p->models[j]);
            if (!best || price < best_price)
                best = p->models[j], best_price = price;
        }
    }
    return best ? best : fallback;
}

static const char *s_rule_model(const rt_config_t *c, const char *task_type)
{
    for (size_t i = 0; task_type && i < c->nroutes; i++)
        for (size_t j = 0; j < c->routes[i].ntask_types; j++)
            if (strcasecmp(c->routes[i].task_types[j], task_type) == 0)
                return c->routes[i].model;
    return c->default_model;
}

static void s_override(const rt_config_t *c, rt_provider_t *p, const char *model,
                       rt_plan_t plans[3])
{
    const char *m = rt_stand_in(c, p, model ? model : c->default_model);
    for (int s = 0; s < 3; s++) {
        plans[s].n = 0;
        if (s != RT_EXCEEDED || s_price(c, m) == 0)
            s_push(&plans[s], p, m);
    }
}

rt_plan_error_t rt_plan(const rt_config_t *c, const rt_request_t *rq, uint64_t now,
                        rt_plan_t plans[3])
{
    const char *want =
        rq->model && *rq->model && strcmp(rq->model, "auto") != 0 ? rq->model : NULL;
    if (rq->provider && *rq->provider) {
        rt_provider_t *p = rt_provider_find(c, rq->provider);
        if (!p)
            return RT_PLAN_UNKNOWN_PROVIDER;
        s_override(c, p, want && rt_model_known(c, want) ? want : NULL, plans);
        return RT_PLAN_OK;
    }
    if (want && !rt_model_known(c, want))
        return RT_PLAN_UNKNOWN_MODEL;
    const char *model = want ? want : s_rule_model(c, rq->task_type);
    bool use_all = !s_any_available(c, now);
    const char *cheapest = s_cheapest(c, use_all, now, model);
    s_fill(c, model, use_all, now, false, false, &plans[RT_NORMAL]);
    s_fill(c, cheapest, use_all, now, false, true, &plans[RT_NEAR]);
    s_fill(c, cheapest, use_all, now, true, true, &plans[RT_EXCEEDED]);
    return RT_PLAN_OK;
}

const char *rt_window_name(rt_window_t w)
{
    static const char *const names[] = {"daily", "weekly", "monthly"};
    return names[w];
}

void rt_window_bounds(rt_window_t w, int64_t now, int64_t *start, int64_t *end)
{
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (w == RT_WEEKLY)
        tm.tm_mday -= (tm.tm_wday + 6) % 7; /* back to Monday */
    else if (w == RT_MONTHLY)
        tm.tm_mday = 1;
    *start = (int64_t)timegm(&tm);
    if (w == RT_DAILY)
        tm.tm_mday += 1;
    else if (w == RT_WEEKLY)
        tm.tm_mday += 7;
    else
        tm.tm_mon += 1;
    *end = (int64_t)timegm(&tm);
}
