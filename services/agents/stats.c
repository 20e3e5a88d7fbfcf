/* stats.c - see stats.h. */
#define _GNU_SOURCE
#include "stats.h"

#include <stdio.h>
#include <string.h>

#include "base.h"
#include "list.h"
#include "now.h"
#include "sbuf.h"

static const double s_bounds[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

static const double s_fb_bounds[] = {0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
                                     0.015, 0.02, 0.05, 0.1, 0.25, 1, 5};

static void s_collect(sbuf_t *out, void *ud)
{
    agents_t *a = ud;
    sbuf_puts(out, "# HELP vapora_agents_runs_in_flight Runs of each agent in flight on "
                   "this host.\n# TYPE vapora_agents_runs_in_flight gauge\n");
    for (size_t i = 0; i < a->cfg->nagents; i++)
        sbuf_printf(out, "vapora_agents_runs_in_flight{agent=\"%s\"} %u\n",
                    a->cfg->agents[i].name,
                    a->slots ? slots_in_flight(a->slots, a->cfg->agents[i].name) : 0);
    size_t parked = 0;
    list_for_each(it, &a->parked) parked++;
    metrics_write_sample(out, "vapora_agents_runs_parked",
                         "Assignments on this worker waiting for a free agent.", "gauge",
                         "", (double)parked);
    metrics_write_sample(out, "vapora_agents_redeliveries_total",
                         "Assignments this worker got again (a crash, a timeout, a retry).",
                         "counter", "", (double)a->stats.redeliveries);
    metrics_write_sample(out, "vapora_agents_dead_letters_total",
                         "Runs that used every delivery and are dead.", "counter", "",
                         (double)a->stats.dead);
    metrics_write_sample(out, "vapora_agents_queue_pending",
                         "Assignments no worker has taken yet (the queue users wait in).",
                         "gauge", "", a->assign_q ? (double)jsq_pending(a->assign_q) : 0);
}

static int s_store_check(void *ud, char *buf, size_t len)
{
    agents_t *a = ud;
    size_t n = 0;
    int64_t since = 0;
    list_for_each(it, &a->runs) {
        const run_t *r = list_item(it, run_t, link);
        if (r->store_since && (!since || r->store_since < since))
            since = r->store_since;
        n += r->store_since != 0;
    }
    if (!n)
        return WORKER_HEALTHY;
    long long ago = (long long)(now_wall_ms() - since) / 1000;
    snprintf(buf, len,
             "the agents' database fails (a full disk?): %zu runs wait for it, for %lld s", n,
             ago > 0 ? ago : 0);
    return WORKER_DEGRADED;
}

void stats_init(agents_t *a)
{
    metrics_family(a->metrics, "vapora_agents_runs_total",
                   "Runs that reached a state, by role.", METRIC_COUNTER, NULL, 0);
    metrics_family(a->metrics, "vapora_agents_run_duration_seconds",
                   "Duration of finished runs, by role.", METRIC_HISTOGRAM, s_bounds,
                   sizeof s_bounds / sizeof s_bounds[0]);
    metrics_family(a->metrics, "vapora_agents_first_byte_seconds",
                   "From an assignment to the first byte of its answer, by role.",
                   METRIC_HISTOGRAM, s_fb_bounds, ARRAY_LEN(s_fb_bounds));
    metrics_add_collector(a->metrics, s_collect, a);
    worker_add_check(a->w, "storage", s_store_check, a);
}

void stats_store(run_t *r, bool ok)
{
    if (ok)
        r->store_since = 0;
    else if (!r->store_since)
        r->store_since = now_wall_ms();
}

void stats_first_byte(agents_t *a, const char *role, int64_t ms)
{
    char labels[96];
    snprintf(labels, sizeof labels, "role=\"%s\"", role[0] ? role : "none");
    metric_family_t *h = metrics_family(a->metrics, "vapora_agents_first_byte_seconds", NULL,
                                        METRIC_HISTOGRAM, s_fb_bounds, ARRAY_LEN(s_fb_bounds));
    metric_observe(metrics_series(h, labels), ms > 0 ? (double)ms / 1000.0 : 0);
}

void stats_run_state(agents_t *a, const run_row_t *row)
{
    char labels[128];
    const char *role = row->role[0] ? row->role : "none";
    snprintf(labels, sizeof labels, "role=\"%s\",state=\"%s\"", role, row->state);
    metric_family_t *f =
        metrics_family(a->metrics, "vapora_agents_runs_total", NULL, METRIC_COUNTER, NULL, 0);
    metric_inc(metrics_series(f, labels), 1);
    if (!row->finished_ms || !row->started_ms || !run_state_final(row->state))
        return;
    snprintf(labels, sizeof labels, "role=\"%s\"", role);
    metric_family_t *h = metrics_family(a->metrics, "vapora_agents_run_duration_seconds",
                                        NULL, METRIC_HISTOGRAM, s_bounds,
                                        sizeof s_bounds / sizeof s_bounds[0]);
    metric_observe(metrics_series(h, labels),
                   (double)(row->finished_ms - row->started_ms) / 1000.0);
}
