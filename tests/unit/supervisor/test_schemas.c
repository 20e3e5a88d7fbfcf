/* test_schemas.c - unit tests for supervisor/schemas.c: the whole file's
 * schema assembled from its declarers (the supervisor, the shared runtime
 * sections, each registered service), and who reads which section. */
#define _GNU_SOURCE
#include "schemas.h"

#include <criterion/criterion.h>
#include <string.h>

#include "sbuf.h"

/* Appends each warning and a newline to an sbuf. */
static void s_append(const char *msg, void *ud)
{
    sbuf_printf(ud, "%s\n", msg);
}

/* Moved from test_cfg.c (cfg, schema_warnings) when the services' keys
 * left common/cfg_schema.c: the same file, the same five warnings in the
 * same order. */
Test(cfg, schema_warnings)
{
    char err[512];
    cfg_t *cfg = cfg_load_string("[supervisor]\nadmin = :9000\ncolour = red\n"
                                 "[service:backend]\nlisten = :8001\nworkers = 2\n"
                                 "pool_threads = 4\naccess_log = on\n"
                                 "[service:]\nlisten = :1\n"
                                 "[frobnicator]\nx = 1\n"
                                 "[agents]\n"
                                 "[provider:openai]\nkind = openai\nmodel = gpt\n"
                                 "[budget:daily]\nlimit_usd = 5\n"
                                 "[runtime]\nlisten = :1\nmax_body_bytes = 1\n",
                                 "test.conf", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    sbuf_t w = {0};
    cr_assert_eq(sv_schemas_check(cfg, s_append, &w), 5);
    cr_assert_str_eq(w.data, "unknown key 'colour' in section [supervisor]\n"
                             "unknown section [service:]\n"
                             "unknown section [frobnicator]\n"
                             "unknown key 'model' in section [provider:openai]\n"
                             "unknown key 'listen' in section [runtime]\n");
    cr_assert_eq(sv_schemas_check(cfg, NULL, NULL), 5);
    sbuf_free(&w);
    cfg_destroy(&cfg);
}

Test(sv_schemas, readers_by_service_name)
{
    cr_assert_str_eq(sv_schemas_reader("backend"), "backend");
    cr_assert_str_eq(sv_schemas_reader("agents"), "agents");
    static const char *const router[] = {"router",  "provider:x", "model:m",
                                         "routing", "route:r",    "budget:dev"};
    for (size_t i = 0; i < sizeof router / sizeof *router; i++)
        cr_assert_str_eq(sv_schemas_reader(router[i]), "llm-router", "%s", router[i]);
    static const char *const shared[] = {"supervisor", "runtime",   "nats",
                                         "service:x",  "program:p", "unknown"};
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++)
        cr_assert_null(sv_schemas_reader(shared[i]), "%s", shared[i]);
}

/* What the registry promises: every section a service declares names that
 * service as its reader, and no two services declare the same section. */
Test(sv_schemas, each_service_declares_only_its_own)
{
    for (size_t i = 0; i < sv_schema_services_len; i++) {
        const sv_schema_service_t *s = &sv_schema_services[i];
        cr_assert_gt(s->schema->len, 0, "%s declares nothing", s->name);
        for (size_t j = 0; j < s->schema->len; j++) {
            const cfg_schema_t *e = &s->schema->entries[j];
            cr_assert_not_null(e->reader, "[%s] of %s", e->section, s->name);
            cr_assert_str_eq(e->reader, s->name, "[%s]", e->section);
            cr_assert_str_eq(sv_schemas_reader(e->section), s->name,
                             "[%s] is declared before %s", e->section, s->name);
        }
    }
}
