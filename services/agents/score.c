/* score.c - see score.h. */
#define _GNU_SOURCE
#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S 86400.0

double score_weight(double age_s)
{
    double days = age_s > 0 ? age_s / DAY_S : 0;
    if (days <= SCORE_RECENT_DAYS)
        return 3.0;
    return exp(-(days - SCORE_RECENT_DAYS) / SCORE_RECENT_DAYS);
}

double score_expertise(const score_run_t *runs, size_t n, int64_t now)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double w = score_weight((double)(now - runs[i].at));
        num += runs[i].success ? w : 0;
        den += w;
    }
    return den > 0 ? num / den : 0;
}

double score_confidence(unsigned n)
{
    double c = (double)n / SCORE_FULL_CONFIDENCE_RUNS;
    return c < 1 ? c : 1;
}

static void s_terms(score_cand_t *c)
{
    unsigned max = c->max_concurrent ? c->max_concurrent : 1;
    c->full = c->in_flight >= max;
    c->load = (double)c->in_flight / max;
    c->success_rate = c->runs ? (double)c->successes / c->runs : SCORE_PRIOR;
    c->base = c->success_rate / (1 + c->load);
    c->confidence = score_confidence(c->type_runs);
    if (!c->type_runs)
        c->expertise = 0;
    c->total = 0.3 * c->base + 0.5 * c->expertise + 0.2 * c->confidence;
}

static int s_cmp_num(double a, double b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

static int s_cmp(const void *pa, const void *pb, void *ud)
{
    const score_cand_t *a = pa, *b = pb;
    bool history = *(const bool *)ud;
    if (a->full != b->full)
        return a->full ? 1 : -1;
    int r = history ? s_cmp_num(b->total, a->total) : 0;
    if (!r)
        r = s_cmp_num(a->load, b->load);
    if (!r)
        r = a->last_used < b->last_used ? -1 : a->last_used > b->last_used;
    return r ? r : strcmp(a->name, b->name);
}

size_t score_rank(score_cand_t *c, size_t n)
{
    size_t open = 0;
    bool history = false;
    for (size_t i = 0; i < n; i++) {
        s_terms(&c[i]);
        open += !c[i].full;
        history = history || c[i].runs > 0;
    }
    qsort_r(c, n, sizeof *c, s_cmp, &history);
    return open;
}
