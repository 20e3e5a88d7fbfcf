/* test_settings.c - unit tests for common/settings.c: where a runtime
 * setting is read from, its defaults and bounds, the checks the supervisor
 * and the worker share, and the schema of the shared sections. */
#define _GNU_SOURCE
#include "settings.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static cfg_t *s_load(const char *text)
{
    char err[256];
    cfg_t *cfg = cfg_load_string(text, "test.conf", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    return cfg;
}

Test(settings, defaults_when_nothing_is_set)
{
    cfg_t *cfg = s_load("[service:x]\nlisten = :1\n");
    char err[256];
    long v;
    cr_assert_eq(
        settings_get_long(cfg, "service:x", "pool_threads", &v, err, sizeof err), 0);
    cr_assert_eq(v, 4);
    settings_get_long(cfg, "service:x", "max_body_bytes", &v, err, sizeof err);
    cr_assert_eq(v, 1048576);
    settings_get_long(cfg, "service:x", "shutdown_timeout", &v, err, sizeof err);
    cr_assert_eq(v, 10);
    settings_get_long(cfg, "service:x", "yield_after_us", &v, err, sizeof err);
    cr_assert_eq(v, 1000);
    bool b = true;
    cr_assert_eq(settings_get_access_log(cfg, "service:x", &b, err, sizeof err), 0);
    cr_assert_not(b);
    cr_assert_null(settings_get(cfg, "service:x", "log_level"));
    cr_assert_eq(settings_check(cfg, "service:x", err, sizeof err), 0, "%s", err);
    cfg_destroy(&cfg);
}

/* [service:NAME] first, then [runtime]; [supervisor] only for
 * shutdown_timeout, and only when neither sets it. */
Test(settings, service_then_runtime_then_supervisor)
{
    cfg_t *cfg = s_load("[supervisor]\nshutdown_timeout = 7\npool_threads = 99\n"
                        "[runtime]\npool_threads = 3\nlog_level = debug\n"
                        "[service:a]\npool_threads = 5\n"
                        "[service:b]\nshutdown_timeout = 2\n");
    char err[256];
    long v;
    settings_get_long(cfg, "service:a", "pool_threads", &v, err, sizeof err);
    cr_assert_eq(v, 5);
    settings_get_long(cfg, "service:b", "pool_threads", &v, err, sizeof err);
    cr_assert_eq(v, 3);
    settings_get_long(cfg, "service:a", "shutdown_timeout", &v, err, sizeof err);
    cr_assert_eq(v, 7);
    settings_get_long(cfg, "service:b", "shutdown_timeout", &v, err, sizeof err);
    cr_assert_eq(v, 2);
    cr_assert_str_eq(settings_source(cfg, "service:a", "shutdown_timeout"),
                     "supervisor");
    cr_assert_str_eq(settings_source(cfg, "service:a", "log_level"), "runtime");
    cr_assert_str_eq(settings_source(cfg, "service:a", "log_format"), "runtime");
    cr_assert_str_eq(settings_get(cfg, "service:b", "log_level"), "debug");
    cfg_destroy(&cfg);
}

static void s_bad(const char *text, const char *want)
{
    cfg_t *cfg = s_load(text);
    char err[256] = "";
    cr_assert_eq(settings_check(cfg, "service:x", err, sizeof err), -EINVAL, "%s",
                 want);
    cr_assert(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    cfg_destroy(&cfg);
}

Test(settings, checks_name_section_and_key)
{
    s_bad("[runtime]\npool_threads = 0\n", "[runtime] pool_threads");
    s_bad("[service:x]\nmax_header_bytes = 100000\n", "[service:x] max_header_bytes");
    s_bad("[service:x]\naccess_log = maybe\n", "[service:x] access_log");
    s_bad("[runtime]\nlog_format = xml\n", "[runtime] log_format: \"xml\"");
    s_bad("[service:x]\nlog_level = loud\n", "[service:x] log_level: \"loud\"");
    s_bad("[supervisor]\nshutdown_timeout = -1\n", "[supervisor] shutdown_timeout");
}

/* The limits against slow and greedy clients (issue 11): defaults,
 * overrides, bounds, and keys the schema knows. */
Test(settings, client_limits)
{
    cfg_t *cfg = s_load("[runtime]\nbody_timeout = 5\n"
                        "[service:x]\nmax_connections_per_ip = 9\n");
    char err[256];
    long v;
    cr_assert_eq(settings_get_long(cfg, "service:y", "max_connections_per_ip", &v, err,
                                   sizeof err),
                 0);
    cr_assert_eq(v, 256);
    settings_get_long(cfg, "service:x", "max_connections_per_ip", &v, err, sizeof err);
    cr_assert_eq(v, 9);
    settings_get_long(cfg, "service:x", "body_timeout", &v, err, sizeof err);
    cr_assert_eq(v, 5);
    cfg_destroy(&cfg);
    cfg = s_load("[service:x]\nlisten = :1\n");
    settings_get_long(cfg, "service:x", "body_timeout", &v, err, sizeof err);
    cr_assert_eq(v, 60);
    static const cfg_schema_table_t *const t[] = {&settings_schema};
    cr_assert_eq(cfg_check_keys(cfg, t, 1, NULL, NULL), 0);
    cfg_destroy(&cfg);
    s_bad("[runtime]\nmax_connections_per_ip = 0\n", "[runtime] max_connections_per_ip");
    s_bad("[service:x]\nbody_timeout = 0\n", "[service:x] body_timeout");
}

/* The shared sections know every runtime key, and [service:*] the
 * supervisor's keys besides. */
Test(settings, schema_of_the_shared_sections)
{
    static const cfg_schema_table_t *const t[] = {&settings_schema};
    cfg_t *cfg = s_load("[runtime]\npool_threads = 1\nyield_after_us = 0\nlisten = :1\n"
                        "[service:x]\nlisten = :1\nworkers = 2\ncommand = x\n"
                        "control = no\nstart_timeout = 3\naccess_log = on\n"
                        "[nats]\nurl = nats://h\nuser = u\n[backend]\nz = 1\n");
    cr_assert_eq(cfg_check_keys(cfg, t, 1, NULL, NULL), 2,
                 "[runtime] listen, [nats] user");
    cr_assert_eq(cfg_check_tables(cfg, t, 1, NULL, NULL), 3, "and [backend]");
    cfg_destroy(&cfg);
}
