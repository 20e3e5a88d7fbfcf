/* test_schemas.c - unit tests for supervisor/schemas.c: the whole file's
 * schema assembled from its declarers (the supervisor, the shared runtime
 * sections, each registered service), and who reads which section. */
#define _GNU_SOURCE
#include "schemas.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ERRLEN 512

static cfg_t *s_load(const char *text, char *err)
{
    err[0] = '\0';
    return cfg_load_string(text, "test.conf", err, ERRLEN);
}

typedef struct warns {
    char msg[8][128];
    size_t n;
} warns_t;

static void s_collect(const char *msg, void *ud)
{
    warns_t *w = ud;
    if (w->n < 8)
        snprintf(w->msg[w->n], sizeof(w->msg[0]), "%s", msg);
    w->n++;
}

/* Moved from test_cfg.c (cfg, schema_warnings) when the services' keys
 * left common/cfg_schema.c: the same file, the same five warnings. */
Test(cfg, schema_warnings)
{
    char err[ERRLEN];
    warns_t w = {0};
    cfg_t *cfg = s_load("[supervisor]\nadmin = :9000\ncolour = red\n"
                        "[service:backend]\nlisten = :8001\nworkers = 2\n"
                        "pool_threads = 4\naccess_log = on\n"
                        "[service:]\nlisten = :1\n"
                        "[frobnicator]\nx = 1\n"
                        "[agents]\n"
                        "[provider:openai]\nkind = openai\nmodel = gpt\n"
                        "[budget:daily]\nlimit_usd = 5\n"
                        "[runtime]\nlisten = :1\nmax_body_bytes = 1\n",
                        err);
    cr_assert_not_null(cfg, "%s", err);
    size_t n = sv_schemas_check(cfg, s_collect, &w);
    cr_assert_eq(n, 5);
    cr_assert_eq(w.n, 5);
    cr_assert_str_eq(w.msg[0], "unknown key 'colour' in section [supervisor]");
    cr_assert_str_eq(w.msg[1], "unknown section [service:]");
    cr_assert_str_eq(w.msg[2], "unknown section [frobnicator]");
    cr_assert_str_eq(w.msg[3], "unknown key 'model' in section "
                               "[provider:openai]");
    cr_assert_str_eq(w.msg[4], "unknown key 'listen' in section [runtime]");
    cr_assert_eq(sv_schemas_check(cfg, NULL, NULL), 5);
    cfg_destroy(&cfg);
}

/* A registered service's sections are read by it alone; the shared and the
 * supervisor's sections by every service. */
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
