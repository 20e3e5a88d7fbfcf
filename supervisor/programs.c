/* programs.c - see programs.h. */
#define _GNU_SOURCE
#include "programs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "alloc.h"
#include "backoff.h"
#include "log.h"
#include "now.h"
#include "spawn.h"

static void s_program_exec(sv_program_t *pg)
{
    spawn_req_t req = {.argv = pg->argv,
                       .directory = pg->directory,
                       .listen_fd = -1,
                       .env = (const char *const *)pg->env};
    char err[256];
    uint64_t now = now_ms();
    pid_t pid = spawn_process(&req, err, sizeof err);
    char who[128];
    snprintf(who, sizeof who, "program %s", pg->name);
    sv_proc_spawned(&pg->p, pid, SV_RUNNING, now, who, err);
}

sv_program_t *sv_program_new(sv_t *sv, const sv_program_cfg_t *pc)
{
    sv_program_t *pg = xcalloc(1, sizeof *pg);
    pg->name = xstrdup(pc->name);
    pg->argv = sv_argv_dup(pc->argv);
    pg->directory = pc->directory ? xstrdup(pc->directory) : NULL;
    pg->env = pc->env ? sv_argv_dup(pc->env) : NULL;
    pg->fingerprint = xstrdup(pc->fingerprint);
    pg->p.last_status = -1;
    sv->programs = xrealloc(sv->programs, (sv->nprograms + 1) * sizeof *sv->programs);
    sv->programs[sv->nprograms++] = pg;
    s_program_exec(pg);
    return pg;
}

/* SIGTERM now, SIGKILL at kill_at (monotonic ms). */
static void s_program_stop(sv_program_t *pg, uint64_t kill_at)
{
    if (pg->p.pid == 0) {
        pg->p.state = SV_STOPPED;
        return;
    }
    if (pg->p.state == SV_DRAINING)
        return;
    pg->p.state = SV_DRAINING;
    pg->p.kill_at_ms = kill_at;
    sv_proc_signal(pg->p.pid, SIGTERM);
    log_info("stopping program %s (pid %d)", pg->name, (int)pg->p.pid);
}

static void s_program_destroy(sv_program_t **pgp)
{
    sv_program_t *pg = *pgp;
    free(pg->name);
    sv_argv_free(pg->argv);
    free(pg->directory);
    sv_argv_free(pg->env);
    free(pg->fingerprint);
    free(pg);
    *pgp = NULL;
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
    s_program_destroy(&pg);
}

void sv_programs_stop_all(sv_t *sv, uint64_t kill_at)
{
    for (size_t i = 0; i < sv->nprograms; i++)
        s_program_stop(sv->programs[i], kill_at);
}

/* ---- reload ---- */

/* Its section is gone: stop it, and forget it once it has exited. Returns
 * true when it was forgotten at once (the pointer is then invalid). */
static bool s_program_drop(sv_t *sv, sv_program_t *pg)
{
    pg->removed = true;
    if (pg->p.pid == 0) {
        s_program_forget(sv, pg);
        return true;
    }
    s_program_stop(pg, now_ms() + (uint64_t)sv->cfg->shutdown_timeout * 1000);
    return false;
}

/* Its section changed: take the new command, then start it again (once
 * stopped, when it runs). */
static void s_program_reconfigure(sv_t *sv, sv_program_t *pg,
                                  const sv_program_cfg_t *pc)
{
    sv_argv_free(pg->argv);
    pg->argv = sv_argv_dup(pc->argv);
    free(pg->directory);
    pg->directory = pc->directory ? xstrdup(pc->directory) : NULL;
    sv_argv_free(pg->env);
    pg->env = pc->env ? sv_argv_dup(pc->env) : NULL;
    free(pg->fingerprint);
    pg->fingerprint = xstrdup(pc->fingerprint);
    log_info("reload: program %s changed; restarting it", pg->name);
    if (pg->p.pid) {
        pg->restart_pending = true;
        s_program_stop(pg, now_ms() + (uint64_t)sv->cfg->shutdown_timeout * 1000);
    } else {
        s_program_exec(pg);
    }
}

static bool s_known(const sv_t *sv, const char *name)
{
    for (size_t j = 0; j < sv->nprograms; j++)
        if (strcmp(sv->programs[j]->name, name) == 0 && !sv->programs[j]->removed)
            return true;
    return false;
}

void sv_programs_apply(sv_t *sv, const sv_config_t *nc)
{
    for (size_t i = 0; i < sv->nprograms; i++) {
        sv_program_t *pg = sv->programs[i];
        const sv_program_cfg_t *pc = sv_config_program(nc, pg->name);
        if (!pc) {
            if (s_program_drop(sv, pg))
                i--;
        } else if (strcmp(pc->fingerprint, pg->fingerprint) != 0) {
            s_program_reconfigure(sv, pg, pc);
        }
    }
    for (size_t i = 0; i < nc->nprograms; i++)
        if (!s_known(sv, nc->programs[i].name))
            sv_program_new(sv, &nc->programs[i]);
}

/* ---- exits and the tick ---- */

static void s_on_exit(sv_t *sv, sv_program_t *pg, int status)
{
    char how[96];
    spawn_describe_status(status, how, sizeof how);
    uint64_t now = now_ms();
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
            s_program_exec(pg);
        }
        return;
    }
    uint64_t delay = sv_backoff_after_exit(&pg->p, now, true);
    pg->p.restarts++;
    log_warn("program %s (pid %d) %s; restart in %llu ms", pg->name, (int)pid, how,
             (unsigned long long)delay);
    if (delay == 0)
        s_program_exec(pg);
    else
        sv_enter_backoff(&pg->p, now, delay);
}

bool sv_programs_on_exit(sv_t *sv, pid_t pid, int status)
{
    for (size_t i = 0; i < sv->nprograms; i++) {
        if (sv->programs[i]->p.pid == pid) {
            s_on_exit(sv, sv->programs[i], status);
            return true;
        }
    }
    return false;
}

void sv_programs_tick(sv_t *sv, uint64_t now)
{
    for (size_t i = 0; i < sv->nprograms; i++) {
        sv_program_t *pg = sv->programs[i];
        if (pg->p.state == SV_BACKOFF && now >= pg->p.next_attempt_ms &&
            sv->phase == SV_PHASE_RUNNING) {
            s_program_exec(pg);
        } else if (pg->p.pid && pg->p.kill_at_ms && now >= pg->p.kill_at_ms) {
            log_error("program %s (pid %d) did not stop in time: SIGKILL", pg->name,
                      (int)pg->p.pid);
            sv_proc_signal(pg->p.pid, SIGKILL);
            pg->p.kill_at_ms = now + 5000;
        }
    }
}

size_t sv_programs_running(const sv_t *sv)
{
    size_t n = 0;
    for (size_t i = 0; i < sv->nprograms; i++)
        n += sv->programs[i]->p.pid != 0;
    return n;
}

void sv_programs_kill(sv_t *sv)
{
    for (size_t i = 0; i < sv->nprograms; i++)
        if (sv->programs[i]->p.pid)
            sv_proc_signal(sv->programs[i]->p.pid, SIGKILL);
    for (size_t i = 0; i < sv->nprograms; i++)
        if (sv->programs[i]->p.pid)
            waitpid(sv->programs[i]->p.pid, NULL, 0);
}

void sv_programs_destroy(sv_t *sv)
{
    for (size_t i = 0; i < sv->nprograms; i++)
        s_program_destroy(&sv->programs[i]);
    free(sv->programs);
    sv->programs = NULL;
    sv->nprograms = 0;
}
