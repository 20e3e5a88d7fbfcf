/* log.h - one line per event on stderr, logfmt or JSON, with time, level,
 * service and pid.
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from pool threads never interleave. */
#ifndef VAPORA_LOG_H
#define VAPORA_LOG_H

#include <stdarg.h>

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
} log_level_t;

typedef enum log_format {
    LOG_FMT_LOGFMT = 0,
    LOG_FMT_JSON = 1,
} log_format_t;

/* Sets the service name (copied) shown on every line; call once at start-up,
 * before any thread exists. */
void log_init(const char *service, log_level_t level, log_format_t fmt);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Parses "debug|info|warn|error" / "logfmt|json"; return 0 or -EINVAL. */
int log_parse_level(const char *s, log_level_t *out);
int log_parse_format(const char *s, log_format_t *out);
const char *log_level_name(log_level_t level);

/* Logs one event. fmt is the human message. */
void log_msg(log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(log_level_t level, int err, const char *fmt, va_list ap);

/* Logs a failed call at error level with errno's text in its own field:
 * log_err(errno, "epoll_ctl(ADD, %d)", fd). err may be negative (-errno). */
void log_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same at warning level. */
void log_warn_errno(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                 \
    do {                                                                               \
        if (log_get_level() <= LOG_DEBUG)                                              \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
    } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
