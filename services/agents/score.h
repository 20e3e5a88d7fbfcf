/* score.h - how an agent is chosen among the candidates for a task, and
 * what it learned: the original VAPORA's formula.
 *
 *   score      = 0.3·base + 0.5·expertise + 0.2·confidence
 *   base       = success_rate / (1 + load),  load = in_flight / max_concurrent
 *   expertise  = the agent's recency-weighted success rate on the task type
 *   confidence = min(runs on the type / 20, 1)
 *
 * Recency: a run of the last 7 days weighs 3, an older one e^(-(days-7)/7)
 * (1 at 7 days, decaying by e every further week). An agent with no run at
 * all has the neutral success rate SCORE_PRIOR, so a new agent is tried
 * against one that keeps failing. An agent at max_concurrent is not a
 * candidate. When no candidate has any history, the least loaded wins,
 * then the least recently used. Pure; any thread. */
#ifndef VAPORA_AGENTS_SCORE_H
#define VAPORA_AGENTS_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCORE_PRIOR 0.5
#define SCORE_FULL_CONFIDENCE_RUNS 20
#define SCORE_RECENT_DAYS 7.0

/* One past run on a task type, for expertise. */
typedef struct score_run {
    bool success;
    int64_t at; /* unix seconds */
} score_run_t;

/* The weight of a run that ended age_s seconds ago. */
double score_weight(double age_s);
/* Recency-weighted success rate of runs[0..n) at time now (0 when n == 0). */
double score_expertise(const score_run_t *runs, size_t n, int64_t now);
/* min(n / 20, 1). */
double score_confidence(unsigned n);

/* What the choice knows of one candidate. */
typedef struct score_cand {
    const char *name;
    unsigned in_flight, max_concurrent;
    unsigned runs;       /* every run of the agent, any type */
    unsigned successes;  /* of those */
    unsigned type_runs;  /* runs on this task type (the last 100 at most) */
    double expertise;    /* score_expertise of those */
    uint64_t last_used;  /* when it last started a run (any clock; 0: never) */
    /* Filled by score_rank: */
    double load, success_rate, base, confidence, total;
    bool full;
} score_cand_t;

/* Computes each candidate's terms and sorts c[0..n) best first, full ones
 * (in_flight >= max_concurrent) last. Returns how many are not full. */
size_t score_rank(score_cand_t *c, size_t n);

#endif
