/* gateway.h - the LLM router's service state and the life of one call.
 *
 * DESIGN. A call is one caller request (/v1/chat/completions or
 * /v1/messages). Its life, all on the loop thread:
 *   1. routes.c parses and validates the body in the caller's format, turns
 *      it into the canonical request (wire.h) and plans the attempts
 *      (router.h) for each budget state;
 *   2. a budgeted role is admitted on the pool (ledger_admit reserves the
 *      worst case, exactly, across workers); others go straight on;
 *   3. call.c runs the attempts on curl's multi interface (curlm.h): a
 *      retriable failure (connect error, timeout, 429, 5xx) is retried on the
 *      same provider with backoff, then the next provider of the plan is
 *      asked; a stream is relayed event by event from the first byte, and
 *      from then on there is no fallback;
 *   4. the outcome is settled (usage.c): the reservation released, the
 *      real cost added, the usage totals and a NATS event recorded, in
 *      batches off the request's path. */
#ifndef VAPORA_GATEWAY_H
#define VAPORA_GATEWAY_H

#include <curl/curl.h>
#include <jansson.h>

#include "curlm.h"
#include "http.h"
#include "ledger.h"
#include "router.h"
#include "worker.h"
#include "sbuf.h"

typedef struct call call_t;

typedef struct gateway {
    worker_t *w;
    loop_t *loop;
    pool_t *pool;
    rt_config_t *cfg;
    curlm_t *curlm;
    ledger_t *ledger;
    /* usage.c: finished calls waiting for the next ledger flush */
    ledger_entry_t *pending;
    size_t npending, cap;
    bool flushing;
    loop_timer_t *flush_timer;
    call_t *calls; /* live calls, for teardown */
    /* call.c: reused easy handles and each provider's fixed headers */
    CURL *idle[64];
    size_t nidle;
    struct curl_slist **headers; /* by provider index, built on first use */
} gateway_t;

/* The caller's wire format. */
typedef enum gw_format { GW_OPENAI = WIRE_OPENAI, GW_ANTHROPIC = WIRE_ANTHROPIC } gw_format_t;

struct call {
    gateway_t *gw;
    http_req_t *req;      /* NULL once the caller is gone */
    http_stream_t *st;    /* streamed reply, once started */
    gw_format_t format;
    json_t *canon;        /* canonical request (owned) */
    bool stream, include_usage;
    char id[48];
    char role[64];
    long prompt_bound;    /* tokens, upper bound */
    long max_tokens;      /* worst-case output */
    /* plan and progress */
    rt_plan_t plans[3];
    rt_plan_t *plan;
    rt_state_t state;
    size_t next;          /* index of the attempt being made in *plan */
    unsigned tries;       /* on the current provider */
    unsigned attempts;    /* in total */
    loop_timer_t *retry_timer;
    loop_timer_t *silence_timer; /* a stream's longest silence (provider timeout) */
    uint64_t last_data_ms;       /* loop_now_ms of the upstream's last bytes */
    /* budget */
    const rt_budget_t *budget;
    int64_t window_start;
    int64_t reservation;
    /* the current upstream transfer */
    CURL *easy;
    char *upbody;         /* the upstream request body curl is sending */
    long status;
    double retry_after;   /* seconds, from the upstream's Retry-After */
    sbuf_t body;          /* a whole (non-stream or error) upstream answer */
    wire_parser_t *parser;
    wire_emitter_t *emitter;
    sbuf_t out;           /* bytes for the caller, per callback */
    bool stream_failed;   /* the upstream stream was malformed or errored */
    char *stream_error;
    char *last_error;     /* of the latest failed attempt, for the caller */
    bool admitting;       /* the admission job is on the pool */
    bool client_gone;     /* the caller closed its connection before the reply */
    CURLcode last_result;
    /* outcome */
    wire_usage_t usage;
    size_t streamed_bytes;
    uint64_t start_ns, attempt_ns;
    call_t *prev, *next_call;
};

/* call.c */
/* Takes a planned call (canon, plans, role... set) and runs it: admission,
 * attempts, reply, settlement. Owns c from here. */
void call_start(call_t *c);
/* Frees a call that never started (validation failed). */
void call_free(call_t *c);
/* Aborts every live call and frees the handles kept for reuse (teardown). */
void call_abort_all(gateway_t *gw);

/* usage.c */
/* Queues the outcome of a call for the ledger and publishes its usage event
 * on NATS. provider/model may be NULL (nothing was called). */
void usage_record(gateway_t *gw, call_t *c, const rt_attempt_t *a, double cost_usd,
                  bool estimated, int http_status);
/* Starts the periodic flush; writes what is pending at teardown. */
void usage_start(gateway_t *gw);
void usage_stop(gateway_t *gw);
/* Runs fn(gw, ud) on the pool after everything recorded so far is written;
 * done(ud, status) follows on the loop thread. */
int usage_after_flush(gateway_t *gw, void (*fn)(gateway_t *gw, void *ud),
                      void (*done)(void *ud, int status), void *ud);

/* routes.c */
void routes_add(gateway_t *gw);

#endif
