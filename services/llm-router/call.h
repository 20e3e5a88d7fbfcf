/* call.h - the life of one call (see router.h): planning, admission,
 * attempts with retries and fallback, the reply (whole or streamed, in the
 * caller's format) and settlement. A call owns itself from call_start until
 * its reply is done and its usage recorded. Loop thread only. */
#ifndef VAPORA_ROUTER_CALL_H
#define VAPORA_ROUTER_CALL_H

#include <jansson.h>

#include "http.h"
#include "router.h"
#include "wire.h"

/* The caller's wire format. */
typedef enum call_format {
    CALL_OPENAI = WIRE_OPENAI,
    CALL_ANTHROPIC = WIRE_ANTHROPIC,
} call_format_t;

/* Who pays for a call (routes.c decides, caller.h). */
typedef struct call_who {
    const char *caller;        /* the caller's name (borrowed; lives as long as rt) */
    const char *role;          /* the role charged (copied) */
    const rt_budget_t *budget; /* the budget it spends from (the config's) */
} call_who_t;

/* Runs the call for req, whose body is canon, a canonical request (stolen)
 * already validated, for who: plans it from the request's headers
 * (404/400 for an unknown model or provider, 503 when no provider may be
 * asked), admits it under who's budget, asks the providers and replies. */
void call_start(router_t *rt, http_req_t *req, call_format_t format, json_t *canon,
                const call_who_t *who);

/* Aborts every live call, counting what each cost so far (teardown). */
void call_abort_all(router_t *rt);

/* Frees the finished calls kept for reuse (teardown, after
 * call_abort_all). */
void call_free_spares(router_t *rt);

#endif
