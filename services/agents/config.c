/* config.c - see config.h. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "vp_error.h"
#include "file.h"
#include "roles.h"

#define PROMPT_MAX (64 * 1024)

/* 1-63 characters of A-Z a-z 0-9 . _ - */
static bool s_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AGENT_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static char *s_url(const cfg_t *cfg, const char *key, const char *def, char *err,
                   size_t len)
{
    const char *v = cfg_get_str(cfg, "agents", key, def);
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        vp_errorf(err, len, -EINVAL,
                  "[agents] %s: \"%s\" is not an http:// or https:// URL", key, v);
        return NULL;
    }
    char *u = xstrdup(v);
    for (size_t n = strlen(u); n && u[n - 1] == '/'; n--)
        u[n - 1] = '\0';
    return u;
}

static int s_prompt(const cfg_t *cfg, const char *sec, const char *prompts_dir,
                    agent_def_t *a, char *err, size_t len)
{
    const char *text = cfg_get(cfg, sec, "system_prompt");
    const char *file = cfg_get(cfg, sec, "system_prompt_file");
    if (text && file)
        return vp_errorf(err, len, -EINVAL,
                         "[%s] system_prompt and system_prompt_file: set one", sec);
    if (file) {
        size_t n = 0;
        char *path = file[0] == '/' ? xstrdup(file) : xasprintf("%s/%s", prompts_dir, file);
        a->system_prompt = file_read_all(path, &n);
        int e = errno;
        free(path);
        if (!a->system_prompt)
            return vp_errorf(err, len, -EINVAL,
                             "[%s] system_prompt_file: cannot read %s%s%s: %s", sec,
                             file[0] == '/' ? "" : prompts_dir, file[0] == '/' ? "" : "/",
                             file, strerror(e));
        if (n > PROMPT_MAX || strlen(a->system_prompt) != n)
            return vp_errorf(err, len, -EINVAL, "[%s] system_prompt_file: %s is over 64 KiB or "
                                                "holds a NUL byte", sec, file);
        return 0;
    }
    a->system_prompt = text && *text ? xstrdup(text)
                                     : xasprintf("You are the %s of a software team.", a->role);
    return 0;
}

/* dflt: [agents] run_timeout and max_failures; dcost: max_run_cost_usd. */
static int s_numbers(const cfg_t *cfg, const char *sec, const long dflt[2], double dcost,
                     agent_def_t *a, char *err, size_t len)
{
    long mc;
    if (cfg_get_long(cfg, sec, "max_concurrent", 2, 1, 10000, &mc, err, len) < 0 ||
        cfg_get_double(cfg, sec, "temperature", 0.2, 0, 2, &a->temperature, err, len) < 0 ||
        cfg_get_long(cfg, sec, "max_tokens", 4096, 1, 1000000, &a->max_tokens, err, len) < 0 ||
        cfg_get_long(cfg, sec, "run_timeout", dflt[0], 1, 86400, &a->run_timeout_s, err,
                     len) < 0 ||
        cfg_get_double(cfg, sec, "max_cost_usd", dcost, 0, 1e6, &a->max_cost_usd, err,
                       len) < 0 ||
        cfg_get_long(cfg, sec, "max_failures", dflt[1], 1, 1000, &a->max_failures, err,
                     len) < 0)
        return -EINVAL;
    a->max_concurrent = (unsigned)mc;
    return 0;
}

static int s_agent(const cfg_t *cfg, const char *sec, const char *prompts_dir,
                   agent_def_t *a, const long dflt[2], double dcost, char *err, size_t len)
{
    const char *name = sec + strlen("agent:");
    if (!s_name_ok(name))
        return vp_errorf(err, len, -EINVAL, "[%s]: an agent's name is 1-63 characters of A-Z, a-z, "
                                            "0-9, '.', '_' and '-'", sec);
    a->name = xstrdup(name);
    const char *role = cfg_get(cfg, sec, "role");
    if (!role || !roles_valid(role))
        return vp_errorf(err, len, -EINVAL, "[%s] role: \"%s\" is not one of the twelve roles", sec,
                         role ? role : "");
    a->role = xstrdup(role);
    a->model = xstrdup(cfg_get_str(cfg, sec, "model", "auto"));
    if (!*a->model || strlen(a->model) > 200)
        return vp_errorf(err, len, -EINVAL, "[%s] model: 1-200 characters, or auto", sec);
    const char *types = cfg_get_str(cfg, sec, "task_types", roles_default_task_types(role));
    a->ntask_types = cfg_split_list(types, &a->task_types);
    if (a->ntask_types == 0)
        return vp_errorf(err, len, -EINVAL, "[%s] task_types: list at least one", sec);
    if (s_numbers(cfg, sec, dflt, dcost, a, err, len) < 0)
        return -EINVAL;
    return s_prompt(cfg, sec, prompts_dir, a, err, len);
}

static int s_service_keys(const cfg_t *cfg, agents_config_t *c, long dflt[2],
                          double *dcost, char *err, size_t len)
{
    if (!(c->router_url = s_url(cfg, "router_url", "http://127.0.0.1:8003", err, len)) ||
        !(c->backend_url = s_url(cfg, "backend_url", "http://127.0.0.1:8001", err, len)))
        return -EINVAL;
    c->router_key = xstrdup(cfg_get_str(cfg, "agents", "router_key", ""));
    const char *kf = cfg_get_str(cfg, "agents", "router_key_file", "");
    c->backend_user = xstrdup(cfg_get_str(cfg, "agents", "backend_user", "agents"));
    c->backend_password = xstrdup(cfg_get_str(cfg, "agents", "backend_password", ""));
    c->data_dir = xstrdup(cfg_get_str(cfg, "supervisor", "data_dir", "data"));
    c->router_key_file = *kf ? xstrdup(kf) : xasprintf("%s/router-key-agents", c->data_dir);
    const char *pf = cfg_get_str(cfg, "agents", "backend_password_file", "");
    c->backend_password_file =
        *pf ? xstrdup(pf) : xasprintf("%s/agents-password", c->data_dir);
    const char *db = cfg_get_str(cfg, "agents", "database", "");
    c->database = *db ? xstrdup(db) : xasprintf("%s/agents.db", c->data_dir);
    c->default_role = xstrdup(cfg_get_str(cfg, "agents", "default_role", "developer"));
    c->prompts_dir = xstrdup(cfg_get_str(cfg, "agents", "prompts_dir", "."));
    if (!roles_valid(c->default_role))
        return vp_errorf(err, len, -EINVAL,
                         "[agents] default_role: \"%s\" is not one of the twelve "
                         "roles", c->default_role);
    if (sqldb_sync_setting(cfg, "agents", &c->synchronous, err, len) < 0 ||
        cfg_get_long(cfg, "agents", "max_deliveries", 5, 1, 100, &c->max_deliveries, err,
                     len) < 0 ||
        cfg_get_long(cfg, "agents", "ack_wait", 60, 5, 3600, &c->ack_wait_s, err, len) < 0 ||
        cfg_get_long(cfg, "agents", "run_timeout", 600, 1, 86400, &dflt[0], err, len) < 0 ||
        cfg_get_long(cfg, "agents", "max_failures", 3, 1, 1000, &dflt[1], err, len) < 0)
        return -EINVAL;
    return cfg_get_double(cfg, "agents", "max_run_cost_usd", 1, 0, 1e6, dcost, err, len);
}

/* The union of the agents' task types (case-insensitively), for inference. */
static void s_all_types(agents_config_t *c)
{
    size_t cap = 0;
    for (size_t i = 0; i < c->nagents; i++)
        cap += c->agents[i].ntask_types;
    c->task_types = xcalloc(cap ? cap : 1, sizeof *c->task_types);
    for (size_t i = 0; i < c->nagents; i++)
        for (size_t k = 0; k < c->agents[i].ntask_types; k++) {
            const char *x = c->agents[i].task_types[k];
            bool seen = false;
            for (size_t j = 0; j < c->ntask_types && !seen; j++)
                seen = strcasecmp(c->task_types[j], x) == 0;
            if (!seen)
                c->task_types[c->ntask_types++] = x;
        }
}

agents_config_t *agents_config_load(const cfg_t *cfg, char *err, size_t errlen)
{
    agents_config_t *c = xcalloc(1, sizeof *c);
    long dflt[2];
    double dcost;
    int rc = s_service_keys(cfg, c, dflt, &dcost, err, errlen);
    size_t nsec = cfg_section_count(cfg);
    c->agents = xcalloc(nsec ? nsec : 1, sizeof *c->agents);
    for (size_t i = 0; rc == 0 && i < nsec; i++) {
        const char *sec = cfg_section_name(cfg, i);
        if (strncmp(sec, "agent:", 6) != 0)
            continue;
        rc = s_agent(cfg, sec, c->prompts_dir, &c->agents[c->nagents++], dflt, dcost, err,
                     errlen);
    }
    if (rc < 0)
        agents_config_destroy(&c);
    else
        s_all_types(c);
    return c;
}

static void s_def_free(agent_def_t *a)
{
    free(a->name);
    free(a->role);
    free(a->model);
    cfg_list_free(a->task_types, a->ntask_types);
    free(a->system_prompt);
}

void agents_config_destroy(agents_config_t **cp)
{
    agents_config_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    for (size_t i = 0; i < c->nagents; i++)
        s_def_free(&c->agents[i]);
    free(c->agents);
    free(c->task_types);
    free(c->router_url);
    free(c->router_key);
    free(c->router_key_file);
    free(c->backend_url);
    free(c->backend_user);
    free(c->backend_password);
    free(c->backend_password_file);
    free(c->database);
    free(c->data_dir);
    free(c->default_role);
    free(c->prompts_dir);
    free(c);
    *cp = NULL;
}

const agent_def_t *agents_config_find(const agents_config_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->nagents; i++)
        if (strcmp(c->agents[i].name, name) == 0)
            return &c->agents[i];
    return NULL;
}

bool agent_def_claims(const agent_def_t *a, const char *t)
{
    for (size_t i = 0; t && i < a->ntask_types; i++)
        if (strcasecmp(a->task_types[i], t) == 0)
            return true;
    return false;
}
