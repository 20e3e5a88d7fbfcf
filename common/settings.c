/* settings.c - see settings.h. */
#define _GNU_SOURCE
#include "settings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "log.h"

/* The keys [runtime] allows, which [service:*] allows too. */
#define SETTINGS_RUNTIME_KEYS                                                          \
    "pool_threads", "pool_queue", "max_body_bytes", "max_url_bytes",                   \
        "max_header_bytes", "max_connections", "max_connections_per_ip",               \
        "request_timeout", "body_timeout", "shutdown_timeout", "log_level",            \
        "log_format", "access_log", "yield_after_us"

static const char *const s_runtime_keys[] = {SETTINGS_RUNTIME_KEYS, NULL};
static const char *const s_service_keys[] = {
    "listen", "workers", "command", "control", "start_timeout", "cpu_affinity",
    SETTINGS_RUNTIME_KEYS,
    NULL};
static const char *const s_nats_keys[] = {"url", NULL};

static const cfg_schema_t s_entries[] = {
    {"runtime", s_runtime_keys, NULL},
    {"service:*", s_service_keys, NULL},
    {"nats", s_nats_keys, NULL},
};

const cfg_schema_table_t settings_schema = {s_entries, ARRAY_LEN(s_entries)};

/* The numeric settings: default and bounds. fallback: the section read
 * when neither [section] nor [runtime] sets the key. */
static const struct {
    const char *key;
    long def, min, max;
    const char *fallback;
} s_numbers[] = {
    {"pool_threads", 4, 1, 256, NULL},
    {"pool_queue", 1024, 1, 1000000, NULL},
    {"yield_after_us", 1000, 0, 1000000, NULL},
    {"max_body_bytes", 1024 * 1024, 1, 1l << 30, NULL},
    {"max_url_bytes", 4096, 64, 16384, NULL},
    {"max_header_bytes", 8192, 256, 24576, NULL},
    {"max_connections", 4096, 1, 1000000, NULL},
    {"max_connections_per_ip", 256, 1, 1000000, NULL},
    {"request_timeout", 30, 1, 3600, NULL},
    {"body_timeout", 60, 1, 3600, NULL},
    {"shutdown_timeout", 10, 0, 3600, "supervisor"},
};

static int s_number(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(s_numbers); i++)
        if (strcmp(s_numbers[i].key, key) == 0)
            return (int)i;
    return -1;
}

const char *settings_source(const cfg_t *cfg, const char *section, const char *key)
{
    if (cfg_get(cfg, section, key))
        return section;
    if (cfg_get(cfg, "runtime", key))
        return "runtime";
    int i = s_number(key);
    if (i >= 0 && s_numbers[i].fallback && cfg_get(cfg, s_numbers[i].fallback, key))
        return s_numbers[i].fallback;
    return "runtime";
}

const char *settings_get(const cfg_t *cfg, const char *section, const char *key)
{
    return cfg_get(cfg, settings_source(cfg, section, key), key);
}

int settings_get_long(const cfg_t *cfg, const char *section, const char *key, long *out,
                      char *err, size_t errlen)
{
    int i = s_number(key);
    VP_ASSERT(i >= 0 && "a setting without bounds");
    return cfg_get_long(cfg, settings_source(cfg, section, key), key, s_numbers[i].def,
                        s_numbers[i].min, s_numbers[i].max, out, err, errlen);
}

int settings_get_access_log(const cfg_t *cfg, const char *section, bool *out, char *err,
                            size_t errlen)
{
    return cfg_get_bool(cfg, settings_source(cfg, section, "access_log"), "access_log",
                        false, out, err, errlen);
}

int settings_check(const cfg_t *cfg, const char *section, char *err, size_t errlen)
{
    long v;
    for (size_t i = 0; i < ARRAY_LEN(s_numbers); i++)
        if (settings_get_long(cfg, section, s_numbers[i].key, &v, err, errlen) < 0)
            return -EINVAL;
    bool b;
    if (settings_get_access_log(cfg, section, &b, err, errlen) < 0)
        return -EINVAL;
    log_level_t lvl;
    const char *sec = settings_source(cfg, section, "log_level");
    const char *val = cfg_get(cfg, sec, "log_level");
    if (val && log_parse_level(val, &lvl) < 0) {
        snprintf(err, errlen,
                 "[%s] log_level: \"%s\" is not debug, info, warn or error", sec, val);
        return -EINVAL;
    }
    log_format_t fmt;
    sec = settings_source(cfg, section, "log_format");
    val = cfg_get(cfg, sec, "log_format");
    if (val && log_parse_format(val, &fmt) < 0) {
        snprintf(err, errlen, "[%s] log_format: \"%s\" is not logfmt or json", sec,
                 val);
        return -EINVAL;
    }
    return 0;
}
