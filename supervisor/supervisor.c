/* supervisor.c - the process table and its state machine (see sv.h). */
#define _GNU_SOURCE
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

#include "log.h"
#include "net.h"
#include "sigfd.h"
#include "spawn.h"
#include "sv.h"
#include "alloc.h"
#include "now.h"
#include "fd.h"
#include "file.h"

static const char *const s_state_names[] = {"starting", "running", "draining",
                                            "backoff", "stopped"};

const char *sv_state_name(sv_state_t s)
{
    return s_state_names[s];
}

static uint64_t s_now(sv_t *sv)
{
    UNUSED(sv);
    return now_ms();
}

/* Signals a child's whole process group (each child leads its own), so
 * what a program started goes with it; falls back to the pid alone if the
 * child has not made its group yet. */
static void s_signal(pid_t pid, int sig)
{
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

/* ---- sockets ---- */

static sv_socket_t *s_socket_open(const char *addr, char *err, size_t errlen)
{
    int fd = net_listen(addr, 4096, false, err, errlen);
    if (fd < 0)
        return NULL;
    sv_socket_t *s = xcalloc(1, sizeof *s);
    s->fd = fd;
    s->addr = xstrdup(addr);
    s->refs = 1;
    return s;
}

static sv_socket_t *s_socket_ref(sv_socket_t *s)
{
    s->refs++;
    return s;
}

static void s_socket_unref(sv_socket_t **sp)
{
    sv_socket_t *s = *sp;
    *sp = NULL;
    if (s && --s->refs == 0) {
        close(s->fd);
        free(s->addr);
        free(s);
    }
}

/* ---- workers ---- */

static char **s_argv_dup(char *const *argv)
{
    size_t n = 0;
    while (argv[n])
        n++;
    char **a = xcalloc(n + 1, sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = xstrdup(argv[i]);
    return a;
}

static void s_worker_describe(const sv_worker_t *w, char *buf, size_t len)
{
    snprintf(buf, len, "worker %s (pid %d)", w->ident, (int)w->p.pid);
}

/* Records the outcome of spawning p: running in `state` from now, or, when
 * the spawn failed (pid < 0, reason in err), an exit status 127 and the
 * backoff that follows. who names it in the log. Returns whether it runs. */
static bool s_record_spawn(sv_proc_t *p, pid_t pid, sv_state_t state, uint64_t now,
                           const char *who, const char *err)
{
    p->kill_at_ms = 0;
    if (pid < 0) {
        log_error("cannot start %s: %s", who, err);
        p->pid = 0;
        p->last_status = 127 << 8;
        sv_enter_backoff(p, now, sv_backoff_after_exit(p, now, false));
        return false;
    }
    p->pid = pid;
    p->state = state;
    p->started_ms = now;
    p->started_wall = time(NULL);
    log_info("started %s (pid %d)", who, (int)pid);
    return true;
}

/* Forks the worker's process; on failure the worker goes to backoff. */
static void s_worker_exec(sv_t *sv, sv_worker_t *w)
{
    sv_service_t *svc = w->svc;
    char env_ctl[600], env_id[128];
    snprintf(env_ctl, sizeof env_ctl, "VAPORA_CONTROL=%s", sv->control_ep);
    snprintf(env_id, sizeof env_id, "VAPORA_WORKER_ID=%s", w->ident);
    const char *env[] = {env_ctl, env_id, NULL};
    /* Our workers get the config the supervisor validated last. */
    size_t argc = 0;
    while (svc->argv[argc])
        argc++;
    char **argv = xcalloc(argc + 3, sizeof *argv);
    memcpy(argv, svc->argv, argc * sizeof *argv);
    if (svc->control) {
        argv[argc] = "-c";
        argv[argc + 1] = sv->worker_config;
    }
    spawn_req_t req = {.argv = argv, .listen_fd = w->sock->fd, .env = env};
    char err[256];
    uint64_t now = s_now(sv);
    pid_t pid = spawn_process(&req, err, sizeof err);
    free(argv);
    w->ready = false;
    w->aborted = false;
    memset(&w->stats, 0, sizeof w->stats);
    w->cpu_percent = 0;
    w->stats_ms = 0;
    char who[128];
    snprintf(who, sizeof who, "worker %s", w->ident);
    /* A service without the control channel cannot say ready: it counts
     * as running once started. */
    if (s_record_spawn(&w->p, pid, svc->control ? SV_STARTING : SV_RUNNING, now, who,
                       err))
        w->last_seen_ms = now;
}

static sv_worker_t *s_worker_new(sv_t *sv, sv_service_t *svc)
{
    sv_worker_t *w = xcalloc(1, sizeof *w);
    w->svc = svc;
    w->id = ++svc->next_id;
    w->gen = svc->gen;
    w->p.last_status = -1;
    w->sock = s_socket_ref(svc->sock);
    snprintf(w->ident, sizeof w->ident, "%s/%u", svc->name, w->id);
    svc->workers = xrealloc(svc->workers, (svc->nworkers + 1) * sizeof *svc->workers);
    svc->workers[svc->nworkers++] = w;
    s_worker_exec(sv, w);
    return w;
}

static void s_worker_forget(sv_service_t *svc, sv_worker_t *w)
{
    for (size_t i = 0; i < svc->nworkers; i++) {
        if (svc->workers[i] == w) {
            memmove(&svc->workers[i], &svc->workers[i + 1],
                    (svc->nworkers - i - 1) * sizeof *svc->workers);
            svc->nworkers--;
            break;
        }
    }
    s_socket_unref(&w->sock);
    free(w);
}

static int s_send_control(sv_t *sv, const char *ident, const char *json)
{
    const void *parts[2] = {ident, json};
    size_t lens[2] = {strlen(ident), strlen(json)};
    return zchan_send(sv->router, parts, lens, 2);
}

static void s_send_log_level(sv_t *sv, sv_worker_t *w)
{
    char msg[64];
    snprintf(msg, sizeof msg, "{\"type\":\"log_level\",\"level\":\"%s\"}",
             w->svc->log_level);
    if (s_send_control(sv, w->ident, msg) < 0)
        log_warn("could not tell %s its log level", w->ident);
}

int sv_set_log_level(sv_t *sv, sv_service_t *svc, const char *level)
{
    log_level_t lvl;
    if (!level || log_parse_level(level, &lvl) < 0)
        return -EINVAL;
    snprintf(svc->log_level, sizeof svc->log_level, "%s", log_level_name(lvl));
    int told = 0;
    for (size_t i = 0; i < svc->nworkers; i++) {
        sv_worker_t *w = svc->workers[i];
        if (w->ready && w->p.pid != 0) {
            s_send_log_level(sv, w);
            told++;
        }
    }
    log_info("%s: log level %s (%d worker(s) told)", svc->name, svc->log_level, told);
    return told;
}

/* Asks a worker to finish its in-flight requests and exit; it will not be
 * replaced. A worker without a process is forgotten at once. Returns true
 * when the worker was forgotten (the pointer is then invalid). */
static bool s_worker_retire(sv_t *sv, sv_worker_t *w, unsigned timeout_s)
{
    w->retiring = true;
    if (w->p.pid == 0) {
        s_worker_forget(w->svc, w);
        return true;
    }
    if (w->p.state == SV_DRAINING)
        return false;
    w->p.state = SV_DRAINING;
    w->p.kill_at_ms = s_now(sv) + (uint64_t)timeout_s * 1000 + SV_EXIT_SLACK_MS;
    /* A worker that never connected cannot hear "drain": SIGTERM does the
     * same in our runtime. */
    if (!w->ready || s_send_control(sv, w->ident, "{\"type\":\"drain\"}") < 0)
        s_signal(w->p.pid, SIGTERM);
    char d[128];
    s_worker_describe(w, d, sizeof d);
    log_info("draining %s", d);
    return false;
}

/* ---- reconcile: bring a service to its desired shape ---- */

static bool s_is_live(const sv_worker_t *w)
{
    return !w->retiring && w->p.state != SV_DRAINING;
}

/* The live worker to retire first when there are too many: one not yet
 * serving, else the newest. */
static sv_worker_t *s_pick_extra(sv_service_t *svc, bool stale)
{
    sv_worker_t *best = NULL;
    for (size_t i = 0; i < svc->nworkers; i++) {
        sv_worker_t *w = svc->workers[i];
        if (!s_is_live(w) || (w->gen != svc->gen) != stale)
            continue;
        if (!best || (best->p.state == SV_RUNNING && w->p.state != SV_RUNNING) ||
            (best->p.state == w->p.state && w->id > best->id))
            best = w;
    }
    return best;
}

static void s_reconcile(sv_t *sv, sv_service_t *svc)
{
    if (sv->phase != SV_PHASE_RUNNING || svc->removed)
        return;
    unsigned fresh = 0, stale = 0, pending = 0;
    for (size_t i = 0; i < svc->nworkers; i++) {
        sv_worker_t *w = svc->workers[i];
        if (!s_is_live(w))
            continue;
        if (w->gen != svc->gen)
            stale++;
        else {
            fresh++;
            /* Not serving yet: starting, or crashing in backoff. */
            pending += w->p.state != SV_RUNNING;
        }
    }
    unsigned total = fresh + stale;
    if (total < svc->desired) {
        for (unsigned i = total; i < svc->desired; i++)
            s_worker_new(sv, svc);
        return;
    }
    if (pending > 0 && stale > 0)
        return; /* one replacement at a time: the old keep serving until it does */
    if (stale > 0) {
        if (total > svc->desired)
            s_worker_retire(sv, s_pick_extra(svc, true), sv->cfg->shutdown_timeout);
        else
            s_worker_new(sv, svc); /* the replacement, before the old one drains */
        return;
    }
    while (total-- > svc->desired)
        s_worker_retire(sv, s_pick_extra(svc, false), sv->cfg->shutdown_timeout);
}

int sv_scale(sv_t *sv, sv_service_t *svc, long n)
{
    if (n < 0 || n > 256)
        return -EINVAL;
    if ((unsigned)n != svc->desired)
        log_info("scaling %s from %u to %ld worker(s)", svc->name, svc->desired, n);
    svc->desired = (unsigned)n;
    s_reconcile(sv, svc);
    return 0;
}

void sv_rolling_restart(sv_t *sv, sv_service_t *svc)
{
    svc->gen++;
    log_info("rolling restart of %s (generation %u)", svc->name, svc->gen);
    s_reconcile(sv, svc);
}

sv_service_t *sv_find_service(sv_t *sv, const char *name)
{
    for (size_t i = 0; i < sv->nservices; i++)
        if (!sv->services[i]->removed && strcmp(sv->services[i]->name, name) == 0)
            return sv->services[i];
    return NULL;
}

/* ---- programs ---- */

static void s_program_exec(sv_t *sv, sv_program_t *pg)
{
    spawn_req_t req = {.argv = pg->argv, .directory = pg->directory, .listen_fd = -1};
    char err[256];
    uint64_t now = s_now(sv);
    pid_t pid = spawn_process(&req, err, sizeof err);
    char who[128];
    snprintf(who, sizeof who, "program %s", pg->name);
    s_record_spawn(&pg->p, pid, SV_RUNNING, now, who, err);
}

static sv_program_t *s_program_new(sv_t *sv, const sv_program_cfg_t *pc)
{
    sv_program_t *pg = xcalloc(1, sizeof *pg);
    pg->name = xstrdup(pc->name);
    pg->argv = s_argv_dup(pc->argv);
    pg->directory = pc->directory ? xstrdup(pc->directory) : NULL;
    pg->fingerprint = xstrdup(pc->fingerprint);
    pg->p.last_status = -1;
    sv->programs = xrealloc(sv->programs, (sv->nprograms + 1) * sizeof *sv->programs);
    sv->programs[sv->nprograms++] = pg;
    s_program_exec(sv, pg);
    return pg;
}

/* SIGTERM now, SIGKILL at kill_at (monotonic ms). */
static void s_program_stop(sv_t *sv, sv_program_t *pg, uint64_t kill_at)
{
    UNUSED(sv);
    if (pg->p.pid == 0) {
        pg->p.state = SV_STOPPED;
        return;
    }
    if (pg->p.state == SV_DRAINING)
        return;
    pg->p.state = SV_DRAINING;
    pg->p.kill_at_ms = kill_at;
    s_signal(pg->p.pid, SIGTERM);
    log_info("stopping program %s (pid %d)", pg->name, (int)pg->p.pid);
}

static void s_program_free(sv_program_t *pg)
{
    free(pg->name);
    sv_argv_free(pg->argv);
    free(pg->directory);
    free(pg->fingerprint);
    free(pg);
}

static void s_program_forget(sv_t *sv, sv_program_t *pg)
{
    for (size_t i = 0; i < sv->nprograms; i++) {
        if (sv->programs[i] == pg) {
            memmove(&sv->programs[i], &sv->programs[i + 1],
                    (sv->nprograms - i - 1) * sizeof *sv->programs);
            sv->nprograms--;
            break;
        }
    }
    s_program_free(pg);
}

/* ---- exits ---- */

static void s_on_worker_exit(sv_t *sv, sv_worker_t *w, int status)
{
    char how[96], d[128];
    spawn_describe_status(status, how, sizeof how);
    s_worker_describe(w, d, sizeof d);
    uint64_t now = s_now(sv);
    bool expected = w->retiring || sv->phase != SV_PHASE_RUNNING || w->svc->removed;
    w->p.pid = 0;
    w->p.last_status = status;
    if (expected) {
        log_info("%s exited (%s)", d, how);
        s_worker_forget(w->svc, w);
        return;
    }
    if (w->gen != w->svc->gen) {
        /* A worker of the generation being replaced: its command and
         * config are gone, so reconcile starts a current one instead. */
        log_warn("%s %s during a rolling restart; a current worker replaces it", d,
                 how);
        sv_service_t *svc = w->svc;
        s_worker_forget(svc, w);
        s_reconcile(sv, svc);
        return;
    }
    uint64_t delay = sv_backoff_after_exit(&w->p, now, w->ready || !w->svc->control);
    w->p.restarts++;
    if (delay == 0) {
        log_warn("%s %s; replacing it now", d, how);
        s_worker_exec(sv, w);
    } else {
        log_warn("%s %s; restart %u in %llu ms (backoff)", d, how, w->p.failures,
                 (unsigned long long)delay);
        sv_enter_backoff(&w->p, now, delay);
    }
}

static void s_on_program_exit(sv_t *sv, sv_program_t *pg, int status)
{
    char how[96];
    spawn_describe_status(status, how, sizeof how);
    uint64_t now = s_now(sv);
    bool stopping = pg->p.state == SV_DRAINING;
    pid_t pid = pg->p.pid;
    pg->p.pid = 0;
    pg->p.last_status = status;
    if (pg->removed) {
        log_info("program %s exited (%s)", pg->name, how);
        s_program_forget(sv, pg);
        return;
    }
    if (stopping || sv->phase != SV_PHASE_RUNNING) {
        log_info("program %s exited (%s)", pg->name, how);
        pg->p.state = SV_STOPPED;
        if (pg->restart_pending && sv->phase == SV_PHASE_RUNNING) {
            pg->restart_pending = false;
            s_program_exec(sv, pg);
        }
        return;
    }
    uint64_t delay = sv_backoff_after_exit(&pg->p, now, true);
    pg->p.restarts++;
    log_warn("program %s (pid %d) %s; restart in %llu ms", pg->name, (int)pid, how,
             (unsigned long long)delay);
    if (delay == 0)
        s_program_exec(sv, pg);
    else
        sv_enter_backoff(&pg->p, now, delay);
}

static void s_reap(sv_t *sv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        bool found = false;
        for (size_t i = 0; i < sv->nservices && !found; i++) {
            sv_service_t *svc = sv->services[i];
            for (size_t j = 0; j < svc->nworkers; j++) {
                if (svc->workers[j]->p.pid == pid) {
                    s_on_worker_exit(sv, svc->workers[j], status);
                    found = true;
                    break;
                }
            }
        }
        for (size_t i = 0; i < sv->nprograms && !found; i++) {
            if (sv->programs[i]->p.pid == pid) {
                s_on_program_exit(sv, sv->programs[i], status);
                found = true;
            }
        }
    }
}

/* ---- control channel ---- */

static sv_worker_t *s_find_worker(sv_t *sv, const char *ident, size_t len)
{
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers; j++) {
            sv_worker_t *w = svc->workers[j];
            if (strlen(w->ident) == len && memcmp(w->ident, ident, len) == 0)
                return w;
        }
    }
    return NULL;
}

static void s_on_heartbeat(sv_worker_t *w, json_t *stats, uint64_t now)
{
    control_stats_t st;
    if (control_stats_parse(stats, &st) < 0)
        return;
    if (w->stats_ms && now > w->stats_ms)
        w->cpu_percent =
            (st.cpu_seconds - w->stats.cpu_seconds) * 1e5 / (double)(now - w->stats_ms);
    w->stats = st;
    w->stats_ms = now;
}

static void s_on_control(zchan_t *ch, const zchan_msg_t *m, void *ud)
{
    UNUSED(ch);
    sv_t *sv = ud;
    if (m->n != 2)
        return;
    sv_worker_t *w = s_find_worker(sv, m->parts[0], m->lens[0]);
    if (!w || w->p.pid == 0)
        return; /* a worker we already forgot */
    json_t *j = json_loadb(m->parts[1], m->lens[1], 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    uint64_t now = s_now(sv);
    w->last_seen_ms = now;
    if (type && strcmp(type, "ready") == 0) {
        w->ready = true;
        w->ready_ms = now;
        if (w->p.state == SV_STARTING) {
            w->p.state = SV_RUNNING;
            log_info("worker %s (pid %d) is ready (%llu ms after start)", w->ident,
                     (int)w->p.pid, (unsigned long long)(now - w->p.started_ms));
        }
        if (w->svc->log_level[0])
            s_send_log_level(sv, w);
        s_reconcile(sv, w->svc); /* a rolling restart moves on */
    } else if (type && strcmp(type, "heartbeat") == 0) {
        s_on_heartbeat(w, json_object_get(j, "stats"), now);
    }
    json_decref(j);
}

/* ---- the tick: watchdog, backoff, deadlines ---- */

static void s_check_worker(sv_t *sv, sv_worker_t *w, uint64_t now)
{
    char d[128];
    if (w->p.state == SV_BACKOFF) {
        if (now >= w->p.next_attempt_ms)
            s_worker_exec(sv, w);
        return;
    }
    if (w->p.pid == 0)
        return;
    if (w->p.kill_at_ms && now >= w->p.kill_at_ms) {
        s_worker_describe(w, d, sizeof d);
        log_error("%s did not exit in time: SIGKILL", d);
        s_signal(w->p.pid, SIGKILL);
        w->p.kill_at_ms = now + 5000; /* repeat if it somehow survives */
        return;
    }
    if (w->aborted || w->p.state == SV_DRAINING || !w->svc->control)
        return;
    /* last_seen_ms may be later than now: a worker restarted in this tick. */
    uint64_t silent = now > w->last_seen_ms ? now - w->last_seen_ms : 0;
    uint64_t started = now > w->p.started_ms ? now - w->p.started_ms : 0;
    if (!w->ready && started > (uint64_t)w->svc->start_timeout * 1000) {
        s_worker_describe(w, d, sizeof d);
        log_error("%s did not say ready in %u s (start_timeout): hung; "
                  "SIGABRT for a core dump, SIGKILL in %d ms",
                  d, w->svc->start_timeout, SV_ABORT_GRACE_MS);
    } else if (w->ready && silent > (uint64_t)sv->cfg->watchdog_timeout * 1000) {
        s_worker_describe(w, d, sizeof d);
        log_error("%s sent no heartbeat for %llu ms (watchdog_timeout %u s): hung; "
                  "SIGABRT for a core dump, SIGKILL in %d ms",
                  d, (unsigned long long)silent, sv->cfg->watchdog_timeout,
                  SV_ABORT_GRACE_MS);
    } else {
        return;
    }
    kill(w->p.pid, SIGABRT);
    kill(w->p.pid, SIGCONT); /* a stopped process must run to abort */
    w->aborted = true;
    w->p.kill_at_ms = now + SV_ABORT_GRACE_MS;
}

static void s_check_program(sv_t *sv, sv_program_t *pg, uint64_t now)
{
    if (pg->p.state == SV_BACKOFF && now >= pg->p.next_attempt_ms &&
        sv->phase == SV_PHASE_RUNNING) {
        s_program_exec(sv, pg);
    } else if (pg->p.pid && pg->p.kill_at_ms && now >= pg->p.kill_at_ms) {
        log_error("program %s (pid %d) did not stop in time: SIGKILL", pg->name,
                  (int)pg->p.pid);
        s_signal(pg->p.pid, SIGKILL);
        pg->p.kill_at_ms = now + 5000;
    }
}

static size_t s_count_workers(sv_t *sv)
{
    size_t n = 0;
    for (size_t i = 0; i < sv->nservices; i++)
        n += sv->services[i]->nworkers;
    return n;
}

static size_t s_count_programs_running(sv_t *sv)
{
    size_t n = 0;
    for (size_t i = 0; i < sv->nprograms; i++)
        n += sv->programs[i]->p.pid != 0;
    return n;
}

/* Drops services that were removed and whose workers are all gone. */
static void s_sweep_services(sv_t *sv)
{
    for (size_t i = 0; i < sv->nservices;) {
        sv_service_t *svc = sv->services[i];
        if (svc->removed && svc->nworkers == 0) {
            log_info("service %s removed", svc->name);
            free(svc->name);
            free(svc->listen);
            sv_argv_free(svc->argv);
            free(svc->fingerprint);
            s_socket_unref(&svc->sock);
            free(svc->workers);
            free(svc);
            memmove(&sv->services[i], &sv->services[i + 1],
                    (sv->nservices - i - 1) * sizeof *sv->services);
            sv->nservices--;
        } else {
            i++;
        }
    }
}

static void s_advance_shutdown(sv_t *sv)
{
    if (sv->phase == SV_PHASE_STOP_SERVICES && s_count_workers(sv) == 0) {
        /* Programs get what is left of shutdown_timeout, and at least
         * SV_PROGRAM_STOP_MS when the workers used all of it. */
        sv->phase = SV_PHASE_STOP_PROGRAMS;
        uint64_t floor = s_now(sv) + SV_PROGRAM_STOP_MS;
        uint64_t kill_at =
            sv->phase_deadline_ms > floor ? sv->phase_deadline_ms : floor;
        for (size_t i = 0; i < sv->nprograms; i++)
            s_program_stop(sv, sv->programs[i], kill_at);
    }
    if (sv->phase == SV_PHASE_STOP_PROGRAMS && s_count_programs_running(sv) == 0) {
        sv->phase = SV_PHASE_DONE;
        log_info("every worker and program has stopped");
        loop_stop(sv->loop);
    }
}

static void s_tick(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    sv_t *sv = ud;
    uint64_t now = s_now(sv);
    s_reap(sv);
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers; j++) {
            size_t before = svc->nworkers;
            s_check_worker(sv, svc->workers[j], now);
            if (svc->nworkers < before)
                j--;
        }
        s_reconcile(sv, svc);
    }
    for (size_t i = 0; i < sv->nprograms; i++)
        s_check_program(sv, sv->programs[i], now);
    s_sweep_services(sv);
    s_advance_shutdown(sv);
}

/* ---- shutdown ---- */

void sv_shutdown(sv_t *sv, const char *why)
{
    if (sv->phase != SV_PHASE_RUNNING)
        return;
    log_info("%s: draining every worker (up to %u s), then stopping programs", why,
             sv->cfg->shutdown_timeout);
    sv->phase = SV_PHASE_STOP_SERVICES; /* the admin API keeps answering */
    /* One deadline for everything: workers drain until it (their runtime
     * stops itself then; SIGKILL shortly after), programs stop after them. */
    sv->phase_deadline_ms = s_now(sv) + (uint64_t)sv->cfg->shutdown_timeout * 1000;
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers;) {
            sv_worker_t *w = svc->workers[j];
            if (!s_worker_retire(sv, w, sv->cfg->shutdown_timeout)) {
                uint64_t last = sv->phase_deadline_ms + SV_EXIT_SLACK_MS;
                if (!w->p.kill_at_ms || w->p.kill_at_ms > last)
                    w->p.kill_at_ms = last; /* one draining since a scale-down */
                j++;
            }
        }
    }
    s_advance_shutdown(sv);
}

static void s_kill_everything(sv_t *sv)
{
    log_warn("stopping at once: SIGKILL to every worker and program");
    for (size_t i = 0; i < sv->nservices; i++)
        for (size_t j = 0; j < sv->services[i]->nworkers; j++)
            if (sv->services[i]->workers[j]->p.pid)
                s_signal(sv->services[i]->workers[j]->p.pid, SIGKILL);
    for (size_t i = 0; i < sv->nprograms; i++)
        if (sv->programs[i]->p.pid)
            s_signal(sv->programs[i]->p.pid, SIGKILL);
    for (size_t i = 0; i < sv->nservices; i++)
        for (size_t j = 0; j < sv->services[i]->nworkers; j++)
            if (sv->services[i]->workers[j]->p.pid)
                waitpid(sv->services[i]->workers[j]->p.pid, NULL, 0);
    for (size_t i = 0; i < sv->nprograms; i++)
        if (sv->programs[i]->p.pid)
            waitpid(sv->programs[i]->p.pid, NULL, 0);
    sv->exit_status = 1;
    loop_stop(sv->loop);
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
        if (sv->phase != SV_PHASE_RUNNING && signo == SIGINT)
            s_kill_everything(sv);
        else
            sv_shutdown(sv, signo == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    s_advance_shutdown(sv);
}

/* ---- configuration: apply at start and on reload ---- */

static sv_service_t *s_service_new(sv_t *sv, const sv_service_cfg_t *sc,
                                   sv_socket_t *sock)
{
    sv_service_t *svc = xcalloc(1, sizeof *svc);
    svc->name = xstrdup(sc->name);
    svc->listen = xstrdup(sc->listen);
    svc->argv = s_argv_dup(sc->argv);
    svc->control = sc->control;
    svc->start_timeout = sc->start_timeout;
    svc->fingerprint = xstrdup(sc->fingerprint);
    svc->desired = sc->workers;
    svc->sock = sock;
    /* Worker ids name control-channel peers: a service added back while its
     * removed namesake still drains goes on from that one's ids. */
    for (size_t i = 0; i < sv->nservices; i++)
        if (sv->services[i]->removed && strcmp(sv->services[i]->name, svc->name) == 0 &&
            sv->services[i]->next_id > svc->next_id)
            svc->next_id = sv->services[i]->next_id;
    sv->services = xrealloc(sv->services, (sv->nservices + 1) * sizeof *sv->services);
    sv->services[sv->nservices++] = svc;
    log_info("service %s on %s with %u worker(s)%s", svc->name, svc->listen,
             svc->desired, sc->workers_auto ? " (auto)" : "");
    return svc;
}

/* Applies one service of a new config to its running counterpart. */
static void s_apply_service(sv_t *sv, sv_service_t *svc, const sv_service_cfg_t *sc,
                            sv_socket_t *newsock)
{
    if (newsock) { /* new address: new workers use the new socket */
        s_socket_unref(&svc->sock);
        svc->sock = newsock;
        free(svc->listen);
        svc->listen = xstrdup(sc->listen);
    }
    bool changed = strcmp(svc->fingerprint, sc->fingerprint) != 0 ||
                   svc->argv[0] == NULL || strcmp(svc->argv[0], sc->argv[0]) != 0;
    changed |= svc->control != sc->control;
    sv_argv_free(svc->argv);
    svc->argv = s_argv_dup(sc->argv);
    svc->control = sc->control;
    svc->start_timeout = sc->start_timeout;
    free(svc->fingerprint);
    svc->fingerprint = xstrdup(sc->fingerprint);
    if (svc->desired != sc->workers)
        log_info("reload: %s now wants %u worker(s)", svc->name, sc->workers);
    svc->desired = sc->workers;
    if (changed && svc->nworkers > 0)
        sv_rolling_restart(sv, svc);
}

static void s_apply_programs(sv_t *sv, const sv_config_t *nc)
{
    for (size_t i = 0; i < sv->nprograms; i++) {
        sv_program_t *pg = sv->programs[i];
        const sv_program_cfg_t *pc = sv_config_program(nc, pg->name);
        if (!pc) {
            pg->removed = true;
            if (pg->p.pid == 0) {
                s_program_forget(sv, pg);
                i--;
            } else {
                s_program_stop(sv, pg,
                               s_now(sv) + (uint64_t)sv->cfg->shutdown_timeout * 1000);
            }
        } else if (strcmp(pc->fingerprint, pg->fingerprint) != 0) {
            sv_argv_free(pg->argv);
            pg->argv = s_argv_dup(pc->argv);
            free(pg->directory);
            pg->directory = pc->directory ? xstrdup(pc->directory) : NULL;
            free(pg->fingerprint);
            pg->fingerprint = xstrdup(pc->fingerprint);
            log_info("reload: program %s changed; restarting it", pg->name);
            if (pg->p.pid) {
                pg->restart_pending = true;
                s_program_stop(sv, pg,
                               s_now(sv) + (uint64_t)sv->cfg->shutdown_timeout * 1000);
            } else {
                s_program_exec(sv, pg);
            }
        }
    }
    for (size_t i = 0; i < nc->nprograms; i++) {
        bool known = false;
        for (size_t j = 0; j < sv->nprograms; j++)
            known |= strcmp(sv->programs[j]->name, nc->programs[i].name) == 0 &&
                     !sv->programs[j]->removed;
        if (!known)
            s_program_new(sv, &nc->programs[i]);
    }
}

/* Writes text as the config every worker started from now on reads
 * (rename: a worker starting meanwhile reads the old or the new file). */
static int s_write_worker_config(sv_t *sv, const char *text, char *err, size_t errlen)
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

int sv_reload(sv_t *sv, char *err, size_t errlen)
{
    if (sv->phase != SV_PHASE_RUNNING) {
        snprintf(err, errlen, "the supervisor is shutting down");
        return -EINVAL;
    }
    sv_config_t *nc = sv_config_load(sv->config_path, sv->bin_dir, err, errlen);
    if (!nc)
        return -EINVAL;
    /* The lock, the control socket and every worker's data live under
     * data_dir, and vaporactl finds us at admin: both are fixed until a
     * restart, so a file that moves them is refused as a whole. */
    if (strcmp(nc->admin, sv->cfg->admin) != 0 ||
        strcmp(nc->data_dir, sv->cfg->data_dir) != 0) {
        snprintf(err, errlen,
                 "[supervisor] admin and data_dir cannot change while running "
                 "(restart the supervisor for that)");
        sv_config_destroy(&nc);
        return -EINVAL;
    }
    /* Bind every new address first, so a failure changes nothing. */
    sv_socket_t **socks = xcalloc(nc->nservices + 1, sizeof *socks);
    bool bound = true;
    for (size_t i = 0; i < nc->nservices && bound; i++) {
        sv_service_t *svc = sv_find_service(sv, nc->services[i].name);
        if (svc && strcmp(svc->listen, nc->services[i].listen) == 0)
            continue;
        /* The address may be bound already: by a service removed a moment
         * ago that still drains, or one this file removes, renames or
         * moves (two swapping addresses). That socket serves this one too:
         * the file cannot give one address to two services. */
        for (size_t k = 0; k < sv->nservices && !socks[i]; k++)
            if (strcmp(sv->services[k]->listen, nc->services[i].listen) == 0)
                socks[i] = s_socket_ref(sv->services[k]->sock);
        if (!socks[i])
            socks[i] = s_socket_open(nc->services[i].listen, err, errlen);
        bound = socks[i] != NULL;
    }
    if (!bound || s_write_worker_config(sv, nc->text, err, errlen) < 0) {
        for (size_t k = 0; k < nc->nservices; k++)
            s_socket_unref(&socks[k]);
        free(socks);
        sv_config_destroy(&nc);
        return -EINVAL;
    }
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        if (!svc->removed && !sv_config_service(nc, svc->name)) {
            log_info("reload: service %s removed; draining its workers", svc->name);
            svc->removed = true;
            for (size_t j = 0; j < svc->nworkers;)
                if (!s_worker_retire(sv, svc->workers[j], nc->shutdown_timeout))
                    j++;
        }
    }
    for (size_t i = 0; i < nc->nservices; i++) {
        sv_service_t *svc = sv_find_service(sv, nc->services[i].name);
        if (svc)
            s_apply_service(sv, svc, &nc->services[i], socks[i]);
        else
            s_service_new(sv, &nc->services[i], socks[i]);
    }
    free(socks);
    s_apply_programs(sv, nc);
    sv_config_t *old = sv->cfg;
    sv->cfg = nc;
    sv_config_destroy(&old);
    for (size_t i = 0; i < sv->nservices; i++)
        s_reconcile(sv, sv->services[i]);
    s_sweep_services(sv);
    log_info("configuration reloaded from %s", sv->config_path);
    return 0;
}

/* ---- start and stop ---- */

static int s_open_run_dir(sv_t *sv, char *err, size_t errlen)
{
    sv->run_dir = xasprintf("%s/run", sv->cfg->data_dir);
    int made = file_mkdirs(sv->cfg->data_dir, 0755);
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
    sv->router = zchan_new(sv->loop, s, s_on_control, sv);
    return sv->router ? 0 : -EIO;
}

static int s_open_signals(sv_t *sv)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    sv->signals = sigfd_new(sv->loop, sigs, ARRAY_LEN(sigs), s_on_signal, sv);
    return sv->signals ? 0 : -errno;
}

int sv_start(sv_t *sv, const char *config_path, char *err, size_t errlen)
{
    sv->lock_fd = sv->admin_fd = -1;
    sv->started_wall = time(NULL);
    srandom((unsigned)(time(NULL) ^ getpid()));
    sv->config_path = xstrdup(config_path);
    sv->cfg = sv_config_load(config_path, sv->bin_dir, err, errlen);
    if (!sv->cfg)
        return -EINVAL;
    sv->loop = loop_new();
    if (!sv->loop) {
        snprintf(err, errlen, "cannot create the event loop: %s", strerror(errno));
        return -EIO;
    }
    if (s_open_signals(sv) < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return -EIO;
    }
    if (s_open_run_dir(sv, err, errlen) < 0 || s_open_control(sv, err, errlen) < 0)
        return -EIO;
    sv->worker_config = xasprintf("%s/config.conf", sv->run_dir);
    if (s_write_worker_config(sv, sv->cfg->text, err, errlen) < 0)
        return -EIO;
    /* Bind every service socket before starting anything. */
    sv_socket_t **socks = xcalloc(sv->cfg->nservices + 1, sizeof *socks);
    for (size_t i = 0; i < sv->cfg->nservices; i++) {
        socks[i] = s_socket_open(sv->cfg->services[i].listen, err, errlen);
        if (!socks[i]) {
            for (size_t k = 0; k < i; k++)
                s_socket_unref(&socks[k]);
            free(socks);
            return -EIO;
        }
    }
    if (sv_admin_start(sv, err, errlen) < 0) {
        for (size_t k = 0; k < sv->cfg->nservices; k++)
            s_socket_unref(&socks[k]);
        free(socks);
        return -EIO;
    }
    for (size_t i = 0; i < sv->cfg->nprograms; i++) /* programs first */
        s_program_new(sv, &sv->cfg->programs[i]);
    for (size_t i = 0; i < sv->cfg->nservices; i++)
        s_service_new(sv, &sv->cfg->services[i], socks[i]);
    free(socks);
    for (size_t i = 0; i < sv->nservices; i++)
        s_reconcile(sv, sv->services[i]);
    sv->tick = loop_add_timer(sv->loop, SV_TICK_MS, SV_TICK_MS, s_tick, sv);
    return 0;
}

void sv_stop(sv_t *sv)
{
    if (sv->loop)
        loop_cancel_timer(sv->loop, &sv->tick);
    sv_admin_stop(sv);
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        while (svc->nworkers)
            s_worker_forget(svc, svc->workers[svc->nworkers - 1]);
        svc->removed = true;
    }
    s_sweep_services(sv);
    free(sv->services);
    for (size_t i = 0; i < sv->nprograms; i++)
        s_program_free(sv->programs[i]);
    free(sv->programs);
    zchan_destroy(&sv->router);
    if (sv->zctx)
        zmq_ctx_term(sv->zctx);
    if (sv->control_ep) {
        unlink(sv->control_ep + strlen("ipc://"));
        free(sv->control_ep);
    }
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
}
