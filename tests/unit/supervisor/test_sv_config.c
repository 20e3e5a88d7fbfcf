/* test_sv_config.c - unit tests for supervisor/sv_config.c: command
 * splitting, CPU counting and choosing, validation and fingerprints. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sv_config.h"

static char *s_write(const char *text)
{
    char *path = strdup("/tmp/vapora-svcfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* A bin directory with executable vapora-backend, vapora-a and vapora-b,
 * for the default commands. */
static const char *s_bin_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/vapora-svcfg-bin-%d", (int)getpid());
        cr_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
        static const char *const names[] = {"vapora-backend", "vapora-a", "vapora-b"};
        for (size_t i = 0; i < 3; i++) {
            char path[128];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
            cr_assert_geq(fd, 0);
            cr_assert_eq(write(fd, "#!/bin/sh\n", 10), 10);
            close(fd);
        }
    }
    return dir;
}

static void s_fini(void)
{
    const char *dir = s_bin_dir();
    static const char *const names[] = {"vapora-backend", "vapora-a", "vapora-b"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static sv_config_t *s_load(const char *text, char *err)
{
    char *path = s_write(text);
    sv_config_t *c = sv_config_load(path, s_bin_dir(), err, 512);
    unlink(path);
    free(path);
    return c;
}

Test(sv_config, split_command_with_quotes)
{
    char **a = sv_split_command("  nats-server -js  -sd 'my dir' \"a b\"c ");
    cr_assert_not_null(a);
    cr_assert_str_eq(a[0], "nats-server");
    cr_assert_str_eq(a[1], "-js");
    cr_assert_str_eq(a[2], "-sd");
    cr_assert_str_eq(a[3], "my dir");
    cr_assert_str_eq(a[4], "a bc");
    cr_assert_null(a[5]);
    sv_argv_free(a);
    cr_assert_null(sv_split_command("   "));
    cr_assert_null(sv_split_command("sh -c 'unterminated"));
}

Test(sv_config, cpus_available_is_positive_and_bounded)
{
    unsigned n = sv_cpus_available();
    cr_assert_geq(n, 1);
    cr_assert_leq(n, (unsigned)sysconf(_SC_NPROCESSORS_CONF));
}

Test(sv_config, services_programs_and_defaults, .fini = s_fini)
{
    char err[512];
    sv_config_t *c = s_load("[supervisor]\nadmin = 127.0.0.1:9000\ndata_dir = /tmp/d\n"
                            "[service:backend]\nlisten = 127.0.0.1:9001\n"
                            "workers = 3\n"
                            "[service:agents]\nlisten = 127.0.0.1:9002\n"
                            "command = /bin/echo --fast\n"
                            "control = no\nstart_timeout = 5\n"
                            "[program:nats]\ncommand = nats-server -p 4222\n"
                            "environment = GOMAXPROCS=1 'GREETING=hello world' E=\n",
                            err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->admin, "127.0.0.1:9000");
    cr_assert_str_eq(c->data_dir, "/tmp/d");
    cr_assert_eq(c->shutdown_timeout, 10);
    cr_assert_eq(c->watchdog_timeout, 10);
    const sv_service_cfg_t *b = sv_config_service(c, "backend");
    cr_assert_not_null(b);
    cr_assert_eq(b->workers, 3);
    char want[160];
    snprintf(want, sizeof want, "%s/vapora-backend", s_bin_dir());
    cr_assert_str_eq(b->argv[0], want);
    cr_assert_null(b->argv[1]); /* -c and the config come at spawn */
    cr_assert(b->control);
    cr_assert_eq(b->start_timeout, 60);
    const sv_service_cfg_t *a = sv_config_service(c, "agents");
    cr_assert(a->workers_auto);
    cr_assert_eq(a->workers, sv_cpus_available());
    cr_assert_str_eq(a->argv[0], "/bin/echo");
    cr_assert_str_eq(a->argv[1], "--fast");
    cr_assert_null(a->argv[2]);
    cr_assert_not(a->control);
    cr_assert_eq(a->start_timeout, 5);
    cr_assert_str_neq(a->fingerprint, b->fingerprint);
    cr_assert_not_null(strstr(c->text, "[program:nats]"));
    const sv_program_cfg_t *n = sv_config_program(c, "nats");
    cr_assert_str_eq(n->argv[0], "nats-server");
    cr_assert_null(n->argv[3]);
    cr_assert_str_eq(n->env[0], "GOMAXPROCS=1");
    cr_assert_str_eq(n->env[1], "GREETING=hello world");
    cr_assert_str_eq(n->env[2], "E=");
    cr_assert_null(n->env[3]);
    cr_assert_null(sv_config_service(c, "nats"));
    sv_config_destroy(&c);
    cr_assert_null(c);
}

static void s_invalid(const char *text, const char *want)
{
    char err[512] = "";
    sv_config_t *c = s_load(text, err);
    cr_assert_null(c, "loaded, want error \"%s\"", want);
    cr_assert(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

Test(sv_config, invalid_configs_name_the_problem, .fini = s_fini)
{
    s_invalid("[service:b]\nlisten = nowhere\n", "[service:b] listen");
    s_invalid("[service:b]\n", "[service:b] listen");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\nworkers = banana\n",
              "[service:b] workers");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\nworkers = 999\n", "workers");
    s_invalid("[service:a]\nlisten = 127.0.0.1:1\n[service:b]\nlisten = 127.0.0.1:1\n",
              "both listen on 127.0.0.1:1");
    s_invalid("[program:p]\n", "[program:p] command: missing");
    s_invalid("[program:p]\ncommand = 'x\n", "unterminated quote");
    s_invalid("[supervisor]\nadmin = bad\n", "[supervisor] admin");
    s_invalid("[supervisor]\nwatchdog_timeout = 0\n", "watchdog_timeout");
    s_invalid("[supervisor]\nadmin = 127.0.0.1:0\n", "[supervisor] admin");
    s_invalid("[supervisor]\nadmin_token = too-short\n", "[supervisor] admin_token");
    s_invalid("[supervisor]\nadmin_token = long enough but has blanks\n",
              "[supervisor] admin_token");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\ncommand = /no/such/file\n",
              "[service:b] command: /no/such/file is not an executable file");
    s_invalid("[service:zz]\nlisten = 127.0.0.1:1\n",
              "vapora-zz is not an executable file");
    s_invalid("[program:p]\ncommand = no-such-command-on-path -x\n",
              "no-such-command-on-path is not an executable file on PATH");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\ncontrol = perhaps\n", "control");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\ncpu_affinity = 3\n",
              "[service:b] cpu_affinity: \"3\" is not auto, yes or no");
    s_invalid("[program:p]\ncommand = sh\nenvironment = GOMAXPROCS\n",
              "[program:p] environment: \"GOMAXPROCS\" is not NAME=value");
    s_invalid("[program:p]\ncommand = sh\nenvironment = A=1 1B=2\n",
              "\"1B=2\" is not NAME=value");
    s_invalid("[program:p]\ncommand = sh\nenvironment = A-B=1\n", "is not NAME=value");
    s_invalid("[program:p]\ncommand = sh\nenvironment = =1\n", "is not NAME=value");
    s_invalid("[program:p]\ncommand = sh\nenvironment = 'A=1\n",
              "[program:p] environment: unterminated quote");
    s_invalid("[program:p]\ncommand = sh\nenvironment = AB=1 A=2 AB=3\n",
              "[program:p] environment: AB is set twice");
    /* The runtime settings a worker would refuse, from either section. */
    s_invalid("[runtime]\npool_threads = lots\n[service:b]\nlisten = 127.0.0.1:1\n",
              "[runtime] pool_threads");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\nmax_url_bytes = 10\n",
              "[service:b] max_url_bytes");
    s_invalid("[runtime]\nlog_level = loud\n[service:b]\nlisten = 127.0.0.1:1\n",
              "[runtime] log_level");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\naccess_log = sometimes\n",
              "access_log");
    s_invalid("[service:b]\nlisten = 127.0.0.1:1\nstart_timeout = 0\n",
              "start_timeout");
}

/* cpu_affinity: yes and no as said, auto as sv_cpus_own says, no when
 * unset; never for a service without the control protocol (not ours). */
Test(sv_config, cpu_affinity_resolves, .fini = s_fini)
{
    char err[512];
    sv_config_t *c = s_load("[service:a]\nlisten = 127.0.0.1:9001\ncpu_affinity = yes\n"
                            "[service:b]\nlisten = 127.0.0.1:9002\ncpu_affinity = no\n"
                            "[service:backend]\nlisten = 127.0.0.1:9003\n"
                            "cpu_affinity = auto\n[service:c]\nlisten = 127.0.0.1:9005\n"
                            "command = /bin/echo\n"
                            "[service:x]\nlisten = 127.0.0.1:9004\ncommand = /bin/echo\n"
                            "control = no\ncpu_affinity = yes\n",
                            err);
    cr_assert_not_null(c, "%s", err);
    cr_assert(sv_config_service(c, "a")->pin);
    cr_assert_not(sv_config_service(c, "b")->pin);
    cr_assert_eq(sv_config_service(c, "backend")->pin, sv_cpus_own());
    cr_assert_not(sv_config_service(c, "c")->pin);
    cr_assert_not(sv_config_service(c, "x")->pin);
    sv_config_destroy(&c);
    /* Its workers are replaced when it changes: it is in the fingerprint. */
    sv_config_t *yes = s_load("[service:a]\nlisten = 127.0.0.1:9001\ncpu_affinity = yes\n", err);
    sv_config_t *no = s_load("[service:a]\nlisten = 127.0.0.1:9001\ncpu_affinity = no\n", err);
    cr_assert(yes && no, "%s", err);
    cr_assert_str_neq(sv_config_service(yes, "a")->fingerprint,
                      sv_config_service(no, "a")->fingerprint);
    sv_config_destroy(&yes);
    sv_config_destroy(&no);
}

/* The least loaded CPU of those allowed, the lowest among equals. */
Test(sv_config, cpu_least_spreads_over_the_allowed_cpus)
{
    static unsigned load[CPU_SETSIZE];
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    cr_assert_eq(sv_cpu_least(&allowed, load), -1);
    CPU_SET(1, &allowed);
    CPU_SET(3, &allowed);
    CPU_SET(5, &allowed);
    cr_assert_eq(sv_cpu_least(&allowed, load), 1);
    load[1] = 1;
    cr_assert_eq(sv_cpu_least(&allowed, load), 3);
    load[3] = 1;
    load[0] = 0; /* not allowed, however idle */
    cr_assert_eq(sv_cpu_least(&allowed, load), 5);
    load[5] = 2;
    cr_assert_eq(sv_cpu_least(&allowed, load), 1);
}

/* A service's fingerprint covers what its workers read, and only that. */
Test(sv_config, fingerprints_follow_what_each_child_reads, .fini = s_fini)
{
    static const char base[] = "[supervisor]\nadmin = 127.0.0.1:9000\n"
                               "[runtime]\npool_threads = 4\n"
                               "[service:a]\nlisten = 127.0.0.1:9001\nworkers = 1\n"
                               "[service:b]\nlisten = 127.0.0.1:9002\n"
                               "[program:p]\ncommand = /bin/true\n";
    static const struct {
        const char *text;
        bool a, b, p; /* whose fingerprint changes */
    } cases[] = {
        {"[supervisor]\nadmin = 127.0.0.1:9009\nadmin_token = 0123456789abcdef-x\n"
         "[runtime]\npool_threads = 4\n"
         "[service:a]\nlisten = 127.0.0.1:9001\nworkers = 1\n"
         "[service:b]\nlisten = 127.0.0.1:9002\n"
         "[program:p]\ncommand = /bin/true\n",
         false, false, false},
        {"[supervisor]\nadmin = 127.0.0.1:9000\n"
         "[runtime]\npool_threads = 8\n"
         "[service:a]\nlisten = 127.0.0.1:9001\nworkers = 1\n"
         "[service:b]\nlisten = 127.0.0.1:9002\n"
         "[program:p]\ncommand = /bin/true\n",
         true, true, false},
        {"[supervisor]\nadmin = 127.0.0.1:9000\n"
         "[runtime]\npool_threads = 4\n"
         "[service:a]\nlisten = 127.0.0.1:9001\nworkers = 5\n"
         "[service:b]\nlisten = 127.0.0.1:9002\n"
         "[program:p]\ncommand = /bin/true\n",
         false, false, false},
        {"[supervisor]\nadmin = 127.0.0.1:9000\n"
         "[runtime]\npool_threads = 4\n"
         "[service:a]\nlisten = 127.0.0.1:9001\nworkers = 1\nmax_connections = 9\n"
         "[service:b]\nlisten = 127.0.0.1:9002\n"
         "[program:p]\ncommand = /bin/true\n",
         true, false, false},
        {"[supervisor]\nadmin = 127.0.0.1:9000\n"
         "[runtime]\npool_threads = 4\n"
         "[service:a]\nlisten = 127.0.0.1:9001\nworkers = 1\n"
         "[service:b]\nlisten = 127.0.0.1:9002\n"
         "[program:p]\ncommand = /bin/true -x\n",
         false, false, true},
    };
    char err[512];
    sv_config_t *c0 = s_load(base, err);
    cr_assert_not_null(c0, "%s", err);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sv_config_t *c = s_load(cases[i].text, err);
        cr_assert_not_null(c, "%s", err);
        bool a = strcmp(sv_config_service(c, "a")->fingerprint,
                        sv_config_service(c0, "a")->fingerprint) != 0;
        bool b = strcmp(sv_config_service(c, "b")->fingerprint,
                        sv_config_service(c0, "b")->fingerprint) != 0;
        bool p = strcmp(sv_config_program(c, "p")->fingerprint,
                        sv_config_program(c0, "p")->fingerprint) != 0;
        cr_assert(a == cases[i].a && b == cases[i].b && p == cases[i].p,
                  "case %zu: changed a=%d b=%d p=%d", i, a, b, p);
        sv_config_destroy(&c);
    }
    sv_config_destroy(&c0);
}

/* A section only one service reads ([backend], [router], [budget:*], ...)
 * rolls that service alone; [supervisor] log settings roll none. */
Test(sv_config, sections_of_one_service_roll_only_it, .fini = s_fini)
{
    static const char *const texts[] = {
        "[supervisor]\nlog_level = info\n[backend]\nread_cache = 10\n"
        "[budget:dev]\nlimit_usd = 5\n"
        "[service:backend]\nlisten = 127.0.0.1:9001\n"
        "[service:llm-router]\nlisten = 127.0.0.1:9003\ncommand = /bin/true\n",
        "[supervisor]\nlog_level = debug\n[backend]\nread_cache = 10\n"
        "[budget:dev]\nlimit_usd = 5\n"
        "[service:backend]\nlisten = 127.0.0.1:9001\n"
        "[service:llm-router]\nlisten = 127.0.0.1:9003\ncommand = /bin/true\n",
        "[supervisor]\nlog_level = info\n[backend]\nread_cache = 20\n"
        "[budget:dev]\nlimit_usd = 5\n"
        "[service:backend]\nlisten = 127.0.0.1:9001\n"
        "[service:llm-router]\nlisten = 127.0.0.1:9003\ncommand = /bin/true\n",
        "[supervisor]\nlog_level = info\n[backend]\nread_cache = 10\n"
        "[budget:dev]\nlimit_usd = 6\n"
        "[service:backend]\nlisten = 127.0.0.1:9001\n"
        "[service:llm-router]\nlisten = 127.0.0.1:9003\ncommand = /bin/true\n",
    };
    static const bool backend[] = {false, false, true, false};
    static const bool router[] = {false, false, false, true};
    char err[512];
    sv_config_t *c0 = s_load(texts[0], err);
    cr_assert_not_null(c0, "%s", err);
    for (size_t i = 1; i < 4; i++) {
        sv_config_t *c = s_load(texts[i], err);
        cr_assert_not_null(c, "%s", err);
        bool b = strcmp(sv_config_service(c, "backend")->fingerprint,
                        sv_config_service(c0, "backend")->fingerprint) != 0;
        bool r = strcmp(sv_config_service(c, "llm-router")->fingerprint,
                        sv_config_service(c0, "llm-router")->fingerprint) != 0;
        cr_assert(b == backend[i] && r == router[i], "text %zu: backend %d router %d",
                  i, b, r);
        sv_config_destroy(&c);
    }
    sv_config_destroy(&c0);
}
