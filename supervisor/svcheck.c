/* svcheck.c - see svcheck.h. */
#define _GNU_SOURCE
#include "svcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "fd.h"
#include "now.h"
#include "spawn.h"

/* Reads what the child writes to out until it closes it or deadline
 * (now_ms) passes; returns what was read (heap, NUL-terminated). */
static char *s_read_all(int out, uint64_t deadline)
{
    size_t cap = 1024, len = 0;
    char *buf = xcalloc(1, cap);
    for (;;) {
        uint64_t now = now_ms();
        struct pollfd p = {.fd = out, .events = POLLIN};
        if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t n = read(out, buf + len, cap - 1 - len);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            break;
        len += n > 0 ? (size_t)n : 0;
        if (len + 1 >= cap) /* the first KiB is the reason; the rest is drained */
            len = cap - 2;
    }
    buf[len] = '\0';
    return buf;
}

/* The exit status of pid, which closed its stderr (it is ending) or ran
 * out of time: a moment to end, then SIGKILL (-1). */
static int s_wait(pid_t pid)
{
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 200 && (r = waitpid(pid, &status, WNOHANG)) == 0; i++)
        usleep(10 * 1000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return r == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs argv (spawn.h) with its output to a pipe; its exit status (or -1:
 * it could not start, or did not end in time and was killed) and what it
 * wrote in *out. */
static int s_run(char *const *argv, char **out)
{
    int p[2];
    *out = NULL;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    char err[256];
    pid_t pid = spawn_process(&(spawn_req_t){.argv = argv, .listen_fd = -1,
                                             .output_fd = p[1]},
                              err, sizeof err);
    close(p[1]);
    *out = pid > 0 ? s_read_all(p[0], now_ms() + SVCHECK_TIMEOUT_S * 1000) : xstrdup(err);
    close(p[0]);
    return pid < 0 ? -1 : s_wait(pid);
}

/* The check of one service; 0, or -EINVAL with the reason in err. */
static int s_check_one(const sv_service_cfg_t *sc, const char *path, char *err,
                       size_t errlen)
{
    size_t argc = 0;
    while (sc->argv[argc])
        argc++;
    char **argv = xcalloc(argc + 4, sizeof *argv);
    memcpy(argv, sc->argv, argc * sizeof *argv);
    argv[argc] = "--check";
    argv[argc + 1] = "-c";
    argv[argc + 2] = (char *)path;
    char *out = NULL;
    int rc = s_run(argv, &out);
    free(argv);
    if (rc != 0) {
        char *nl = out ? strchr(out, '\n') : NULL;
        if (nl)
            *nl = '\0';
        snprintf(err, errlen, "service %s: %s", sc->name,
                 out && *out ? out : rc < 0 ? "its check did not end" : "its check failed");
    }
    free(out);
    return rc == 0 ? 0 : -EINVAL;
}

/* Whether sc runs one of our workers (vapora-NAME), which know --check;
 * another command (a shell line, a wrapper) is not asked. */
static bool s_knows_check(const sv_service_cfg_t *sc)
{
    const char *slash = strrchr(sc->argv[0], '/');
    return sc->control && strncmp(slash ? slash + 1 : sc->argv[0], "vapora-", 7) == 0;
}

int sv_check_services(const sv_config_t *nc, const char *worker_config, char *err,
                      size_t errlen)
{
    char *path = xasprintf("%s.check", worker_config);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 ? -errno : fd_write_all(fd, nc->text, strlen(nc->text));
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
    for (size_t i = 0; rc == 0 && i < nc->nservices; i++)
        if (s_knows_check(&nc->services[i]))
            rc = s_check_one(&nc->services[i], path, err, errlen);
    unlink(path);
    free(path);
    return rc < 0 ? -EINVAL : 0;
}
