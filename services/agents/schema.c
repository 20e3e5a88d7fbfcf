/* schema.c - see schema.h. Keep it in step with docs/configuration.md. */
#include "schema.h"

#include "base.h"

static const char *const s_agents[] = {NULL};

static const cfg_schema_t s_entries[] = {
    {"agents", s_agents, "agents"},
};

const cfg_schema_table_t agents_schema = {s_entries, ARRAY_LEN(s_entries)};
