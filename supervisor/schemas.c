/* schemas.c - see schemas.h. */
#include "schemas.h"

#include "base.h"
#include "settings.h"

/* The services' tables; the Makefile gives this file alone -Iservices. */
#include "agents/schema.h"
#include "backend/schema.h"
#include "llm-router/schema.h"

/* The registry: one line per service. */
const sv_schema_service_t sv_schema_services[] = {
    {"backend", &backend_schema},
    {"agents", &agents_schema},
    {"llm-router", &router_schema},
};
const size_t sv_schema_services_len = ARRAY_LEN(sv_schema_services);

/* The supervisor's own sections. Workers read data_dir and (as a last
 * resort) shutdown_timeout in [supervisor] too, so a change to those rolls
 * every service; the rest are left out of the fingerprints
 * (sv_config.c). */
static const char *const s_supervisor[] = {
    "admin",     "admin_token", "data_dir", "shutdown_timeout", "watchdog_timeout",
    "log_level", "log_format",  NULL};
static const char *const s_program[] = {"command", "directory", "environment", NULL};

static const cfg_schema_t s_entries[] = {
    {"supervisor", s_supervisor, NULL},
    {"program:*", s_program, NULL},
};
static const cfg_schema_table_t s_own = {s_entries, ARRAY_LEN(s_entries)};

/* Every table: the supervisor's, the shared ones, then the services'. */
#define SV_SCHEMAS_MAX (2 + ARRAY_LEN(sv_schema_services))

static size_t s_tables(const cfg_schema_table_t **t)
{
    size_t n = 0;
    t[n++] = &s_own;
    t[n++] = &settings_schema;
    for (size_t i = 0; i < sv_schema_services_len; i++)
        t[n++] = sv_schema_services[i].schema;
    return n;
}

size_t sv_schemas_check(const cfg_t *cfg, void (*warn)(const char *msg, void *ud),
                        void *ud)
{
    const cfg_schema_table_t *t[SV_SCHEMAS_MAX];
    return cfg_check_tables(cfg, t, s_tables(t), warn, ud);
}

const char *sv_schemas_reader(const char *section)
{
    const cfg_schema_table_t *t[SV_SCHEMAS_MAX];
    const cfg_schema_t *e = cfg_schema_find(t, s_tables(t), section);
    return e ? e->reader : NULL;
}
