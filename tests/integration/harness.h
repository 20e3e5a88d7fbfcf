/* harness.h - the integration-test harness: what a test includes to start
 * the real programs on loopback and talk to them like a user would, and
 * th_cleanup(), its criterion .fini.
 *
 * The harness is one module per concern; this header includes them all:
 *   harness_base.h      time, free ports, temp files, binary paths
 *   harness_keep.h      strings and JSON kept until the end of the test
 *   harness_proc.h      spawned programs, their logs, pids by /proc
 *   harness_http.h      a raw HTTP/1.1 client
 *   harness_load.h      a concurrent client (threads of GET requests)
 *   harness_sv.h        a vapora-supervisor under test and its /status
 *   harness_ws.h        a minimal WebSocket client
 *   harness_fake_llm.h  the fake LLM provider (tests/fakes/fake_llm.py)
 *   harness_json.h      reading JSON answers
 *   harness_metrics.h   reading Prometheus text
 *   harness_assert.h    criterion checks: JSON bodies, errors, logs, settling
 *   harness_backend.h   the backend's login and JSON calls
 * Suites that share more than that have a fixture of their own
 * (backend_fixture.h, router_fixture.h, supervisor_fixture.h).
 *
 * DESIGN. Every blocking step (connect, send, receive, waiting for a child)
 * has a deadline in milliseconds and fails with -ETIMEDOUT when it passes,
 * so a hung server fails a test instead of hanging it. Processes,
 * connections, responses, loads, supervisors and kept memory are remembered
 * in per-process lists; th_cleanup() kills what still runs, closes what is
 * still open and frees what is still allocated, so a test that fails half
 * way leaks nothing. Criterion runs each test in its own process,
 * single-threaded: nothing here is thread-safe unless its header says so
 * (th_call, th_metric*, the concurrent client's threads). */
#ifndef VAPORA_TEST_HARNESS_H
#define VAPORA_TEST_HARNESS_H

#include "harness_assert.h"
#include "harness_backend.h"
#include "harness_base.h"
#include "harness_fake_llm.h"
#include "harness_http.h"
#include "harness_json.h"
#include "harness_keep.h"
#include "harness_load.h"
#include "harness_metrics.h"
#include "harness_proc.h"
#include "harness_sv.h"
#include "harness_ws.h"

/* Stops every client load and supervisor, kills and reaps every process,
 * closes every connection, frees every response and everything kept that
 * this test process still holds, and SIGKILLs what still runs of the
 * tracked pids. Use as criterion .fini (directly or from a suite's own). */
void th_cleanup(void);

#endif
