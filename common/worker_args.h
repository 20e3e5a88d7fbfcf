/* worker_args.h - a worker's command line:
 *   vapora-NAME [-c CONFIG] [-l HOST:PORT] [--check]
 * (--check: the service checks its settings in CONFIG, says why not on
 * stderr and exits; the supervisor asks it before a reload). */
#ifndef VAPORA_WORKER_ARGS_H
#define VAPORA_WORKER_ARGS_H

#include <stdbool.h>

typedef struct worker_args {
    const char *config; /* default etc/vapora.conf */
    const char *listen; /* NULL: the config's */
    bool check;
} worker_args_t;

/* Reads argv into a. Returns 0, or -1 when the worker is not to run, with
 * its exit status in *status (0 after --help, 2 after a misuse, printed). */
int worker_args(int argc, char **argv, worker_args_t *a, int *status);

#endif
