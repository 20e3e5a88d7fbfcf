/* web.c - the web board's files; see web.h. */
#define _GNU_SOURCE
#include "web.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "file.h"
#include "log.h"

typedef struct web_file {
    char *name; /* "index.html", "app/board.js", "vendor/preact-10.29.8/preact.mjs" */
    char *data;
    size_t len;
    const char *mime;
    char etag[24];
    bool immutable; /* under vendor/: the name carries a version */
} web_file_t;

struct web {
    char *root;
    web_file_t *files;
    size_t nfiles, bytes;
};

static const struct {
    const char *ext, *mime;
} s_mimes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".md", "text/plain; charset=utf-8"},
};

static const char *s_mime(const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash))
        return "text/plain; charset=utf-8"; /* LICENSE and the like */
    for (size_t i = 0; i < ARRAY_LEN(s_mimes); i++)
        if (strcmp(dot, s_mimes[i].ext) == 0)
            return s_mimes[i].mime;
    return "application/octet-stream";
}

/* A name segment we serve: letters, digits, '.', '_', '-'; no leading dot
 * (so neither "." nor ".." nor hidden files); 1-100 bytes. */
static bool s_segment_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static void s_etag(web_file_t *f)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < f->len; i++)
        h = (h ^ (unsigned char)f->data[i]) * 1099511628211ull;
    snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)h);
}

/* Reads root/name into w; 0, or -errno / -EFBIG past the limits. */
static int s_load(web_t *w, const char *name)
{
    if (w->nfiles == WEB_MAX_FILES)
        return -EFBIG;
    char *path = xasprintf("%s/%s", w->root, name);
    size_t len = 0;
    char *data = file_read_all(path, &len);
    int err = errno;
    free(path);
    if (!data)
        return -err;
    if (w->bytes + len > WEB_MAX_BYTES) {
        free(data);
        return -EFBIG;
    }
    w->files = xrealloc(w->files, (w->nfiles + 1) * sizeof *w->files);
    web_file_t *f = &w->files[w->nfiles++];
    *f = (web_file_t){.name = xstrdup(name),
                      .data = data,
                      .len = len,
                      .mime = s_mime(name),
                      .immutable = strncmp(name, "vendor/", 7) == 0};
    s_etag(f);
    w->bytes += len;
    return 0;
}

/* Calls fn(w, "dir/entry") for each entry of root/dir whose name we serve
 * and whose type is want (S_IFREG or S_IFDIR). */
static int s_each(web_t *w, const char *dir, mode_t want,
                  int (*fn)(web_t *w, const char *name))
{
    char *path = xasprintf("%s/%s", w->root, dir);
    DIR *d = opendir(path);
    free(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (!s_segment_ok(e->d_name))
            continue;
        char *name = xasprintf("%s/%s", dir, e->d_name);
        char *full = xasprintf("%s/%s", w->root, name);
        struct stat st;
        if (lstat(full, &st) == 0 && (st.st_mode & S_IFMT) == want)
            rc = fn(w, name);
        free(full);
        free(name);
    }
    closedir(d);
    return rc;
}

static int s_load_vendor_dir(web_t *w, const char *name)
{
    return s_each(w, name, S_IFREG, s_load);
}

web_t *web_new(const char *root, char *err, size_t errlen)
{
    web_t *w = xcalloc(1, sizeof *w);
    w->root = xstrdup(root);
    struct stat st;
    if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_warn("web_root %s is not a directory: the web board is not served", root);
        return w;
    }
    int rc = s_load(w, "index.html");
    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0)
        rc = s_each(w, "app", S_IFREG, s_load);
    if (rc == 0)
        rc = s_each(w, "vendor", S_IFDIR, s_load_vendor_dir);
    if (rc < 0) {
        snprintf(err, errlen, "web_root %s: %s", root,
                 rc == -EFBIG ? "more than 512 files or 32 MiB" : strerror(-rc));
        web_destroy(&w);
        return NULL;
    }
    log_info("web board: %zu files, %zu bytes from %s", w->nfiles, w->bytes, root);
    return w;
}

void web_destroy(web_t **wp)
{
    web_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    for (size_t i = 0; i < w->nfiles; i++) {
        free(w->files[i].name);
        free(w->files[i].data);
    }
    free(w->files);
    free(w->root);
    free(w);
    *wp = NULL;
}

size_t web_files(const web_t *w)
{
    return w->nfiles;
}

size_t web_bytes(const web_t *w)
{
    return w->bytes;
}

/* ---- serving ---- */

static const web_file_t *s_find(const web_t *w, const char *name)
{
    for (size_t i = 0; i < w->nfiles; i++)
        if (strcmp(w->files[i].name, name) == 0)
            return &w->files[i];
    return NULL;
}

/* A Host we may echo into the policy: a name or address and a port. */
static bool s_host_ok(const char *h)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]";
    return h && *h && strlen(h) <= 200 && strspn(h, ok) == strlen(h);
}

/* The headers every answer of the board carries. */
static void s_security_headers(http_req_t *req)
{
    const char *host = http_req_header(req, "Host");
    char ws[512] = "";
    if (s_host_ok(host))
        snprintf(ws, sizeof ws, " ws://%s wss://%s", host, host);
    char csp[1024];
    snprintf(csp, sizeof csp,
             "default-src 'none'; script-src 'self'; style-src 'self'; "
             "img-src 'self' data:; font-src 'self'; connect-src 'self'%s; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             ws);
    http_req_add_header(req, "Content-Security-Policy", csp);
    http_req_add_header(req, "X-Content-Type-Options", "nosniff");
    http_req_add_header(req, "Referrer-Policy", "no-referrer");
    http_req_add_header(req, "X-Frame-Options", "DENY");
}

static void s_serve(http_req_t *req, const web_t *w, const char *name)
{
    const web_file_t *f = name ? s_find(w, name) : NULL;
    s_security_headers(req);
    if (!f) {
        if (w->nfiles == 0)
            http_reply_error(
                req, 404, "no_web_board",
                "the web board is not installed here ([backend] web_root)");
        else
            http_reply_error(req, 404, "not_found", "no such file");
        return;
    }
    http_req_add_header(req, "ETag", f->etag);
    http_req_add_header(req, "Cache-Control",
                        f->immutable ? "public, max-age=31536000, immutable"
                                     : "no-cache");
    const char *inm = http_req_header(req, "If-None-Match");
    if (inm && strstr(inm, f->etag)) {
        http_reply(req, 304, NULL, "", 0);
        return;
    }
    http_reply(req, 200, f->mime, f->data, f->len);
}

static void s_index(http_req_t *req, void *ud)
{
    s_serve(req, ud, "index.html");
}

static void s_app(http_req_t *req, void *ud)
{
    const char *f = http_req_param(req, "file");
    char name[128];
    bool ok = f && s_segment_ok(f);
    if (ok)
        snprintf(name, sizeof name, "app/%s", f);
    s_serve(req, ud, ok ? name : NULL);
}

static void s_vendor(http_req_t *req, void *ud)
{
    const char *p = http_req_param(req, "pkg");
    const char *f = http_req_param(req, "file");
    char name[256];
    bool ok = p && f && s_segment_ok(p) && s_segment_ok(f);
    if (ok)
        snprintf(name, sizeof name, "vendor/%s/%s", p, f);
    s_serve(req, ud, ok ? name : NULL);
}

void web_add_routes(web_t *w, http_server_t *srv)
{
    http_route(srv, "GET", "/", 0, s_index, w);
    http_route(srv, "GET", "/index.html", 0, s_index, w);
    http_route(srv, "GET", "/app/{file}", 0, s_app, w);
    http_route(srv, "GET", "/vendor/{pkg}/{file}", 0, s_vendor, w);
}
