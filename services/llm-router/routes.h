/* routes.h - the LLM router's HTTP API (see docs/llm-router.md). */
#ifndef VAPORA_ROUTER_ROUTES_H
#define VAPORA_ROUTER_ROUTES_H

#include "router.h"

/* Adds the router's routes to the worker's server, and its error format
 * (the caller's: OpenAI's or Anthropic's). At start-up, on the loop thread. */
void routes_add(router_t *rt);

#endif
