/* llm.h - one completion of an agent through the LLM router: OpenAI Chat
 * Completions, streamed (SSE), on the worker's loop (curl multi; no thread
 * per run). Tokens are handed over as they arrive; the end brings the
 * whole answer, its usage, the provider and model that served it and the
 * cost (the router's X-Vapora-Cost-USD trailer).
 *
 * Loop thread only. */
#ifndef VAPORA_AGENTS_LLM_H
#define VAPORA_AGENTS_LLM_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "curlm.h"

typedef struct llm_call llm_call_t;

/* What to ask. */
typedef struct llm_request {
    const agent_def_t *agent;
    const char *router_key; /* "" or NULL: none */
    const char *task_type;
    const char *user_message;
    long timeout_ms;
} llm_request_t;

/* How it ended. */
typedef struct llm_result {
    bool ok;
    bool retriable;         /* worth another delivery: unreachable, timeout, 5xx, 429 */
    long status;            /* the router's HTTP status; 0: none */
    const char *error_code; /* "budget_exceeded", "upstream_error", "unreachable", ... */
    const char *error;      /* a sentence */
    const char *content;    /* the answer so far (all of it when ok) */
    const char *model, *provider;
    json_t *usage;          /* {"prompt_tokens","completion_tokens",...} or NULL */
    double cost_usd;
    long output_bytes;
} llm_result_t;

typedef void (*llm_token_fn)(const char *text, size_t len, void *ud);
typedef void (*llm_done_fn)(const llm_result_t *r, void *ud);

/* Starts the call; tokens go to on_token, then done() once. NULL when the
 * request cannot be started (done() is then not called). */
llm_call_t *llm_start(curlm_t *m, const agents_config_t *cfg, const llm_request_t *rq,
                      llm_token_fn on_token, llm_done_fn done, void *ud);
/* Stops the call at once: the connection closes, so the router (and its
 * provider) see the client leave; done() is not called. Accepts NULL. */
void llm_cancel(curlm_t *m, llm_call_t **cp);

/* The request body for rq (new reference), for tests. */
json_t *llm_body(const llm_request_t *rq);

#endif
