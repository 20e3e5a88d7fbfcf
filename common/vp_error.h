/* vp_error.h - the project's error vocabulary. Functions return 0 on
 * success and a negative code on failure: either -errno, or one of the
 * VP_E* codes below, which sit outside errno's range (as libuv's UV_E*
 * codes do), so one int carries both without collisions.
 *
 * Each code names a kind of failure that callers act on differently; the
 * HTTP status it usually maps to is given beside it, but the mapping is the
 * caller's (a service decides what a not-found means to its API). */
#ifndef VAPORA_VP_ERROR_H
#define VAPORA_VP_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum {
    VP_EBASE = -20000,
    VP_ENOTFOUND,     /* the named thing does not exist (404) */
    VP_ECONFLICT,     /* the change clashes with current state (409) */
    VP_EPRECONDITION, /* a stated version does not match (412) */
    VP_EINVALID,      /* the input is well-formed but not acceptable (422/400) */
    VP_ESTORE,        /* the store failed (500) */
    VP_EFULL,         /* the disk is full (507) */
    VP_EUNKNOWN_MODEL,    /* a model name no configuration knows */
    VP_EUNKNOWN_PROVIDER, /* a provider name no configuration knows */
    VP_EPARSE,        /* bytes that do not parse as the format they claim */
    VP_EUNSUPPORTED,  /* valid input this implementation does not handle */
    VP_ELAST
};

/* True for a VP_E* code (not an -errno). */
static inline bool vp_is_project_error(int err)
{
    return err > VP_EBASE && err < VP_ELAST;
}

/* A static description of err: a VP_E* code, or -errno (strerror), or
 * "success" for 0. Any thread. */
const char *vp_strerror(int err);

/* Formats a failure's message into err (len bytes, truncated; nothing when
 * err is NULL or len is 0) and returns code, as in
 * `return vp_errorf(err, len, -EINVAL, "bad %s", key);`. Any thread. */
int vp_errorf(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int vp_verrorf(char *err, size_t len, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
