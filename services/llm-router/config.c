/* config.c - loads the router's sections of etc/vapora.conf into an
 * rt_config_t, checking every reference between them; the lookups over it
 * (providers, models, budgets, prices) and budget windows. See config.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "alloc.h"
#include "vp_error.h"

/* "provider:claude" -> "claude" when the section has type `type`. */
static const char *s_typed(const char *section, const char *type)
{
    size_t n = strlen(type);
    if (strncmp(section, type, n) == 0 && section[n] == ':' && section[n + 1])
        return section + n + 1;
    return NULL;
}

static void s_trim_slash(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = '\0';
}

static int s_load_provider(const cfg_t *cfg, const char *sec, const char *name,
                           rt_provider_t *p, char *err, size_t len)
{
    p->name = xstrdup(name);
    const char *kind = cfg_get(cfg, sec, "kind");
    if (!kind || wire_kind_parse(kind, &p->kind) < 0)
        return vp_errorf(err, len, -EINVAL,
                         "[%s] kind: must be openai, anthropic, gemini or ollama", sec);
    const char *url = cfg_get(cfg, sec, "base_url");
    if (!url || !*url)
        return vp_errorf(err, len, -EINVAL, "[%s] base_url: required", sec);
    if (strstr(url, "://") && strncmp(url, "http://", 7) != 0 &&
        strncmp(url, "https://", 8) != 0)
        return vp_errorf(err, len, -EINVAL,
                         "[%s] base_url: must be an http:// or https:// URL", sec);
    /* OLLAMA_HOST is often "host:port" alone. */
    p->base_url = strstr(url, "://") ? xstrdup(url) : xasprintf("http://%s", url);
    s_trim_slash(p->base_url);
    p->api_key = xstrdup(cfg_get_str(cfg, sec, "api_key", ""));
    p->keyless = p->kind != WIRE_OLLAMA && !*p->api_key;
    p->nmodels = cfg_split_list(cfg_get_str(cfg, sec, "models", ""), &p->models);
    if (p->nmodels == 0)
        return vp_errorf(err, len, -EINVAL, "[%s] models: list at least one model",
                         sec);
    return cfg_get_long(cfg, sec, "timeout", 120, 1, 3600, &p->timeout_s, err, len);
}

static int s_load_model(const cfg_t *cfg, const char *sec, const char *name,
                        rt_model_t *m, char *err, size_t len)
{
    m->name = xstrdup(name);
    m->nequivalents =
        cfg_split_list(cfg_get_str(cfg, sec, "equivalents", ""), &m->equivalents);
    if (cfg_get_double(cfg, sec, "input_usd_per_mtok", 0, 0, 1e6,
                       &m->input_usd_per_mtok, err, len) < 0)
        return -EINVAL;
    return cfg_get_double(cfg, sec, "output_usd_per_mtok", 0, 0, 1e6,
                          &m->output_usd_per_mtok, err, len);
}

static int s_load_route(const cfg_t *cfg, const char *sec, const char *name,
                        rt_route_t *r, char *err, size_t len)
{
    r->name = xstrdup(name);
    r->ntask_types =
        cfg_split_list(cfg_get_str(cfg, sec, "task_types", ""), &r->task_types);
    const char *model = cfg_get(cfg, sec, "model");
    if (!model || !*model)
        return vp_errorf(err, len, -EINVAL, "[%s] model: required", sec);
    r->model = xstrdup(model);
    if (r->ntask_types == 0)
        return vp_errorf(err, len, -EINVAL,
                         "[%s] task_types: list at least one task type", sec);
    return 0;
}

bool rt_role_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= 63 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        "._:@/-") == n;
}

static int s_load_budget(const cfg_t *cfg, const char *sec, const char *name,
                         rt_budget_t *b, char *err, size_t len)
{
    b->role = xstrdup(name);
    if (!rt_role_name_ok(name))
        return vp_errorf(
            err, len, -EINVAL,
            "[%s]: a role is 1 to 63 characters of A-Z, a-z, 0-9 and . _ : @ / -", sec);
    const char *w = cfg_get_str(cfg, sec, "window", "monthly");
    if (strcmp(w, "daily") == 0)
        b->window = RT_DAILY;
    else if (strcmp(w, "weekly") == 0)
        b->window = RT_WEEKLY;
    else if (strcmp(w, "monthly") == 0)
        b->window = RT_MONTHLY;
    else
        return vp_errorf(err, len, -EINVAL,
                         "[%s] window: must be daily, weekly or monthly, not '%s'", sec,
                         w);
    if (!cfg_get(cfg, sec, "limit_usd"))
        return vp_errorf(err, len, -EINVAL, "[%s] limit_usd: required", sec);
    if (cfg_get_double(cfg, sec, "limit_usd", 0, 0, 1e12, &b->limit_usd, err, len) < 0)
        return -EINVAL;
    return cfg_get_double(cfg, sec, "near_percent", 80, 0, 100, &b->near_percent, err,
                          len);
}

/* Loads every [TYPE:NAME] section into a fresh array of `size`-byte items. */
typedef int (*load_fn)(const cfg_t *, const char *, const char *, void *, char *,
                       size_t);

static int s_load_typed(const cfg_t *cfg, const char *type, size_t size, load_fn fn,
                        void **items, size_t *n, char *err, size_t len)
{
    size_t count = cfg_section_count(cfg);
    *items = xcalloc(count ? count : 1, size);
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        const char *sec = cfg_section_name(cfg, i);
        const char *name = s_typed(sec, type);
        if (!name)
            continue;
        void *item = (char *)*items + *n * size;
        (*n)++;
        if (fn(cfg, sec, name, item, err, len) < 0)
            return -EINVAL;
    }
    return 0;
}

static int s_load_routing(const cfg_t *cfg, rt_config_t *c, char *err, size_t len)
{
    char **names;
    size_t n =
        cfg_split_list(cfg_get_str(cfg, "routing", "fallback_chain", ""), &names);
    size_t room = n > c->nproviders ? n : c->nproviders; /* no chain: every provider */
    c->chain = xcalloc(room ? room : 1, sizeof *c->chain);
    for (size_t i = 0; i < n; i++) {
        rt_provider_t *p = rt_provider_find(c, names[i]);
        if (!p) {
            vp_errorf(err, len, -EINVAL,
                      "[routing] fallback_chain: no [provider:%s] section", names[i]);
            cfg_list_free(names, n);
            return -EINVAL;
        }
        c->chain[c->nchain++] = p;
    }
    cfg_list_free(names, n);
    if (c->nchain == 0) /* no chain: every provider, in file order */
        for (size_t i = 0; i < c->nproviders; i++)
            c->chain[c->nchain++] = &c->providers[i];
    if (cfg_get_long(cfg, "routing", "retries", 2, 0, 10, &c->retries, err, len) < 0 ||
        cfg_get_long(cfg, "routing", "cooldown_failures", 3, 1, 1000,
                     &c->cooldown_failures, err, len) < 0 ||
        cfg_get_double(cfg, "routing", "cooldown", 5, 0, 3600, &c->cooldown_s, err,
                       len) < 0)
        return -EINVAL;
    const char *dm = cfg_get(cfg, "routing", "default_model");
    if (dm && *dm)
        c->default_model = xstrdup(dm);
    else if (c->nproviders)
        c->default_model = xstrdup(c->chain[0]->models[0]);
    return 0;
}

/* Every model a route or equivalents name must be served by some provider. */
static int s_check_refs(const rt_config_t *c, char *err, size_t len)
{
    if (c->nproviders == 0)
        return vp_errorf(err, len, -EINVAL,
                         "no [provider:NAME] section: the router has nothing to call");
    if (c->nchain > RT_MAX_CHAIN)
        return vp_errorf(err, len, -EINVAL,
                         "[routing] fallback_chain: at most %d providers",
                         RT_MAX_CHAIN);
    if (!rt_model_known(c, c->default_model))
        return vp_errorf(err, len, -EINVAL,
                         "[routing] default_model: no provider serves '%s'",
                         c->default_model);
    for (size_t i = 0; i < c->nroutes; i++)
        if (!rt_model_known(c, c->routes[i].model))
            return vp_errorf(err, len, -EINVAL,
                             "[route:%s] model: no provider serves '%s'",
                             c->routes[i].name, c->routes[i].model);
    return 0;
}

static int s_load_router(const cfg_t *cfg, rt_config_t *c, char *err, size_t len)
{
    if (sqldb_sync_setting(cfg, "router", &c->synchronous, err, len) < 0)
        return -EINVAL;
    return cfg_get_long(cfg, "router", "default_max_tokens", 4096, 1, 10000000,
                        &c->default_max_tokens, err, len);
}

rt_config_t *rt_config_load(const cfg_t *cfg, char *err, size_t errlen)
{
    rt_config_t *c = xcalloc(1, sizeof *c);
    int rc =
        s_load_typed(cfg, "provider", sizeof(rt_provider_t), (load_fn)s_load_provider,
                     (void **)&c->providers, &c->nproviders, err, errlen);
    if (rc == 0)
        rc = s_load_typed(cfg, "model", sizeof(rt_model_t), (load_fn)s_load_model,
                          (void **)&c->models, &c->nmodels, err, errlen);
    if (rc == 0)
        rc = s_load_typed(cfg, "route", sizeof(rt_route_t), (load_fn)s_load_route,
                          (void **)&c->routes, &c->nroutes, err, errlen);
    if (rc == 0)
        rc = s_load_typed(cfg, "budget", sizeof(rt_budget_t), (load_fn)s_load_budget,
                          (void **)&c->budgets, &c->nbudgets, err, errlen);
    if (rc == 0)
        rc = s_load_routing(cfg, c, err, errlen);
    if (rc == 0)
        rc = s_load_router(cfg, c, err, errlen);
    if (rc == 0)
        rc = s_check_refs(c, err, errlen);
    if (rc < 0)
        rt_config_destroy(&c);
    return c;
}

void rt_config_destroy(rt_config_t **cp)
{
    rt_config_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    for (size_t i = 0; i < c->nproviders; i++) {
        rt_provider_t *p = &c->providers[i];
        free(p->name);
        free(p->base_url);
        free(p->api_key);
        cfg_list_free(p->models, p->nmodels);
    }
    for (size_t i = 0; i < c->nmodels; i++) {
        free(c->models[i].name);
        cfg_list_free(c->models[i].equivalents, c->models[i].nequivalents);
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        free(c->routes[i].name);
        free(c->routes[i].model);
        cfg_list_free(c->routes[i].task_types, c->routes[i].ntask_types);
    }
    for (size_t i = 0; i < c->nbudgets; i++)
        free(c->budgets[i].role);
    free(c->providers);
    free(c->models);
    free(c->routes);
    free(c->budgets);
    free(c->chain);
    free(c->default_model);
    free(c);
    *cp = NULL;
}

/* ---- lookups ---- */

rt_provider_t *rt_provider_find(const rt_config_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->nproviders; i++)
        if (strcmp(c->providers[i].name, name) == 0)
            return &c->providers[i];
    return NULL;
}

const rt_model_t *rt_model_find(const rt_config_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->nmodels; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    return NULL;
}

const char *rt_provider_model(const rt_provider_t *p, const char *model)
{
    for (size_t i = 0; model && i < p->nmodels; i++)
        if (strcmp(p->models[i], model) == 0)
            return p->models[i];
    return NULL;
}

bool rt_provider_serves(const rt_provider_t *p, const char *model)
{
    return rt_provider_model(p, model) != NULL;
}

bool rt_model_known(const rt_config_t *c, const char *model)
{
    for (size_t i = 0; i < c->nproviders; i++)
        if (rt_provider_serves(&c->providers[i], model))
            return true;
    return false;
}

const rt_budget_t *rt_budget_find(const rt_config_t *c, const char *role)
{
    for (size_t i = 0; role && i < c->nbudgets; i++)
        if (strcmp(c->budgets[i].role, role) == 0)
            return &c->budgets[i];
    return NULL;
}

const rt_budget_t *rt_budget_for(const rt_config_t *c, const char *role)
{
    const rt_budget_t *b = rt_budget_find(c, role);
    return b ? b : rt_budget_find(c, "default");
}

size_t rt_keyless_names(const rt_config_t *c, sbuf_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nproviders; i++)
        if (c->providers[i].keyless)
            sbuf_printf(out, "%s%s", n++ ? ", " : "", c->providers[i].name);
    return n;
}

double rt_cost(const rt_config_t *c, const char *model, long in_tokens, long out_tokens)
{
    const rt_model_t *m = rt_model_find(c, model);
    if (!m)
        return 0;
    return ((double)in_tokens * m->input_usd_per_mtok +
            (double)out_tokens * m->output_usd_per_mtok) /
           1e6;
}

/* ---- budget windows ---- */

const char *rt_window_name(rt_window_t w)
{
    static const char *const names[] = {"daily", "weekly", "monthly"};
    return names[w];
}

void rt_window_bounds(rt_window_t w, int64_t now, int64_t *start, int64_t *end)
{
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (w == RT_WEEKLY)
        tm.tm_mday -= (tm.tm_wday + 6) % 7; /* back to Monday */
    else if (w == RT_MONTHLY)
        tm.tm_mday = 1;
    *start = (int64_t)timegm(&tm);
    if (w == RT_DAILY)
        tm.tm_mday += 1;
    else if (w == RT_WEEKLY)
        tm.tm_mday += 7;
    else
        tm.tm_mon += 1;
    *end = (int64_t)timegm(&tm);
}
