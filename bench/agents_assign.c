/* agents_assign.c - the assign phase of an agents burst, from a client that
 * is not the bound: CONNS keep-alive connections (one request in flight on
 * each, as compare-agents' 16 threads on one requests.Session), driven by
 * poll from one thread, POST /api/v1/tasks/{id}/assign {"role":ROLE} for
 * every id read from IDS_FILE (one a line). Prints the assign phase's
 * seconds and how many answers were not 202; exits 1 on a broken
 * connection.
 *
 *   agents_assign PORT TOKEN IDS_FILE CONNS ROLE */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

typedef struct conn {
    int fd;
    char in[16384];
    size_t len;
    bool busy;
} conn_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static char **s_read_ids(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    char **ids = NULL, line[256];
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        ids = realloc(ids, (size_t)(*n + 1) * sizeof *ids);
        ids[(*n)++] = strdup(line);
    }
    fclose(f);
    return ids;
}

static void s_send(conn_t *c, const char *id, const char *token, const char *body)
{
    char req[2048];
    int len = snprintf(req, sizeof req,
                       "POST /api/v1/tasks/%s/assign HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       id, token, strlen(body), body);
    if (write(c->fd, req, (size_t)len) != len) {
        perror("write");
        exit(1);
    }
    c->busy = true;
}

/* The status of one whole answer at the head of c->in, consumed; 0 when
 * it is not all there yet. */
static int s_answer(conn_t *c)
{
    c->in[c->len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        return 0;
    const char *cl = strcasestr(c->in, "\r\nContent-Length:");
    size_t body = cl && cl < end ? (size_t)atol(cl + 17) : 0;
    size_t whole = (size_t)(end + 4 - c->in) + body;
    if (c->len < whole)
        return 0;
    int status = atoi(c->in + 9);
    memmove(c->in, c->in + whole, c->len - whole);
    c->len -= whole;
    return status ? status : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: agents_assign PORT TOKEN IDS_FILE CONNS ROLE\n");
        return 2;
    }
    int port = atoi(argv[1]), n, nc = atoi(argv[4]);
    char **ids = s_read_ids(argv[3], &n);
    char body[128];
    snprintf(body, sizeof body, "{\"role\":\"%s\"}", argv[5]);
    if (nc < 1 || nc > MAX_CONNS)
        nc = 16;
    static conn_t conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS];
    for (int i = 0; i < nc; i++)
        conns[i].fd = s_connect(port);
    double t0 = s_now();
    int next = 0, answered = 0, bad = 0;
    for (int i = 0; i < nc && next < n; i++)
        s_send(&conns[i], ids[next++], argv[2], body);
    while (answered < n) {
        for (int i = 0; i < nc; i++)
            pfd[i] = (struct pollfd){.fd = conns[i].busy ? conns[i].fd : -1, .events = POLLIN};
        if (poll(pfd, (nfds_t)nc, 30000) <= 0) {
            fprintf(stderr, "agents_assign: no answer for 30 s\n");
            return 1;
        }
        for (int i = 0; i < nc; i++) {
            conn_t *c = &conns[i];
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(c->fd, c->in + c->len, sizeof c->in - 1 - c->len);
            if (got <= 0) {
                fprintf(stderr, "agents_assign: the backend closed a connection\n");
                return 1;
            }
            c->len += (size_t)got;
            int st = s_answer(c);
            if (!st)
                continue;
            answered++;
            bad += st != 202;
            c->busy = false;
            if (next < n)
                s_send(c, ids[next++], argv[2], body);
        }
    }
    printf("%.3f %d\n", s_now() - t0, bad);
    for (int i = 0; i < nc; i++)
        close(conns[i].fd);
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return 0;
}
