/* main.c - vapora-supervisor: owns the listening sockets, runs one worker
 * per core for each [service:NAME] and every [program:NAME], heals, scales,
 * reloads and drains them. Wiring only: the supervisor (supervisor.h) is
 * opened, the admin API (admin.h) put on it, then the children launched;
 * see supervisor.h for the modules. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "alloc.h"
#include "log.h"
#include "supervisor.h"
#include "svcheck.h"

static void s_usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-c CONFIG] [--check]\n"
            "  -c, --config FILE  configuration (default etc/vapora.conf)\n"
            "      --check        validate the configuration and exit 0 or 1\n"
            "  -h, --help         this text\n",
            prog);
}

/* The directory of our own executable: default service binaries live there. */
static char *s_bin_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return xstrdup(".");
    buf[n] = '\0';
    return xstrdup(dirname(buf));
}

/* --check: validates config and says what it holds; the exit status. */
static int s_check(const char *config, const char *bin_dir)
{
    char err[512];
    sv_config_t *cfg = sv_config_load(config, bin_dir, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s: invalid: %s\n", config, err);
        return 1;
    }
    /* The services' own settings, as a reload asks them (svcheck.h), from
     * a directory of our own. */
    char dir[] = "/tmp/vapora-check.XXXXXX";
    int rc = mkdtemp(dir) ? 0 : -errno;
    char *path = xasprintf("%s/config", dir);
    if (rc == 0)
        rc = sv_check_services(cfg, path, err, sizeof err);
    else
        snprintf(err, sizeof err, "cannot make %s: %s", dir, strerror(-rc));
    rmdir(dir);
    free(path);
    if (rc < 0)
        fprintf(stderr, "%s: invalid: %s\n", config, err);
    else
        printf("%s: configuration OK (%zu service(s), %zu program(s))\n", config,
               cfg->nservices, cfg->nprograms);
    sv_config_destroy(&cfg);
    return rc < 0 ? 1 : 0;
}

/* Open → admin → launch → run: the admin API answers before the first
 * child starts, and a port it cannot bind stops us before any does. */
static int s_supervise(const char *config, const char *bin_dir)
{
    char err[512];
    sv_admin_t *admin = NULL;
    sv_t *sv = sv_new(config, bin_dir, err, sizeof err);
    if (sv)
        admin = sv_admin_new(sv, err, sizeof err);
    if (!admin) {
        log_error("cannot start: %s", err);
        sv_destroy(&sv);
        return 1;
    }
    sv_launch(sv);
    int status = sv_run(sv);
    sv_admin_destroy(&admin);
    sv_destroy(&sv);
    if (status == 0)
        log_info("supervisor stopped cleanly");
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"check", no_argument, 0, 'k'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = "etc/vapora.conf";
    bool check = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': check = true; break;
        case 'h': s_usage(stdout, argv[0]); return 0;
        default: s_usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        s_usage(stderr, argv[0]);
        return 2;
    }
    /* Everything we and our children create (data_dir, its files, the
     * ipc socket, nats-server's store) is ours alone: 0700 and 0600. */
    umask(077);
    log_init("supervisor", LOG_INFO, LOG_FMT_LOGFMT);
    char *bin_dir = s_bin_dir();
    int status = check ? s_check(config, bin_dir) : s_supervise(config, bin_dir);
    free(bin_dir);
    return status;
}
