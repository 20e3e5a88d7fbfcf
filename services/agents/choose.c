/* choose.c - see choose.h. */
#define _GNU_SOURCE
#include "choose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "infer.h"

static void s_infer(const agents_config_t *c, const choose_task_t *t, choice_t *out)
{
    char *text = xasprintf("%s\n%s", t->title ? t->title : "",
                           t->description ? t->description : "");
    int best = infer_best(text, c->task_types, c->ntask_types);
    out->inferred = best >= 0;
    snprintf(out->task_type, sizeof out->task_type, "%s",
             best >= 0 ? c->task_types[best] : (t->type && *t->type ? t->type : "feature"));
    free(text);
}

static bool s_matches(const agent_def_t *d, const choose_task_t *t, const char *type,
                      const char *role, int pass)
{
    if (pass == 0)
        return t->role ? strcmp(d->role, t->role) == 0 : agent_def_claims(d, type);
    return strcmp(d->role, role) == 0;
}

static void s_add(agents_t *a, choice_t *out, const agent_def_t *d, int64_t now)
{
    score_cand_t *c = &out->cands[out->n];
    memset(c, 0, sizeof *c);
    c->name = d->name;
    c->max_concurrent = d->max_concurrent;
    c->in_flight = a->slots ? slots_in_flight(a->slots, d->name) : 0;
    profile_totals_t tot;
    profiles_totals(a->profiles, d->name, &tot);
    c->last_used = a->slots ? slots_last_used(a->slots, d->name) : (uint64_t)tot.last_run_at;
    profiles_fill(a->profiles, out->task_type, now, c);
    out->defs[out->n++] = d;
}

void choose_rank(agents_t *a, const choose_task_t *t, const bool *excluded, choice_t *out)
{
    const agents_config_t *cfg = a->cfg;
    memset(out, 0, sizeof *out);
    s_infer(cfg, t, out);
    out->cands = xcalloc(cfg->nagents ? cfg->nagents : 1, sizeof *out->cands);
    out->defs = xcalloc(cfg->nagents ? cfg->nagents : 1, sizeof *out->defs);
    int64_t now = (int64_t)time(NULL);
    for (int pass = 0; pass < 2 && out->n == 0; pass++) {
        if (pass == 1 && t->role)
            break; /* a named role's agents or none */
        for (size_t i = 0; i < cfg->nagents; i++)
            if (!(excluded && excluded[i]) &&
                s_matches(&cfg->agents[i], t, out->task_type, cfg->default_role, pass))
                s_add(a, out, &cfg->agents[i], now);
        out->why = pass == 0 ? (t->role ? "the task's role" : "agents claiming the task type")
                             : "the default role";
    }
    /* score_rank sorts cands; carry the defs along by name. */
    out->open = score_rank(out->cands, out->n);
    for (size_t i = 0; i < out->n; i++)
        out->defs[i] = agents_config_find(cfg, out->cands[i].name);
}

void choice_clear(choice_t *c)
{
    free(c->cands);
    free(c->defs);
    memset(c, 0, sizeof *c);
}

json_t *choice_json(const choice_t *c)
{
    json_t *list = json_array();
    for (size_t i = 0; i < c->n; i++) {
        const score_cand_t *s = &c->cands[i];
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:s,s:f,s:{s:f,s:f,s:f,s:f,s:f,s:I,s:I},s:b}", "agent",
                            s->name, "role", c->defs[i]->role, "model", c->defs[i]->model,
                            "score", s->total, "terms", "base", s->base, "expertise",
                            s->expertise, "confidence", s->confidence, "load", s->load,
                            "success_rate", s->success_rate, "in_flight",
                            (json_int_t)s->in_flight, "runs_on_type",
                            (json_int_t)s->type_runs, "available", !s->full));
    }
    return json_pack("{s:s,s:b,s:s,s:o}", "task_type", c->task_type, "inferred", c->inferred,
                     "candidates_from", c->why ? c->why : "no agent", "candidates", list);
}
