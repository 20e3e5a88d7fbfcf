/* admin_auth.h - who may use the supervisor's admin API: its token, and
 * the checks that keep web pages out.
 *
 * DESIGN. Whoever can read DATA_DIR/admin-token may drive the supervisor,
 * the same idea as PostgreSQL's peer authentication: the file is the
 * user's alone (0600 in a 0700 data_dir), vaporactl reads it, and every
 * request but GET /health carries it as `Authorization: Bearer TOKEN`. A
 * browser cannot add that header to a cross-site request without a CORS
 * preflight, which the API never grants; three more checks hold even with
 * a valid token (a token pasted into a page, a proxy that adds it):
 * - Host must name the API: an IP literal, `localhost`, or the host of
 *   [supervisor] admin (any port: Docker and ssh -L publish it on
 *   another). A DNS-rebinding page sends its own name, which is none of
 *   those; an IP literal cannot be rebound.
 * - Origin, when sent, must be the API's own (`http://` + Host). Browsers
 *   send it with every cross-origin POST, `no-cors` ones included.
 * - A POST's Content-Type, when sent, must be application/json: what a
 *   form or a `no-cors` fetch can send (text/plain, form types) is not.
 *
 * Pure functions but sv_auth_token_load (files); any thread. */
#ifndef VAPORA_SV_ADMIN_AUTH_H
#define VAPORA_SV_ADMIN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* The token's file in data_dir. */
#define SV_AUTH_TOKEN_FILE "admin-token"
/* The shortest token accepted from the configuration or the file. */
#define SV_AUTH_TOKEN_MIN 16

/* Whether token is usable: SV_AUTH_TOKEN_MIN to 256 visible ASCII
 * characters (no blank, no control). */
bool sv_auth_token_valid(const char *token);

/* The admin API's token (heap string, the caller frees). configured (NULL
 * or "": none) is [supervisor] admin_token: it is used, and written to
 * DATA_DIR/admin-token so that vaporactl finds it. Otherwise the file's
 * token is used, or a new random one (256 bits, hex) is written there
 * once, mode 0600, and kept across restarts. A file open to others is made
 * 0600 (warned). NULL with the reason in err when the file cannot be
 * read or written, or holds no valid token. */
char *sv_auth_token_load(const char *data_dir, const char *configured, char *err,
                         size_t errlen);

/* Whether an `Authorization` header value is "Bearer <token>" (scheme
 * case-insensitive). Compares in time independent of where they differ. */
bool sv_auth_bearer_ok(const char *authorization, const char *token);

/* Whether a Host header value names the API bound at admin (see above).
 * NULL or "" is refused. */
bool sv_auth_host_ok(const char *host, const char *admin);

/* Whether an Origin header value (NULL: none sent) is the request's own
 * origin, "http://" + host (case-insensitive). "null" is refused. */
bool sv_auth_origin_ok(const char *origin, const char *host);

/* Whether a Content-Type value is application/json (with parameters). */
bool sv_auth_is_json(const char *content_type);

/* Whether admin ("host:port") binds loopback only: 127.0.0.0/8, ::1 or
 * localhost. An empty host (all addresses) or any other name is not. */
bool sv_auth_loopback(const char *admin);

#endif
