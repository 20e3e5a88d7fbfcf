/* profiles.c - see profiles.h. */
#define _GNU_SOURCE
#include "profiles.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef struct rec {
    bool success;
    int64_t at;
    int64_t latency_ms;
    double cost_usd;
} rec_t;

/* The last PROFILE_RUNS records of one agent on one task type (a ring). */
typedef struct typed {
    char *task_type;
    rec_t ring[PROFILE_RUNS];
    size_t n, head; /* head: where the next record goes */
} typed_t;

typedef struct agent_prof {
    char *name;
    unsigned runs, successes;
    double latency_sum, cost_sum;
    int64_t last_at;
    typed_t *types;
    size_t ntypes;
} agent_prof_t;

struct profiles {
    agent_prof_t *agents;
    size_t n;
};

profiles_t *profiles_new(void)
{
    return xcalloc(1, sizeof(profiles_t));
}

void profiles_destroy(profiles_t **pp)
{
    profiles_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t t = 0; t < p->agents[i].ntypes; t++)
            free(p->agents[i].types[t].task_type);
        free(p->agents[i].types);
        free(p->agents[i].name);
    }
    free(p->agents);
    free(p);
    *pp = NULL;
}

static agent_prof_t *s_agent(const profiles_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->agents[i].name, name) == 0)
            return &p->agents[i];
    return NULL;
}

static typed_t *s_typed(const agent_prof_t *a, const char *type)
{
    for (size_t i = 0; a && i < a->ntypes; i++)
        if (strcasecmp(a->types[i].task_type, type) == 0)
            return &a->types[i];
    return NULL;
}

void profiles_add(profiles_t *p, const exec_row_t *e)
{
    agent_prof_t *a = s_agent(p, e->agent);
    if (!a) {
        p->agents = xrealloc(p->agents, (p->n + 1) * sizeof *p->agents);
        a = memset(&p->agents[p->n++], 0, sizeof *a);
        a->name = xstrdup(e->agent);
    }
    a->runs++;
    a->successes += e->success;
    a->latency_sum += (double)e->latency_ms;
    a->cost_sum += e->cost_usd;
    if (e->at > a->last_at)
        a->last_at = e->at;
    typed_t *t = s_typed(a, e->task_type);
    if (!t) {
        a->types = xrealloc(a->types, (a->ntypes + 1) * sizeof *a->types);
        t = memset(&a->types[a->ntypes++], 0, sizeof *t);
        t->task_type = xstrdup(e->task_type);
    }
    t->ring[t->head] = (rec_t){e->success, e->at, e->latency_ms, e->cost_usd};
    t->head = (t->head + 1) % PROFILE_RUNS;
    if (t->n < PROFILE_RUNS)
        t->n++;
}

static double s_expertise(const typed_t *t, int64_t now)
{
    score_run_t runs[PROFILE_RUNS];
    for (size_t i = 0; i < t->n; i++)
        runs[i] = (score_run_t){t->ring[i].success, t->ring[i].at};
    return score_expertise(runs, t->n, now);
}

void profiles_fill(const profiles_t *p, const char *task_type, int64_t now,
                   score_cand_t *c)
{
    const agent_prof_t *a = s_agent(p, c->name);
    const typed_t *t = s_typed(a, task_type);
    c->runs = a ? a->runs : 0;
    c->successes = a ? a->successes : 0;
    c->type_runs = t ? (unsigned)t->n : 0;
    c->expertise = t ? s_expertise(t, now) : 0;
}

void profiles_totals(const profiles_t *p, const char *agent, profile_totals_t *out)
{
    const agent_prof_t *a = s_agent(p, agent);
    memset(out, 0, sizeof *out);
    if (!a || !a->runs)
        return;
    out->runs = a->runs;
    out->successes = a->successes;
    out->success_rate = (double)a->successes / a->runs;
    out->avg_latency_ms = a->latency_sum / a->runs;
    out->avg_cost_usd = a->cost_sum / a->runs;
    out->last_run_at = a->last_at;
}

static json_t *s_type_json(const typed_t *t, int64_t now)
{
    unsigned ok = 0;
    double lat = 0, cost = 0;
    for (size_t i = 0; i < t->n; i++) {
        ok += t->ring[i].success;
        lat += (double)t->ring[i].latency_ms;
        cost += t->ring[i].cost_usd;
    }
    return json_pack("{s:s,s:I,s:I,s:f,s:f,s:f,s:f}", "task_type", t->task_type, "runs",
                     (json_int_t)t->n, "successes", (json_int_t)ok, "expertise",
                     s_expertise(t, now), "confidence", score_confidence((unsigned)t->n),
                     "avg_latency_ms", t->n ? lat / t->n : 0, "avg_cost_usd",
                     t->n ? cost / t->n : 0);
}

json_t *profiles_json(const profiles_t *p, const char *agent, int64_t now)
{
    json_t *out = json_array();
    const agent_prof_t *a = s_agent(p, agent);
    for (size_t i = 0; a && i < a->ntypes; i++)
        json_array_append_new(out, s_type_json(&a->types[i], now));
    return out;
}
