/* schema.h - the sections and keys of etc/vapora.conf the agents service
 * declares: [agents], with no keys yet (the next issues add them here).
 *
 * Data only. Its reader is "agents": only the agents' workers read it, so
 * a change there rolls only them on reload. The worker warns about unknown
 * keys with it (main.c hands it over); the supervisor registers it under
 * the service's name (supervisor/schemas.c). */
#ifndef VAPORA_AGENTS_SCHEMA_H
#define VAPORA_AGENTS_SCHEMA_H

#include "cfg.h"

extern const cfg_schema_table_t agents_schema;

#endif
