/* worker_args.c - see worker_args.h. */
#include "worker_args.h"

#include <getopt.h>
#include <stdio.h>

static void s_usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-c CONFIG] [-l HOST:PORT] [--check]\n"
            "  -c, --config FILE   configuration (default etc/vapora.conf)\n"
            "  -l, --listen ADDR   listen address, overriding the config\n"
            "  -k, --check         check the service's settings, print why not, exit\n"
            "  -h, --help          this text\n",
            prog);
}

int worker_args(int argc, char **argv, worker_args_t *a, int *status)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"check", no_argument, 0, 'k'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (worker_args_t){.config = "etc/vapora.conf"};
    int c;
    while ((c = getopt_long(argc, argv, "c:l:kh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'l': a->listen = optarg; break;
        case 'k': a->check = true; break;
        case 'h': s_usage(stdout, argv[0]); *status = 0; return -1;
        default: s_usage(stderr, argv[0]); *status = 2; return -1;
        }
    }
    if (optind < argc) {
        s_usage(stderr, argv[0]);
        *status = 2;
        return -1;
    }
    return 0;
}
