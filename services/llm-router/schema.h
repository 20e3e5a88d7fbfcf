/* schema.h - the sections and keys of etc/vapora.conf the LLM router
 * declares: [router], [provider:*], [model:*], [routing], [route:*] and
 * [budget:*] (docs/configuration.md, docs/llm-router.md).
 *
 * Data only. Their reader is "llm-router": only the router's workers read
 * them, so a change there rolls only them on reload. The worker warns
 * about unknown keys with it (main.c hands it over); the supervisor
 * registers it under the service's name (supervisor/schemas.c). */
#ifndef VAPORA_ROUTER_SCHEMA_H
#define VAPORA_ROUTER_SCHEMA_H

#include "cfg.h"

extern const cfg_schema_table_t router_schema;

#endif
