/* vaporactl.c - drives vapora-supervisor through its admin API.
 *
 *   vaporactl [-c CONFIG] [-a ADDR] [-t TOKEN] [--json]
 *             status | scale SERVICE N | restart SERVICE | reload | stop
 *
 * Prints a readable table by default, the API's JSON with --json; exits 0
 * on success, 1 on any error (unreachable supervisor, HTTP error, no
 * token), 2 on bad usage.
 *
 * Where it finds the supervisor, first match wins (docs/supervisor.md):
 * the address: -a, $VAPORA_ADMIN_ADDR, [supervisor] admin of the config
 * (a wildcard host becomes loopback), 127.0.0.1:8000; the token: -t,
 * $VAPORA_ADMIN_TOKEN, [supervisor] admin_token of the config, the file
 * admin-token in the config's data_dir (else $VAPORA_DATA_DIR, else
 * "data"). The config is -c CONFIG, else etc/vapora.conf when there is
 * one, as the supervisor's own default: `make run` then needs no flag. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cfg.h"
#include "file.h"
#include "net.h"
#include "parse.h"
#include "sbuf.h"

/* What a request needs: where, and the credential. */
typedef struct target {
    char *addr;
    char *token; /* NULL: none found (why in token_err) */
    char token_err[512];
} target_t;

static size_t s_collect(char *data, size_t size, size_t n, void *ud)
{
    sbuf_append(ud, data, size * n);
    return size * n;
}

/* Performs one request; returns the HTTP status or -1 (message printed). */
static long s_call(const target_t *t, const char *method, const char *path,
                   const char *body, sbuf_t *out)
{
    CURL *h = curl_easy_init();
    const char *addr = t->addr;
    char *url = xasprintf("http://%s%s", addr, path);
    char *auth = xasprintf("Authorization: Bearer %s", t->token);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, auth);
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
    free(auth);
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
        "usage: vaporactl [-c CONFIG] [-a ADDR] [-t TOKEN] [--json] COMMAND\n"
        "commands:\n"
        "  status                 services, workers and programs\n"
        "  scale SERVICE N        run N workers of SERVICE\n"
        "  restart SERVICE        rolling restart (one worker at a time)\n"
        "  log-level SERVICE L    workers of SERVICE log at L (debug|info|warn|error)\n"
        "  reload                 re-read the configuration\n"
        "  stop                   drain everything and stop the supervisor\n"
        "options:\n"
        "  -c, --config FILE      the supervisor's configuration, for its admin\n"
        "                         address and token (default etc/vapora.conf,\n"
        "                         when there is one)\n"
        "  -a, --addr HOST:PORT   admin API (default $VAPORA_ADMIN_ADDR, the\n"
        "                         config's [supervisor] admin, 127.0.0.1:8000)\n"
        "  -t, --token TOKEN      admin API token (default $VAPORA_ADMIN_TOKEN,\n"
        "                         else DATA_DIR/admin-token of the config)\n"
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

/* ---- finding the supervisor: address and token ---- */

/* An environment variable, or NULL when unset or empty. */
static const char *s_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The admin address to connect to for a configured one: a wildcard host
 * (all addresses) is reached on loopback. */
static char *s_connect_addr(const char *admin)
{
    char host[256];
    int port;
    if (net_split_addr(admin, host, sizeof host, &port) < 0)
        return xstrdup(admin);
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        return xasprintf("127.0.0.1:%d", port);
    if (strcmp(host, "::") == 0)
        return xasprintf("[::1]:%d", port);
    return xstrdup(admin);
}

/* The token in DATA_DIR/admin-token, trailing blanks dropped; NULL with the
 * reason in t->token_err. */
static char *s_token_file(const cfg_t *cfg, target_t *t)
{
    const char *dir = cfg ? cfg_get(cfg, "supervisor", "data_dir") : NULL;
    if (!dir || !*dir)
        dir = s_env("VAPORA_DATA_DIR") ? s_env("VAPORA_DATA_DIR") : "data";
    char *path = xasprintf("%s/admin-token", dir);
    char *tok = file_read_all(path, NULL);
    if (!tok)
        snprintf(t->token_err, sizeof t->token_err, "cannot read %s: %s", path,
                 strerror(errno));
    size_t n = tok ? strlen(tok) : 0;
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    free(path);
    return tok;
}

/* Fills t from the options, the environment and the config (config: -c,
 * or NULL for etc/vapora.conf when it exists). Returns 0, or 1 when the
 * config given cannot be read. */
static int s_target(target_t *t, const char *addr, const char *token,
                    const char *config)
{
    char err[512];
    cfg_t *cfg = NULL;
    if (!config && access("etc/vapora.conf", F_OK) == 0)
        config = "etc/vapora.conf";
    if (config && !(cfg = cfg_load(config, err, sizeof err))) {
        fprintf(stderr, "vaporactl: %s\n", err);
        return 1;
    }
    const char *admin = cfg ? cfg_get(cfg, "supervisor", "admin") : NULL;
    if (!addr)
        addr = s_env("VAPORA_ADMIN_ADDR");
    t->addr = addr ? xstrdup(addr)
                   : s_connect_addr(admin && *admin ? admin : "127.0.0.1:8000");
    const char *own = cfg ? cfg_get(cfg, "supervisor", "admin_token") : NULL;
    if (!token)
        token = s_env("VAPORA_ADMIN_TOKEN");
    if (!token && own && *own)
        token = own;
    t->token = token ? xstrdup(token) : s_token_file(cfg, t);
    cfg_destroy(&cfg);
    return 0;
}

/* Sends cmd to t and prints the outcome; returns the exit status. */
static int s_run(const cmd_t *cmd, const target_t *t, bool json)
{
    if (!t->token) {
        fprintf(stderr,
                "vaporactl: no admin token: %s; give -c CONFIG (the token is in its "
                "data_dir), -t TOKEN or $VAPORA_ADMIN_TOKEN\n",
                t->token_err);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sbuf_t out = {0};
    long status = s_call(t, cmd->method, cmd->path, cmd->body, &out);
    int rc = status < 0 ? 1 : s_report(cmd, status, &out, json);
    sbuf_free(&out);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, 0, 'a'},  {"config", required_argument, 0, 'c'},
        {"token", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *addr = NULL, *token = NULL, *config = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "+a:c:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': addr = optarg; break;
        case 'c': config = optarg; break;
        case 't': token = optarg; break;
        case 'j': json = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    cmd_t cmd;
    if (optind >= argc) {
        s_usage(stderr);
        return 2;
    }
    if (s_parse(argc - optind, argv + optind, &cmd) != 0)
        return 2;
    target_t t = {0};
    int rc = s_target(&t, addr, token, config);
    if (rc == 0)
        rc = s_run(&cmd, &t, json);
    free(t.addr);
    free(t.token);
    free(cmd.path);
    free(cmd.body);
    return rc;
}
