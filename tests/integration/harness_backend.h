/* harness_backend.h - a client of the backend's REST API (docs/backend.md)
 * for the tests that need a token and a few requests around something
 * else (events on NATS, a WebSocket): log in, then send JSON with the
 * token. The backend's own API tests build a richer client on these
 * (backend_fixture.h).
 *
 * These calls fail the test (criterion) when the backend does not answer
 * as expected. What they return is kept until th_cleanup(). Main thread
 * only. */
#ifndef VAPORA_TEST_HARNESS_BACKEND_H
#define VAPORA_TEST_HARNESS_BACKEND_H

#include <jansson.h>

/* The backend's API prefix. */
#define TH_BE_API "/api/v1"

/* POST /api/v1/auth/login as user with pass on 127.0.0.1:port, trying
 * again for up to wait_ms (workers that are still starting may refuse or
 * answer otherwise; 0: one try). Asserts a 200 with a non-empty
 * access_token arrived; returns the whole answer (kept). */
json_t *th_be_login_doc(int port, const char *user, const char *pass, int wait_ms);

/* th_be_login_doc(); returns the access token (kept). */
const char *th_be_login(int port, const char *user, const char *pass, int wait_ms);

/* One request on a new connection to 127.0.0.1:port with a bearer token
 * (NULL: none) and a JSON body (NULL: none); asserts a response with status
 * want; returns its body parsed (kept; asserted to be JSON), or NULL when
 * the body is empty. */
json_t *th_be_call(int port, const char *method, const char *path, const char *token,
                   const char *body, int want);

#endif
