/* schema.c - see schema.h. Keep it in step with docs/configuration.md and
 * config.c, which reads these keys. */
#include "schema.h"

#include "base.h"

#define SCHEMA_READER "llm-router"

static const char *const s_router[] = {"api_keys", "anonymous",   "default_max_tokens",
                                       "database", "synchronous", NULL};
static const char *const s_caller[] = {"key", "key_file", "roles", "default_role",
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

static const cfg_schema_t s_entries[] = {
    {"router", s_router, SCHEMA_READER},   {"provider:*", s_provider, SCHEMA_READER},
    {"model:*", s_model, SCHEMA_READER},   {"routing", s_routing, SCHEMA_READER},
    {"route:*", s_route, SCHEMA_READER},   {"budget:*", s_budget, SCHEMA_READER},
    {"caller:*", s_caller, SCHEMA_READER},
};

const cfg_schema_table_t router_schema = {s_entries, ARRAY_LEN(s_entries)};
