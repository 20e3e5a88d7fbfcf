/* api.h - what every handler does: check the caller's token and role, run
 * storage work on the pool, answer with its result or its error.
 *
 * DESIGN. A route's pool job is a struct of its own whose first member is
 * an api_job_t named `job`, followed by the request's typed arguments
 * (libuv's uv_work_t): one allocation per request holds the pool's work
 * item, the arguments and the answer, and the pool allocates nothing.
 * Arguments may borrow from the request (its path, query and JSON body):
 * the request outlives the job's work and its `after` hook. The work runs
 * on a pool thread and sets the answer; api.c replies on the loop thread
 * (mapping a VP_E* code to its HTTP status) and frees the job.
 *
 * A job that only writes (j->writer) runs on the store's writer thread
 * instead, inside the group commit's transaction (store.h): it holds no
 * pool thread while it waits for the commit, so the batches grow with the
 * writes in flight, not with pool_threads. Its answer is sent once the
 * batch committed; when the commit fails, the answer is that failure.
 *
 * Every request with a token is checked against the users table: a token
 * carries its user's token version (claim "ver"), which a deletion or a
 * change of role or password ends. This worker remembers, per token, the
 * users counter (store_users_version: every worker's changes move it)
 * under which it last saw the user hold that version; while the counter
 * keeps that value the check costs one atomic load, otherwise the job
 * asks the database on the pool before its work (one indexed read) and
 * tells the cache what it found.
 *
 * Every function here runs on the loop thread. */
#ifndef VAPORA_BACKEND_API_H
#define VAPORA_BACKEND_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "backend.h"
#include "http.h"
#include "pool.h"
#include "store.h"
#include "validate.h"

typedef struct api_job api_job_t;
/* The storage work of a job: a pool thread (the writer when j->writer).
 * Sets rc (and err) or the answer (out or body, status, location). */
typedef void (*api_work_fn)(api_job_t *j);
/* Runs on the loop thread before the reply (e.g. to publish an event or
 * fill a cache). A hook that sets rc to anything but 0 has answered (or
 * will answer) the request itself. */
typedef void (*api_after_fn)(api_job_t *j, http_req_t *req);

struct api_job {
    pool_work_t work; /* the pool's, from api_run until the reply */
    backend_t *b;
    http_req_t *req;
    api_work_fn fn;
    api_after_fn after; /* optional */
    /* fn runs on the store's writer, inside the batch's transaction: it
     * may only call the store (no waiting on anything else, no password
     * hashing). Set by the handler before api_run. */
    bool writer;
    store_write_t write; /* the writer's, from api_run until the reply */
    /* Frees what the route's arguments own (optional). */
    void (*fini)(api_job_t *j);
    auth_claims_t who; /* the caller (api_start) */
    const char *id;    /* the path's {id}, borrowed from the request, or NULL */
    /* The caller's token (borrowed from the request; NULL: no caller) and,
     * unless who.current, the check before fn that its user still holds
     * it: the users counter read first, what the database said. */
    const char *token;
    uint64_t users_tag;
    bool user_checked, revoked;
    /* The answer. */
    int rc; /* 0, or a VP_E* code with err */
    store_err_t err;
    unsigned status; /* of a successful answer: 200 unless fn says otherwise */
    json_t *out;     /* the reply body (owned); NULL (and no body): empty */
    char *body;      /* the reply as JSON text (owned): set by fn, or out
                        serialised on the pool thread or the writer */
    char location[160];
};

/* A zeroed job of `size` bytes (a route's struct starting with its
 * api_job_t) for fn, answering 200 unless fn says otherwise. */
api_job_t *api_job(backend_t *b, size_t size, api_work_fn fn);
/* Checks the caller's token and role (*who) and the path's {id} (*id,
 * borrowed; NULL when the route has none); false after replying 401, 403
 * or 404. */
bool api_check(http_req_t *req, backend_t *b, int min_rank, auth_claims_t *who,
               const char **id);
/* api_job for a caller api_check accepted (claims in j->who, the path's
 * {id} in j->id): unless who->current, the job first checks on the pool
 * that the caller's user still holds the token (answering 401 when not). */
api_job_t *api_job_as(http_req_t *req, backend_t *b, size_t size, api_work_fn fn,
                      const auth_claims_t *who, const char *id);
/* api_check, then api_job_as; NULL after replying 401, 403 or 404. */
api_job_t *api_start(http_req_t *req, backend_t *b, size_t size, api_work_fn fn,
                     int min_rank);
/* A route's job struct: `type` starts with `api_job_t job`. */
#define API_JOB_CHECK(type) ((void)sizeof(char[offsetof(type, job) == 0 ? 1 : -1]))
#define API_JOB(b, type, fn) (API_JOB_CHECK(type), (type *)api_job((b), sizeof(type), (fn)))
#define API_JOB_AS(req, b, type, fn, who, id)                                          \
    (API_JOB_CHECK(type),                                                              \
     (type *)api_job_as((req), (b), sizeof(type), (fn), (who), (id)))
#define API_START(req, b, type, fn, min_rank)                                          \
    (API_JOB_CHECK(type), (type *)api_start((req), (b), sizeof(type), (fn), (min_rank)))

/* api_start and api_run for a job that needs nothing but the caller and
 * the path's {id} (a plain api_job_t). */
void api_serve(http_req_t *req, backend_t *b, api_work_fn fn, int min_rank);
/* The same for a job that only writes (j->writer). */
void api_serve_write(http_req_t *req, backend_t *b, api_work_fn fn, int min_rank);

/* Sets up the delivery of the writer's finished jobs to the loop (at
 * set-up, after the store is open); 0 or -errno. api_fini delivers what
 * is left: after store_destroy (which finishes every queued write), before
 * the auth state goes. Loop thread. */
int api_init(backend_t *b);
void api_fini(backend_t *b);

/* Frees a job that will not run (the handler replied instead). */
void api_discard(api_job_t *j);
/* Runs j->fn on the pool (on the writer when j->writer), then replies j's
 * answer (or the error of j->rc) and frees j. A full pool (or writer
 * queue) is answered 503 overloaded at once. */
void api_run(http_req_t *req, api_job_t *j);

/* Checks the bearer token and the role; false after replying 401 or 403.
 * A token whose user was deleted, or whose role or password changed since
 * it was issued, is 401 here when this worker knows it already; else
 * out->current is false and the job checks (api_job_as). */
bool api_authorize(http_req_t *req, backend_t *b, int min_rank, auth_claims_t *out);
/* Replies 422 with e. */
void api_invalid(http_req_t *req, const verr_t *e);

/* A page of a list: ?limit= (1-500, default 50) and ?cursor=. */
typedef struct api_page {
    int limit;
    int64_t after; /* cursor position; 0: from the start */
} api_page_t;
/* Parses the page of a list of kind (cursor.h); false after replying 400
 * invalid_limit / invalid_cursor. */
bool api_page(http_req_t *req, char kind, api_page_t *page);
/* Builds {"items":items,"next_cursor":…} (takes items). Any thread. */
json_t *api_page_body(json_t *items, char kind, int64_t next);

#endif
