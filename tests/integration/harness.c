/* harness.c - see harness.h.
 *
 * DESIGN. The client keeps one receive buffer per connection; a response is
 * parsed out of its front and whatever follows stays for the next one. All
 * sockets are non-blocking and every wait is a poll() bounded by a deadline
 * computed once per call, so a call never takes longer than its timeout.
 * The concurrent client (th_load_*) has its own small parser on a fixed
 * buffer per thread and touches none of the lists; its counts are guarded
 * by one mutex per load. */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TH_MAX_HEAD (64 * 1024) /* a response head larger than this is -EPROTO */
#define TH_START_TRIES 3

struct th_conn {
    int fd;
    char *buf; /* received, not yet parsed */
    size_t len, cap;
    th_conn_t *prev, *next;
};

/* What this test process holds; th_cleanup() releases all of it. */
static th_proc_t *s_procs;
static th_conn_t *s_conns;
static th_resp_t *s_resps;
static unsigned s_tmp_seq;

/* Links x at the head of a list / unlinks it (any type with prev, next). */
#define TH_LINK(head, x)                                                               \
    do {                                                                               \
        (x)->prev = NULL;                                                              \
        (x)->next = (head);                                                            \
        if (head)                                                                      \
            (head)->prev = (x);                                                        \
        (head) = (x);                                                                  \
    } while (0)
#define TH_UNLINK(head, x)                                                             \
    do {                                                                               \
        if ((x)->prev)                                                                 \
            (x)->prev->next = (x)->next;                                               \
        else                                                                           \
            (head) = (x)->next;                                                        \
        if ((x)->next)                                                                 \
            (x)->next->prev = (x)->prev;                                               \
        (x)->prev = (x)->next = NULL;                                                  \
    } while (0)

/* ---- time ---- */

long long th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Milliseconds left until deadline, never negative. */
static int s_left(long long deadline)
{
    long long left = deadline - th_now_ms();
    return left > 0 ? (int)left : 0;
}

/* Waits for events on fd until deadline. Returns the revents, 0 on timeout,
 * or -errno. */
static int s_poll(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, s_left(deadline));
        if (n > 0)
            return pfd.revents;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- temp files and ports ---- */

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        rc = -errno;
    close(fd);
    return rc < 0 ? rc : ntohs(sa.sin_port);
}

char *th_tmp_path(const char *tag, const char *suffix)
{
    const char *dir = getenv("VAPORA_TEST_TMP");
    if (!dir || !*dir)
        dir = "/tmp";
    char *path = NULL;
    if (asprintf(&path, "%s/%s-%d-%u%s", dir, tag, (int)getpid(), s_tmp_seq++, suffix) <
        0)
        return NULL;
    return path;
}

/* Writes all of len bytes to fd; returns 0 or -errno. */
static int s_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

char *th_write_temp(const char *tag, const char *suffix, const char *text)
{
    char *path = th_tmp_path(tag, suffix);
    if (!path)
        return NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : s_write_all(fd, text, strlen(text));
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        fprintf(stderr, "harness: writing %s: %s\n", path, strerror(-rc));
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

char *th_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            data = realloc(data, cap);
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

char *th_bin_path(const char *name)
{
    const char *dir = getenv("VAPORA_BIN_DIR");
    if (!dir || !*dir)
        dir = "build/bin";
    char *path = NULL;
    int rc = strcmp(name, "vapora-testsvc") == 0
                 ? asprintf(&path, "%s/../tests/%s", dir, name)
                 : asprintf(&path, "%s/%s", dir, name);
    return rc < 0 ? NULL : path;
}

/* ---- processes ---- */

static bool s_keep_files(void)
{
    const char *v = getenv("VAPORA_TEST_KEEP");
    return v && *v && strcmp(v, "0") != 0;
}

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
        int left = s_left(deadline);
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
    if (!s_keep_files()) {
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

/* SIGKILLs every tracked process that still runs (continuing it first, in
 * case a test stopped it) and forgets them all. */
static void s_kill_tracked(void)
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

/* ---- HTTP client: connections ---- */

/* Finishes a non-blocking connect(); returns 0 or -errno. */
static int s_connect_wait(int fd, long long deadline)
{
    int ev = s_poll(fd, POLLOUT, deadline);
    if (ev < 0)
        return ev;
    if (ev == 0)
        return -ETIMEDOUT;
    int err = 0;
    socklen_t sl = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        return -errno;
    return -err;
}

/* Connects a non-blocking socket to 127.0.0.1:port before deadline.
 * Returns the fd or -errno. Thread-safe. */
static int s_tcp_connect(int port, long long deadline)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
    if (rc == -EINPROGRESS)
        rc = s_connect_wait(fd, deadline);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

th_conn_t *th_connect(int port, int timeout_ms)
{
    int fd = s_tcp_connect(port, th_now_ms() + timeout_ms);
    if (fd < 0) {
        errno = -fd;
        return NULL;
    }
    th_conn_t *c = calloc(1, sizeof *c);
    c->fd = fd;
    TH_LINK(s_conns, c);
    return c;
}

void th_conn_close(th_conn_t **cp)
{
    th_conn_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    *cp = NULL;
    TH_UNLINK(s_conns, c);
    close(c->fd);
    free(c->buf);
    free(c);
}

int th_conn_fd(const th_conn_t *c)
{
    return c ? c->fd : -1;
}

/* Sends len bytes before deadline; returns 0 or -errno. */
static int s_send_until(th_conn_t *c, const char *data, size_t len, long long deadline)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int ev = s_poll(c->fd, POLLOUT, deadline);
        if (ev < 0)
            return ev;
        if (ev == 0)
            return -ETIMEDOUT;
    }
    return 0;
}

int th_send_raw(th_conn_t *c, const void *data, size_t len, int timeout_ms)
{
    return s_send_until(c, data, len, th_now_ms() + timeout_ms);
}

/* Formats a request (head and body in one buffer, so they leave in as few
 * segments as possible); *len receives its length. The caller frees it.
 * Thread-safe. */
static char *s_format_request(const char *method, const char *path, const char *headers,
                              const void *body, size_t body_len, size_t *len)
{
    char *head = NULL;
    int n = body ? asprintf(&head,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                            "Content-Length: %zu\r\n\r\n",
                            method, path, headers ? headers : "", body_len)
                 : asprintf(&head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                            method, path, headers ? headers : "");
    if (n < 0)
        return NULL;
    char *msg = malloc((size_t)n + body_len);
    memcpy(msg, head, (size_t)n);
    if (body && body_len)
        memcpy(msg + n, body, body_len);
    free(head);
    *len = (size_t)n + body_len;
    return msg;
}

int th_send_request(th_conn_t *c, const char *method, const char *path,
                    const char *headers, const void *body, size_t body_len)
{
    size_t len = 0;
    char *msg = s_format_request(method, path, headers, body, body_len, &len);
    if (!msg)
        return -ENOMEM;
    int rc = th_send_raw(c, msg, len, TH_IO_MS);
    free(msg);
    return rc;
}

/* ---- HTTP client: receiving ---- */

/* Reads what is available into c->buf, waiting until deadline. Returns the
 * bytes read, -ECONNRESET on EOF or reset, -ETIMEDOUT, or -errno. */
static int s_fill(th_conn_t *c, long long deadline)
{
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? c->cap * 2 : 16384;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            return (int)n;
        }
        if (n == 0 || errno == ECONNRESET)
            return -ECONNRESET;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int ev = s_poll(c->fd, POLLIN, deadline);
        if (ev < 0)
            return ev;
        if (ev == 0)
            return -ETIMEDOUT;
    }
}

/* Drops the first n buffered bytes. */
static void s_consume(th_conn_t *c, size_t n)
{
    if (n == 0)
        return;
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* Ensures n bytes are buffered. Returns 0 or as s_fill. */
static int s_need(th_conn_t *c, size_t n, long long deadline)
{
    while (c->len < n) {
        int rc = s_fill(c, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Ensures the buffer holds delim; returns its offset or as s_fill. */
static long s_need_delim(th_conn_t *c, const char *delim, long long deadline)
{
    size_t dl = strlen(delim);
    for (;;) {
        char *at = c->buf ? memmem(c->buf, c->len, delim, dl) : NULL;
        if (at)
            return at - c->buf;
        if (c->len > TH_MAX_HEAD)
            return -EPROTO;
        int rc = s_fill(c, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Parses "HTTP/1.x NNN reason\r\nName: value\r\n..." (NUL-terminated,
 * without the blank line) into r. Returns 0 or -EPROTO. */
static int s_parse_head(char *head, th_resp_t *r)
{
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    if (!line || sscanf(line, "HTTP/1.%*1[01] %3d", &r->status) != 1)
        return -EPROTO;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon)
            return -EPROTO;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        r->headers = realloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
        r->headers[r->nheaders].name = strdup(line);
        r->headers[r->nheaders].value = strdup(v);
        r->nheaders++;
    }
    return 0;
}

/* Appends n bytes to the body of r. */
static void s_body_append(th_resp_t *r, const char *data, size_t n)
{
    r->body = realloc(r->body, r->body_len + n + 1);
    if (n)
        memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* Reads a chunked body (and its trailers) into r. */
static int s_read_chunked(th_conn_t *c, th_resp_t *r, long long deadline)
{
    for (;;) {
        long eol = s_need_delim(c, "\r\n", deadline);
        if (eol < 0)
            return (int)eol;
        char *end = NULL;
        unsigned long size = strtoul(c->buf, &end, 16);
        if (end == c->buf)
            return -EPROTO;
        s_consume(c, (size_t)eol + 2);
        if (size == 0)
            break;
        int rc = s_need(c, size + 2, deadline);
        if (rc < 0)
            return rc;
        s_body_append(r, c->buf, size);
        s_consume(c, size + 2);
    }
    for (;;) { /* trailers, up to the blank line */
        long eol = s_need_delim(c, "\r\n", deadline);
        if (eol < 0)
            return (int)eol;
        s_consume(c, (size_t)eol + 2);
        if (eol == 0)
            return 0;
    }
}

/* Reads the body of r as its headers say. */
static int s_read_body(th_conn_t *c, th_resp_t *r, long long deadline)
{
    const char *te = th_resp_header(r, "Transfer-Encoding");
    const char *cl = th_resp_header(r, "Content-Length");
    if (te && strcasestr(te, "chunked"))
        return s_read_chunked(c, r, deadline);
    if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        int rc = s_need(c, n, deadline);
        if (rc < 0)
            return rc;
        s_body_append(r, c->buf, n);
        s_consume(c, n);
        return 0;
    }
    if (r->status / 100 == 1 || r->status == 204 || r->status == 304)
        return 0;
    int rc;
    while ((rc = s_fill(c, deadline)) > 0) { /* delimited by the close */
    }
    if (rc != -ECONNRESET)
        return rc;
    s_body_append(r, c->buf ? c->buf : "", c->len);
    s_consume(c, c->len);
    return 0;
}

/* Frees a response that is on no list. */
static void s_resp_destroy(th_resp_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    free(r);
}

/* Reads one response into a new th_resp_t that is on no list (so this is
 * thread-safe for a connection only this thread uses). Returns as
 * th_read_response. */
static int s_read_response(th_conn_t *c, th_resp_t **out, long long deadline)
{
    *out = NULL;
    long end = s_need_delim(c, "\r\n\r\n", deadline);
    if (end < 0)
        return (int)end;
    th_resp_t *r = calloc(1, sizeof *r);
    c->buf[end] = '\0';
    int rc = s_parse_head(c->buf, r);
    s_consume(c, (size_t)end + 4);
    if (rc == 0)
        rc = s_read_body(c, r, deadline);
    if (rc == 0 && !r->body)
        s_body_append(r, "", 0);
    if (rc < 0) {
        s_resp_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

int th_read_response(th_conn_t *c, th_resp_t **out, int timeout_ms)
{
    int rc = s_read_response(c, out, th_now_ms() + timeout_ms);
    if (rc == 0)
        TH_LINK(s_resps, *out);
    return rc;
}

int th_wait_closed(th_conn_t *c, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        int rc = s_fill(c, deadline);
        s_consume(c, c->len);
        if (rc == -ECONNRESET)
            return 0;
        if (rc < 0)
            return rc;
    }
}

bool th_peer_closed(th_conn_t *c)
{
    return th_wait_closed(c, 0) == 0;
}

int th_request(int port, const char *method, const char *path, const char *headers,
               const char *body, th_resp_t **out)
{
    *out = NULL;
    th_conn_t *c = th_connect(port, TH_IO_MS);
    if (!c)
        return -errno;
    int rc = th_send_request(c, method, path, headers, body, body ? strlen(body) : 0);
    if (rc == 0)
        rc = th_read_response(c, out, TH_IO_MS);
    th_conn_close(&c);
    return rc;
}

const char *th_resp_header(const th_resp_t *r, const char *name)
{
    for (size_t i = 0; r && i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

void th_resp_free(th_resp_t **rp)
{
    th_resp_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    *rp = NULL;
    TH_UNLINK(s_resps, r);
    s_resp_destroy(r);
}

int th_call(int port, const char *method, const char *path, const char *headers,
            const char *body, char **resp_body, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    if (resp_body)
        *resp_body = NULL;
    int fd = s_tcp_connect(port, deadline);
    if (fd < 0)
        return fd;
    th_conn_t c = {.fd = fd};
    size_t len = 0;
    char *msg =
        s_format_request(method, path, headers, body, body ? strlen(body) : 0, &len);
    int rc = msg ? s_send_until(&c, msg, len, deadline) : -ENOMEM;
    free(msg);
    th_resp_t *r = NULL;
    if (rc == 0)
        rc = s_read_response(&c, &r, deadline);
    close(fd);
    free(c.buf);
    if (rc < 0)
        return rc;
    rc = r->status;
    if (resp_body) {
        *resp_body = r->body;
        r->body = NULL;
    }
    s_resp_destroy(r);
    return rc;
}

/* ---- a concurrent client ---- */

struct th_load {
    int port;
    char path[256];
    unsigned reqs_per_conn;
    long quota; /* connections in all; 0: until stopped */
    int pause_ms;
    pthread_t *threads;
    unsigned nthreads;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stop, held;
    unsigned active;  /* threads inside a connection */
    unsigned running; /* threads not yet finished */
    long claimed;     /* connections started, against quota */
    th_load_stats_t st;
    th_load_t *prev, *next; /* the main thread's list */
};

static th_load_t *s_loads;

/* One thread's connection: fd and its receive buffer. */
typedef struct s_lconn {
    int fd;
    char buf[16384];
    size_t len;
} s_lconn_t;

/* Receives into lc->buf until deadline. Returns bytes read, -ECONNRESET on
 * EOF or reset, -ETIMEDOUT, -ENOBUFS when the buffer is full, or -errno. */
static int s_lc_fill(s_lconn_t *lc, long long deadline)
{
    if (lc->len >= sizeof lc->buf - 1)
        return -ENOBUFS;
    for (;;) {
        ssize_t n = recv(lc->fd, lc->buf + lc->len, sizeof lc->buf - 1 - lc->len, 0);
        if (n > 0) {
            lc->len += (size_t)n;
            lc->buf[lc->len] = '\0';
            return (int)n;
        }
        if (n == 0 || errno == ECONNRESET)
            return -ECONNRESET;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int ev = s_poll(lc->fd, POLLIN, deadline);
        if (ev < 0)
            return ev;
        if (ev == 0)
            return -ETIMEDOUT;
    }
}

/* The value of header name in a NUL-terminated response head, or NULL. */
static const char *s_head_value(const char *head, const char *name, char *out,
                                size_t outlen)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            v += strspn(v, " \t");
            size_t len = strcspn(v, "\r\n");
            snprintf(out, outlen, "%.*s", (int)(len < outlen ? len : outlen - 1), v);
            return out;
        }
    }
    return NULL;
}

/* One GET on lc: returns the status (*close set when the server said
 * Connection: close) or -errno. The body is read and dropped. */
static int s_lc_get(s_lconn_t *lc, const char *path, bool *close_after)
{
    long long deadline = th_now_ms() + TH_IO_MS;
    char req[512];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    for (int off = 0; off < n;) {
        ssize_t w = send(lc->fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w > 0) {
            off += (int)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int ev = s_poll(lc->fd, POLLOUT, deadline);
        if (ev <= 0)
            return ev < 0 ? ev : -ETIMEDOUT;
    }
    char *end;
    while (!(end = memmem(lc->buf, lc->len, "\r\n\r\n", 4))) {
        int rc = s_lc_fill(lc, deadline);
        if (rc < 0)
            return rc;
    }
    *end = '\0';
    int status = 0;
    if (sscanf(lc->buf, "HTTP/1.%*1[01] %3d", &status) != 1)
        return -EPROTO;
    char v[64];
    size_t body =
        s_head_value(lc->buf, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
    *close_after =
        s_head_value(lc->buf, "Connection", v, sizeof v) && strcasecmp(v, "close") == 0;
    size_t head = (size_t)(end - lc->buf) + 4;
    memmove(lc->buf, lc->buf + head, lc->len - head);
    lc->len -= head;
    while (body > 0) {
        if (lc->len == 0) {
            int rc = s_lc_fill(lc, deadline);
            if (rc < 0)
                return rc;
        }
        size_t take = lc->len < body ? lc->len : body;
        memmove(lc->buf, lc->buf + take, lc->len - take);
        lc->len -= take;
        body -= take;
    }
    return status;
}

/* Records a failure (the first one's description is kept). */
static void s_load_fail(th_load_t *l, const char *fmt, ...)
{
    pthread_mutex_lock(&l->mu);
    if (l->st.failed++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->st.first_error, sizeof l->st.first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Makes reqs_per_conn requests on one connection, opening another when the
 * server closes it after a response that said so. */
static void s_load_conn(th_load_t *l)
{
    s_lconn_t *lc = calloc(1, sizeof *lc);
    lc->fd = -1;
    long ok = 0, conns = 0;
    for (unsigned i = 0; i < l->reqs_per_conn; i++) {
        if (lc->fd < 0) {
            lc->fd = s_tcp_connect(l->port, th_now_ms() + TH_IO_MS);
            lc->len = 0;
            if (lc->fd < 0) {
                s_load_fail(l, "connect: %s", strerror(-lc->fd));
                break;
            }
            conns++;
        }
        bool close_after = false;
        int rc = s_lc_get(lc, l->path, &close_after);
        if (rc < 0) {
            s_load_fail(l, "GET %s, request %u on its connection: no response (%s)",
                        l->path, i + 1, strerror(-rc));
            break;
        }
        if (rc != 200)
            s_load_fail(l, "GET %s: status %d", l->path, rc);
        else
            ok++;
        if (close_after) {
            close(lc->fd);
            lc->fd = -1;
        }
    }
    if (lc->fd >= 0)
        close(lc->fd);
    free(lc);
    pthread_mutex_lock(&l->mu);
    l->st.ok += ok;
    l->st.conns += conns;
    pthread_mutex_unlock(&l->mu);
}

static void *s_load_thread(void *arg)
{
    th_load_t *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->held && !l->stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop || (l->quota > 0 && l->claimed >= l->quota))
            break;
        l->claimed++;
        l->active++;
        pthread_mutex_unlock(&l->mu);
        s_load_conn(l);
        if (l->pause_ms > 0)
            th_sleep_ms(l->pause_ms);
        pthread_mutex_lock(&l->mu);
        l->active--;
        pthread_cond_broadcast(&l->cv);
    }
    l->running--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

th_load_t *th_load_start(const th_load_opts_t *o)
{
    th_load_t *l = calloc(1, sizeof *l);
    l->port = o->port;
    snprintf(l->path, sizeof l->path, "%s", o->path);
    l->reqs_per_conn = o->reqs_per_conn ? o->reqs_per_conn : 1;
    l->quota = o->conns;
    l->pause_ms = o->pause_ms;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->threads = calloc(o->threads, sizeof *l->threads);
    TH_LINK(s_loads, l);
    /* Threads block the signals the tests send to children, so none of
     * them is delivered to a client thread by accident. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < o->threads; i++) {
        pthread_mutex_lock(&l->mu);
        l->running++;
        pthread_mutex_unlock(&l->mu);
        if (pthread_create(&l->threads[i], NULL, s_load_thread, l) != 0) {
            pthread_mutex_lock(&l->mu);
            l->running--;
            pthread_mutex_unlock(&l->mu);
            break;
        }
        l->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (l->nthreads < o->threads) {
        fprintf(stderr, "harness: started %u of %u client threads\n", l->nthreads,
                o->threads);
        th_load_stop(&l, 0, NULL);
    }
    return l;
}

void th_load_hold(th_load_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->held = true;
    while (l->active > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void th_load_release(th_load_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->held = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void th_load_get(th_load_t *l, th_load_stats_t *st)
{
    pthread_mutex_lock(&l->mu);
    *st = l->st;
    pthread_mutex_unlock(&l->mu);
}

void th_load_stop(th_load_t **lp, int wait_ms, th_load_stats_t *st)
{
    th_load_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    *lp = NULL;
    TH_UNLINK(s_loads, l);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    while (l->quota > 0 && l->running > 0 && wait_ms > 0 &&
           pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0) {
    }
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->nthreads; i++)
        pthread_join(l->threads[i], NULL);
    if (st)
        *st = l->st;
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->threads);
    free(l);
}

/* ---- a supervisor under test ---- */

static th_sv_t *s_svs;

/* Writes text to path through a temp file and rename(), so a supervisor
 * reading it sees the old or the new file, never half of one. */
static int s_replace_file(const char *path, const char *text)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.new", path) < 0)
        return -ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : s_write_all(fd, text, strlen(text));
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Appends to b (a heap string, *len its length) n bytes of s. */
static void s_append(char **b, size_t *len, const char *s, size_t n)
{
    *b = realloc(*b, *len + n + 1);
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
}

/* The value of a template placeholder (between the @s), or NULL. */
static const char *s_placeholder(const th_sv_t *sv, const char *name, size_t n,
                                 char *buf, size_t buflen)
{
    if (n == 5 && strncmp(name, "ADMIN", 5) == 0)
        return sv->admin;
    if (n == 4 && strncmp(name, "DATA", 4) == 0)
        return sv->data_dir;
    if (n == 7 && strncmp(name, "TESTSVC", 7) == 0)
        return sv->testsvc;
    if (n == 7 && strncmp(name, "BACKEND", 7) == 0)
        return sv->backend;
    if (n == 6 && strncmp(name, "ROUTER", 6) == 0)
        return sv->router;
    if (n == 5 && strncmp(name, "PORT", 4) == 0 && name[4] >= '1' &&
        name[4] < '1' + TH_SV_PORTS) {
        snprintf(buf, buflen, "%d", sv->ports[name[4] - '1']);
        return buf;
    }
    return NULL;
}

/* The config text: [supervisor] admin and data_dir, then tmpl with its
 * placeholders replaced. The caller frees it. */
static char *s_sv_expand(const th_sv_t *sv, const char *tmpl)
{
    char *out = NULL;
    size_t len = 0;
    const char *head = "[supervisor]\nadmin = @ADMIN@\ndata_dir = @DATA@\n";
    for (int part = 0; part < 2; part++) {
        const char *p = part == 0 ? head : tmpl;
        while (*p) {
            const char *at = strchr(p, '@');
            const char *end = at ? strchr(at + 1, '@') : NULL;
            char buf[16];
            const char *v =
                end ? s_placeholder(sv, at + 1, (size_t)(end - at - 1), buf, sizeof buf)
                    : NULL;
            if (!v) { /* up to and including a lone '@' */
                size_t n = at ? (size_t)(at - p) + 1 : strlen(p);
                s_append(&out, &len, p, n);
                p += n;
                continue;
            }
            s_append(&out, &len, p, (size_t)(at - p));
            s_append(&out, &len, v, strlen(v));
            p = end + 1;
        }
    }
    return out;
}

/* Picks fresh ports for sv. Returns 0 or -errno. */
static int s_sv_pick_ports(th_sv_t *sv)
{
    sv->admin_port = th_free_port();
    if (sv->admin_port < 0)
        return sv->admin_port;
    snprintf(sv->admin, sizeof sv->admin, "127.0.0.1:%d", sv->admin_port);
    for (int i = 0; i < TH_SV_PORTS; i++) {
        sv->ports[i] = th_free_port();
        if (sv->ports[i] < 0)
            return sv->ports[i];
    }
    return 0;
}

/* Waits until the admin API answers GET /health with 200. Returns 0,
 * -ECHILD when the supervisor exited, or -ETIMEDOUT. */
static int s_sv_wait_admin(th_sv_t *sv, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (!th_running(sv->proc))
            return -ECHILD;
        th_resp_t *r = NULL;
        th_conn_t *c = th_connect(sv->admin_port, 200);
        if (c && th_send_request(c, "GET", "/health", NULL, NULL, 0) == 0)
            th_read_response(c, &r, 1000);
        th_conn_close(&c);
        bool up = r && r->status == 200;
        th_resp_free(&r);
        if (up)
            return 0;
        if (th_now_ms() >= deadline)
            return -ETIMEDOUT;
        th_sleep_ms(20);
    }
}

/* Everything of sv but the supervisor process; unlinks and frees sv. */
static void s_sv_release(th_sv_t *sv)
{
    TH_UNLINK(s_svs, sv);
    if (!s_keep_files() && sv->data_dir) {
        char *run = NULL;
        if (asprintf(&run, "%s/run", sv->data_dir) >= 0) {
            char *f = NULL;
            static const char *const left[] = {"supervisor.lock", "config.conf",
                                               "config.conf.tmp"};
            for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
                if (asprintf(&f, "%s/%s", run, left[i]) >= 0)
                    unlink(f);
                free(f);
                f = NULL;
            }
            rmdir(run);
            free(run);
        }
        rmdir(sv->data_dir);
    }
    free(sv->data_dir);
    free(sv->testsvc);
    free(sv->backend);
    free(sv->router);
    free(sv);
}

/* One attempt of th_sv_start on fresh ports; *retry is set when a port was
 * taken meanwhile. */
static th_sv_t *s_sv_start_once(const char *data_dir, const char *tmpl, bool *retry)
{
    th_sv_t *sv = calloc(1, sizeof *sv);
    TH_LINK(s_svs, sv);
    sv->data_dir = data_dir ? strdup(data_dir) : th_tmp_path("svdata", "");
    char *tsvc = th_bin_path("vapora-testsvc"), real[PATH_MAX];
    sv->testsvc = strdup(realpath(tsvc, real) ? real : tsvc);
    free(tsvc);
    char *be = th_bin_path("vapora-backend");
    sv->backend = strdup(realpath(be, real) ? real : be);
    free(be);
    char *rt = th_bin_path("vapora-llm-router");
    sv->router = strdup(realpath(rt, real) ? real : rt);
    free(rt);
    char *bin = th_bin_path("vapora-supervisor");
    char *text = NULL, *config = NULL;
    if (s_sv_pick_ports(sv) == 0 && (text = s_sv_expand(sv, tmpl)))
        config = th_write_temp("supervisor", ".conf", text);
    free(text);
    if (config)
        sv->proc = th_spawn(bin, config);
    free(bin);
    int rc = sv->proc ? s_sv_wait_admin(sv, TH_READY_MS) : -EIO;
    if (rc == 0)
        return sv;
    char *log = th_log(sv->proc);
    *retry = rc == -ECHILD && strstr(log, "Address already in use");
    fprintf(stderr, "harness: the supervisor did not start (%s); log:\n%s\n",
            strerror(-rc), log);
    free(log);
    th_proc_free(&sv->proc);
    s_sv_release(sv);
    return NULL;
}

th_sv_t *th_sv_start_in(const char *data_dir, const char *tmpl)
{
    th_sv_t *sv = NULL;
    bool retry = true;
    for (int i = 0; !sv && retry && i < TH_START_TRIES; i++) {
        retry = false;
        sv = s_sv_start_once(data_dir, tmpl, &retry);
    }
    return sv;
}

th_sv_t *th_sv_start(const char *tmpl)
{
    return th_sv_start_in(NULL, tmpl);
}

int th_sv_write_config(th_sv_t *sv, const char *tmpl)
{
    char *text = s_sv_expand(sv, tmpl);
    int rc = s_replace_file(sv->proc->config, text);
    free(text);
    return rc;
}

/* Remembers every worker and program pid of a /status document. */
static void s_sv_track(json_t *st)
{
    size_t i, j;
    json_t *s, *w;
    json_array_foreach(json_object_get(st, "services"), i, s)
        json_array_foreach(json_object_get(s, "workers"), j, w)
            th_track_pid((pid_t)json_integer_value(json_object_get(w, "pid")));
    json_array_foreach(json_object_get(st, "programs"), i, s)
        th_track_pid((pid_t)json_integer_value(json_object_get(s, "pid")));
}

json_t *th_sv_status(th_sv_t *sv)
{
    th_resp_t *r = NULL;
    if (th_request(sv->admin_port, "GET", "/status", NULL, NULL, &r) < 0)
        return NULL;
    json_t *st = r->status == 200 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    th_resp_free(&r);
    if (st)
        s_sv_track(st);
    return st;
}

json_t *th_sv_find(json_t *status, const char *kind, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(status, kind), i, s)
    {
        const char *n = json_string_value(json_object_get(s, "name"));
        if (n && strcmp(n, name) == 0)
            return s;
    }
    return NULL;
}

unsigned th_sv_count(json_t *service, const char *state)
{
    unsigned n = 0;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(service, "workers"), i, w)
    {
        const char *s = json_string_value(json_object_get(w, "state"));
        n += !state || (s && strcmp(s, state) == 0);
    }
    return n;
}

bool th_sv_wait_settled(th_sv_t *sv, const char *service, unsigned n, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        json_t *st = th_sv_status(sv);
        json_t *s = th_sv_find(st, "services", service);
        bool done = s && th_sv_count(s, NULL) == n && th_sv_count(s, "running") == n &&
                    json_integer_value(json_object_get(s, "desired")) == (json_int_t)n;
        json_decref(st);
        if (done)
            return true;
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(20);
    }
}

void th_sv_free(th_sv_t **svp)
{
    th_sv_t *sv = svp ? *svp : NULL;
    if (!sv)
        return;
    *svp = NULL;
    if (th_running(sv->proc)) {
        /* A worker a test stopped must run to hear its drain. */
        for (size_t i = 0; i < s_ntracked; i++)
            if (th_pid_remains(s_tracked[i].pid))
                kill(s_tracked[i].pid, SIGCONT);
        /* SIGTERM drains; a second SIGINT makes the supervisor SIGKILL and
         * reap everything it runs; SIGKILL (th_proc_free) is the last resort,
         * after which s_kill_tracked() ends the orphans. */
        th_signal(sv->proc, SIGTERM);
        for (long long end = th_now_ms() + 3000;
             th_running(sv->proc) && th_now_ms() < end;)
            th_sleep_ms(10);
        th_signal(sv->proc, SIGINT);
        for (long long end = th_now_ms() + 3000;
             th_running(sv->proc) && th_now_ms() < end;)
            th_sleep_ms(10);
    }
    th_proc_free(&sv->proc);
    s_sv_release(sv);
}

/* ---- per-test cleanup ---- */

void th_cleanup(void)
{
    while (s_loads) {
        th_load_t *l = s_loads;
        th_load_stop(&l, 0, NULL);
    }
    while (s_svs) {
        th_sv_t *sv = s_svs;
        th_sv_free(&sv);
    }
    while (s_resps) {
        th_resp_t *r = s_resps;
        th_resp_free(&r);
    }
    while (s_conns) {
        th_conn_t *c = s_conns;
        th_conn_close(&c);
    }
    while (s_procs) {
        th_proc_t *p = s_procs;
        th_proc_free(&p);
    }
    s_kill_tracked();
}

/* ---- the fake LLM provider ---- */

th_proc_t *th_fake_llm_start(void)
{
    const char *dir = getenv("VAPORA_FAKES_DIR");
    char *script = NULL, parent[32];
    if (asprintf(&script, "%s/fake_llm.py", dir && *dir ? dir : "tests/fakes") < 0)
        return NULL;
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    const char *argv[] = {"python3", script, "--port", "0", "--parent-pid", parent,
                          "--ttl", "300", NULL};
    th_proc_t *p = th_spawn_argv(argv, NULL);
    free(script);
    if (!p)
        return NULL;
    long long end = th_now_ms() + 10000;
    while (th_now_ms() < end && th_running(p)) {
        char *log = th_log(p);
        char *at = strstr(log, "ready ");
        if (at && strchr(at, '\n'))
            p->port = atoi(at + 6);
        free(log);
        if (p->port > 0)
            return p;
        th_sleep_ms(20);
    }
    fprintf(stderr, "the fake LLM provider did not start\n");
    th_proc_free(&p);
    return NULL;
}

int th_fake_llm_config(const th_proc_t *fake, const char *scope, const char *json)
{
    char path[160];
    snprintf(path, sizeof path, "%s%s/_fake/config", scope ? "/s/" : "", scope ? scope : "");
    char *body = NULL;
    int st = th_call(fake->port, "POST", path, "Content-Type: application/json\r\n", json,
                     &body, TH_IO_MS);
    free(body);
    return st == 200 ? 0 : -EPROTO;
}

json_t *th_fake_llm_stats(const th_proc_t *fake, const char *scope)
{
    char path[160];
    snprintf(path, sizeof path, "%s%s/_fake/stats", scope ? "/s/" : "", scope ? scope : "");
    char *body = NULL;
    int st = th_call(fake->port, "GET", path, NULL, NULL, &body, TH_IO_MS);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}
