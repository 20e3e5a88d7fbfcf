/* harness.c - see harness.h.
 *
 * DESIGN. The client keeps one receive buffer per connection; a response is
 * parsed out of its front and whatever follows stays for the next one. All
 * sockets are non-blocking and every wait is a poll() bounded by a deadline
 * computed once per call, so a call never takes longer than its timeout. */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
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
 * death with the parent, then exec. Never returns. */
static void s_child_exec(const char *bin, const char *config, int logfd, pid_t parent)
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
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    execl(bin, bin, "-c", config, (char *)NULL);
    dprintf(STDERR_FILENO, "harness: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

th_proc_t *th_spawn(const char *bin, char *config)
{
    th_proc_t *p = calloc(1, sizeof *p);
    const char *base = strrchr(bin, '/');
    p->bin = strdup(bin);
    p->config = config;
    p->log = th_tmp_path(base ? base + 1 : bin, ".log");
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
        s_child_exec(bin, config, logfd, parent);
    close(logfd);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        th_proc_free(&p);
        return NULL;
    }
    p->pid = pid;
    return p;
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

th_conn_t *th_connect(int port, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
    if (rc == -EINPROGRESS)
        rc = s_connect_wait(fd, deadline);
    if (rc < 0) {
        close(fd);
        errno = -rc;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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

int th_send_request(th_conn_t *c, const char *method, const char *path,
                    const char *headers, const void *body, size_t body_len)
{
    char *head = NULL;
    int n = body ? asprintf(&head,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                            "Content-Length: %zu\r\n\r\n",
                            method, path, headers ? headers : "", body_len)
                 : asprintf(&head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                            method, path, headers ? headers : "");
    if (n < 0)
        return -ENOMEM;
    /* One buffer, so head and body leave in as few segments as possible. */
    char *msg = malloc((size_t)n + body_len);
    memcpy(msg, head, (size_t)n);
    if (body_len)
        memcpy(msg + n, body, body_len);
    free(head);
    int rc = th_send_raw(c, msg, (size_t)n + body_len, TH_IO_MS);
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

int th_read_response(th_conn_t *c, th_resp_t **out, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    *out = NULL;
    long end = s_need_delim(c, "\r\n\r\n", deadline);
    if (end < 0)
        return (int)end;
    th_resp_t *r = calloc(1, sizeof *r);
    TH_LINK(s_resps, r);
    c->buf[end] = '\0';
    int rc = s_parse_head(c->buf, r);
    s_consume(c, (size_t)end + 4);
    if (rc == 0)
        rc = s_read_body(c, r, deadline);
    if (rc == 0 && !r->body)
        s_body_append(r, "", 0);
    if (rc < 0) {
        th_resp_free(&r);
        return rc;
    }
    *out = r;
    return 0;
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
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    free(r);
}

/* ---- per-test cleanup ---- */

void th_cleanup(void)
{
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
}
