/* reload.c - see reload.h. */
#define _GNU_SOURCE
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fd.h"
#include "log.h"
#include "programs.h"
#include "svcheck.h"
#include "workers.h"

/* ---- the steps start-up shares ---- */

/* The socket sv already holds at addr, with a new reference, or NULL. */
static sv_socket_t *s_socket_at(sv_t *sv, const char *addr)
{
    for (size_t k = 0; k < sv->nservices; k++)
        if (strcmp(sv->services[k]->listen, addr) == 0)
            return sv_socket_ref(sv->services[k]->sock);
    return NULL;
}

sv_socket_t **sv_bind_addresses(sv_t *sv, const sv_config_t *nc, char *err,
                                size_t errlen)
{
    sv_socket_t **socks = xcalloc(nc->nservices + 1, sizeof *socks);
    for (size_t i = 0; i < nc->nservices; i++) {
        const sv_service_cfg_t *sc = &nc->services[i];
        sv_service_t *svc = sv_find_service(sv, sc->name);
        if (svc && strcmp(svc->listen, sc->listen) == 0)
            continue;
        /* The address may be bound already: by a service removed a moment
         * ago that still drains, or one this file removes, renames or
         * moves (two swapping addresses). That socket serves this one too:
         * the file cannot give one address to two services. */
        socks[i] = s_socket_at(sv, sc->listen);
        if (!socks[i])
            socks[i] = sv_socket_open(sc->listen, err, errlen);
        if (!socks[i]) {
            sv_release_addresses(&socks, nc->nservices);
            return NULL;
        }
    }
    return socks;
}

void sv_release_addresses(sv_socket_t ***socksp, size_t n)
{
    sv_socket_t **socks = *socksp;
    for (size_t k = 0; socks && k < n; k++)
        sv_socket_unref(&socks[k]);
    free(socks);
    *socksp = NULL;
}

int sv_write_worker_config(sv_t *sv, const char *text, char *err, size_t errlen)
{
    char *tmp = xasprintf("%s.tmp", sv->worker_config);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : fd_write_all(fd, text, strlen(text));
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, sv->worker_config) < 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "cannot write %s: %s", sv->worker_config, strerror(-rc));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* ---- applying a new config ---- */

/* The lock, the control socket and every worker's data live under
 * data_dir, and vaporactl finds us at admin with the token it reads
 * there: all three are fixed until a restart, so a file that changes them
 * is refused as a whole. */
static int s_check_fixed(const sv_t *sv, const sv_config_t *nc, char *err,
                         size_t errlen)
{
    const char *was = sv->cfg->admin_token, *now = nc->admin_token;
    if (strcmp(nc->admin, sv->cfg->admin) == 0 &&
        strcmp(nc->data_dir, sv->cfg->data_dir) == 0 &&
        (was && now ? strcmp(was, now) == 0 : was == now))
        return 0;
    snprintf(err, errlen,
             "[supervisor] admin, admin_token and data_dir cannot change while "
             "running (restart the supervisor for that)");
    return -EINVAL;
}

/* Drains the workers of every service nc no longer has. */
static void s_remove_services(sv_t *sv, const sv_config_t *nc)
{
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        if (svc->removed || sv_config_service(nc, svc->name))
            continue;
        log_info("reload: service %s removed; draining its workers", svc->name);
        svc->removed = true;
        for (size_t j = 0; j < svc->nworkers;)
            if (!sv_worker_retire(sv, svc->workers[j], svc->shutdown_timeout))
                j++;
    }
}

/* Applies one service of a new config to its running counterpart; newsock
 * (or NULL: the address did not change) is taken over. */
static void s_apply_service(sv_t *sv, sv_service_t *svc, const sv_service_cfg_t *sc,
                            sv_socket_t *newsock)
{
    if (newsock) { /* new address: new workers use the new socket */
        sv_socket_unref(&svc->sock);
        svc->sock = newsock;
        free(svc->listen);
        svc->listen = xstrdup(sc->listen);
    }
    bool changed = strcmp(svc->fingerprint, sc->fingerprint) != 0 ||
                   svc->argv[0] == NULL || strcmp(svc->argv[0], sc->argv[0]) != 0;
    changed |= svc->control != sc->control;
    sv_argv_free(svc->argv);
    svc->argv = sv_argv_dup(sc->argv);
    svc->control = sc->control;
    svc->start_timeout = sc->start_timeout;
    svc->shutdown_timeout = sc->shutdown_timeout;
    svc->pin = sc->pin;
    free(svc->fingerprint);
    svc->fingerprint = xstrdup(sc->fingerprint);
    if (svc->desired != sc->workers)
        log_info("reload: %s now wants %u worker(s)", svc->name, sc->workers);
    svc->desired = sc->workers;
    if (changed && svc->nworkers > 0)
        sv_rolling_restart(sv, svc);
}

/* Everything is validated, bound and written: nc replaces the config. Each
 * socket of socks goes to its service. */
static void s_apply(sv_t *sv, sv_config_t *nc, sv_socket_t **socks)
{
    s_remove_services(sv, nc);
    for (size_t i = 0; i < nc->nservices; i++) {
        sv_service_t *svc = sv_find_service(sv, nc->services[i].name);
        if (svc)
            s_apply_service(sv, svc, &nc->services[i], socks[i]);
        else
            sv_service_new(sv, &nc->services[i], socks[i]);
    }
    free(socks);
    sv_programs_apply(sv, nc);
    sv_config_t *old = sv->cfg;
    sv->cfg = nc;
    sv_config_destroy(&old);
    for (size_t i = 0; i < sv->nservices; i++)
        sv_reconcile(sv, sv->services[i]);
    sv_services_sweep(sv);
}

int sv_reload(sv_t *sv, char *err, size_t errlen)
{
    if (sv->phase != SV_PHASE_RUNNING) {
        snprintf(err, errlen, "the supervisor is shutting down");
        return -EINVAL;
    }
    sv_config_t *nc = sv_config_load(sv->config_path, sv->bin_dir, err, errlen);
    if (!nc)
        return -EINVAL;
    /* Bind every new address first, so a failure changes nothing. */
    sv_socket_t **socks = NULL;
    if (s_check_fixed(sv, nc, err, errlen) < 0 ||
        sv_check_services(nc, sv->worker_config, err, errlen) < 0 ||
        !(socks = sv_bind_addresses(sv, nc, err, errlen)) ||
        sv_write_worker_config(sv, nc->text, err, errlen) < 0) {
        sv_release_addresses(&socks, nc->nservices);
        sv_config_destroy(&nc);
        return -EINVAL;
    }
    s_apply(sv, nc, socks);
    log_info("configuration reloaded from %s", sv->config_path);
    return 0;
}
