/* settings.h - the runtime settings of a service worker, and the schema of
 * the sections every worker reads.
 *
 * [runtime] holds the defaults of every service worker; a [service:NAME]
 * section may override any of them: pool_threads (4), pool_queue (1024),
 * max_body_bytes (1048576), max_url_bytes (4096), max_header_bytes (8192),
 * max_connections (4096), max_connections_per_ip (256), request_timeout
 * (30 s), body_timeout (60 s), shutdown_timeout (10 s; falls back to
 * [supervisor] last), log_level (info), log_format (logfmt), access_log
 * (false), yield_after_us (1000). One table holds their
 * defaults and bounds, for the worker (worker.c), which reads them, and
 * the supervisor, which checks them before it starts a worker that would
 * refuse them.
 *
 * settings_schema declares [runtime], [service:*] (the runtime keys and
 * the supervisor's: listen, workers, command, control, start_timeout) and
 * [nats] (url): the sections every worker reads, whatever its service.
 *
 * Functions of an immutable cfg_t: any thread. */
#ifndef VAPORA_SETTINGS_H
#define VAPORA_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

/* [runtime], [service:*] and [nats]; every process knows them. */
extern const cfg_schema_table_t settings_schema;

/* The section key is read from for [section]: section when it sets key,
 * else [runtime] when that does, else the key's last resort ([supervisor]
 * for shutdown_timeout), else "runtime". Owned by cfg or static. */
const char *settings_source(const cfg_t *cfg, const char *section, const char *key);
/* The value of key for [section] (see settings_source), or NULL. */
const char *settings_get(const cfg_t *cfg, const char *section, const char *key);

/* A numeric runtime setting for [section], its default when unset: 0, or
 * -EINVAL with a reason naming section, key and value in err when it is
 * not a whole number within its bounds. key must be a numeric runtime key
 * (asserted). */
int settings_get_long(const cfg_t *cfg, const char *section, const char *key, long *out,
                      char *err, size_t errlen);
/* access_log for [section] (false when unset): 0 or -EINVAL with err. */
int settings_get_access_log(const cfg_t *cfg, const char *section, bool *out, char *err,
                            size_t errlen);

/* Checks every runtime setting a worker of [section] would read: numbers
 * in bounds, access_log a boolean, log_level and log_format known. Returns
 * 0, or -EINVAL with the first reason in err. */
int settings_check(const cfg_t *cfg, const char *section, char *err, size_t errlen);

#endif
