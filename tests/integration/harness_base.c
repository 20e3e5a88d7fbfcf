/* harness_base.c - see harness_base.h. */
#define _GNU_SOURCE
#include "harness_base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static unsigned s_tmp_seq;

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

int th__left(long long deadline)
{
    long long left = deadline - th_now_ms();
    return left > 0 ? (int)left : 0;
}

int th__poll(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, th__left(deadline));
        if (n > 0)
            return pfd.revents;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- ports ---- */

/* Test ports come from below the kernel's ephemeral range (32768 up, where
 * every outgoing connection takes its local port): a port taken from that
 * range could be taken again, as a client's local port, by a connection of
 * a test running beside, before the process meant to listen on it binds it
 * (a program started 5 s late did, now and then). */
#define TH_PORT_LOW 20000
#define TH_PORT_SPAN 12000

/* Whether 127.0.0.1:port can be bound now. */
static bool s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int th_free_port(void)
{
    static unsigned seed;
    static pid_t seeded; /* a forked test process draws its own ports */
    if (seeded != getpid()) {
        seeded = getpid();
        seed = (unsigned)seeded * 2654435761u ^ (unsigned)th_now_ms();
    }
    for (int i = 0; i < 1000; i++) {
        int port = TH_PORT_LOW + (int)(rand_r(&seed) % TH_PORT_SPAN);
        if (s_port_free(port))
            return port;
    }
    return -EADDRINUSE;
}

/* ---- files ---- */

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

int th__write_all(int fd, const char *data, size_t len)
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

/* Creates path (0600) with text in it. Returns 0 or -errno. */
static int s_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : th__write_all(fd, text, strlen(text));
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

char *th_write_temp(const char *tag, const char *suffix, const char *text)
{
    char *path = th_tmp_path(tag, suffix);
    if (!path)
        return NULL;
    int rc = s_write_file(path, text);
    if (rc < 0) {
        fprintf(stderr, "harness: writing %s: %s\n", path, strerror(-rc));
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

int th_replace_file(const char *path, const char *text)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.new", path) < 0)
        return -ENOMEM;
    int rc = s_write_file(tmp, text);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
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

bool th_keep_files(void)
{
    const char *v = getenv("VAPORA_TEST_KEEP");
    return v && *v && strcmp(v, "0") != 0;
}
