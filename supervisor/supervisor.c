/* supervisor.c - start-up, the tick, signals and the shutdown phases (see
 * supervisor.h). */
#define _GNU_SOURCE
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "alloc.h"
#include "base.h"
#include "file.h"
#include "log.h"
#include "now.h"
#include "programs.h"
#include "reload.h"
#include "workers.h"

/* ---- shutdown ---- */

/* Moves the shutdown on once a phase has nothing left: workers gone →
 * programs stop; programs gone → the loop ends. */
static void s_advance_shutdown(sv_t *sv)
{
    if (sv->phase == SV_PHASE_STOP_SERVICES && sv_workers_count(sv) == 0) {
        /* Programs get what is left of shutdown_timeout, and at least
         * SV_PROGRAM_STOP_MS when the workers used all of it. */
        sv->phase = SV_PHASE_STOP_PROGRAMS;
        uint64_t floor = now_ms() + SV_PROGRAM_STOP_MS;
        sv_programs_stop_all(sv, sv->phase_deadline_ms > floor ? sv->phase_deadline_ms
                                                               : floor);
    }
    if (sv->phase == SV_PHASE_STOP_PROGRAMS && sv_programs_running(sv) == 0) {
        sv->phase = SV_PHASE_DONE;
        log_info("every worker and program has stopped");
        loop_stop(sv->loop);
    }
}

void sv_shutdown(sv_t *sv, const char *why)
{
    if (sv->phase != SV_PHASE_RUNNING)
        return;
    log_info("%s: draining every worker (up to %u s), then stopping programs", why,
             sv->cfg->shutdown_timeout);
    sv->phase = SV_PHASE_STOP_SERVICES; /* the admin API keeps answering */
    /* One deadline for everything: workers drain until it (their runtime
     * stops itself then; SIGKILL shortly after), programs stop after them. */
    sv->phase_deadline_ms = now_ms() + (uint64_t)sv->cfg->shutdown_timeout * 1000;
    sv_workers_drain_all(sv, sv->phase_deadline_ms + SV_EXIT_SLACK_MS);
    s_advance_shutdown(sv);
}

static void s_kill_everything(sv_t *sv)
{
    log_warn("stopping at once: SIGKILL to every worker and program");
    sv_workers_kill(sv);
    sv_programs_kill(sv);
    sv->exit_status = 1;
    loop_stop(sv->loop);
}

/* ---- events: exits, the tick, signals ---- */

static void s_reap(sv_t *sv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (!sv_workers_on_exit(sv, pid, status))
            sv_programs_on_exit(sv, pid, status);
}

static void s_tick(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    sv_t *sv = ud;
    uint64_t now = now_ms();
    s_reap(sv);
    sv_workers_tick(sv, now);
    sv_programs_tick(sv, now);
    sv_services_sweep(sv);
    s_advance_shutdown(sv);
}

static void s_on_signal(int signo, void *ud)
{
    sv_t *sv = ud;
    switch (signo) {
    case SIGCHLD: s_reap(sv); break;
    case SIGHUP: {
        char err[512];
        if (sv_reload(sv, err, sizeof err) < 0)
            log_error("SIGHUP: configuration not reloaded: %s", err);
        break;
    }
    case SIGTERM:
    case SIGINT:
        /* A second SIGINT (a second Ctrl-C) does not wait. */
        if (sv->phase != SV_PHASE_RUNNING && signo == SIGINT)
            s_kill_everything(sv);
        else
            sv_shutdown(sv, signo == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    s_advance_shutdown(sv);
}

/* ---- start-up ---- */

/* data_dir holds secrets (the admin token, the backend's JWT secret, its
 * database): one made by an older version or by `mkdir -p` may be open to
 * the group and others. Ours is narrowed to 0700 (what is inside is then
 * out of their reach whatever its own mode); one we do not own is only
 * warned about. */
static void s_tighten_data_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0 || (st.st_mode & 077) == 0)
        return;
    if (st.st_uid != geteuid())
        log_warn("%s is open to other users (mode %04o) and not ours to change: "
                 "make it 0700",
                 dir, (unsigned)(st.st_mode & 07777));
    else if (chmod(dir, 0700) < 0)
        log_err(errno, "chmod 0700 %s", dir);
    else
        log_warn("%s was open to other users (mode %04o): now 0700", dir,
                 (unsigned)(st.st_mode & 07777));
}

static int s_open_run_dir(sv_t *sv, char *err, size_t errlen)
{
    sv->run_dir = xasprintf("%s/run", sv->cfg->data_dir);
    int made = file_mkdirs(sv->cfg->data_dir, 0700);
    if (made == 0)
        s_tighten_data_dir(sv->cfg->data_dir);
    if (made == 0 && mkdir(sv->run_dir, 0700) < 0 && errno != EEXIST)
        made = -errno;
    if (made < 0) {
        snprintf(err, errlen, "cannot create %s: %s", sv->run_dir, strerror(-made));
        return made;
    }
    chmod(sv->run_dir, 0700);
    char *lock = xasprintf("%s/supervisor.lock", sv->run_dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : flock(fd, LOCK_EX | LOCK_NB);
    free(lock);
    if (rc != 0) {
        /* Not ours: nothing under run_dir may be touched on the way out. */
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "another supervisor already uses %s", sv->cfg->data_dir);
        return -EBUSY;
    }
    sv->lock_fd = fd;
    sv->control_ep = xasprintf("ipc://%s/control.ipc", sv->run_dir);
    if (strlen(sv->control_ep) - 6 > 107) {
        snprintf(err, errlen, "data_dir path too long for an ipc socket: %s",
                 sv->run_dir);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int s_open_control(sv_t *sv, char *err, size_t errlen)
{
    sv->zctx = zmq_ctx_new();
    void *s = sv->zctx ? zmq_socket(sv->zctx, ZMQ_ROUTER) : NULL;
    if (!s) {
        snprintf(err, errlen, "cannot create the control socket: %s",
                 zmq_strerror(errno));
        return -EIO;
    }
    int one = 1, zero = 0;
    zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    mode_t old = umask(077);
    int rc = zmq_bind(s, sv->control_ep);
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", sv->control_ep,
                 zmq_strerror(errno));
        zmq_close(s);
        return -EIO;
    }
    sv->router = zchan_new(sv->loop, s, sv_workers_on_control, sv);
    return sv->router ? 0 : -EIO;
}

static int s_open_signals(sv_t *sv, char *err, size_t errlen)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    sv->signals = sigfd_new(sv->loop, sigs, ARRAY_LEN(sigs), s_on_signal, sv);
    if (sv->signals)
        return 0;
    snprintf(err, errlen, "signalfd: %s", strerror(errno));
    return -EIO;
}

/* Everything sv_new opens, in order; the first failure stops it. */
static int s_open(sv_t *sv, char *err, size_t errlen)
{
    sv->cfg = sv_config_load(sv->config_path, sv->bin_dir, err, errlen);
    if (!sv->cfg)
        return -EINVAL;
    sv->loop = loop_new();
    if (!sv->loop) {
        snprintf(err, errlen, "cannot create the event loop: %s", strerror(errno));
        return -EIO;
    }
    if (s_open_signals(sv, err, errlen) < 0 || s_open_run_dir(sv, err, errlen) < 0 ||
        s_open_control(sv, err, errlen) < 0)
        return -EIO;
    sv->worker_config = xasprintf("%s/config.conf", sv->run_dir);
    if (sv_write_worker_config(sv, sv->cfg->text, err, errlen) < 0)
        return -EIO;
    /* Bind every service socket before starting anything. */
    sv->bound = sv_bind_addresses(sv, sv->cfg, err, errlen);
    return sv->bound ? 0 : -EIO;
}

sv_t *sv_new(const char *config_path, const char *bin_dir, char *err, size_t errlen)
{
    sv_t *sv = xcalloc(1, sizeof *sv);
    sv->lock_fd = -1;
    sv->started_wall = time(NULL);
    srandom((unsigned)(time(NULL) ^ getpid()));
    sv->config_path = xstrdup(config_path);
    sv->bin_dir = xstrdup(bin_dir);
    if (s_open(sv, err, errlen) < 0)
        sv_destroy(&sv);
    return sv;
}

void sv_launch(sv_t *sv)
{
    for (size_t i = 0; i < sv->cfg->nprograms; i++) /* programs first */
        sv_program_new(sv, &sv->cfg->programs[i]);
    for (size_t i = 0; i < sv->cfg->nservices; i++)
        sv_service_new(sv, &sv->cfg->services[i], sv->bound[i]);
    free(sv->bound); /* each socket now belongs to its service */
    sv->bound = NULL;
    for (size_t i = 0; i < sv->nservices; i++)
        sv_reconcile(sv, sv->services[i]);
    sv->tick = loop_add_timer(sv->loop, SV_TICK_MS, SV_TICK_MS, s_tick, sv);
}

int sv_run(sv_t *sv)
{
    return loop_run(sv->loop) < 0 ? 1 : sv->exit_status;
}

/* ---- the end ---- */

static void s_close_control(sv_t *sv)
{
    zchan_destroy(&sv->router);
    if (sv->zctx)
        zmq_ctx_term(sv->zctx);
    if (sv->control_ep) {
        unlink(sv->control_ep + strlen("ipc://"));
        free(sv->control_ep);
    }
}

void sv_destroy(sv_t **svp)
{
    sv_t *sv = svp ? *svp : NULL;
    if (!sv)
        return;
    if (sv->loop)
        loop_cancel_timer(sv->loop, &sv->tick);
    sv_release_addresses(&sv->bound, sv->cfg ? sv->cfg->nservices : 0);
    sv_services_destroy(sv);
    sv_programs_destroy(sv);
    s_close_control(sv);
    if (sv->worker_config) {
        unlink(sv->worker_config);
        free(sv->worker_config);
    }
    /* The lock file stays: unlinking it would let a supervisor that opened
     * it just before and one that creates it afresh both hold "the" lock. */
    if (sv->lock_fd >= 0)
        close(sv->lock_fd);
    free(sv->run_dir);
    sigfd_destroy(&sv->signals);
    loop_destroy(&sv->loop);
    sv_config_destroy(&sv->cfg);
    free(sv->config_path);
    free(sv->bin_dir);
    free(sv);
    *svp = NULL;
}
