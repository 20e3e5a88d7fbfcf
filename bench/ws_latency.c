/* ws_latency.c - change-to-WebSocket latency: connects to GET /ws, then
 * N times creates a task with POST (a separate keep-alive connection) and
 * times from sending the POST to receiving the task.created frame. Prints
 * the median, p99 and worst, in ms.
 *
 *   ws_latency PORT_WS PORT_API TOKEN PROJECT_ID N */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static int s_read_full(int fd, void *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        ssize_t n = read(fd, (char *)buf + off, len - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Reads HTTP headers and a Content-Length body. */
static void s_read_http(int fd)
{
    char buf[8192];
    size_t off = 0;
    while (off < sizeof buf - 1) {
        if (s_read_full(fd, buf + off, 1) < 0) {
            fprintf(stderr, "no HTTP answer\n");
            exit(1);
        }
        buf[++off] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t n = cl ? (size_t)atol(cl + 15) : 0;
    char *body = malloc(n + 1);
    if (n && s_read_full(fd, body, n) < 0)
        exit(1);
    free(body);
}

/* Reads one WebSocket frame; returns its opcode; the payload goes to buf. */
static int s_frame(int fd, char *buf, size_t cap)
{
    unsigned char h[2];
    if (s_read_full(fd, h, 2) < 0)
        return -1;
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        unsigned char e[2];
        s_read_full(fd, e, 2);
        n = ((size_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        unsigned char e[8];
        s_read_full(fd, e, 8);
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | e[i];
    }
    if (n >= cap)
        return -1;
    if (s_read_full(fd, buf, n) < 0)
        return -1;
    buf[n] = '\0';
    return h[0] & 0x0f;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: ws_latency PORT_WS PORT_API TOKEN PROJECT_ID N\n");
        return 2;
    }
    int n = atoi(argv[5]);
    int ws = s_connect(atoi(argv[1]));
    char req[4096];
    int len = snprintf(req, sizeof req,
                       "GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       argv[3]);
    if (write(ws, req, (size_t)len) != len)
        return 1;
    s_read_http(ws);
    usleep(300000);
    int api = s_connect(atoi(argv[2]));
    double *lat = calloc((size_t)n, sizeof *lat);
    static char frame[1 << 20];
    for (int i = 0; i < n; i++) {
        char body[128];
        int bl = snprintf(body, sizeof body, "{\"title\":\"latency %d\"}", i);
        len = snprintf(req, sizeof req,
                       "POST /api/v1/projects/%s/tasks HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       argv[4], argv[3], bl, body);
        double t0 = s_now_ms();
        if (write(api, req, (size_t)len) != len)
            return 1;
        s_read_http(api);
        char want[64];
        snprintf(want, sizeof want, "\"title\":\"latency %d\"", i);
        for (;;) {
            int op = s_frame(ws, frame, sizeof frame);
            if (op < 0) {
                fprintf(stderr, "no event for change %d\n", i);
                return 1;
            }
            if (op == 1 && strstr(frame, "\"task.created\"") && strstr(frame, want))
                break;
        }
        lat[i] = s_now_ms() - t0;
        usleep(20000); /* changes spread out, as people make them */
    }
    qsort(lat, (size_t)n, sizeof *lat, s_cmp);
    printf("change -> WebSocket frame over %d changes: median %.1f ms, p99 %.1f ms, "
           "worst %.1f ms\n",
           n, lat[n / 2], lat[(int)(n * 0.99)], lat[n - 1]);
    free(lat);
    close(api);
    close(ws);
    return 0;
}
