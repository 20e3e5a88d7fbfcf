/* main.c - vapora-agents: the agent registry, scored assignment, and the
 * execution of assigned tasks through the LLM router.
 *
 * Wiring only: the configuration (config.c), the database (db.c), the
 * shared slots (slots.c), the profiles (profiles.c), the clients of the
 * backend (kanban.c, identity.c) and of the router (llm.c), the two
 * JetStream consumers (assignments: run.c; outcomes: outcome.c), the bus
 * between workers (bus.c), the API (routes.c, watch.c) and the metrics
 * (stats.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "alloc.h"
#include "bus.h"
#include "file.h"
#include "identity.h"
#include "log.h"
#include "outcome.h"
#include "routes.h"
#include "run.h"
#include "schema.h"
#include "stats.h"
#include "watch.h"

#define TICK_MS 100
#define AGENTS_BACKEND_CONNS 32L /* per worker, to the backend (kanban, identity) */
#define REFRESH_MS 1000

static agents_t s_agents;

static void s_on_bus(const char *subject, const json_t *msg, void *ud)
{
    agents_t *a = ud;
    const char *run = json_string_value(json_object_get(msg, "run_id"));
    const char *task = json_string_value(json_object_get(msg, "task_id"));
    const char *why = json_string_value(json_object_get(msg, "reason"));
    json_t *v = json_object_get(msg, "version");
    if (strcmp(subject, BUS_SUPERSEDE) == 0) {
        if (task && json_is_integer(v))
            run_supersede(a, task, json_integer_value(v));
    } else if (strcmp(subject, BUS_CANCEL) != 0) {
        watch_on_bus(a, subject, msg);
    } else if (run || task)
        run_cancel(a, run, run ? NULL : task, why ? why : "canceled");
}

static void s_on_assigned(natsMsg *msg, void *ud)
{
    run_assigned(ud, msg);
}

static void s_on_outcome(natsMsg *msg, void *ud)
{
    agents_t *a = ud;
    outcome_on_msg(a, a->outcome_q, msg);
}

static void s_on_deleted(natsMsg *msg, void *ud)
{
    agents_t *a = ud;
    outcome_on_msg(a, a->deleted_q, msg);
}

/* ---- the profiles follow every worker's execution records ---- */

typedef struct refresh {
    pool_work_t work;
    agents_t *a;
    exec_row_t *rows;
    size_t n, cap;
    int64_t last;
    int rc;
} refresh_t;

static void s_collect(const exec_row_t *e, void *ud)
{
    refresh_t *r = ud;
    if (r->n == r->cap)
        r->rows = xrealloc(r->rows, (r->cap = r->cap ? r->cap * 2 : 64) * sizeof *r->rows);
    r->rows[r->n++] = *e;
}

static void s_refresh_work(pool_work_t *w)
{
    refresh_t *r = container_of(w, refresh_t, work);
    r->rc = adb_exec_since(r->a->db, r->a->exec_seq, s_collect, r, &r->last);
}

static void s_refresh_done(pool_work_t *w, int status)
{
    refresh_t *r = container_of(w, refresh_t, work);
    agents_t *a = r->a;
    if (status == 0 && r->rc == 0) {
        for (size_t i = 0; i < r->n; i++)
            profiles_add(a->profiles, &r->rows[i]);
        a->exec_seq = r->last;
    }
    a->exec_loading = false;
    free(r->rows);
    free(r);
}

static void s_refresh(agents_t *a)
{
    if (a->exec_loading || !a->pool)
        return;
    refresh_t *r = xcalloc(1, sizeof *r);
    r->a = a;
    a->exec_loading = true;
    if (pool_submit(a->pool, &r->work, s_refresh_work, s_refresh_done) < 0) {
        a->exec_loading = false;
        free(r);
    }
}

/* The router key: from the config, or from the file the router writes
 * (read until it exists). */
static void s_router_key(agents_t *a)
{
    if (a->router_key && a->router_key[0])
        return;
    char *k = a->cfg->router_key[0] ? xstrdup(a->cfg->router_key)
                                    : file_read_all(a->cfg->router_key_file, NULL);
    if (!k)
        return;
    k[strcspn(k, "\r\n")] = '\0';
    free(a->router_key);
    a->router_key = k;
}

static void s_tick(loop_t *loop, loop_timer_t *t, void *ud)
{
    (void)loop;
    (void)t;
    agents_t *a = ud;
    static unsigned n;
    run_unpark(a);
    run_progress(a);
    if (++n % (REFRESH_MS / TICK_MS) == 0) {
        s_refresh(a);
        s_router_key(a);
        watch_tick(a);
    }
}

/* Slots freed during this turn of the loop: the parked runs are walked
 * once for all of them, not once per freed slot. */
static int64_t s_unpark_hook(loop_t *loop, void *ud)
{
    (void)loop;
    agents_t *a = ud;
    if (a->unpark_due) {
        a->unpark_due = false;
        run_unpark(a);
    }
    return -1;
}

/* ---- set-up and teardown ---- */

static unsigned s_total_slots(const agents_config_t *c)
{
    unsigned n = 0;
    for (size_t i = 0; i < c->nagents; i++)
        n += c->agents[i].max_concurrent;
    return n < 20000 ? n : 20000;
}

static void s_consumers(agents_t *a)
{
    natsc_t *nc = worker_nats(a->w);
    if (!nc) {
        log_warn("agents: [nats] url is not set; no assignment can reach the agents");
        return;
    }
    unsigned slots = s_total_slots(a->cfg);
    /* The workers keep their shares of the runs even (loadshare.h): a
     * worker's memory follows the runs it holds. */
    char *share = xasprintf("%s/agents-assign.share", a->cfg->data_dir);
    jsq_config_t assign = {.stream = "VAPORA", .durable = "agents-assign",
                           .filter = "vapora.tasks.assigned",
                           .ack_wait_ms = a->cfg->ack_wait_s * 1000,
                           /* one more: a run whose last delivery ends with its
                            * worker is made dead by it (run_step_reap) */
                           .max_deliver = a->cfg->max_deliveries + 1,
                           .max_ack_pending = (int64_t)slots * 4 + 1000,
                           .max_local = slots + 64,
                           .share_path = share};
    /* Two consumers, not one of vapora.tasks.*: the created and assigned
     * events, two of a task's five, are not theirs. (Earlier builds read
     * vapora.tasks.* as agents-outcome; a server that has it keeps it,
     * unread.) No bound on deliveries: they are naked only while the
     * agents' database fails or the pool is full (outcome.c), and an
     * outcome is never dropped for that. */
    jsq_config_t outcome = {.stream = "VAPORA", .durable = "agents-updates",
                            .filter = "vapora.tasks.updated", .ack_wait_ms = 30000,
                            .max_deliver = -1, .max_ack_pending = 10000, .max_local = 256};
    jsq_config_t deleted = outcome;
    deleted.durable = "agents-deletes";
    deleted.filter = "vapora.tasks.deleted";
    a->assign_q = jsq_new(a->loop, nc, &assign, s_on_assigned, a);
    free(share);
    a->outcome_q = jsq_new(a->loop, nc, &outcome, s_on_outcome, a);
    a->deleted_q = jsq_new(a->loop, nc, &deleted, s_on_deleted, a);
}

static int s_open(agents_t *a)
{
    char err[512];
    a->cfg = agents_config_load(worker_cfg(a->w), err, sizeof err);
    if (!a->cfg) {
        log_error("agents: %s", err);
        return -EINVAL;
    }
    if (file_mkdirs(a->cfg->data_dir, 0700) < 0)
        log_warn("agents: cannot create %s", a->cfg->data_dir);
    a->db = adb_open(a->cfg->database, a->cfg->synchronous, err, sizeof err);
    char *slots = xasprintf("%s/agents-slots", a->cfg->data_dir);
    a->slots = a->db ? slots_open(slots) : NULL;
    if (a->db && !a->slots)
        snprintf(err, sizeof err, "cannot open %s: %s", slots, strerror(errno));
    free(slots);
    if (!a->db || !a->slots) {
        log_error("agents: %s", err);
        return -EIO;
    }
    return 0;
}

static void s_load_profiles(const exec_row_t *e, void *ud)
{
    profiles_add(ud, e);
}

static int s_setup(worker_t *w)
{
    agents_t *a = &s_agents;
    memset(a, 0, sizeof *a);
    *a = (agents_t){.w = w, .loop = worker_loop(w), .pool = worker_pool(w),
                    .metrics = worker_metrics(w)};
    list_init(&a->runs);
    list_init(&a->parked);
    dbq_init(&a->dbq);
    int rc = s_open(a);
    if (rc < 0) {
        slots_destroy(&a->slots);
        adb_destroy(&a->db);
        agents_config_destroy(&a->cfg);
        return rc;
    }
    a->profiles = profiles_new();
    if (adb_exec_since(a->db, 0, s_load_profiles, a->profiles, &a->exec_seq) < 0)
        log_warn("agents: the learning history could not be read; starting without it");
    s_router_key(a);
    a->curlm = curlm_new(a->loop, 0, 256);
    /* Thousands of runs starting at once would otherwise open as many
     * connections to the backend, past its max_connections_per_ip; the
     * calls beyond these wait in curl's queue. */
    a->backend_curlm = curlm_new(a->loop, AGENTS_BACKEND_CONNS, AGENTS_BACKEND_CONNS);
    a->kanban = kanban_new(a->loop, a->backend_curlm, a->cfg);
    a->identity = identity_new(a->loop, a->backend_curlm, a->cfg);
    a->watch = watch_new(a);
    a->bus = bus_new(a, s_on_bus, a);
    stats_init(a);
    s_consumers(a);
    routes_add(a);
    a->tick = loop_add_timer(a->loop, TICK_MS, TICK_MS, s_tick, a);
    if (loop_add_before_sleep(a->loop, s_unpark_hook, a) < 0)
        return -ENOMEM;
    log_info("agents: %zu agents, routing through %s", a->cfg->nagents, a->cfg->router_url);
    return 0;
}

static void s_teardown(worker_t *w)
{
    (void)w;
    agents_t *a = &s_agents;
    a->pool = NULL; /* destroyed before teardown: saves now write in place */
    loop_cancel_timer(a->loop, &a->tick);
    run_abort_all(a); /* every delivery is naked: another worker takes it */
    jsq_destroy(&a->assign_q);
    jsq_destroy(&a->outcome_q);
    jsq_destroy(&a->deleted_q);
    watch_destroy(&a->watch);
    bus_destroy(&a->bus);
    identity_destroy(&a->identity);
    kanban_destroy(&a->kanban);
    curlm_destroy(&a->curlm);
    curlm_destroy(&a->backend_curlm);
    profiles_destroy(&a->profiles);
    slots_destroy(&a->slots);
    adb_destroy(&a->db);
    agents_config_destroy(&a->cfg);
    free(a->router_key);
    a->router_key = NULL;
}

/* A reload or a stop: no new assignment comes here; what runs finishes
 * (up to shutdown_timeout), what waits goes to another worker. */
static void s_drain(worker_t *w)
{
    (void)w;
    agents_t *a = &s_agents;
    if (a->assign_q)
        jsq_stop_fetching(a->assign_q);
    run_release_parked(a);
}

static bool s_busy(worker_t *w)
{
    (void)w;
    return !list_empty(&s_agents.runs);
}

/* --check: [agents] and every [agent:NAME] (prompts read) load. */
static bool s_check(const cfg_t *cfg, char *err, size_t errlen)
{
    agents_config_t *c = agents_config_load(cfg, err, errlen);
    bool ok = c != NULL;
    agents_config_destroy(&c);
    return ok;
}

static const worker_service_t s_service = {
    .name = "agents",
    .default_listen = "0.0.0.0:8002",
    .schema = &agents_schema,
    .setup = s_setup,
    .teardown = s_teardown,
    .drain = s_drain,
    .busy = s_busy,
    .nats_send_asap = true, /* a few publishes and acks per run */
    .check = s_check,
};

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &s_service);
}
