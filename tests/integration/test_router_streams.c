/* test_router_streams.c - the LLM router's streams: no fallback once a
 * stream's first byte reached the caller (the stream ends with an error
 * event); a caller that leaves, mid-stream, in a quiet stream or before a
 * whole answer, aborts the upstream call; a stream that ends before its own
 * end is not an answer; a silent stream times out by its silence; the
 * upstream waits for a slow caller (a fast large stream arrives whole,
 * callers that read nothing cost the worker little). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router_fixture.h"

/* ---- no fallback once a stream's first byte reached the caller ---- */

Test(router_streams, a_cut_stream_ends_with_an_error_event_and_no_fallback,
     .timeout = 60, .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    llm_fake_set(fake, "oai", "{\"cut_after\":3}");
    char *body = llm_body(false, "gpt-a", true, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    llm_oai_stream_t s = llm_oai_stream(r.body);
    cr_assert(*s.text && strncmp(LLM_REPLY, s.text, strlen(s.text)) == 0 &&
                  strlen(s.text) < strlen(LLM_REPLY),
              "text %s in:\n%s", s.text, r.body);
    cr_assert(json_is_object(s.error), "no error chunk in:\n%s", r.body);
    cr_assert(s.done_last, "[DONE] is not last:\n%s", r.body);
    json_decref(s.error);
    json_decref(s.usage);
    llm_resp_clear(&r);
    free(body);
    body = llm_body(true, "gpt-a", true, 100);
    r = llm_call(sv, LLM_ANT, NULL, body, 200);
    llm_ant_stream_t a = llm_ant_stream(r.body);
    cr_assert(*a.text && strncmp(LLM_REPLY, a.text, strlen(a.text)) == 0, "text %s",
              a.text);
    cr_assert(strstr(a.names, "content_block_delta,error") &&
                  strcmp(strstr(a.names, ",error"), ",error") == 0,
              "events %s in:\n%s", a.names, r.body);
    llm_resp_clear(&r);
    free(body);
    cr_assert_eq(llm_fake_num(fake, "oai", "cut"), 2);
    cr_assert_eq(llm_fake_num(fake, "claude", "requests"), 0, "the router fell back");
}

/* ---- a caller that goes away mid-stream aborts the upstream ---- */

/* Sends a claude-x call (streamed or not) to claude on a new connection,
 * without reading the answer; returns the connection. */
static th_conn_t *s_send_claude_call(th_sv_t *sv, bool stream)
{
    th_conn_t *c = th_must_connect(sv->ports[0]);
    char *body = llm_body(false, "claude-x", stream, 0);
    cr_assert_eq(th_send_request(c, "POST", LLM_OAI,
                                 TH_JSON_CT "X-Vapora-Provider: claude\r\n", body,
                                 strlen(body)),
                 0);
    free(body);
    return c;
}

/* Streams claude's answer (a piece every delay_ms), reads the first piece,
 * closes the connection, and asserts the upstream stream was aborted
 * within within_ms. */
static void s_leave_stream(int delay_ms, int within_ms)
{
    th_proc_t *fake = llm_fake();
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"chunk_delay_ms\":%d,\"reply\":\"", delay_ms);
    for (int i = 1; i <= 60; i++)
        snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), "word%d ", i);
    strcat(cfg, "end.\"}");
    llm_fake_set(fake, "claude", cfg);
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    th_conn_t *c = s_send_claude_call(sv, true);
    char buf[65536];
    size_t len = 0;
    long long end = th_now_ms() + 5000 + delay_ms;
    while (!memmem(buf, len, "word1", 5) && th_now_ms() < end && len < sizeof buf - 1) {
        struct pollfd pfd = {.fd = th_conn_fd(c), .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = recv(pfd.fd, buf + len, sizeof buf - 1 - len, MSG_DONTWAIT);
            cr_assert(n > 0 || errno == EAGAIN, "the stream ended early");
            len += n > 0 ? (size_t)n : 0;
        }
    }
    cr_assert(memmem(buf, len, "word1", 5), "no first piece: %.*s", (int)len, buf);
    th_conn_close(&c);
    long aborted = llm_fake_wait(fake, "claude", "aborted_streams", 1, within_ms);
    cr_assert_eq(aborted, 1, "the upstream stream was not aborted within %d ms",
                 within_ms);
    cr_assert_eq(llm_fake_num(fake, "claude", "completed_streams"), 0);
    cr_assert_eq(llm_fake_num(fake, "claude", "active_streams"), 0);
}

Test(router_streams, a_caller_disconnecting_aborts_the_upstream, .timeout = 60,
     .fini = th_cleanup)
{
    s_leave_stream(200, 3000);
}

/* Between two pieces the reply waits, out of MHD's sight: the caller
 * leaving is still seen at once, not at the next piece (4 s later). */
Test(router_streams, a_caller_leaving_a_quiet_stream_aborts_the_upstream_at_once,
     .timeout = 60, .fini = th_cleanup)
{
    s_leave_stream(4000, 2000);
}

/* ---- a caller that leaves before its answer ---- */

/* Without a stream, nothing is written to the caller until the answer is
 * there; the router still notices the caller leave and stops the upstream
 * call at once (the provider's timeout is 120 s here). */
Test(router_streams, a_caller_leaving_a_whole_answer_aborts_the_upstream, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "claude", "{\"stall\":true}");
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    th_conn_t *c = s_send_claude_call(sv, false);
    cr_assert_eq(llm_fake_wait(fake, "claude", "stalled", 1, 5000), 1,
                 "the call never reached claude");
    th_conn_close(&c);
    cr_assert_eq(llm_fake_wait(fake, "claude", "stall_released", 1, 3000), 1,
                 "the upstream call outlived its caller");
    /* The router goes on serving, and counted the abandoned call. */
    llm_fake_set(fake, "claude", "{\"stall\":false}");
    char *body = llm_body(false, "claude-x", false, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, "X-Vapora-Provider: claude\r\n", body, 200);
    llm_resp_clear(&r);
    free(body);
}

/* Asserts that claude answered the stream r whole: [DONE], no error. */
static void s_assert_claude_answered(const llm_resp_t *r)
{
    llm_expect_field(r->head, "X-Vapora-Provider", "claude");
    cr_assert(strstr(r->body, "data: [DONE]") && !strstr(r->body, "\"error\""), "%s",
              r->body);
}

/* A stream whose HTTP body ends cleanly but before the stream's own end
 * (no finish, no end event) is cut short, not complete: before any byte
 * reached the caller the next provider answers; after, the caller's stream
 * ends with an error event. */
Test(router_streams, a_stream_ending_before_its_end_is_not_an_answer, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", "{\"end_after\":0}");
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    char *body = llm_body(false, "gpt-a", true, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    s_assert_claude_answered(&r); /* an empty stream is not oai's answer */
    llm_resp_clear(&r);
    llm_fake_set(fake, "oai", "{\"end_after\":3}");
    r = llm_call(sv, LLM_OAI, NULL, body, 200);
    cr_assert(strstr(r.body, "\"error\""), "a cut stream looked complete: %s", r.body);
    cr_assert_null(strstr(r.body, "\"finish_reason\":\"stop\""), "%s", r.body);
    llm_resp_clear(&r);
    free(body);
}

/* oai (timeout 2 s), configured by fake_cfg, opens its stream and then
 * sends no event for 3 s: after 2 s of that, with nothing sent to the
 * caller yet, the next provider answers instead of the caller hanging. */
static void s_assert_silence_ends(const char *fake_cfg)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", fake_cfg);
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    char *body = llm_body(false, "gpt-a", true, 0);
    long long t0 = th_now_ms();
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    long long took = th_now_ms() - t0;
    s_assert_claude_answered(&r);
    cr_assert(took >= 1500 && took < 2900, "the silence (%s) lasted %lld ms", fake_cfg, took);
    cr_assert_eq(llm_fake_num(fake, "oai", "aborted_streams"), 1);
    llm_resp_clear(&r);
    free(body);
}

/* A stream is bounded by its silences: nothing at all for 3 s. */
Test(router_streams, a_silent_stream_times_out_by_its_silence, .timeout = 60,
     .fini = th_cleanup)
{
    s_assert_silence_ends("{\"chunk_delay_ms\":3000}");
}

/* Keep-alive comments are bytes, not events: a provider that sends only
 * them (": keep-alive" every 200 ms) is as silent as one that sends
 * nothing, and holds no stream (nor its reservation) past its timeout. */
Test(router_streams, keep_alive_comments_are_no_sign_of_life, .timeout = 60,
     .fini = th_cleanup)
{
    s_assert_silence_ends("{\"chunk_delay_ms\":3000,\"keepalive_ms\":200}");
}

/* ---- backpressure: the upstream waits for the caller ---- */

#define BIG_STREAM (8u << 20)

/* The text of an OpenAI-format stream body, by its length (the chunks are
 * too many for llm_oai_stream), whether [DONE] came last and whether an
 * error chunk came. */
static size_t s_stream_text_len(const char *body, bool *done, bool *error)
{
    size_t n = 0;
    *done = *error = false;
    for (const char *p = strstr(body, "data: "); p; p = strstr(p, "\ndata: ")) {
        p += *p == '\n' ? 7 : 6;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        *done = len == 6 && memcmp(p, "[DONE]", 6) == 0;
        json_t *ch = *done ? NULL : json_loadb(p, len, 0, NULL);
        *error = *error || json_object_get(ch, "error");
        json_t *d =
            json_object_get(json_array_get(json_object_get(ch, "choices"), 0), "delta");
        n += json_string_length(json_object_get(d, "content"));
        json_decref(ch);
    }
    return n;
}

/* 8 MiB streamed as fast as the fake can: the router takes from the
 * provider no faster than the caller takes from it, and the caller gets
 * every byte (a fast upstream used to outrun the router's sending and be
 * cut at ~4 MiB). */
Test(router_streams, a_fast_large_stream_reaches_a_fast_reader_whole, .timeout = 120,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    char cfg[96];
    snprintf(cfg, sizeof cfg, "{\"reply_bytes\":%u,\"piece_bytes\":4096}", BIG_STREAM);
    llm_fake_set(fake, "oai", cfg);
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.chain = "oai"});
    char *body = llm_body(false, "gpt-a", true, 0);
    llm_resp_t r = llm_send(sv->ports[0], "POST", LLM_OAI,
                            TH_JSON_CT "TE: trailers\r\n", body, 90000);
    free(body);
    cr_assert_eq(r.status, 200);
    bool done, error;
    size_t n = s_stream_text_len(r.body, &done, &error);
    cr_assert(n == BIG_STREAM && done && !error,
              "%zu of %u bytes of text, [DONE] %s, error %s", n, BIG_STREAM,
              done ? "last" : "missing", error ? "yes" : "no");
    llm_resp_clear(&r);
    cr_assert_eq(llm_fake_num(fake, "oai", "completed_streams"), 1);
}

/* A process's memory figure from /proc/PID/status, in KiB ("VmRSS",
 * "VmHWM": the peak). */
static long s_vm_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    cr_assert_geq(v, 0, "no %s for pid %d", field, (int)pid);
    return v;
}

/* A client that asks for a big stream and never reads: its socket's
 * receive buffer is small, so the router's sending stalls at once. */
static int s_idle_reader(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char *body = llm_body(false, "gpt-a", true, 0), req[512];
    int n = snprintf(req, sizeof req,
                     "POST " LLM_OAI " HTTP/1.1\r\nHost: x\r\n" TH_JSON_CT
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    free(body);
    return fd;
}

#define IDLE_READERS 20
#define IDLE_GROWTH_KIB (48 * 1024) /* generous: ~64 KiB each is the design */

/* Twenty callers that read nothing of a fast 16 MiB stream each: the
 * router pauses each upstream transfer once 64 KiB wait for its caller, so
 * the worker's peak memory grows by a few MiB (it used to buffer 4 MiB a
 * caller, 80 MiB and more, and keep it); when they leave, the upstream
 * streams are aborted and the worker goes on serving. */
Test(router_streams, readers_that_take_nothing_do_not_grow_the_worker, .timeout = 120,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){.workers = 1, .chain = "oai"});
    pid_t pid = llm_worker_pid(sv);
    /* A first stream, so that what any stream allocates is counted before. */
    char *small = llm_body(false, "gpt-a", true, 0);
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, small, 200);
    llm_resp_clear(&r);
    llm_fake_set(fake, "oai", "{\"reply_bytes\":16777216,\"piece_bytes\":4096}");
    long hwm0 = s_vm_kib(pid, "VmHWM"), rss0 = s_vm_kib(pid, "VmRSS");
    int fds[IDLE_READERS];
    for (int i = 0; i < IDLE_READERS; i++)
        fds[i] = s_idle_reader(sv->ports[0]);
    long active = llm_fake_wait(fake, "oai", "active_streams", IDLE_READERS, 20000);
    cr_assert_eq(active, IDLE_READERS, "only %ld streams started", active);
    /* Let the provider push as much as it is let (it is fast: seconds). */
    long hwm = 0;
    for (int i = 0; i < 8; i++) {
        th_sleep_ms(500);
        hwm = s_vm_kib(pid, "VmHWM");
    }
    long rss = s_vm_kib(pid, "VmRSS");
    cr_log_info("worker memory: peak %ld -> %ld KiB, now %ld -> %ld KiB", hwm0, hwm,
                rss0, rss);
#ifndef __SANITIZE_ADDRESS__ /* ASan keeps freed memory in quarantine (256 MiB) */
    cr_assert_lt(hwm - hwm0, IDLE_GROWTH_KIB,
                 "the worker's peak grew by %ld KiB for %d readers that read nothing",
                 hwm - hwm0, IDLE_READERS);
#endif
    cr_assert_eq(llm_fake_num(fake, "oai", "completed_streams"), 1);
    for (int i = 0; i < IDLE_READERS; i++)
        close(fds[i]);
    cr_assert_eq(llm_fake_wait(fake, "oai", "aborted_streams", IDLE_READERS, 10000),
                 IDLE_READERS, "the upstream streams outlived their callers");
    llm_fake_set(fake, "oai", "{\"reply_bytes\":null}");
    r = llm_call(sv, LLM_OAI, NULL, small, 200);
    llm_resp_clear(&r);
    free(small);
}
