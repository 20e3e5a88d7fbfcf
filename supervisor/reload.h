/* reload.h - re-reading etc/vapora.conf while running (SIGHUP, POST
 * /reload), and the two steps start-up shares with it: binding every
 * address a config needs, and writing the copy of the config workers read.
 *
 * A reload is all or nothing: the file is validated, every new address
 * bound and the workers' copy written before anything changes; then
 * services are removed, changed (rolling restart when what their workers
 * read changed) or added, and programs likewise.
 *
 * Loop thread only. */
#ifndef VAPORA_SV_RELOAD_H
#define VAPORA_SV_RELOAD_H

#include <stddef.h>

#include "sockets.h"
#include "supervisor.h"

/* Re-reads sv->config_path and applies it; on failure changes nothing and
 * returns -EINVAL with the reason in err. */
int sv_reload(sv_t *sv, char *err, size_t errlen);

/* Binds every address of nc's services that no service of sv of the same
 * name listens on already, reusing a socket sv holds at that address (a
 * service removed a moment ago that still drains, or one nc removes,
 * renames or moves). Returns an array parallel to nc->services: a socket
 * reference for each such service, NULL for one that keeps its socket; or
 * NULL with the reason in err when an address cannot be bound (nothing is
 * kept). Free it with sv_release_addresses. */
sv_socket_t **sv_bind_addresses(sv_t *sv, const sv_config_t *nc, char *err,
                                size_t errlen);
/* Drops the references left in an array from sv_bind_addresses (n: its
 * config's nservices), frees it and sets *socksp = NULL; accepts NULL. */
void sv_release_addresses(sv_socket_t ***socksp, size_t n);

/* Writes text as the config every worker started from now on reads
 * (sv->worker_config, replaced by rename: a worker starting meanwhile
 * reads the old or the new file). Returns 0 or -errno with err. */
int sv_write_worker_config(sv_t *sv, const char *text, char *err, size_t errlen);

#endif
