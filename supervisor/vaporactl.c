/* vaporactl.c - drives vapora-supervisor through its admin API.
 *
 *   vaporactl [-a ADDR] [--json] status | scale SERVICE N | restart SERVICE
 *                                | reload | stop
 *
 * Prints a readable table by default, the API's JSON with --json; exits 0
 * on success, 1 on any error (unreachable supervisor, HTTP error), 2 on bad
 * usage. ADDR defaults to $VAPORA_ADMIN_ADDR, else 127.0.0.1:8000. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "sbuf.h"
#include "parse.h"

static size_t s_collect(char *data, size_t size, size_t n, void *ud)
{
    sbuf_append(ud, data, size * n);
    return size * n;
}

/* Performs one request; returns the HTTP status or -1 (message printed). */
static long s_call(const char *addr, const char *method, const char *path,
                   const char *body, sbuf_t *out)
{
    CURL *h = curl_easy_init();
    char *url = xasprintf("http://%s%s", addr, path);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc != CURLE_OK)
        fprintf(stderr, "vaporactl: cannot reach the supervisor at %s: %s\n", addr,
                curl_easy_strerror(rc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(url);
    return status;
}

static const char *s_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void s_print_workers(json_t *svc)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(svc, "workers"), i, w)
    {
        printf("%-12s %-6lld %-7lld %-9s %-8lld %-10lld %-9lld %-6.1f %-8.1f %-8.2f "
               "%-6lld %s\n",
               s_str(svc, "name"), json_integer_value(json_object_get(w, "id")),
               json_integer_value(json_object_get(w, "pid")), s_str(w, "state"),
               json_integer_value(json_object_get(w, "restarts")),
               json_integer_value(json_object_get(w, "requests")),
               json_integer_value(json_object_get(w, "in_flight")),
               json_number_value(json_object_get(w, "cpu_percent")),
               (double)json_integer_value(json_object_get(w, "rss_bytes")) / 1048576.0,
               json_number_value(json_object_get(w, "loop_lag_ms")),
               json_integer_value(json_object_get(w, "pool_queue")),
               s_str(w, "last_exit"));
    }
}

static const char *const s_worker_header =
    "SERVICE      WORKER PID     STATE     RESTARTS REQUESTS   IN-FLIGHT CPU%   "
    "RSS(MB)  LAG(ms)  QUEUE  LAST EXIT\n";

static void s_print_status(json_t *st)
{
    size_t i;
    json_t *s;
    printf("%-12s %-22s %s\n", "SERVICE", "LISTEN", "DESIRED");
    json_array_foreach(json_object_get(st, "services"), i, s)
        printf("%-12s %-22s %lld\n", s_str(s, "name"), s_str(s, "listen"),
               json_integer_value(json_object_get(s, "desired")));
    printf("\n%s", s_worker_header);
    json_array_foreach(json_object_get(st, "services"), i, s) s_print_workers(s);
    json_t *progs = json_object_get(st, "programs");
    if (json_array_size(progs) > 0) {
        printf("\n%-12s %-7s %-9s %-8s %s\n", "PROGRAM", "PID", "STATE", "RESTARTS",
               "LAST EXIT");
        json_array_foreach(progs, i, s) printf(
            "%-12s %-7lld %-9s %-8lld %s\n", s_str(s, "name"),
            json_integer_value(json_object_get(s, "pid")), s_str(s, "state"),
            json_integer_value(json_object_get(s, "restarts")), s_str(s, "last_exit"));
    }
}

static void s_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vaporactl [-a ADDR] [--json] COMMAND\n"
        "commands:\n"
        "  status                 services, workers and programs\n"
        "  scale SERVICE N        run N workers of SERVICE\n"
        "  restart SERVICE        rolling restart (one worker at a time)\n"
        "  log-level SERVICE L    workers of SERVICE log at L (debug|info|warn|error)\n"
        "  reload                 re-read the configuration\n"
        "  stop                   drain everything and stop the supervisor\n"
        "options:\n"
        "  -a, --addr HOST:PORT   admin API (default $VAPORA_ADMIN_ADDR or "
        "127.0.0.1:8000)\n"
        "  -j, --json             print the API's JSON\n");
}

typedef struct cmd {
    const char *method;
    char *path;
    char *body;
    const char *done; /* message on success, printf with %s = the argument */
    const char *arg;
} cmd_t;

/* "/services/NAME/what" with NAME percent-encoded. */
static char *s_service_path(const char *name, const char *what)
{
    char *enc = curl_easy_escape(NULL, name, 0);
    char *p = xasprintf("/services/%s/%s", enc ? enc : "", what);
    curl_free(enc);
    return p;
}

/* Maps the command line to a request; returns 0 or 2 on bad usage. */
static int s_parse(int argc, char **argv, cmd_t *c)
{
    const char *v = argv[0];
    if (strcmp(v, "status") == 0 && argc == 1) {
        *c = (cmd_t){"GET", xstrdup("/status"), NULL, NULL, NULL};
    } else if (strcmp(v, "scale") == 0 && argc == 3) {
        long n;
        if (parse_long(argv[2], 0, 256, &n) < 0) {
            fprintf(stderr, "vaporactl: N must be a whole number from 0 to 256\n");
            return 2;
        }
        *c = (cmd_t){"POST", s_service_path(argv[1], "scale"),
                     xasprintf("{\"workers\":%ld}", n), NULL, argv[1]};
    } else if (strcmp(v, "restart") == 0 && argc == 2) {
        *c = (cmd_t){"POST", s_service_path(argv[1], "restart"), NULL,
                     "rolling restart of %s started", argv[1]};
    } else if (strcmp(v, "log-level") == 0 && argc == 3) {
        json_t *body = json_pack("{s:s}", "level", argv[2]);
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!text) {
            fprintf(stderr, "vaporactl: LEVEL must be debug, info, warn or error\n");
            return 2;
        }
        *c = (cmd_t){"POST", s_service_path(argv[1], "log-level"), text,
                     "log level of %s set", argv[1]};
    } else if (strcmp(v, "reload") == 0 && argc == 1) {
        *c = (cmd_t){"POST", xstrdup("/reload"), NULL, "configuration reloaded%s", ""};
    } else if (strcmp(v, "stop") == 0 && argc == 1) {
        *c = (cmd_t){"POST", xstrdup("/shutdown"), NULL, "supervisor stopping%s", ""};
    } else {
        s_usage(stderr);
        return 2;
    }
    return 0;
}

/* Prints the outcome; returns the exit status. */
static int s_report(const cmd_t *c, long status, const sbuf_t *out, bool json)
{
    json_t *j = json_loads(out->data ? out->data : "", 0, NULL);
    int rc = status >= 200 && status < 300 ? 0 : 1;
    if (rc != 0) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        fprintf(stderr, "vaporactl: %s (HTTP %ld)\n", msg ? msg : "request failed",
                status);
    } else if (json) {
        printf("%s\n", out->data ? out->data : "");
    } else if (strcmp(c->path, "/status") == 0) {
        s_print_status(j);
    } else if (c->done) {
        printf(c->done, c->arg);
        printf("\n");
    } else { /* scale: the service's status */
        printf("%s: %lld worker(s) desired\n\n%s", s_str(j, "name"),
               json_integer_value(json_object_get(j, "desired")), s_worker_header);
        s_print_workers(j);
    }
    json_decref(j);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"addr", required_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *addr = getenv("VAPORA_ADMIN_ADDR");
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "+a:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': addr = optarg; break;
        case 'j': json = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!addr || !*addr)
        addr = "127.0.0.1:8000";
    if (optind >= argc) {
        s_usage(stderr);
        return 2;
    }
    cmd_t cmd;
    if (s_parse(argc - optind, argv + optind, &cmd) != 0)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sbuf_t out = {0};
    long status = s_call(addr, cmd.method, cmd.path, cmd.body, &out);
    int rc = status < 0 ? 1 : s_report(&cmd, status, &out, json);
    sbuf_free(&out);
    free(cmd.path);
    free(cmd.body);
    curl_global_cleanup();
    return rc;
}
