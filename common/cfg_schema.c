/* cfg_schema.c - every section and key of etc/vapora.conf that VAPORA knows,
 * for cfg_check_schema() (see cfg.h). Keep it in step with docs and etc/.
 *
 * [runtime] holds the defaults of every service worker and a
 * [service:NAME] section may override any of them, so both entries share
 * one list, CFG_RUNTIME_KEYS. */
#include "cfg.h"
#include "base.h"

#define CFG_RUNTIME_KEYS                                                               \
    "pool_threads", "pool_queue", "max_body_bytes", "max_url_bytes",                   \
        "max_header_bytes", "max_connections", "request_timeout", "shutdown_timeout",  \
        "log_level", "log_format", "access_log", "yield_after_us"

static const char *const s_supervisor[] = {
    "admin",      "data_dir", "shutdown_timeout", "watchdog_timeout", "log_level",
    "log_format", NULL};
static const char *const s_runtime[] = {CFG_RUNTIME_KEYS, NULL};
static const char *const s_service[] = {
    "listen", "workers", "command", "control", "start_timeout", CFG_RUNTIME_KEYS, NULL};
static const char *const s_program[] = {"command", "directory", "environment", NULL};
static const char *const s_nats[] = {"url", NULL};
static const char *const s_backend[] = {"database",   "jwt_secret", "admin_password",
                                        "token_ttl",  "outbox_max", "ws_max_queue",
                                        "read_cache", NULL};
static const char *const s_agents[] = {NULL};
static const char *const s_router[] = {"api_keys", "default_max_tokens", "database",
                                       NULL};
static const char *const s_provider[] = {"kind",   "base_url", "api_key",
                                         "models", "timeout",  NULL};
static const char *const s_model[] = {"input_usd_per_mtok", "output_usd_per_mtok",
                                      "equivalents", NULL};
static const char *const s_routing[] = {"default_model", "fallback_chain",
                                        "retries",       "cooldown_failures",
                                        "cooldown",      NULL};
static const char *const s_route[] = {"task_types", "model", NULL};
static const char *const s_budget[] = {"window", "limit_usd", "near_percent", NULL};

/* reader: the service whose workers alone read the section, so that a
 * change there rolls only its workers (supervisor/sv_config.c). */
const cfg_schema_t cfg_vapora_schema[] = {
    {"supervisor", s_supervisor, NULL},
    {"runtime", s_runtime, NULL},
    {"service:*", s_service, NULL},
    {"program:*", s_program, NULL},
    {"nats", s_nats, NULL},
    {"backend", s_backend, "backend"},
    {"agents", s_agents, "agents"},
    {"router", s_router, "llm-router"},
    {"provider:*", s_provider, "llm-router"},
    {"model:*", s_model, "llm-router"},
    {"routing", s_routing, "llm-router"},
    {"route:*", s_route, "llm-router"},
    {"budget:*", s_budget, "llm-router"},
};

const size_t cfg_vapora_schema_len = ARRAY_LEN(cfg_vapora_schema);
