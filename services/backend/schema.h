/* schema.h - the sections and keys of etc/vapora.conf the backend
 * declares: [backend] (database, jwt_secret, admin_password,
 * agents_password, token_ttl, outbox_max, ws_max_queue, read_cache,
 * login_address_failures, events_max_age, events_max_bytes;
 * docs/configuration.md).
 *
 * Data only. Its reader is "backend": only the backend's workers read it,
 * so a change there rolls only them on reload. The worker warns about
 * unknown keys with it (main.c hands it over); the supervisor registers it
 * under the service's name (supervisor/schemas.c). */
#ifndef VAPORA_BACKEND_SCHEMA_H
#define VAPORA_BACKEND_SCHEMA_H

#include "cfg.h"

extern const cfg_schema_table_t backend_schema;

#endif
