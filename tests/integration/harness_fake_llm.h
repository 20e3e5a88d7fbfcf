/* harness_fake_llm.h - the fake LLM provider (tests/fakes/fake_llm.py), a
 * Python HTTP server that plays the four provider kinds (OpenAI, Anthropic,
 * Gemini, Ollama) at once, one scope (/s/NAME) per provider, and is told
 * how to misbehave (fail, stall, cut a stream...) through /_fake/config.
 *
 * Main thread only (th_fake_llm_config and th_fake_llm_stats use th_call
 * and would be thread-safe). */
#ifndef VAPORA_TEST_HARNESS_FAKE_LLM_H
#define VAPORA_TEST_HARNESS_FAKE_LLM_H

#include <jansson.h>

#include "harness_proc.h"

/* Starts the fake on a free port (p->port), stopping by itself when this
 * process ends. $VAPORA_FAKES_DIR overrides tests/fakes. NULL on failure.
 * The process is the harness's, like any th_spawn()ed one. */
th_proc_t *th_fake_llm_start(void);

/* POSTs json to the fake's /_fake/config of scope (NULL: the default
 * scope). Returns 0 or -EPROTO. */
int th_fake_llm_config(const th_proc_t *fake, const char *scope, const char *json);

/* GET /_fake/stats of scope, parsed (caller owns), or NULL. */
json_t *th_fake_llm_stats(const th_proc_t *fake, const char *scope);

#endif
