/* main.c - vapora-llm-router: OpenAI/Anthropic-compatible LLM gateway.
 *
 * Wiring only: loads the router's configuration (config.c), opens the
 * shared ledger in data_dir (ledger.c), puts curl's multi interface on the
 * worker's loop (common/curlm.c), starts the usage flush (usage.c) and adds
 * the routes (routes.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "gateway.h"
#include "log.h"
#include "schema.h"
#include "alloc.h"

static gateway_t s_gw;

static int s_setup(worker_t *w)
{
    gateway_t *gw = &s_gw;
    char err[512];
    gw->w = w;
    gw->loop = worker_loop(w);
    gw->pool = worker_pool(w);
    const cfg_t *cfg = worker_cfg(w);
    gw->cfg = rt_config_load(cfg, err, sizeof err);
    if (!gw->cfg) {
        log_error("llm-router: %s", err);
        return -EINVAL;
    }
    const char *dir = cfg_get_str(cfg, "supervisor", "data_dir", "data");
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_err(errno, "creating data_dir %s", dir);
        return -EIO;
    }
    const char *db = cfg_get(cfg, "router", "database");
    char *path = db && *db ? xstrdup(db) : xasprintf("%s/llm-router.db", dir);
    gw->ledger = ledger_open(path, err, sizeof err);
    free(path);
    if (!gw->ledger) {
        log_error("llm-router: %s", err);
        return -EIO;
    }
    int released = ledger_release_dead(gw->ledger);
    if (released > 0)
        log_info("llm-router: released the reservations of %d exited workers",
                 released);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    gw->curlm = curlm_new(gw->loop, 0, 256);
    if (!gw->curlm) {
        log_error("llm-router: curl_multi_init failed");
        return -ENOMEM;
    }
    usage_start(gw);
    routes_add(gw);
    log_info("llm-router: %zu providers, %zu priced models, %zu routes, %zu budgets",
             gw->cfg->nproviders, gw->cfg->nmodels, gw->cfg->nroutes,
             gw->cfg->nbudgets);
    return 0;
}

static void s_teardown(worker_t *w)
{
    UNUSED(w);
    gateway_t *gw = &s_gw;
    if (gw->curlm)
        call_abort_all(gw);
    curlm_destroy(&gw->curlm);
    if (gw->ledger)
        usage_stop(gw);
    ledger_close(&gw->ledger);
    rt_config_destroy(&gw->cfg);
    curl_global_cleanup();
}

static const worker_service_t s_service = {
    .name = "llm-router",
    .default_listen = "0.0.0.0:8003",
    .schema = &router_schema,
    .setup = s_setup,
    .teardown = s_teardown,
};

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &s_service);
}
