/* schema.c - see schema.h. Keep it in step with docs/configuration.md. */
#include "schema.h"

#include "base.h"

static const char *const s_agents[] = {
    "router_url",   "router_key",     "router_key_file", "backend_url",
    "backend_user", "backend_password", "backend_password_file", "database",
    "synchronous",  "default_role",   "prompts_dir",
    "max_deliveries", "ack_wait",     "run_timeout",     "max_failures",
    "max_run_cost_usd", NULL};
static const char *const s_agent[] = {
    "role",        "model",       "max_concurrent", "task_types",   "system_prompt",
    "system_prompt_file", "temperature", "max_tokens", "run_timeout", "max_cost_usd",
    "max_failures", NULL};

static const cfg_schema_t s_entries[] = {
    {"agents", s_agents, "agents"},
    {"agent:*", s_agent, "agents"},
};

const cfg_schema_table_t agents_schema = {s_entries, ARRAY_LEN(s_entries)};
