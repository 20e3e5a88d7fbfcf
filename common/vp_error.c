/* vp_error.c - see vp_error.h. */
#include "vp_error.h"

#include <stdio.h>
#include <string.h>

#include "base.h"

static const char *const s_text[] = {
    [VP_ENOTFOUND - VP_EBASE] = "not found",
    [VP_ECONFLICT - VP_EBASE] = "conflicts with the current state",
    [VP_EPRECONDITION - VP_EBASE] = "the version does not match",
    [VP_EINVALID - VP_EBASE] = "invalid input",
    [VP_ESTORE - VP_EBASE] = "the store failed",
    [VP_EFULL - VP_EBASE] = "no space left on the device",
    [VP_EUNKNOWN_MODEL - VP_EBASE] = "unknown model",
    [VP_EUNKNOWN_PROVIDER - VP_EBASE] = "unknown provider",
    [VP_EPARSE - VP_EBASE] = "malformed input",
    [VP_EUNSUPPORTED - VP_EBASE] = "not supported",
};

const char *vp_strerror(int err)
{
    if (err == 0)
        return "success";
    if (vp_is_project_error(err)) {
        const char *t = s_text[err - VP_EBASE];
        return t ? t : "unknown error";
    }
    return strerror(-err); /* glibc's: static text for known codes */
}

int vp_verrorf(char *err, size_t len, int code, const char *fmt, va_list ap)
{
    if (err && len)
        vsnprintf(err, len, fmt, ap);
    return code;
}

int vp_errorf(char *err, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vp_verrorf(err, len, code, fmt, ap);
    va_end(ap);
    return code;
}
