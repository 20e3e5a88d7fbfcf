/* sv_config.c - see sv_config.h. */
#define _GNU_SOURCE
#include "sv_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_auth.h"
#include "log.h"
#include "schemas.h"
#include "spawn.h"
#include "alloc.h"
#include "sbuf.h"
#include "file.h"
#include "parse.h"
#include "net.h"
#include "settings.h"

void sv_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

char **sv_argv_dup(char *const *argv)
{
    size_t n = 0;
    while (argv[n])
        n++;
    char **a = xcalloc(n + 1, sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = xstrdup(argv[i]);
    return a;
}

char **sv_split_command(const char *cmd)
{
    char **argv = NULL;
    size_t n = 0;
    const char *p = cmd;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        sbuf_t w = {0};
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                const char *e = strchr(p, q);
                if (!e) {
                    sbuf_free(&w);
                    argv = xrealloc(argv, (n + 1) * sizeof *argv);
                    argv[n] = NULL;
                    sv_argv_free(argv);
                    return NULL;
                }
                sbuf_append(&w, p, (size_t)(e - p));
                p = e + 1;
            } else {
                sbuf_append(&w, p++, 1);
            }
        }
        argv = xrealloc(argv, (n + 2) * sizeof *argv);
        argv[n++] = sbuf_steal(&w);
        argv[n] = NULL;
    }
    return argv;
}

/* Reads "quota period" (v2 cpu.max) or two v1 files; returns the CPUs
 * the quota gives (1.5 for 150000 100000), or 0 without one. */
static double s_cgroup_cpus(void)
{
    char path[600] = "", line[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", line + 3);
            }
        fclose(f);
    }
    long long quota = -1, period = 0;
    if (path[0] && (f = fopen(path, "r"))) {
        char q[32];
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
            quota = atoll(q);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"))) {
        if (fscanf(f, "%lld", &quota) != 1)
            quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r"))) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (double)quota / (double)period;
}

unsigned sv_cpus_available(void)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    if (n == 0)
        n = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    double q = ceil(s_cgroup_cpus());
    if (q > 0 && q < n)
        n = (unsigned)q;
    return n ? n : 1;
}

bool sv_cpus_own(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return false;
    double q = s_cgroup_cpus();
    return q == 0 || q >= CPU_COUNT(&set);
}

int sv_cpu_least(const cpu_set_t *allowed, const unsigned *load)
{
    int best = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, allowed) && (best < 0 || load[c] < load[best]))
            best = c;
    return best;
}

/* Renders section's keys into b, less those named in skip. */
static void s_render(sbuf_t *b, const cfg_t *cfg, const char *section,
                     const char *const *skip)
{
    sbuf_printf(b, "[%s]\n", section);
    size_t n = cfg_key_count(cfg, section);
    for (size_t i = 0; i < n; i++) {
        const char *k = cfg_key_name(cfg, section, i);
        bool skipped = false;
        for (const char *const *s = skip; *s && !skipped; s++)
            skipped = strcmp(k, *s) == 0;
        if (!skipped)
            sbuf_printf(b, "%s=%s\n", k, cfg_get(cfg, section, k));
    }
}

/* A program reads only its own section. */
static char *s_program_fingerprint(const cfg_t *cfg, const char *section)
{
    static const char *const none[] = {NULL};
    sbuf_t b = {0};
    s_render(&b, cfg, section, none);
    return sbuf_steal(&b);
}

/* What a service's workers read: the whole file but the programs, the other
 * services, the sections only another service reads (their reader, as the
 * services declare it: schemas.h)
 * and what only the supervisor uses, and less the worker count, so that
 * scaling never replaces running workers. */
static char *s_service_fingerprint(const cfg_t *cfg, const char *own)
{
    static const char *const own_skip[] = {"workers", NULL};
    static const char *const sv_skip[] = {
        "admin", "admin_token", "watchdog_timeout", "log_level", "log_format", NULL};
    static const char *const none[] = {NULL};
    const char *name = own + strlen("service:");
    sbuf_t b = {0};
    size_t n = cfg_section_count(cfg);
    for (size_t i = 0; i < n; i++) {
        const char *sec = cfg_section_name(cfg, i);
        const char *reader = sv_schemas_reader(sec);
        if (strncmp(sec, "program:", 8) == 0 ||
            (strncmp(sec, "service:", 8) == 0 && strcmp(sec, own) != 0) ||
            (reader && strcmp(reader, name) != 0))
            continue;
        s_render(&b, cfg, sec,
                 strcmp(sec, own) == 0            ? own_skip
                 : strcmp(sec, "supervisor") == 0 ? sv_skip
                                                  : none);
    }
    return sbuf_steal(&b);
}

/* Checks that argv[0] names an executable (on PATH when it has no '/'). */
static int s_check_command(char *const *argv, const char *section, const char *dir,
                           char *err, size_t errlen)
{
    if (dir && argv[0][0] != '/' && strchr(argv[0], '/'))
        return 0; /* relative to the program's directory: checked at start */
    char *path = spawn_resolve(argv[0]);
    if (!path) {
        snprintf(err, errlen, "[%s] command: %s is not an executable file%s", section,
                 argv[0], strchr(argv[0], '/') ? "" : " on PATH");
        return -EINVAL;
    }
    free(path);
    return 0;
}

static char *s_abspath(const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(p);
    return xasprintf("%s/%s", cwd, p);
}

/* listen (required, host:port with a port) and workers (auto or 0-256). */
static int s_load_shape(sv_service_cfg_t *s, const cfg_t *cfg, const char *section,
                        char *err, size_t errlen)
{
    const char *listen = cfg_get(cfg, section, "listen");
    char host[256];
    int port;
    if (!listen || net_split_addr(listen, host, sizeof host, &port) < 0 || port == 0) {
        snprintf(err, errlen, "[%s] listen: \"%s\" is not host:port", section,
                 listen ? listen : "(missing)");
        return -EINVAL;
    }
    s->listen = xstrdup(listen);
    const char *w = cfg_get_str(cfg, section, "workers", "auto");
    long n;
    if (strcmp(w, "auto") == 0) {
        s->workers_auto = true;
        s->workers = sv_cpus_available();
    } else if (parse_long(w, 0, 256, &n) == 0) {
        s->workers = (unsigned)n;
    } else {
        snprintf(err, errlen, "[%s] workers: \"%s\" is not auto or a number 0-256",
                 section, w);
        return -EINVAL;
    }
    return 0;
}

/* command (default: vapora-NAME in bin_dir), which must be executable. */
static int s_load_command(sv_service_cfg_t *s, const cfg_t *cfg, const char *section,
                          const char *bin_dir, char *err, size_t errlen)
{
    const char *cmd = cfg_get(cfg, section, "command");
    char *def = NULL;
    if (!cmd)
        cmd = def = xasprintf("%s/vapora-%s", bin_dir, s->name);
    s->argv = sv_split_command(cmd);
    free(def);
    if (!s->argv) {
        snprintf(err, errlen, "[%s] command: empty or unterminated quote", section);
        return -EINVAL;
    }
    return s_check_command(s->argv, section, NULL, err, errlen);
}

/* cpu_affinity: no (the default), yes, or auto (yes when the CPUs are
 * this process's own, sv_cpus_own). Only workers that speak the control
 * protocol (ours) pin their loop. */
static int s_load_affinity(sv_service_cfg_t *s, const cfg_t *cfg, const char *section,
                           char *err, size_t errlen)
{
    const char *v = cfg_get_str(cfg, section, "cpu_affinity", "no");
    if (strcmp(v, "auto") == 0) {
        s->pin = sv_cpus_own();
    } else if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
        s->pin = v[0] == 'y';
    } else {
        snprintf(err, errlen, "[%s] cpu_affinity: \"%s\" is not auto, yes or no", section,
                 v);
        return -EINVAL;
    }
    s->pin = s->pin && s->control;
    return 0;
}

static int s_load_service(sv_config_t *c, const char *section, const char *bin_dir,
                          char *err, size_t errlen)
{
    sv_service_cfg_t *s = &c->services[c->nservices];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(section + strlen("service:"));
    c->nservices++;
    if (s_load_shape(s, c->cfg, section, err, errlen) < 0 ||
        s_load_command(s, c->cfg, section, bin_dir, err, errlen) < 0)
        return -EINVAL;
    bool control;
    long start;
    if (cfg_get_bool(c->cfg, section, "control", true, &control, err, errlen) < 0 ||
        cfg_get_long(c->cfg, section, "start_timeout", 60, 1, 3600, &start, err,
                     errlen) < 0)
        return -EINVAL;
    s->control = control;
    s->start_timeout = (unsigned)start;
    if (s_load_affinity(s, c->cfg, section, err, errlen) < 0)
        return -EINVAL;
    /* Our workers would refuse to start on a bad runtime setting: say so
     * now, before one is started or the running ones are replaced. */
    if (control && settings_check(c->cfg, section, err, errlen) < 0)
        return -EINVAL;
    /* A retiring worker gets the drain its own settings give it (an agent
     * finishing its run may need longer than the others). */
    long drain = 10;
    if (settings_get_long(c->cfg, section, "shutdown_timeout", &drain, err, errlen) < 0)
        return -EINVAL;
    s->shutdown_timeout = (unsigned)drain;
    s->fingerprint = s_service_fingerprint(c->cfg, section);
    return 0;
}

/* A NAME=value word: NAME a letter or '_', then letters, digits, '_'. */
static bool s_env_entry(const char *word)
{
    const char *eq = strchr(word, '=');
    if (!eq || eq == word || isdigit((unsigned char)word[0]))
        return false;
    for (const char *p = word; p < eq; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

/* environment (optional): NAME=value words, quoted as in command, set for
 * the program over the supervisor's own environment. */
static int s_load_environment(sv_program_cfg_t *p, const cfg_t *cfg, const char *section,
                              char *err, size_t errlen)
{
    const char *text = cfg_get(cfg, section, "environment");
    if (!text || !text[strspn(text, " \t")])
        return 0;
    p->env = sv_split_command(text);
    if (!p->env) {
        snprintf(err, errlen, "[%s] environment: unterminated quote", section);
        return -EINVAL;
    }
    for (char **e = p->env; *e; e++) {
        if (!s_env_entry(*e)) {
            snprintf(err, errlen, "[%s] environment: \"%.64s\" is not NAME=value",
                     section, *e);
            return -EINVAL;
        }
        for (char **d = p->env; d < e; d++)
            if (spawn_env_same_name(*d, *e)) {
                snprintf(err, errlen, "[%s] environment: %.*s is set twice", section,
                         (int)strcspn(*e, "="), *e);
                return -EINVAL;
            }
    }
    return 0;
}

static int s_load_program(sv_config_t *c, const char *section, char *err, size_t errlen)
{
    sv_program_cfg_t *p = &c->programs[c->nprograms];
    memset(p, 0, sizeof *p);
    p->name = xstrdup(section + strlen("program:"));
    c->nprograms++;
    const char *cmd = cfg_get(c->cfg, section, "command");
    p->argv = cmd ? sv_split_command(cmd) : NULL;
    if (!p->argv) {
        snprintf(err, errlen, "[%s] command: %s", section,
                 cmd ? "empty or unterminated quote" : "missing");
        return -EINVAL;
    }
    const char *dir = cfg_get(c->cfg, section, "directory");
    p->directory = dir ? xstrdup(dir) : NULL;
    if (s_check_command(p->argv, section, p->directory, err, errlen) < 0 ||
        s_load_environment(p, c->cfg, section, err, errlen) < 0)
        return -EINVAL;
    p->fingerprint = s_program_fingerprint(c->cfg, section);
    return 0;
}

static int s_load_supervisor(sv_config_t *c, char *err, size_t errlen)
{
    long v;
    c->admin = xstrdup(cfg_get_str(c->cfg, "supervisor", "admin", "127.0.0.1:8000"));
    char host[256];
    int port;
    if (net_split_addr(c->admin, host, sizeof host, &port) < 0 || port == 0) {
        /* Port 0 would be a random port vaporactl cannot find. */
        snprintf(err, errlen, "[supervisor] admin: \"%s\" is not host:port", c->admin);
        return -EINVAL;
    }
    c->data_dir = s_abspath(cfg_get_str(c->cfg, "supervisor", "data_dir", "data"));
    const char *token = cfg_get(c->cfg, "supervisor", "admin_token");
    if (token && *token && !sv_auth_token_valid(token)) {
        snprintf(err, errlen,
                 "[supervisor] admin_token: %d to 256 visible characters, no blank",
                 SV_AUTH_TOKEN_MIN);
        return -EINVAL;
    }
    c->admin_token = token && *token ? xstrdup(token) : NULL;
    if (cfg_get_long(c->cfg, "supervisor", "shutdown_timeout", 10, 0, 3600, &v, err,
                     errlen) < 0)
        return -EINVAL;
    c->shutdown_timeout = (unsigned)v;
    if (cfg_get_long(c->cfg, "supervisor", "watchdog_timeout", 10, 1, 3600, &v, err,
                     errlen) < 0)
        return -EINVAL;
    c->watchdog_timeout = (unsigned)v;
    return 0;
}

static void s_warn(const char *msg, void *ud)
{
    UNUSED(ud);
    log_warn("%s", msg);
}

sv_config_t *sv_config_load(const char *path, const char *bin_dir, char *err,
                            size_t errlen)
{
    sv_config_t *c = xcalloc(1, sizeof *c);
    c->path = s_abspath(path);
    /* Kept as read: workers get this text (sv.h, worker_config), not
     * whatever the file holds when they start. */
    c->text = file_read_all(path, NULL);
    if (!c->text) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        sv_config_destroy(&c);
        return NULL;
    }
    c->cfg = cfg_load_string(c->text, path, err, errlen);
    if (!c->cfg || s_load_supervisor(c, err, errlen) < 0) {
        sv_config_destroy(&c);
        return NULL;
    }
    sv_schemas_check(c->cfg, s_warn, NULL);
    size_t ns = cfg_section_count(c->cfg);
    c->services = xcalloc(ns, sizeof *c->services);
    c->programs = xcalloc(ns, sizeof *c->programs);
    for (size_t i = 0; i < ns; i++) {
        const char *sec = cfg_section_name(c->cfg, i);
        int rc = 0;
        if (strncmp(sec, "service:", 8) == 0 && sec[8])
            rc = s_load_service(c, sec, bin_dir, err, errlen);
        else if (strncmp(sec, "program:", 8) == 0 && sec[8])
            rc = s_load_program(c, sec, err, errlen);
        if (rc < 0) {
            sv_config_destroy(&c);
            return NULL;
        }
    }
    /* Two services cannot share a listen address. */
    for (size_t i = 0; i < c->nservices; i++)
        for (size_t j = i + 1; j < c->nservices; j++)
            if (strcmp(c->services[i].listen, c->services[j].listen) == 0) {
                snprintf(err, errlen, "[service:%s] and [service:%s] both listen on %s",
                         c->services[i].name, c->services[j].name,
                         c->services[i].listen);
                sv_config_destroy(&c);
                return NULL;
            }
    return c;
}

void sv_config_destroy(sv_config_t **cp)
{
    sv_config_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    for (size_t i = 0; i < c->nservices; i++) {
        free(c->services[i].name);
        free(c->services[i].listen);
        sv_argv_free(c->services[i].argv);
        free(c->services[i].fingerprint);
    }
    for (size_t i = 0; i < c->nprograms; i++) {
        free(c->programs[i].name);
        sv_argv_free(c->programs[i].argv);
        free(c->programs[i].directory);
        sv_argv_free(c->programs[i].env);
        free(c->programs[i].fingerprint);
    }
    free(c->services);
    free(c->programs);
    free(c->path);
    free(c->text);
    free(c->admin);
    free(c->admin_token);
    free(c->data_dir);
    cfg_destroy(&c->cfg);
    free(c);
    *cp = NULL;
}

const sv_service_cfg_t *sv_config_service(const sv_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nservices; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    return NULL;
}

const sv_program_cfg_t *sv_config_program(const sv_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nprograms; i++)
        if (strcmp(c->programs[i].name, name) == 0)
            return &c->programs[i];
    return NULL;
}
