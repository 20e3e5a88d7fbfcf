/* harness_proc.c - see harness_proc.h. */
#define _GNU_SOURCE
#include "harness_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_base.h"
#include "harness_http.h"

static th_proc_t *s_procs;

/* ---- processes ---- */

/* In the child: stdout+stderr to logfd, a clean fd table and signal state,
 * no core files, death with the parent, then exec. Never returns. */
static void s_child_exec(char *const argv[], int logfd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != STDIN_FILENO) {
        dup2(devnull, STDIN_FILENO);
        close(devnull);
    }
    close_range(3, ~0u, 0);
    /* A process the supervisor's watchdog aborts must not leave a core
     * file in the working directory (the source tree). */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    execvp(argv[0], argv);
    dprintf(STDERR_FILENO, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

th_proc_t *th_spawn_argv(const char *const argv[], char *config)
{
    th_proc_t *p = calloc(1, sizeof *p);
    const char *base = strrchr(argv[0], '/');
    p->bin = strdup(argv[0]);
    p->config = config;
    p->log = th_tmp_path(base ? base + 1 : argv[0], ".log");
    TH_LINK(s_procs, p);
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "harness: open %s: %s\n", p->log, strerror(errno));
        th_proc_free(&p);
        return NULL;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_child_exec((char *const *)argv, logfd, parent);
    close(logfd);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        th_proc_free(&p);
        return NULL;
    }
    p->pid = pid;
    return p;
}

th_proc_t *th_spawn(const char *bin, char *config)
{
    const char *argv[] = {bin, "-c", config, NULL};
    return th_spawn_argv(argv, config);
}

/* Decodes a wait status: the exit code, or 128 + the signal. */
static int s_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -EINVAL;
}

bool th_running(th_proc_t *p)
{
    if (!p || p->pid == 0)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->status = r == p->pid ? st : 0;
        p->pid = 0;
        return false;
    }
    return true;
}

int th_wait_exit(th_proc_t *p, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    while (th_running(p)) {
        if (th_now_ms() >= deadline) {
            fprintf(stderr, "harness: %s (pid %d) still runs after %d ms: killed\n",
                    p->bin, (int)p->pid, timeout_ms);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &p->status, 0);
            p->pid = 0;
            return -ETIMEDOUT;
        }
        th_sleep_ms(5);
    }
    return s_exit_code(p->status);
}

int th_signal(th_proc_t *p, int sig)
{
    if (!th_running(p))
        return -ESRCH;
    return kill(p->pid, sig) < 0 ? -errno : 0;
}

int th_stop(th_proc_t *p, int sig, int timeout_ms)
{
    int rc = th_signal(p, sig);
    if (rc < 0 && rc != -ESRCH)
        return rc;
    return th_wait_exit(p, timeout_ms);
}

int th_wait_ready(th_proc_t *p, int port, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (!th_running(p))
            return -ECHILD;
        int left = th__left(deadline);
        th_conn_t *c = th_connect(port, left < 200 ? left : 200);
        if (c) {
            th_conn_close(&c);
            return 0;
        }
        if (th_now_ms() >= deadline)
            return -ETIMEDOUT;
        th_sleep_ms(10);
    }
}

/* One attempt of th_start() on a fresh port. *retry is set when the worker
 * exited because it could not listen (the port was taken meanwhile). */
static th_proc_t *s_start_once(const char *bin, const char *section, const char *extra,
                               bool *retry)
{
    int port = th_free_port();
    char *text = NULL;
    if (port < 0 || asprintf(&text, "[service:%s]\nlisten = 127.0.0.1:%d\n%s", section,
                             port, extra ? extra : "") < 0)
        return NULL;
    char *config = th_write_temp(section, ".conf", text);
    free(text);
    th_proc_t *p = config ? th_spawn(bin, config) : NULL;
    if (!p)
        return NULL;
    p->port = port;
    int rc = th_wait_ready(p, port, TH_READY_MS);
    if (rc == 0)
        return p;
    char *log = th_log(p);
    *retry = rc == -ECHILD && strstr(log, "cannot listen") != NULL;
    fprintf(stderr, "harness: %s did not become ready on port %d (%s); log:\n%s\n", bin,
            port, strerror(-rc), log);
    free(log);
    th_proc_free(&p);
    return NULL;
}

th_proc_t *th_start(const char *bin_name, const char *section, const char *extra)
{
    char *bin = th_bin_path(bin_name);
    th_proc_t *p = NULL;
    bool retry = true;
    for (int i = 0; bin && !p && retry && i < TH_START_TRIES; i++) {
        retry = false;
        p = s_start_once(bin, section, extra, &retry);
    }
    free(bin);
    return p;
}

char *th_log(const th_proc_t *p)
{
    char *s = p && p->log ? th_read_file(p->log, NULL) : NULL;
    return s ? s : strdup("");
}

bool th_log_wait(const th_proc_t *p, const char *needle, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        char *log = th_log(p);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(20);
    }
}

char *th_log_line(const th_proc_t *p, const char *needle)
{
    char *log = th_log(p);
    char *at = strstr(log, needle), *line = NULL;
    if (at) {
        char *b = at;
        while (b > log && b[-1] != '\n')
            b--;
        line = strndup(b, (size_t)(strchrnul(at, '\n') - b));
    }
    free(log);
    return line;
}

int th_log_count(const th_proc_t *p, const char *needle)
{
    char *log = th_log(p);
    int n = 0;
    for (const char *at = log; (at = strstr(at, needle)); at += strlen(needle))
        n++;
    free(log);
    return n;
}

void th_proc_free(th_proc_t **pp)
{
    th_proc_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    TH_UNLINK(s_procs, p);
    if (th_running(p)) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
    }
    if (!th_keep_files()) {
        if (p->config)
            unlink(p->config);
        if (p->log)
            unlink(p->log);
    }
    free(p->bin);
    free(p->config);
    free(p->log);
    free(p);
}

int th_run(const char *const argv[], int timeout_ms, char **out)
{
    if (out)
        *out = NULL;
    th_proc_t *p = th_spawn_argv(argv, NULL);
    if (!p) {
        if (out)
            *out = strdup("");
        return -ECHILD;
    }
    int rc = th_wait_exit(p, timeout_ms);
    if (out)
        *out = th_log(p);
    th_proc_free(&p);
    return rc;
}

/* ---- other processes, by pid ---- */

/* Reads /proc/<pid>/stat: the state letter and the start time (field 22).
 * Returns 0, or -ENOENT when there is no such process. */
static int s_pid_stat(pid_t pid, char *state, unsigned long long *start)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *text = th_read_file(path, NULL);
    if (!text)
        return -ENOENT;
    /* The command name may hold blanks and parentheses: skip past the last
     * ')' before counting fields. */
    char *p = strrchr(text, ')');
    int rc = p && sscanf(p + 1,
                         " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                         "%*s %*s %*s %*s %*s %*s %llu",
                         state, start) == 2
                 ? 0
                 : -ENOENT;
    free(text);
    return rc;
}

char th_pid_state(pid_t pid)
{
    char st = 0;
    unsigned long long start;
    return pid > 0 && s_pid_stat(pid, &st, &start) == 0 ? st : 0;
}

/* Pids the tests learnt about (workers, programs), with their start times
 * so that a recycled pid is never mistaken for them. */
typedef struct th_tracked {
    pid_t pid;
    unsigned long long start;
} th_tracked_t;

static th_tracked_t *s_tracked;
static size_t s_ntracked;

void th_track_pid(pid_t pid)
{
    char st;
    unsigned long long start;
    if (pid <= 0 || s_pid_stat(pid, &st, &start) < 0)
        return;
    for (size_t i = 0; i < s_ntracked; i++)
        if (s_tracked[i].pid == pid && s_tracked[i].start == start)
            return;
    s_tracked = realloc(s_tracked, (s_ntracked + 1) * sizeof *s_tracked);
    s_tracked[s_ntracked++] = (th_tracked_t){pid, start};
}

bool th_pid_remains(pid_t pid)
{
    char st;
    unsigned long long start;
    if (pid <= 0 || s_pid_stat(pid, &st, &start) < 0)
        return false;
    bool known = false;
    for (size_t i = 0; i < s_ntracked; i++) {
        if (s_tracked[i].pid != pid)
            continue;
        known = true;
        if (s_tracked[i].start == start)
            return true;
    }
    return !known; /* tracked under another start time: the pid was reused */
}

void th__pids_kill(void)
{
    for (size_t i = 0; i < s_ntracked; i++) {
        char st;
        unsigned long long start;
        pid_t pid = s_tracked[i].pid;
        if (s_pid_stat(pid, &st, &start) == 0 && start == s_tracked[i].start &&
            st != 'Z') {
            kill(pid, SIGCONT);
            kill(pid, SIGKILL);
        }
    }
    free(s_tracked);
    s_tracked = NULL;
    s_ntracked = 0;
}

void th__pids_continue(void)
{
    for (size_t i = 0; i < s_ntracked; i++)
        if (th_pid_remains(s_tracked[i].pid))
            kill(s_tracked[i].pid, SIGCONT);
}

void th__procs_release(void)
{
    while (s_procs) {
        th_proc_t *p = s_procs;
        th_proc_free(&p);
    }
}
