/* schema.c - see schema.h. Keep it in step with docs/configuration.md. */
#include "schema.h"

#include "base.h"

static const char *const s_backend[] = {
    "database",
    "jwt_secret",
    "admin_password",
    "agents_password",
    "token_ttl",
    "outbox_max",
    "ws_max_queue",
    "ws_idle_unsubscribe",
    "read_cache",
    "login_address_failures",
    "events_max_age",
    "events_max_bytes",
    "synchronous",
    "web_root",
    "agents_url",
    "router_url",
    "router_key", "router_key_file",
    "supervisor_url",
    NULL,
};

static const cfg_schema_t s_entries[] = {
    {"backend", s_backend, "backend"},
};

const cfg_schema_table_t backend_schema = {s_entries, ARRAY_LEN(s_entries)};
