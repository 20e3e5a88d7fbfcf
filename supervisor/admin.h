/* admin.h - the supervisor's HTTP admin API (loopback by default), on
 * [supervisor] admin: GET /status, POST /services/{name}/scale,
 * POST /services/{name}/restart, POST /services/{name}/log-level,
 * POST /reload, POST /shutdown, GET /metrics and GET /health
 * (docs/supervisor.md). Served by the same HTTP layer as every worker, on
 * the supervisor's loop. Every route sits behind one guard: the Host,
 * Origin and Content-Type checks, and the bearer token for all but
 * GET /health (admin_auth.h).
 *
 * It drives the supervisor only through its public functions (workers.h,
 * reload.h, supervisor.h) and reads its tables; the supervisor does not
 * know it exists. main.c creates it between sv_new and sv_launch, and
 * destroys it before sv_destroy.
 *
 * Loop thread only. */
#ifndef VAPORA_SV_ADMIN_H
#define VAPORA_SV_ADMIN_H

#include <stddef.h>

#include "supervisor.h"

typedef struct sv_admin sv_admin_t;

/* Loads (or creates) the token in data_dir, binds [supervisor] admin (a
 * warning when it is not loopback) and starts serving sv (borrowed: it
 * must outlive the result). Returns NULL with the reason in err. */
sv_admin_t *sv_admin_new(sv_t *sv, char *err, size_t errlen);
/* Stops serving, closes the socket and frees. Accepts NULL; sets
 * *ap = NULL. */
void sv_admin_destroy(sv_admin_t **ap);

#endif
