/* spawn.h - fork + exec of a supervised process, safe in a process that
 * already has threads (libzmq's): everything is prepared before fork(), and
 * the child only makes async-signal-safe calls before execve(). */
#ifndef VAPORA_SPAWN_H
#define VAPORA_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct spawn_req {
    char *const *argv;      /* argv[0] is resolved against PATH if it has no '/' */
    const char *directory;  /* chdir there first, or NULL */
    int listen_fd;          /* handed over as fd 3 with LISTEN_FDS=1, or -1 */
    const char *const *env; /* extra NAME=value entries, NULL-terminated, or NULL;
                               each replaces the supervisor's variable of that name */
    int output_fd;          /* > 0: stdout and stderr go there; 0: inherited */
} spawn_req_t;

/* Starts the process in its own process group (so a terminal's Ctrl-C
 * reaches only the supervisor), with an empty signal mask, default SIGPIPE,
 * and SIGTERM as its parent-death signal. Returns the pid, or -errno with a
 * reason in err (e.g. the command is not found or not executable). */
pid_t spawn_process(const spawn_req_t *req, char *err, size_t errlen);

/* Whether two environment entries ("NAME=value", or a bare NAME) name
 * the same variable. */
bool spawn_env_same_name(const char *a, const char *b);

/* The path cmd runs (PATH is searched when it has no '/'), if executable;
 * heap string, or NULL. */
char *spawn_resolve(const char *cmd);

/* Describes a wait status: "exit status 3", "killed by SIGKILL",
 * "killed by SIGSEGV (core dumped)". */
void spawn_describe_status(int status, char *buf, size_t len);

#endif
