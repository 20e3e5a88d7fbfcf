/* harness_assert.h - the criterion side of the harness: calls that fail
 * the test (with what was expected and what came, the body or the log)
 * instead of returning an error, and checks on what the programs under test
 * answer: a JSON body, the project's error shape, a worker serving, a log
 * line at its level, a supervised service settled.
 *
 * th_must_X() is X that asserts it worked; th_assert_X() checks X. What
 * they return that a test does not free is kept until th_cleanup()
 * (harness_keep.h). Main thread only. */
#ifndef VAPORA_TEST_HARNESS_ASSERT_H
#define VAPORA_TEST_HARNESS_ASSERT_H

#include <jansson.h>

#include "harness_http.h"
#include "harness_proc.h"
#include "harness_sv.h"

/* th_start(); asserts the worker started (its log is then on stderr). */
th_proc_t *th_must_start(const char *bin, const char *section, const char *extra);

/* th_sv_start(); asserts the supervisor started. */
th_sv_t *th_must_sv_start(const char *tmpl);

/* th_connect() to 127.0.0.1:port within TH_IO_MS; asserts it connected.
 * The connection is the caller's (th_conn_close) like any th_conn_t. */
th_conn_t *th_must_connect(int port);

/* Sends one request on c and reads the response; asserts it arrived. The
 * response is the caller's (th_resp_free) like any th_resp_t. */
th_resp_t *th_must_exchange(th_conn_t *c, const char *method, const char *path,
                            const char *headers, const char *body);

/* th_request() on 127.0.0.1:port; asserts a whole response arrived. */
th_resp_t *th_must_request(int port, const char *method, const char *path,
                           const char *headers, const char *body);

/* The body of r parsed as JSON (kept); asserts it is JSON. */
json_t *th_must_json(const th_resp_t *r);

/* Asserts that the Content-Type of r starts with want. */
void th_assert_type(const th_resp_t *r, const char *want);

/* Asserts r is exactly {"error":{"code":code,"message":"<sentence>"}} with
 * status and a JSON Content-Type (what, e.g. "POST /x", names the request
 * in the failure; NULL: "the response"). Returns the message (kept). */
const char *th_assert_error(const th_resp_t *r, int status, const char *code,
                            const char *what);

/* Sends len raw bytes of a request on a new connection to 127.0.0.1:port;
 * asserts that an error (status, code; see th_assert_error) is the answer
 * within 3 s, whatever the request still owes, and that the connection is
 * then closed with nothing more sent (what names the case). */
void th_assert_answered_and_closed(int port, const char *req, size_t len, int status,
                                   const char *code, const char *what);

/* Asserts that 127.0.0.1:port answers GET /health with a 200 saying
 * "healthy", on a new connection. */
void th_assert_serving(int port);

/* Asserts that a line of p's log contains needle and is at level (e.g.
 * "warn": the line has "level=warn "). */
void th_assert_log(const th_proc_t *p, const char *needle, const char *level);

/* Asserts that service settles on n running workers within timeout_ms;
 * on failure shows the last /status of the service and the log. */
void th_assert_settled(th_sv_t *sv, const char *service, unsigned n, int timeout_ms);

/* Asserts that no worker of service has restarted (workers starting
 * together on fresh data must all come up the first time). */
void th_assert_first_start(th_sv_t *sv, const char *service);

#endif
