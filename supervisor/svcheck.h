/* svcheck.h - a new configuration asked of the services before a reload
 * takes it: each service that speaks the control protocol (our workers)
 * runs with `--check -c FILE` (worker.h) and says whether its own settings
 * are valid (the supervisor validates only its own keys and the sections'
 * names). A command that is not one of ours (vapora-NAME: a shell line, a
 * wrapper) is not asked. A reload that a service would refuse at start is refused
 * whole, with the service's reason, and nothing changes. */
#ifndef VAPORA_SV_SVCHECK_H
#define VAPORA_SV_SVCHECK_H

#include <stddef.h>

#include "sv_config.h"

/* Seconds a service's check may take before it counts as failed. */
#define SVCHECK_TIMEOUT_S 10

/* Writes nc's text next to worker_config (".check"), runs every service's
 * check on it, removes it. 0, or -EINVAL with "service NAME: reason" in
 * err. Blocks the caller for as long as the checks take (milliseconds). */
int sv_check_services(const sv_config_t *nc, const char *worker_config, char *err,
                      size_t errlen);

#endif
