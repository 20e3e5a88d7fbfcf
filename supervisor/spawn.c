/* spawn.c - see spawn.h. */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"

extern char **environ;

char *spawn_resolve(const char *cmd)
{
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0 ? xstrdup(cmd) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        char *cand = xasprintf("%.*s/%s", (int)n, path, cmd);
        if (access(cand, X_OK) == 0)
            return cand;
        free(cand);
        path += n + (e ? 1 : 0);
    }
    return NULL;
}

static bool s_is_ours(const char *kv)
{
    static const char *const names[] = {
        "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "VAPORA_WORKER_CPU=", NULL};
    for (const char *const *n = names; *n; n++)
        if (strncmp(kv, *n, strlen(*n)) == 0)
            return true;
    return false;
}

bool spawn_env_same_name(const char *a, const char *b)
{
    size_t len = strcspn(a, "=");
    return strncmp(a, b, len) == 0 && (b[len] == '=' || b[len] == '\0');
}

/* Whether req->env sets the variable kv names: the extra entry then
 * replaces it (getenv finds a name's first entry). */
static bool s_replaced(const char *kv, const spawn_req_t *req)
{
    for (size_t i = 0; req->env && req->env[i]; i++)
        if (spawn_env_same_name(kv, req->env[i]))
            return true;
    return false;
}

/* Builds envp; *pid_slot receives the LISTEN_PID entry to fill in the child. */
static char **s_envp(const spawn_req_t *req, char **pid_slot)
{
    size_t n = 0, extra = 0;
    while (environ[n])
        n++;
    while (req->env && req->env[extra])
        extra++;
    char **envp = xcalloc(n + extra + 4, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!s_is_ours(environ[i]) && !s_replaced(environ[i], req))
            envp[k++] = environ[i];
    for (size_t i = 0; i < extra; i++)
        envp[k++] = (char *)req->env[i];
    *pid_slot = NULL;
    if (req->listen_fd >= 0) {
        envp[k++] = "LISTEN_FDS=1";
        *pid_slot = xcalloc(1, 32);
        envp[k++] = *pid_slot;
    }
    envp[k] = NULL;
    return envp;
}

/* async-signal-safe: writes "LISTEN_PID=<pid>" into buf. */
static void s_fill_pid(char *buf, pid_t pid)
{
    char digits[16];
    int n = 0;
    unsigned long v = (unsigned long)pid;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(buf, "LISTEN_PID=", 11);
    for (int i = 0; i < n; i++)
        buf[11 + i] = digits[n - 1 - i];
    buf[11 + n] = '\0';
}

static void s_child(const spawn_req_t *req, const char *path, char **envp,
                    char *pid_slot, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) /* the supervisor died before prctl took effect */
        _exit(127);
    if (req->listen_fd >= 0) {
        if (req->listen_fd == 3) {
            int fl = fcntl(3, F_GETFD);
            fcntl(3, F_SETFD, fl & ~FD_CLOEXEC);
        } else if (dup2(req->listen_fd, 3) < 0) {
            _exit(126);
        }
        s_fill_pid(pid_slot, getpid());
    }
    if (req->output_fd > 0 && (dup2(req->output_fd, 1) < 0 || dup2(req->output_fd, 2) < 0))
        _exit(126);
    if (req->directory && chdir(req->directory) < 0)
        _exit(126);
    execve(path, req->argv, envp);
    _exit(127);
}

pid_t spawn_process(const spawn_req_t *req, char *err, size_t errlen)
{
    char *path = spawn_resolve(req->argv[0]);
    if (!path) {
        snprintf(err, errlen, "command \"%s\" not found or not executable",
                 req->argv[0]);
        return -ENOENT;
    }
    char *pid_slot;
    char **envp = s_envp(req, &pid_slot);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_child(req, path, envp, pid_slot, parent);
    int e = errno;
    free(envp);
    free(pid_slot);
    free(path);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(e));
        return -e;
    }
    return pid;
}

void spawn_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by SIG%s%s",
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else
        snprintf(buf, len, "wait status %d", status);
}
