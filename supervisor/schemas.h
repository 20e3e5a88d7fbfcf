/* schemas.h - every section and key of etc/vapora.conf, by who declares
 * it: the supervisor its own ([supervisor], [program:*]), the runtime the
 * sections every worker reads (common/settings.h: [runtime], [service:*],
 * [nats]), and each service its own (services/<name>/schema.c), registered
 * here under the service's name.
 *
 * DESIGN. The supervisor knows a service's sections by the service's name,
 * never by asking its binary: a [service:llm-router] may run any command,
 * and a reload must still know that [budget:*] rolls only llm-router. So
 * it links the services' schema tables (data only). A new service adds its
 * keys in its own folder and one line to the registry in schemas.c.
 *
 * Static data and pure functions: any thread. */
#ifndef VAPORA_SV_SCHEMAS_H
#define VAPORA_SV_SCHEMAS_H

#include <stddef.h>

#include "cfg.h"

/* One registered service: its name (as in [service:NAME]) and the table
 * its own folder declares. Every entry of the table has that name as its
 * reader. */
typedef struct sv_schema_service {
    const char *name;
    const cfg_schema_table_t *schema;
} sv_schema_service_t;

/* The registered services, and their count. */
extern const sv_schema_service_t sv_schema_services[];
extern const size_t sv_schema_services_len;

/* Warns through warn(msg, ud) about every section and key no declarer
 * knows, in file order ("unknown section [x]", "unknown key 'k' in section
 * [s]"). Returns the number of warnings. */
size_t sv_schemas_check(const cfg_t *cfg, void (*warn)(const char *msg, void *ud),
                        void *ud);

/* The service whose workers alone read section, or NULL when every
 * service's workers may (the shared sections, [supervisor], and sections
 * nobody declares). */
const char *sv_schemas_reader(const char *section);

#endif
