/* test_router_streams.c - the LLM router's streams: no fallback once a
 * stream's first byte reached the caller (the stream ends with an error
 * event); a caller that leaves, mid-stream, in a quiet stream or before a
 * whole answer, aborts the upstream call; a stream that ends before its own
 * end is not an answer; a silent stream times out by its silence. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

/* A stream is bounded by its silences: oai (timeout 2 s) opens its stream,
 * then says nothing for 3 s. After 2 s of silence, with nothing sent to the
 * caller yet, the next provider answers instead of the caller hanging. */
Test(router_streams, a_silent_stream_times_out_by_its_silence, .timeout = 60,
     .fini = th_cleanup)
{
    th_proc_t *fake = llm_fake();
    llm_fake_set(fake, "oai", "{\"chunk_delay_ms\":3000}");
    th_sv_t *sv = llm_start(fake, &(llm_opts_t){0});
    char *body = llm_body(false, "gpt-a", true, 0);
    long long t0 = th_now_ms();
    llm_resp_t r = llm_call(sv, LLM_OAI, NULL, body, 200);
    long long took = th_now_ms() - t0;
    s_assert_claude_answered(&r);
    cr_assert(took >= 1500 && took < 2900, "the silence lasted %lld ms", took);
    cr_assert_eq(llm_fake_num(fake, "oai", "aborted_streams"), 1);
    llm_resp_clear(&r);
    free(body);
}
