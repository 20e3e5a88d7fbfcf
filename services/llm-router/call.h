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

/* Runs the call for req, whose body is canon, a canonical request (stolen)
 * already validated: plans it from the request's headers (404/400 for an
 * unknown model or provider), admits it, asks the providers and replies. */
void call_start(router_t *rt, http_req_t *req, call_format_t format, json_t *canon);

/* Aborts every live call, counting what each cost so far (teardown). */
void call_abort_all(router_t *rt);

#endif
