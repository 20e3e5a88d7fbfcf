/* test_agents_api.c - the agents API: max_concurrent holds across two
 * agents workers under 200 assignments at once; runs ending at once hold
 * few connections to the backend; a run's output streams
 * live (SSE) with what came before replayed; every malformed or
 * unauthorized request gets its 4xx. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agents_fixture.h"

Test(agents_api, max_concurrent_holds_across_two_workers_under_200_assignments,
     .timeout = 300, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .agents_workers = 2,
        .extra = "[agent:solo]\nrole = developer\nmodel = gpt-a\nmax_concurrent = 3\n",
        .fake = "{\"reply\":\"a b c\",\"chunk_delay_ms\":30}"});
    json_t *tasks[200];
    for (int i = 0; i < 200; i++)
        tasks[i] = ag_task(&e, th_fmt("Task %d", i), NULL);
    th_fake_llm_config(e.fake, "oai", "{}");
    th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    for (int i = 0; i < 200; i++)
        ag_assign(&e, tasks[i], "{\"role\":\"developer\"}");
    for (int i = 0; i < 200; i++)
        ag_wait_status(&e, tasks[i], "review", 120000);
    json_t *st = th_keep_json(th_fake_llm_stats(e.fake, "oai"));
    cr_assert_eq(th_int(st, "completed_streams"), 200, "%s", th_dump(st));
    cr_assert_leq(th_int(st, "peak_active_streams"), 3, "max_concurrent 3 exceeded: %s",
                  th_dump(st));
    cr_assert_geq(th_int(st, "peak_active_streams"), 2, "no concurrency at all: %s",
                  th_dump(st));
    json_t *solo = ag_get(&e, "/api/v1/agents/solo", 200);
    cr_assert_eq(th_int(solo, "in_flight"), 0);
}

/* The inodes of the sockets process pid holds (its /proc/pid/fd), at most
 * max; returns how many. */
static size_t s_socket_inodes(pid_t pid, unsigned long *inodes, size_t max)
{
    DIR *d = opendir(th_fmt("/proc/%d/fd", (int)pid));
    cr_assert_not_null(d);
    size_t n = 0;
    char path[320], link[64];
    for (struct dirent *de; n < max && (de = readdir(d));) {
        snprintf(path, sizeof path, "/proc/%d/fd/%s", (int)pid, de->d_name);
        ssize_t len = readlink(path, link, sizeof link - 1);
        link[len > 0 ? len : 0] = 0;
        if (sscanf(link, "socket:[%lu]", &inodes[n]) == 1)
            n++;
    }
    closedir(d);
    return n;
}

/* How many TCP connections process pid holds to 127.0.0.1:port (its
 * sockets, looked up in /proc/pid/net/tcp). */
static int s_conns_to(pid_t pid, int port)
{
    static unsigned long inodes[8192];
    size_t ninodes = s_socket_inodes(pid, inodes, sizeof inodes / sizeof *inodes);
    char want[32], line[512];
    snprintf(want, sizeof want, "0100007F:%04X", port);
    FILE *f = fopen(th_fmt("/proc/%d/net/tcp", (int)pid), "r");
    cr_assert_not_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char rem[32];
        unsigned long inode = 0;
        if (sscanf(line, "%*s %*s %31s %*s %*s %*s %*s %*s %*s %lu", rem, &inode) != 2 ||
            strcmp(rem, want) != 0)
            continue;
        for (size_t i = 0; i < ninodes; i++)
            n += inodes[i] == inode;
    }
    fclose(f);
    return n;
}

/* 120 runs end while the backend is stopped: their results wait, each in
 * a call of its own. They wait in the agents' queue, on a few connections,
 * not on 120 (which would hold the backend's max_connections_per_ip for
 * one address, shared with every other local client, for a while). */
Test(agents_api, runs_ending_at_once_hold_few_connections_to_the_backend, .timeout = 300,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .extra = "[agent:many]\nrole = developer\nmodel = gpt-a\nmax_concurrent = 500\n",
        .fake = "{\"reply\":\"a b c\",\"chunk_delay_ms\":1500}"});
    json_t *tasks[120];
    for (int i = 0; i < 120; i++)
        tasks[i] = ag_task(&e, th_fmt("Task %d", i), NULL);
    for (int i = 0; i < 120; i++)
        ag_assign(&e, tasks[i], "{\"role\":\"developer\"}");
    pid_t backend = ag_pid(&e, "services", "backend"), agents = ag_pid(&e, "services", "agents");
    long long end = th_now_ms() + 60000;
    while (th_int(th_keep_json(th_fake_llm_stats(e.fake, "oai")), "active_streams") < 120) {
        cr_assert_lt(th_now_ms(), end, "the 120 runs did not all start");
        th_sleep_ms(50);
    }
    kill(backend, SIGSTOP);
    int peak = 0;
    for (int i = 0; i < 60; i++) { /* the streams end within ~5 s */
        int n = s_conns_to(agents, e.be);
        peak = n > peak ? n : peak;
        th_sleep_ms(100);
    }
    kill(backend, SIGCONT);
    for (int i = 0; i < 120; i++)
        ag_wait_status(&e, tasks[i], "review", 120000);
    /* 32, and a few more while curl closes some (a 503, an answer with
     * Connection: close) as it opens their successors. */
    cr_assert_leq(peak, 40, "the agents held %d connections to the backend", peak);
    cr_assert_geq(peak, 8, "the results did not wait on the backend (%d connections)", peak);
}

/* Reads an SSE response until its end event; returns its output text. */
static char *s_read_stream(ag_env_t *e, const char *run_id, char **state)
{
    th_conn_t *c = th_must_connect(e->agents);
    cr_assert_eq(th_send_request(c, "GET", th_fmt("/api/v1/runs/%s/stream", run_id),
                                 th_fmt("Authorization: Bearer %s\r\n", e->tok), NULL, 0),
                 0);
    th_resp_t *r = NULL;
    cr_assert_eq(th_read_response(c, &r, 30000), 0, "the stream did not end");
    cr_assert_eq(r->status, 200, "%.300s", r->body);
    cr_assert(strstr(th_resp_header(r, "Content-Type"), "text/event-stream"));
    size_t cache = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        cache += strcasecmp(r->headers[i].name, "Cache-Control") == 0;
    cr_assert_eq(cache, 1, "Cache-Control %zu times", cache);
    json_t *out = json_string("");
    char *p = r->body;
    while ((p = strstr(p, "data: "))) {
        p += 6;
        char *eol = strchr(p, '\n');
        json_t *j = json_loadb(p, eol ? (size_t)(eol - p) : strlen(p), 0, NULL);
        if (json_object_get(j, "text"))
            json_string_set(out, th_fmt("%s%s", json_string_value(out), th_str(j, "text")));
        if (json_object_get(j, "state"))
            *state = th_fmt("%s", th_str(j, "state"));
        json_decref(j);
    }
    char *text = th_fmt("%s", json_string_value(out));
    json_decref(out);
    th_resp_free(&r);
    th_conn_close(&c);
    return text;
}

Test(agents_api, a_runs_output_streams_live_with_the_past_replayed, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){
        .agents_workers = 2,
        .fake = "{\"reply\":\"alpha beta gamma delta epsilon\",\"chunk_delay_ms\":300}"});
    json_t *t = ag_task(&e, "Stream it", NULL);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    json_t *run = ag_wait_run(&e, t, "running", 20000);
    th_sleep_ms(700); /* a few pieces are out before the client comes */
    char *state = NULL;
    /* Either worker may answer: each follows the run, locally or not. */
    char *text = s_read_stream(&e, th_str(run, "id"), &state);
    cr_assert_str_eq(text, "alpha beta gamma delta epsilon");
    cr_assert_str_eq(state, "succeeded");
    /* A finished run streams what it said, then ends. */
    state = NULL;
    text = s_read_stream(&e, th_str(run, "id"), &state);
    cr_assert_str_eq(text, "alpha beta gamma delta epsilon");
    cr_assert_str_eq(state, "succeeded");
}

Test(agents_api, malformed_and_unauthorized_requests_get_their_4xx, .timeout = 120,
     .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){0});
    const char *tok = e.tok;
    int p = e.agents;
    th_be_call(p, "GET", "/api/v1/agents", NULL, NULL, 401);
    th_be_call(p, "GET", "/api/v1/agents", "not-a-token", NULL, 401);
    th_be_call(p, "GET", "/api/v1/agents/nobody", tok, NULL, 404);
    th_be_call(p, "GET", "/api/v1/runs?state=bogus", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs?limit=0", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs?limit=501", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs?cursor=zz", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs?limit=%2B5", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs?cursor=r%201", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs?task_id=%27%3B", tok, NULL, 400);
    th_be_call(p, "GET", "/api/v1/runs/run_nope", tok, NULL, 404);
    th_be_call(p, "GET", "/api/v1/runs/run_nope/stream", tok, NULL, 404);
    th_be_call(p, "POST", "/api/v1/runs/run_nope/cancel", tok, NULL, 404);
    th_be_call(p, "POST", "/api/v1/runs/run_nope/retry", tok, NULL, 404);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok, "{}", 422);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok, "{\"title\":5}", 422);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok,
               "{\"title\":\"x\",\"role\":\"wizard\"}", 422);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok,
               "{\"title\":\"x\",\"colour\":1}", 422);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok, "[1]", 400);
    /* The backend's limits are characters: 500 of "ж" (1,000 bytes) pass,
     * 501 do not. */
    char title[2 * 501 + 1] = {0};
    for (int i = 0; i < 501; i++)
        memcpy(title + 2 * i, "\xd0\xb6", 2);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok,
               th_fmt("{\"title\":\"%.1000s\"}", title), 200);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok,
               th_fmt("{\"title\":\"%s\"}", title), 422);
    th_be_call(p, "POST", "/api/v1/assignments/preview", tok, "{", 400);
    th_be_call(p, "DELETE", "/api/v1/agents", tok, NULL, 405);
    /* A viewer reads but does not act. */
    th_be_call(e.be, "POST", "/api/v1/users", tok,
               "{\"username\":\"watcher\",\"password\":\"watcher-pass\",\"role\":\"viewer\"}",
               201);
    const char *vt = th_be_login(e.be, "watcher", "watcher-pass", 5000);
    th_be_call(p, "GET", "/api/v1/agents", vt, NULL, 200);
    th_be_call(p, "POST", "/api/v1/runs/run_nope/cancel", vt, NULL, 403);
    /* Lists page with an opaque cursor. */
    json_t *a = ag_get(&e, "/api/v1/agents", 200);
    cr_assert_eq(json_array_size(json_object_get(a, "items")), 4, "%s", th_dump(a));
    json_t *dev = th_find(json_object_get(a, "items"), "name", "dev-a");
    cr_assert_str_eq(th_str(dev, "status"), "ready", "%s", th_dump(dev));
    cr_assert_eq(th_int(dev, "max_concurrent"), 2);
}

Test(agents_api, metrics_count_runs_and_the_queue, .timeout = 120, .fini = ag_fini)
{
    ag_env_t e = ag_start(&(ag_opts_t){0});
    json_t *t = ag_task(&e, "Count me", NULL);
    ag_assign(&e, t, "{\"role\":\"developer\"}");
    ag_wait_status(&e, t, "review", 30000);
    ag_wait_run(&e, t, "succeeded", 5000);
    /* One worker: its /metrics has seen the run. */
    th_resp_t *r = th_must_request(e.agents, "GET", "/metrics", NULL, NULL);
    const char *names[] = {"vapora_agents_runs_total{role=\"developer\",state=\"succeeded\"}",
                           "vapora_agents_run_duration_seconds_count{role=\"developer\"}",
                           "vapora_agents_first_byte_seconds_count{role=\"developer\"}",
                           "vapora_agents_runs_in_flight{agent=\"dev-a\"}",
                           "vapora_agents_runs_parked", "vapora_agents_redeliveries_total",
                           "vapora_agents_dead_letters_total", "vapora_agents_queue_pending"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert(strstr(r->body, names[i]), "no %s in /metrics", names[i]);
    const char *const sel[] = {"role=\"developer\"", "state=\"succeeded\"", NULL};
    cr_assert_eq(th_metric(r->body, "vapora_agents_runs_total", sel), 1);
    th_resp_free(&r);
}
