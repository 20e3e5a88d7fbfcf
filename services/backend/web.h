/* web.h - the web board's files (docs/web.md), served by the backend at
 * `/` from `[backend] web_root`: index.html, app/FILE and
 * vendor/PACKAGE-VERSION/FILE, GET and HEAD only.
 *
 * DESIGN. The files are read once, at set-up, into memory (the board is a
 * few tens of KiB; reading on the loop thread per request would block it,
 * and the pool is for the store): a changed file goes live with the next
 * worker (`vaporactl restart backend`). Names are checked segment by
 * segment (letters, digits, `.`, `_`, `-`, never a leading dot), so no
 * request can reach outside the root, and only the loaded names are ever
 * answered. Every answer carries a Content-Security-Policy that allows
 * nothing from elsewhere: scripts, styles, images and connections from the
 * board's own origin only (its WebSocket too), no inline script, no
 * framing. index.html and app/ are revalidated each time (ETag, 304);
 * vendor/ names carry their package's version and are cached for a year.
 *
 * Every function runs on the loop thread (web_new at set-up). */
#ifndef VAPORA_BACKEND_WEB_H
#define VAPORA_BACKEND_WEB_H

#include <stddef.h>

#include "http.h"

typedef struct web web_t;

/* Loads the files under root (at most WEB_MAX_BYTES in all). A missing
 * root is no error: the board is then not served (404 `no_web_board`),
 * which is logged once. NULL (err says why) when root holds more than the
 * limit or cannot be read. */
web_t *web_new(const char *root, char *err, size_t errlen);
/* Frees the files. Accepts NULL; sets *wp = NULL. */
void web_destroy(web_t **wp);
/* Adds the routes GET /, /index.html, /app/{file}, /vendor/{pkg}/{file}.
 * w must outlive srv's requests. */
void web_add_routes(web_t *w, http_server_t *srv);
/* Files loaded, and their bytes in all. */
size_t web_files(const web_t *w);
size_t web_bytes(const web_t *w);

#define WEB_MAX_BYTES (32u << 20)
#define WEB_MAX_FILES 512u

#endif
