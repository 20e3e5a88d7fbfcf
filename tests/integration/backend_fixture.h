/* backend_fixture.h - what the tests of the backend's REST API
 * (test_backend_*.c, written against docs/backend.md) share: starting the
 * real vapora-backend (standalone on a free port, or under the real
 * supervisor) on a fresh data_dir under $VAPORA_TEST_TMP with a known admin
 * password, and a client that logs in and then creates, lists, patches and
 * deletes with the token.
 *
 * DESIGN. Requests go over one keep-alive connection per test (opened again
 * when the server closes it); the tests that need concurrency run their own
 * client threads with th_call(), which shares nothing with the rest of the
 * harness. Ids are compared as the strings the API returns; an "unknown" id
 * is one of the same shape with every letter and digit replaced by 0.
 * Everything the calls return is kept until th_cleanup() (harness_keep.h).
 * Every call asserts (criterion) what it needs; main thread only.
 *
 * Every test has .fini = be_fini (or a suite's own that calls it): the
 * workers and supervisors are stopped, what the test kept is freed and the
 * data directories are removed, even when an assertion failed half way. */
#ifndef VAPORA_TEST_BACKEND_FIXTURE_H
#define VAPORA_TEST_BACKEND_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

#define BE_BIN "vapora-backend"
#define BE_PW "s3cret-Admin-pw" /* the admin password of be_start(NULL) */
#define BE_API TH_BE_API

/* A [service:backend] under the supervisor on @PORT1@ with n workers. */
#define BE_SV(n)                                                                       \
    "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = " n                      \
    "\ncommand = @BACKEND@\n\n[backend]\nadmin_password = " BE_PW "\n"

/* The criterion .fini of the backend's tests: th_cleanup(), then the data
 * directories are removed (unless VAPORA_TEST_KEEP is set). */
void be_fini(void);

/* ---- starting the backend ---- */

/* A fresh, empty data directory (removed by be_fini). */
const char *be_new_dir(void);

/* Starts vapora-backend standalone on data_dir (NULL: a fresh one) with
 * the given [backend] lines (NULL: the admin password BE_PW) and waits
 * until it serves; the requests go to it from now on. */
th_proc_t *be_start_in(const char *data_dir, const char *backend_keys);

/* be_start_in(NULL, backend_keys). */
th_proc_t *be_start(const char *backend_keys);

/* Starts a supervisor with the backend on n workers (tmpl: BE_SV(n)) on
 * data_dir (NULL: a fresh one, where every worker must come up the first
 * time) and waits until they serve; the requests go to it from now on. */
th_sv_t *be_sv_start(const char *data_dir, const char *tmpl, unsigned n);

/* ---- a small disk ---- */

/* A fresh data directory on a tmpfs of its own of `bytes` bytes, mounted
 * in a mount namespace private to this test process (and what it starts
 * from now on), so nothing outlives the test; unmounted by be_fini. NULL,
 * with a warning logged, when it cannot be made (not root, no namespaces):
 * the caller then skips the test. */
const char *be_small_disk(size_t bytes);

/* Fills the disk of dir (a file "filler" in it) until not a byte more
 * fits, then frees `leave` bytes of it; asserts it got there. */
void be_fill_disk(const char *dir, size_t leave);

/* Removes what be_fill_disk wrote. */
void be_free_disk(const char *dir);

/* The port of the backend under test. */
int be_port(void);

/* Closes the keep-alive connection; the next request opens another (to
 * another worker, maybe). */
void be_disconnect(void);

/* ---- requests ---- */

/* Sends one request on the test's keep-alive connection with raw header
 * lines; asserts a whole response arrived. The caller frees it. */
th_resp_t *be_send_raw(const char *method, const char *path, const char *headers,
                       const char *body);

/* The header lines for token (NULL: none), extra lines (NULL: none) and a
 * JSON body when json (kept). */
const char *be_headers(const char *token, const char *extra, bool json);

/* Sends one request with a bearer token (NULL: none) and a JSON body
 * (NULL: none). The caller frees the response. */
th_resp_t *be_send(const char *method, const char *path, const char *token,
                   const char *body);

/* Asserts the status of r is want, with the request and body in the
 * message. */
void be_assert_status(const th_resp_t *r, int want, const char *method,
                      const char *path);

/* One request; asserts status want; returns the parsed body (kept), or
 * NULL when it is empty. */
json_t *be_api(int want, const char *method, const char *path, const char *token,
               const char *body);

/* One request; asserts the error (th_assert_error); returns its message. */
const char *be_api_err(int status, const char *code, const char *method,
                       const char *path, const char *token, const char *body);

/* POST /auth/login on the keep-alive connection; returns the response
 * (caller frees), whatever it is. */
th_resp_t *be_login_resp(const char *user, const char *pass);

/* Logs in (th_be_login_doc); returns the whole answer (kept). */
json_t *be_login_doc(const char *user, const char *pass);

/* Logs in; returns the token (kept). */
const char *be_login(const char *user, const char *pass);

/* ---- resources ---- */

/* The "id" of o as a string (an integer id is printed); asserts it is
 * there. */
const char *be_id(const json_t *o);

/* The "id" of o as JSON text (for blocked_by lists). */
const char *be_idj(const json_t *o);

/* An id of the same shape as id that names nothing. */
const char *be_unknown_id(const char *id);

/* Compares two timestamps of the API (ISO 8601 strings of one format, or
 * numbers): <0, 0, >0. */
int be_ts_cmp(const json_t *a, const json_t *b);

/* Creates a project; returns it. */
json_t *be_project(const char *tok, const char *name);

/* Creates a task in project p with extra JSON members (e.g.
 * "\"priority\":\"high\""; NULL: none); returns it. */
json_t *be_task(const char *tok, const json_t *p, const char *title, const char *extra);

/* "/api/v1/tasks/<id>" of t. */
const char *be_task_path(const json_t *t);

/* PATCH the task with body; asserts 200 and that version grew by one;
 * returns the task. */
json_t *be_patch(const char *tok, const json_t *t, const char *body);

/* Moves t through the given statuses (NULL-terminated); returns it. */
json_t *be_walk(const char *tok, json_t *t, ...);

/* Creates a user; returns it. */
json_t *be_user(const char *tok, const char *name, const char *pass, const char *role);

/* Asserts that seen[] has no duplicate and every one of want[0..n) exactly
 * once. */
void be_assert_each_once(const char **seen, size_t nseen, const char **want, int n);

#endif
