/* log.c - see log.h. */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base.h"
#include "now.h"
#include "sbuf.h"
#include "fd.h"
#include "utf8.h"

static char s_service[64] = "vapora";
static volatile log_level_t s_level = LOG_INFO;
static log_format_t s_format = LOG_FMT_LOGFMT;

static const char *const s_level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, log_level_t level, log_format_t fmt)
{
    snprintf(s_service, sizeof s_service, "%s", service);
    s_level = level;
    s_format = fmt;
}

void log_set_level(log_level_t level)
{
    s_level = level;
}

log_level_t log_get_level(void)
{
    return s_level;
}

const char *log_level_name(log_level_t level)
{
    return (unsigned)level < ARRAY_LEN(s_level_names) ? s_level_names[level]
                                                      : "unknown";
}

int log_parse_level(const char *s, log_level_t *out)
{
    for (unsigned i = 0; i < ARRAY_LEN(s_level_names); i++) {
        if (strcasecmp(s, s_level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int log_parse_format(const char *s, log_format_t *out)
{
    if (strcasecmp(s, "logfmt") == 0)
        *out = LOG_FMT_LOGFMT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return -EINVAL;
    return 0;
}

/* Appends s quoted for the current format: JSON string escaping, which is
 * also valid logfmt quoting. */
static void s_quote(sbuf_t *b, const char *s)
{
    sbuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sbuf_puts(b, "\\\""); break;
        case '\\': sbuf_puts(b, "\\\\"); break;
        case '\n': sbuf_puts(b, "\\n"); break;
        case '\r': sbuf_puts(b, "\\r"); break;
        case '\t': sbuf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20)
                sbuf_printf(b, "\\u%04x", *p);
            else
                sbuf_append(b, p, 1);
        }
    }
    sbuf_append(b, "\"", 1);
}

void log_vmsg(log_level_t level, int err, const char *fmt, va_list ap)
{
    if (level < s_level)
        return;
    int saved = errno;
    char ts[40];
    now_iso8601(ts, sizeof ts);
    sbuf_t msg = {0}, line = {0};
    sbuf_vprintf(&msg, fmt, ap);
    char *text = utf8_repair(msg.data); /* messages quote requests */
    sbuf_free(&msg);
    msg.data = text;
    if (s_format == LOG_FMT_JSON) {
        sbuf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"service\":", ts,
                    log_level_name(level));
        s_quote(&line, s_service);
        sbuf_printf(&line, ",\"pid\":%d,\"msg\":", (int)getpid());
        s_quote(&line, msg.data);
        if (err) {
            sbuf_printf(&line, ",\"errno\":%d,\"error\":", err < 0 ? -err : err);
            s_quote(&line, strerror(err < 0 ? -err : err));
        }
        sbuf_puts(&line, "}\n");
    } else {
        sbuf_printf(&line, "time=%s level=%s service=%s pid=%d msg=", ts,
                    log_level_name(level), s_service, (int)getpid());
        s_quote(&line, msg.data);
        if (err) {
            sbuf_printf(&line, " errno=%d error=", err < 0 ? -err : err);
            s_quote(&line, strerror(err < 0 ? -err : err));
        }
        sbuf_puts(&line, "\n");
    }
    (void)fd_write_all(STDERR_FILENO, line.data, line.len); /* nowhere to report */
    sbuf_free(&msg);
    sbuf_free(&line);
    errno = saved;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, 0, fmt, ap);
    va_end(ap);
}

void log_err(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_ERROR, err ? err : EIO, fmt, ap);
    va_end(ap);
}

void log_warn_errno(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_WARN, err ? err : EIO, fmt, ap);
    va_end(ap);
}
