/* plan.h - the LLM router's routing decisions: for a request, the ordered
 * attempts (provider, model) for each budget state, and the per-worker
 * health of providers (failures in a row, cooldown, latency) that leaves a
 * provider out of plans for a while.
 *
 * DESIGN. rt_plan() is pure apart from reading provider health, so unit
 * tests drive it directly. Plans borrow every name from the configuration
 * (config.h), never from the request. Health is updated after each attempt,
 * on the loop thread only. */
#ifndef VAPORA_ROUTER_PLAN_H
#define VAPORA_ROUTER_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "vp_error.h"

/* Budget states, in the order of the plans. */
typedef enum rt_state { RT_NORMAL, RT_NEAR, RT_EXCEEDED } rt_state_t;
/* "normal" | "near" | "exceeded". */
const char *rt_state_name(rt_state_t s);

#define RT_MAX_ATTEMPTS RT_MAX_CHAIN

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

/* Fills plans[RT_NORMAL..RT_EXCEEDED] for rq at time now (loop_now_ms):
 *  normal   - the chosen model on the first chain provider serving it (or
 *             the override provider, alone), then every other available
 *             chain provider with the model standing in for it there;
 *  near     - the cheapest model among available chain providers, then
 *             the others as above;
 *  exceeded - only models priced 0.
 * Providers in cooldown are left out unless every one is; providers whose
 * kind needs a key and that have none (keyless) always are, so a plan may
 * be empty in every state (an override provider without its key, a chain
 * of such providers). Returns 0, or
 * VP_EUNKNOWN_MODEL when rq's model names no configured model,
 * VP_EUNKNOWN_PROVIDER when its provider names no provider. */
int rt_plan(const rt_config_t *c, const rt_request_t *rq, uint64_t now,
            rt_plan_t plans[3]);

/* The model that stands in for `model` on provider p: model itself when p
 * serves it, else the first of its equivalents p serves, else p's first. */
const char *rt_stand_in(const rt_config_t *c, const rt_provider_t *p, const char *model);

/* Health bookkeeping after an attempt (loop thread). */
void rt_provider_success(const rt_config_t *c, rt_provider_t *p, double latency_ms);
void rt_provider_failure(const rt_config_t *c, rt_provider_t *p, uint64_t now);
/* Whether p is out of cooldown at now (loop_now_ms). */
bool rt_provider_available(const rt_provider_t *p, uint64_t now);

#endif
