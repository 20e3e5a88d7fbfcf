/* router_fixture.h - what the tests of the LLM router (vapora-llm-router,
 * test_router_*.c) share: the router under the real supervisor, talking to
 * the fake provider (tests/fakes/fake_llm.py, harness_fake_llm.h), which
 * plays all four provider kinds at once, one scope (/s/NAME) per
 * [provider:NAME]; requests in either caller format read raw; streams
 * parsed; what the providers received read back from the fake.
 *
 * DESIGN. Every test starts a fake and a supervisor with two router workers
 * (one where provider health, which is per worker, matters) on a config
 * made by llm_config(). Replies are read raw (llm_send), so that a stream's
 * trailers (X-Vapora-Cost-USD) are kept, and a stream's SSE events are
 * parsed (llm_oai_stream, llm_ant_stream) for the format checks.
 *
 * The calls assert (criterion) what they need. Main thread only. */
#ifndef VAPORA_TEST_ROUTER_FIXTURE_H
#define VAPORA_TEST_ROUTER_FIXTURE_H

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* What the fake answers in every scope (llm_fake()). */
#define LLM_REPLY "The quick brown fox jumps over the lazy dog."
#define LLM_OAI "/v1/chat/completions" /* the OpenAI caller format */
#define LLM_ANT "/v1/messages"         /* the Anthropic caller format */
#define LLM_ROLE_TINY "X-Vapora-Role: tiny\r\n"
/* Whether two amounts of USD are the same. */
#define LLM_CLOSE(a, b) (fabs((a) - (b)) < 1e-6)
/* The event names of a whole Anthropic stream (llm_ant_stream().names). */
#define LLM_ANT_SEQUENCE                                                               \
    "message_start,content_block_start,content_block_delta,content_block_stop,"        \
    "message_delta,message_stop"

/* ---- the router and the fake ---- */

/* What varies between the tests' configs; zero values are the defaults. */
typedef struct llm_opts {
    int workers;           /* 0: 2 */
    const char *chain;     /* NULL: "oai, claude, gem, local" */
    int retries;           /* [routing] retries */
    int cooldown_s;        /* 0: 5 */
    int cooldown_failures; /* 0: 3 */
    const char *router;    /* more [router] lines */
    const char *extra;     /* more sections */
    /* [budget:default]'s limit_usd, which every role without a budget of
     * its own shares; NULL: LLM_DEFAULT_BUDGET; "": no such section. */
    const char *default_budget;
    const char *listen_host; /* the router's listen address; NULL: 127.0.0.1 */
} llm_opts_t;

/* The fixture's shared budget: large enough never to matter. */
#define LLM_DEFAULT_BUDGET "1000000"

/* The supervisor's config template for the fake on fake_port: providers
 * oai (openai: gpt-a, gpt-b), claude (anthropic: claude-x), gem (gemini:
 * gem-x) and local (ollama: llama), each with its key, their prices, the
 * chain, a route for task types architecture and design, and
 * [budget:default] (o->default_budget). The caller frees it. */
char *llm_config(int fake_port, const llm_opts_t *o);

/* Starts the fake with LLM_REPLY as every provider's answer. */
th_proc_t *llm_fake(void);

/* Starts a supervisor on tmpl (in data_dir; NULL: a fresh one) and waits
 * until its router workers run (none restarted) and answer GET /v1/models. */
th_sv_t *llm_start_in(const char *data_dir, const char *tmpl, int workers);

/* llm_start_in() on llm_config(fake->port, o). */
th_sv_t *llm_start(const th_proc_t *fake, const llm_opts_t *o);

/* The pid of the router's only worker (a test that measures a worker runs
 * one), from the supervisor's /status; asserts there is one. */
pid_t llm_worker_pid(th_sv_t *sv);

/* ---- requests, read raw ---- */

/* A whole response: the header lines ("Name: value\r\n" each), the body
 * (de-chunked), the trailer lines, and the body parsed when it is JSON. */
typedef struct llm_resp {
    int status;
    char *head, *body, *trailers;
    json_t *json;
} llm_resp_t;

/* Frees what r holds and zeroes it. */
void llm_resp_clear(llm_resp_t *r);

/* Sends a request with the header lines hdrs on a new connection and reads
 * the whole response within timeout_ms (asserted). */
llm_resp_t llm_send(int port, const char *method, const char *path, const char *hdrs,
                    const char *body, int timeout_ms);

/* POSTs a JSON body to the router (path LLM_OAI or LLM_ANT; hdrs: more
 * header lines) and returns the response, asserting its status. */
llm_resp_t llm_call(th_sv_t *sv, const char *path, const char *hdrs, const char *body,
                    int want);

/* A chat body: OpenAI's format, or Anthropic's when ant. model NULL: none;
 * max_tokens <= 0: none. An OpenAI stream asks for the usage chunk. The
 * caller frees it. */
char *llm_body(bool ant, const char *model, bool stream, int max_tokens);

/* The value of the field name in lines (head or trailers) copied to out,
 * or NULL. */
const char *llm_field(const char *lines, const char *name, char *out, size_t n);

/* Asserts the field name of lines (head or trailers) is want. */
void llm_expect_field(const char *lines, const char *name, const char *want);

/* A gpt-a call (OpenAI format) whose answer, LLM_REPLY, came from
 * provider/model after attempts attempts. */
void llm_expect_fallback(th_sv_t *sv, const char *provider, const char *model,
                         const char *attempts);

/* GET path on the router, parsed (caller decrefs), or NULL unless 200. */
json_t *llm_get(th_sv_t *sv, const char *path);

/* /api/v1/usage?QUERY once the entry key = value has want requests (polled
 * 5 s: workers write every 200 ms); the last answer otherwise (asserted to
 * be there). Caller decrefs; *entry is borrowed from it. */
json_t *llm_usage(th_sv_t *sv, const char *query, const char *key, const char *value,
                  double want, json_t **entry);

/* ---- the fake's side ---- */

/* th_fake_llm_config(); asserts the fake took json for scope. */
void llm_fake_set(const th_proc_t *fake, const char *scope, const char *json);

/* A number in the fake's stats of scope (key may be "by_kind.openai"). */
long llm_fake_num(const th_proc_t *fake, const char *scope, const char *key);

/* Polls llm_fake_num() every 20 ms until it is at least want or timeout_ms
 * passed; returns the last number read. */
long llm_fake_wait(const th_proc_t *fake, const char *scope, const char *key, long want,
                   int timeout_ms);

/* The fake's "last" request of scope (caller decrefs); asserts there is
 * one. */
json_t *llm_fake_last(const th_proc_t *fake, const char *scope);

/* ---- streams ---- */

/* An OpenAI-format stream read: its text, the usage of the usage chunk, an
 * error chunk's error (both owned: json_decref), the finish reason, and
 * whether [DONE] came last. */
typedef struct llm_oai_stream {
    char text[4096];
    json_t *usage, *error;
    bool done_last;
    char finish[32];
} llm_oai_stream_t;

/* Reads an OpenAI-format SSE body, asserting each chunk is well formed. */
llm_oai_stream_t llm_oai_stream(const char *body);

/* An Anthropic-format stream read: its text, its event names in order (a
 * run of content_block_delta as one, pings left out) and message_delta's
 * output_tokens (-1: none). */
typedef struct llm_ant_stream {
    char text[4096];
    char names[512];
    long output_tokens;
} llm_ant_stream_t;

/* Reads an Anthropic-format SSE body, asserting that every data's "type"
 * names its event. */
llm_ant_stream_t llm_ant_stream(const char *body);

#endif
