/* plan.c - routing decisions: which model, on which providers, in which
 * order, for each budget state; provider health. See plan.h. */
#define _GNU_SOURCE
#include <string.h>
#include <strings.h>

#include "plan.h"
#include "base.h"

static double s_price(const rt_config_t *c, const char *model)
{
    const rt_model_t *m = rt_model_find(c, model);
    return m ? m->input_usd_per_mtok + m->output_usd_per_mtok : 0;
}

const char *rt_state_name(rt_state_t s)
{
    static const char *const names[] = {"normal", "near", "exceeded"};
    return names[s];
}

const char *rt_stand_in(const rt_config_t *c, const rt_provider_t *p, const char *model)
{
    const char *own = rt_provider_model(p, model);
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

/* Whether p may be asked at now: it has the key its kind needs, and is out
 * of cooldown (or use_all: every usable one is in cooldown). */
static bool s_usable(const rt_provider_t *p, bool use_all, uint64_t now)
{
    return !p->keyless && (use_all || rt_provider_available(p, now));
}

/* Whether at least one chain provider is usable and out of cooldown. */
static bool s_any_available(const rt_config_t *c, uint64_t now)
{
    for (size_t i = 0; i < c->nchain; i++)
        if (s_usable(c->chain[i], false, now))
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

static const char *s_provider_cheapest(const rt_config_t *c, const rt_provider_t *p);

/* The model first, on the first usable chain provider serving it (or on the
 * first provider outside the chain serving it), then the rest of the chain
 * with stand-ins. free_only keeps only models priced 0. */
static void s_fill(const rt_config_t *c, const char *model, bool use_all, uint64_t now,
                   bool free_only, bool cheap, rt_plan_t *plan)
{
    plan->n = 0;
    for (size_t i = 0; i < c->nchain; i++) {
        rt_provider_t *p = c->chain[i];
        if (s_usable(p, use_all, now) && rt_provider_serves(p, model))
            s_push(plan, p, rt_provider_model(p, model));
    }
    for (size_t i = 0; plan->n == 0 && i < c->nproviders; i++) {
        rt_provider_t *p = &c->providers[i];
        if (!s_in_chain(c, p) && s_usable(p, use_all, now) &&
            rt_provider_serves(p, model))
            s_push(plan, p, rt_provider_model(p, model));
    }
    for (size_t i = 0; i < c->nchain; i++) {
        rt_provider_t *p = c->chain[i];
        if (s_usable(p, use_all, now))
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
        if (!s_usable(p, use_all, now))
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
        if (!p->keyless && (s != RT_EXCEEDED || s_price(c, m) == 0))
            s_push(&plans[s], p, m);
    }
}

int rt_plan(const rt_config_t *c, const rt_request_t *rq, uint64_t now,
            rt_plan_t plans[3])
{
    const char *want =
        rq->model && *rq->model && strcmp(rq->model, "auto") != 0 ? rq->model : NULL;
    if (rq->provider && *rq->provider) {
        rt_provider_t *p = rt_provider_find(c, rq->provider);
        if (!p)
            return VP_EUNKNOWN_PROVIDER;
        s_override(c, p, want && rt_model_known(c, want) ? want : NULL, plans);
        return 0;
    }
    if (want && !rt_model_known(c, want))
        return VP_EUNKNOWN_MODEL;
    const char *model = want ? want : s_rule_model(c, rq->task_type);
    bool use_all = !s_any_available(c, now);
    const char *cheapest = s_cheapest(c, use_all, now, model);
    s_fill(c, model, use_all, now, false, false, &plans[RT_NORMAL]);
    s_fill(c, cheapest, use_all, now, false, true, &plans[RT_NEAR]);
    s_fill(c, cheapest, use_all, now, true, true, &plans[RT_EXCEEDED]);
    return 0;
}
