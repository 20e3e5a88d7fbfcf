/* main.c - vapora-supervisor: owns the listening sockets, runs one worker
 * per core for each [service:NAME] and every [program:NAME], heals, scales,
 * reloads and drains them. Wiring only; see sv.h. */
#define _GNU_SOURCE
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sv.h"
#include "alloc.h"

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
    log_init("supervisor", LOG_INFO, LOG_FMT_LOGFMT);
    sv_t sv = {0};
    sv.bin_dir = s_bin_dir();
    char err[512];
    if (check) {
        sv_config_t *cfg = sv_config_load(config, sv.bin_dir, err, sizeof err);
        free(sv.bin_dir);
        if (!cfg) {
            fprintf(stderr, "%s: invalid: %s\n", config, err);
            return 1;
        }
        printf("%s: configuration OK (%zu service(s), %zu program(s))\n", config,
               cfg->nservices, cfg->nprograms);
        sv_config_destroy(&cfg);
        return 0;
    }
    int status = 0;
    if (sv_start(&sv, config, err, sizeof err) < 0) {
        log_error("cannot start: %s", err);
        status = 1;
    } else if (loop_run(sv.loop) < 0) {
        status = 1;
    } else {
        status = sv.exit_status;
    }
    sv_stop(&sv);
    free(sv.bin_dir);
    if (status == 0)
        log_info("supervisor stopped cleanly");
    return status;
}
