/* main.c - vapora-llm-router: OpenAI/Anthropic-compatible LLM gateway.
 *
 * Wiring only: loads the router's configuration (config.c) and its callers
 * (caller.c), says in the log and in GET /health what an operator should
 * know of them, opens the shared ledger in data_dir (ledger.c) and the
 * budget book beside it (admit.c), puts curl's multi interface on the
 * worker's loop (common/curlm.c), starts the usage flush (usage.c) and the
 * upstream handles (upstream.c) and adds the routes (routes.c); the service
 * state they share is router.h's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "router.h"
#include "admit.h"
#include "call.h"
#include "routes.h"
#include "log.h"
#include "schema.h"
#include "alloc.h"

static router_t s_rt;

/* A warning for the log and GET /health. */
static void s_warn(worker_t *w, const char *text)
{
    log_warn("llm-router: %s", text);
    worker_add_warning(w, text);
}

/* Providers left out for want of the key their kind needs. */
static void s_warn_keyless(worker_t *w, const rt_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nproviders; i++) {
        if (!cfg->providers[i].keyless)
            continue;
        char *t =
            xasprintf("provider %s: no api_key, skipped (kind %s needs one)",
                      cfg->providers[i].name, wire_kind_name(cfg->providers[i].kind));
        s_warn(w, t);
        free(t);
    }
}

/* Anonymous callers from anywhere, on a socket reachable beyond loopback:
 * anyone who reaches it may spend every budget. */
static void s_warn_anonymous(worker_t *w, const callers_t *cs)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = worker_listen_fd(w);
    if (callers_anonymous(cs) != CALLER_ANON_YES || fd < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        caller_addr_is_loopback((struct sockaddr *)&ss))
        return;
    s_warn(w, "[router] anonymous = yes and the router listens beyond loopback: "
              "anyone who can reach it may spend every budget without a key");
}

static int s_load_callers(worker_t *w, router_t *rt)
{
    char err[512];
    rt->callers = callers_load(worker_cfg(w), err, sizeof err);
    if (!rt->callers) {
        log_error("llm-router: %s", err);
        return -EINVAL;
    }
    s_warn_anonymous(w, rt->callers);
    s_warn_keyless(w, rt->cfg);
    return 0;
}

/* The ledger in data_dir (made 0700 when missing), or [router] database,
 * and the budget book beside it (admit.h). */
static int s_open_ledger(router_t *rt, const cfg_t *cfg)
{
    char err[512];
    const char *dir = cfg_get_str(cfg, "supervisor", "data_dir", "data");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        log_err(errno, "creating data_dir %s", dir);
        return -EIO;
    }
    const char *db = cfg_get(cfg, "router", "database");
    char *path = db && *db ? xstrdup(db) : xasprintf("%s/llm-router.db", dir);
    rt->ledger = ledger_open(path, rt->cfg->synchronous, err, sizeof err);
    if (!rt->ledger)
        log_error("llm-router: %s", err);
    int rc = rt->ledger && admit_open(rt, path) == 0 ? 0 : -EIO;
    free(path);
    return rc;
}

static int s_setup(worker_t *w)
{
    router_t *rt = &s_rt;
    char err[512];
    list_init(&rt->calls);
    list_init(&rt->spare_calls);
    rt->w = w;
    rt->loop = worker_loop(w);
    rt->pool = worker_pool(w);
    const cfg_t *cfg = worker_cfg(w);
    rt->cfg = rt_config_load(cfg, err, sizeof err);
    if (!rt->cfg) {
        log_error("llm-router: %s", err);
        return -EINVAL;
    }
    if (s_open_ledger(rt, cfg) < 0 || s_load_callers(w, rt) < 0)
        return -EINVAL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rt->curlm = curlm_new(rt->loop, 0, 256);
    if (!rt->curlm) {
        log_error("llm-router: curl_multi_init failed");
        return -ENOMEM;
    }
    rt->usage = usage_new(w, rt->ledger);
    rt->upstream = upstream_new(rt->cfg, rt->loop, rt->curlm);
    routes_add(rt);
    log_info("llm-router: %zu providers, %zu priced models, %zu routes, %zu budgets, "
             "%zu caller keys",
             rt->cfg->nproviders, rt->cfg->nmodels, rt->cfg->nroutes, rt->cfg->nbudgets,
             callers_count(rt->callers));
    return 0;
}

static void s_teardown(worker_t *w)
{
    UNUSED(w);
    router_t *rt = &s_rt;
    if (rt->curlm)
        call_abort_all(rt);
    call_free_spares(rt);
    curlm_destroy(&rt->curlm);
    upstream_destroy(&rt->upstream);
    usage_destroy(&rt->usage);
    admit_close(rt);
    ledger_destroy(&rt->ledger);
    callers_destroy(&rt->callers);
    rt_config_destroy(&rt->cfg);
    curl_global_cleanup();
}

/* --check: providers, models, budgets, routing and callers load. */
static bool s_check(const cfg_t *cfg, char *err, size_t errlen)
{
    rt_config_t *c = rt_config_load(cfg, err, errlen);
    bool ok = c != NULL;
    rt_config_destroy(&c);
    return ok;
}

static const worker_service_t s_service = {
    .name = "llm-router",
    .default_listen = "0.0.0.0:8003",
    .schema = &router_schema,
    .setup = s_setup,
    .teardown = s_teardown,
    .check = s_check,
};

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &s_service);
}
