/* workers.c - see workers.h. */
#define _GNU_SOURCE
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <jansson.h>

#include "alloc.h"
#include "base.h"
#include "backoff.h"
#include "log.h"
#include "now.h"
#include "spawn.h"

static void s_worker_describe(const sv_worker_t *w, char *buf, size_t len)
{
    snprintf(buf, len, "worker %s (pid %d)", w->ident, (int)w->p.pid);
}

/* ---- one worker's life ---- */

/* The CPU for w's loop: the one it has while this process may still use
 * it, else of those it may use the one the fewest other workers (of every
 * service, but those retiring) have, so that loops spread over the cores
 * before any two share one. -1: none. */
static int s_pick_cpu(const sv_t *sv, const sv_worker_t *w)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return -1;
    if (w->cpu >= 0 && w->cpu < CPU_SETSIZE && CPU_ISSET(w->cpu, &allowed))
        return w->cpu;
    static unsigned load[CPU_SETSIZE];
    memset(load, 0, sizeof load);
    for (size_t i = 0; i < sv->nservices; i++) {
        const sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers; j++) {
            const sv_worker_t *o = svc->workers[j];
            if (o != w && !o->retiring && o->cpu >= 0 && o->cpu < CPU_SETSIZE)
                load[o->cpu]++;
        }
    }
    return sv_cpu_least(&allowed, load);
}

/* Forks the worker's process; on failure the worker goes to backoff. A
 * worker of a service with cpu_affinity keeps its CPU across restarts. */
static void s_worker_exec(sv_t *sv, sv_worker_t *w)
{
    sv_service_t *svc = w->svc;
    char env_ctl[600], env_id[128], env_cpu[48];
    snprintf(env_ctl, sizeof env_ctl, "VAPORA_CONTROL=%s", sv->control_ep);
    snprintf(env_id, sizeof env_id, "VAPORA_WORKER_ID=%s", w->ident);
    w->cpu = svc->pin ? s_pick_cpu(sv, w) : -1;
    snprintf(env_cpu, sizeof env_cpu, "VAPORA_WORKER_CPU=%d", w->cpu);
    const char *env[] = {env_ctl, env_id, w->cpu >= 0 ? env_cpu : NULL, NULL};
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
    uint64_t now = now_ms();
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
    if (sv_proc_spawned(&w->p, pid, svc->control ? SV_STARTING : SV_RUNNING, now, who,
                        err))
        w->last_seen_ms = now;
}

static sv_worker_t *s_worker_new(sv_t *sv, sv_service_t *svc)
{
    sv_worker_t *w = xcalloc(1, sizeof *w);
    w->svc = svc;
    w->id = ++svc->next_id;
    w->cpu = -1;
    w->gen = svc->gen;
    w->p.last_status = -1;
    w->sock = sv_socket_ref(svc->sock);
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
    sv_socket_unref(&w->sock);
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

bool sv_worker_retire(sv_t *sv, sv_worker_t *w, unsigned timeout_s)
{
    w->retiring = true;
    if (w->p.pid == 0) {
        s_worker_forget(w->svc, w);
        return true;
    }
    if (w->p.state == SV_DRAINING)
        return false;
    w->p.state = SV_DRAINING;
    w->p.kill_at_ms = now_ms() + (uint64_t)timeout_s * 1000 + SV_EXIT_SLACK_MS;
    /* A worker that never connected cannot hear "drain": SIGTERM does the
     * same in our runtime. */
    if (!w->ready || s_send_control(sv, w->ident, "{\"type\":\"drain\"}") < 0)
        sv_proc_signal(w->p.pid, SIGTERM);
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

void sv_reconcile(sv_t *sv, sv_service_t *svc)
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
            sv_worker_retire(sv, s_pick_extra(svc, true), svc->shutdown_timeout);
        else
            s_worker_new(sv, svc); /* the replacement, before the old one drains */
        return;
    }
    while (total-- > svc->desired)
        sv_worker_retire(sv, s_pick_extra(svc, false), svc->shutdown_timeout);
}

int sv_scale(sv_t *sv, sv_service_t *svc, long n)
{
    if (n < 0 || n > 256)
        return -EINVAL;
    if ((unsigned)n != svc->desired)
        log_info("scaling %s from %u to %ld worker(s)", svc->name, svc->desired, n);
    svc->desired = (unsigned)n;
    sv_reconcile(sv, svc);
    return 0;
}

void sv_rolling_restart(sv_t *sv, sv_service_t *svc)
{
    svc->gen++;
    log_info("rolling restart of %s (generation %u)", svc->name, svc->gen);
    sv_reconcile(sv, svc);
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

/* ---- the service table ---- */

sv_service_t *sv_find_service(sv_t *sv, const char *name)
{
    for (size_t i = 0; i < sv->nservices; i++)
        if (!sv->services[i]->removed && strcmp(sv->services[i]->name, name) == 0)
            return sv->services[i];
    return NULL;
}

sv_service_t *sv_service_new(sv_t *sv, const sv_service_cfg_t *sc, sv_socket_t *sock)
{
    sv_service_t *svc = xcalloc(1, sizeof *svc);
    svc->name = xstrdup(sc->name);
    svc->listen = xstrdup(sc->listen);
    svc->argv = sv_argv_dup(sc->argv);
    svc->control = sc->control;
    svc->start_timeout = sc->start_timeout;
    svc->shutdown_timeout = sc->shutdown_timeout;
    svc->pin = sc->pin;
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

static void s_service_destroy(sv_service_t **svcp)
{
    sv_service_t *svc = *svcp;
    free(svc->name);
    free(svc->listen);
    sv_argv_free(svc->argv);
    free(svc->fingerprint);
    sv_socket_unref(&svc->sock);
    free(svc->workers);
    free(svc);
    *svcp = NULL;
}

void sv_services_sweep(sv_t *sv)
{
    for (size_t i = 0; i < sv->nservices;) {
        sv_service_t *svc = sv->services[i];
        if (svc->removed && svc->nworkers == 0) {
            log_info("service %s removed", svc->name);
            s_service_destroy(&svc);
            memmove(&sv->services[i], &sv->services[i + 1],
                    (sv->nservices - i - 1) * sizeof *sv->services);
            sv->nservices--;
        } else {
            i++;
        }
    }
}

void sv_services_destroy(sv_t *sv)
{
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        while (svc->nworkers)
            s_worker_forget(svc, svc->workers[svc->nworkers - 1]);
        svc->removed = true;
    }
    sv_services_sweep(sv);
    free(sv->services);
    sv->services = NULL;
}

size_t sv_workers_count(const sv_t *sv)
{
    size_t n = 0;
    for (size_t i = 0; i < sv->nservices; i++)
        n += sv->services[i]->nworkers;
    return n;
}

void sv_workers_drain_all(sv_t *sv, uint64_t last_kill_ms)
{
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers;) {
            sv_worker_t *w = svc->workers[j];
            if (!sv_worker_retire(sv, w, sv->cfg->shutdown_timeout)) {
                /* One draining since a scale-down may have a later one. */
                if (!w->p.kill_at_ms || w->p.kill_at_ms > last_kill_ms)
                    w->p.kill_at_ms = last_kill_ms;
                j++;
            }
        }
    }
}

void sv_workers_kill(sv_t *sv)
{
    for (size_t i = 0; i < sv->nservices; i++)
        for (size_t j = 0; j < sv->services[i]->nworkers; j++)
            if (sv->services[i]->workers[j]->p.pid)
                sv_proc_signal(sv->services[i]->workers[j]->p.pid, SIGKILL);
    for (size_t i = 0; i < sv->nservices; i++)
        for (size_t j = 0; j < sv->services[i]->nworkers; j++)
            if (sv->services[i]->workers[j]->p.pid)
                waitpid(sv->services[i]->workers[j]->p.pid, NULL, 0);
}

/* ---- exits ---- */

/* An exit the supervisor asked for, or of a service being removed: the
 * worker is forgotten. */
static bool s_exit_expected(const sv_t *sv, const sv_worker_t *w)
{
    return w->retiring || sv->phase != SV_PHASE_RUNNING || w->svc->removed;
}

static void s_on_exit(sv_t *sv, sv_worker_t *w, int status)
{
    char how[96], d[128];
    spawn_describe_status(status, how, sizeof how);
    s_worker_describe(w, d, sizeof d);
    uint64_t now = now_ms();
    bool expected = s_exit_expected(sv, w);
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
        sv_reconcile(sv, svc);
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

bool sv_workers_on_exit(sv_t *sv, pid_t pid, int status)
{
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers; j++) {
            if (svc->workers[j]->p.pid == pid) {
                s_on_exit(sv, svc->workers[j], status);
                return true;
            }
        }
    }
    return false;
}

/* ---- the tick: backoff, deadlines, watchdog ---- */

/* STARTING: it has start_timeout seconds to say ready. True when late,
 * with what it failed to do in why. */
static bool s_late_starting(const sv_worker_t *w, uint64_t now, char *why, size_t len)
{
    uint64_t started = now > w->p.started_ms ? now - w->p.started_ms : 0;
    if (started <= (uint64_t)w->svc->start_timeout * 1000)
        return false;
    snprintf(why, len, "did not say ready in %u s (start_timeout)",
             w->svc->start_timeout);
    return true;
}

/* RUNNING: a heartbeat at least every watchdog_timeout seconds. */
static bool s_late_running(const sv_t *sv, const sv_worker_t *w, uint64_t now,
                           char *why, size_t len)
{
    /* last_seen_ms may be later than now: a worker restarted in this tick. */
    uint64_t silent = now > w->last_seen_ms ? now - w->last_seen_ms : 0;
    if (silent <= (uint64_t)sv->cfg->watchdog_timeout * 1000)
        return false;
    snprintf(why, len, "sent no heartbeat for %llu ms (watchdog_timeout %u s)",
             (unsigned long long)silent, sv->cfg->watchdog_timeout);
    return true;
}

/* The watchdog, for workers that speak the control channel: a hung one
 * gets SIGABRT for a core dump (SIGCONT: a stopped process must run to
 * abort), SIGKILL SV_ABORT_GRACE_MS later. */
static void s_watchdog(sv_t *sv, sv_worker_t *w, uint64_t now)
{
    char why[128], d[128];
    if (!(w->ready ? s_late_running(sv, w, now, why, sizeof why)
                   : s_late_starting(w, now, why, sizeof why)))
        return;
    s_worker_describe(w, d, sizeof d);
    log_error("%s %s: hung; SIGABRT for a core dump, SIGKILL in %d ms", d, why,
              SV_ABORT_GRACE_MS);
    kill(w->p.pid, SIGABRT);
    kill(w->p.pid, SIGCONT);
    w->aborted = true;
    w->p.kill_at_ms = now + SV_ABORT_GRACE_MS;
}

static void s_check_worker(sv_t *sv, sv_worker_t *w, uint64_t now)
{
    if (w->p.state == SV_BACKOFF) {
        if (now >= w->p.next_attempt_ms)
            s_worker_exec(sv, w);
        return;
    }
    if (w->p.pid == 0)
        return;
    if (w->p.kill_at_ms && now >= w->p.kill_at_ms) {
        char d[128];
        s_worker_describe(w, d, sizeof d);
        log_error("%s did not exit in time: SIGKILL", d);
        sv_proc_signal(w->p.pid, SIGKILL);
        w->p.kill_at_ms = now + 5000; /* repeat if it somehow survives */
        return;
    }
    /* Not yet aborted, not draining. */
    if (!w->aborted && w->p.state != SV_DRAINING && w->svc->control)
        s_watchdog(sv, w, now);
}

void sv_workers_tick(sv_t *sv, uint64_t now)
{
    for (size_t i = 0; i < sv->nservices; i++) {
        sv_service_t *svc = sv->services[i];
        for (size_t j = 0; j < svc->nworkers; j++) {
            size_t before = svc->nworkers;
            s_check_worker(sv, svc->workers[j], now);
            if (svc->nworkers < before)
                j--;
        }
        sv_reconcile(sv, svc);
    }
}

/* ---- the control channel ---- */

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

static void s_on_ready(sv_t *sv, sv_worker_t *w, uint64_t now)
{
    w->ready = true;
    w->ready_ms = now;
    if (w->p.state == SV_STARTING) {
        w->p.state = SV_RUNNING;
        log_info("worker %s (pid %d) is ready (%llu ms after start)", w->ident,
                 (int)w->p.pid, (unsigned long long)(now - w->p.started_ms));
    }
    if (w->svc->log_level[0])
        s_send_log_level(sv, w);
    sv_reconcile(sv, w->svc); /* a rolling restart moves on */
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

void sv_workers_on_control(zchan_t *ch, const zchan_msg_t *m, void *ud)
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
    uint64_t now = now_ms();
    w->last_seen_ms = now;
    if (type && strcmp(type, "ready") == 0)
        s_on_ready(sv, w, now);
    else if (type && strcmp(type, "heartbeat") == 0)
        s_on_heartbeat(w, json_object_get(j, "stats"), now);
    json_decref(j);
}
