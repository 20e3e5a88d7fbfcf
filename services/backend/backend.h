/* backend.h - the backend service's shared state and the helpers its
 * handlers use: authentication (auth.c), input validation (validate.c) and
 * running storage work on the pool (api.c). */
#ifndef VAPORA_BACKEND_H
#define VAPORA_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "cursor.h"
#include "store.h"
#include "store_tasks.h"
#include "worker.h"

#define BACKEND_LOGIN_SLOTS 256
#define BACKEND_TOKEN_CACHE 1024
/* A task's result, encoded, at most (as description: 100,000). */
#define TASK_RESULT_MAX 100000

typedef struct login_fail {
    char username[64];
    unsigned count;
    uint64_t first_ms;
} login_fail_t;

/* The claims of a token already verified (see auth_verify_token_cached). */
typedef struct token_slot {
    char *token;
    long exp;
    struct claims *claims;
} token_slot_t;

typedef struct backend {
    worker_t *w;
    store_t *store;
    char *data_dir;
    unsigned char *jwt_key;
    size_t jwt_key_len;
    long token_ttl;
    /* Login failures by username, shared by every worker: a mapping of
     * DATA_DIR/login-failures (or private memory when it cannot be made),
     * updated under an flock of fails_fd. */
    login_fail_t *fails;
    int fails_fd;
    bool fails_shared;
    token_slot_t tokens[BACKEND_TOKEN_CACHE]; /* loop thread only */
    struct rcache *cache;                     /* task documents (cache.h); NULL: off */
} backend_t;

/* Roles, in increasing power. */
enum { ROLE_VIEWER = 0, ROLE_MEMBER = 1, ROLE_OWNER = 2 };
/* The rank of a role name, or -1. */
int role_rank(const char *role);

/* The verified claims of a request's token. */
typedef struct claims {
    char sub[64];
    char username[128];
    char role[16];
} claims_t;

/* ---- auth.c ---- */
/* Loads or creates the JWT secret and the admin user, opens nothing else.
 * Start-up only (blocking file and database work). */
int auth_init(backend_t *b, char *err, size_t errlen);
void auth_fini(backend_t *b);
/* argon2id; pool threads (slow on purpose). Returns a heap string or NULL. */
char *auth_hash_password(const char *password);
bool auth_verify_password(const char *hash, const char *password);
/* The hash verified for unknown users (same work, same time); made once,
 * on first use. Pool threads. */
const char *auth_dummy_hash(void);
/* A signed token for user {"id","username","role"}; heap string. */
char *auth_issue_token(backend_t *b, const json_t *user);
/* Verifies signature, algorithm and expiry; 0 with claims, or -1. Any
 * thread. */
int auth_verify_token(backend_t *b, const char *token, claims_t *out);
/* The same, remembering tokens that verified (expiry is checked on every
 * use): the signature of a client's token is checked once, not per
 * request. Loop thread only. */
int auth_verify_token_cached(backend_t *b, const char *token, claims_t *out);
/* Login slow-down: the delay (ms) before answering the n-th failure of
 * username; record a failure / forget a username on success. Loop thread. */
/* The login-failure table, shared by every worker through a mapping of
 * DATA_DIR/login-failures (private memory, logged, when that fails), so
 * that spreading guesses over the workers buys no more of them. auth_init
 * opens it and auth_fini closes it. */
void auth_failures_open(backend_t *b);
void auth_failures_close(backend_t *b);
uint64_t auth_failure_delay(backend_t *b, const char *username);
void auth_forget_failures(backend_t *b, const char *username);

/* ---- validate.c: field checks; false with a 422-style error ---- */
/* The error owns its text: nothing it says is overwritten by a later
 * failure. */
typedef struct verr {
    char code[64];
    char msg[200];
} verr_t;

/* Every key of body is in allowed (NULL-terminated), else unknown_field. */
bool v_known_fields(const json_t *body, const char *const *allowed, verr_t *e);
/* A string of min..max characters; absent is fine unless required. *out is
 * borrowed (NULL when absent). */
bool v_string(const json_t *body, const char *key, bool required, size_t min,
              size_t max, const char **out, verr_t *e);
/* A string from a set (checked by fn); absent is fine unless required. */
bool v_enum(const json_t *body, const char *key, bool required,
            bool (*fn)(const char *), const char **out, verr_t *e);
/* A number in [min,max] or null (when nullable). */
bool v_number(const json_t *body, const char *key, double min, double max,
              bool nullable, verr_t *e);
/* An array of distinct id strings. */
bool v_id_array(const json_t *body, const char *key, verr_t *e);
/* Any JSON value (or null) of at most max bytes once encoded. */
bool v_json_size(const json_t *body, const char *key, size_t max, verr_t *e);

/* ---- api.c ---- */
/* Checks the bearer token and the role; false after replying 401 or 403. */
bool api_authorize(http_req_t *req, backend_t *b, int min_rank, claims_t *out);
/* Replies 422 with e. */
void api_invalid(http_req_t *req, const verr_t *e);

typedef struct job job_t;
typedef void (*job_fn)(job_t *j); /* pool thread */
struct job {
    backend_t *b;
    job_fn fn;
    claims_t who;
    json_t *in;  /* owned */
    char id[64]; /* the path's {id} */
    int64_t num; /* a number argument (cursor position, If-Match…) */
    int limit;
    bool flag;
    store_task_filter_t filter;
    json_t *out;     /* the reply body (owned); NULL with 204 */
    char *body;      /* the reply as JSON text (owned): set by fn, or out
                        serialised on the pool thread */
    unsigned status; /* HTTP status of a successful answer */
    int rc;
    store_err_t err;
    char location[160];
    uint64_t tag; /* store_version() before fn ran (cacheable reads) */
    /* Loop thread, before the reply (e.g. to publish an event); optional.
     * A hook that sets rc to anything but 0 has answered (or will
     * answer) the request itself. */
    void (*after)(job_t *j, http_req_t *req);
};

/* A zeroed job for fn, answering 200 unless fn says otherwise. */
job_t *api_job(backend_t *b, job_fn fn);
/* A job for fn after checking the caller's token and role (claims in
 * j->who, the path's {id} in j->id); NULL after replying 401/403. */
job_t *api_start(http_req_t *req, backend_t *b, job_fn fn, int min_rank);
/* Frees a job that will not run (the handler replied instead). */
void api_discard(job_t *j);
/* Runs j->fn on the pool; then replies j->out (or the error of j->rc). */
void api_run(http_req_t *req, job_t *j);

/* Parses ?limit= (1-500, default 50) and ?cursor= of kind; false after
 * replying 400 invalid_limit / invalid_cursor. */
bool api_page(http_req_t *req, char kind, int *limit, int64_t *after);
/* Builds {"items":items,"next_cursor":…} (takes items). */
json_t *api_page_body(json_t *items, char kind, int64_t next);

/* ---- routes ---- */
void users_routes(backend_t *b);
void projects_routes(backend_t *b);
void tasks_routes(backend_t *b);

#endif
