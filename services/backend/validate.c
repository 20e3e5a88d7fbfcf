/* validate.c - field checks shared by the handlers; see validate.h. */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "validate.h"

#include "base.h"
#include "utf8.h"

bool validate_error(verr_t *e, const char *code, const char *fmt, ...)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

/* Field key failed: invalid_<key>, "<key>: <what>". */
static bool s_fail(verr_t *e, const char *key, const char *what)
{
    snprintf(e->code, sizeof e->code, "invalid_%.50s", key);
    snprintf(e->msg, sizeof e->msg, "%s: %s", key, what);
    return false;
}

bool validate_known_fields(const json_t *body, const char *const *allowed, verr_t *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(k, *a) == 0;
        if (!ok)
            return validate_error(e, "unknown_field", "unknown field \"%.100s\"", k);
    }
    return true;
}

bool validate_string(const json_t *body, const char *key, bool required, size_t min,
              size_t max, const char **out, verr_t *e)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v)
        return required ? s_fail(e, key, "is required") : true;
    if (!json_is_string(v))
        return s_fail(e, key, "must be a string");
    size_t n = utf8_chars(json_string_value(v));
    if (n < min)
        return s_fail(e, key, min == 1 ? "must not be empty" : "is too short");
    if (n > max) {
        char msg[64];
        snprintf(msg, sizeof msg, "must be at most %zu characters", max);
        return s_fail(e, key, msg);
    }
    *out = json_string_value(v);
    return true;
}

bool validate_enum(const json_t *body, const char *key, bool required,
            bool (*fn)(const char *), const char **out, verr_t *e)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v)
        return required ? s_fail(e, key, "is required") : true;
    if (!json_is_string(v) || !fn(json_string_value(v)))
        return s_fail(e, key, "is not one of the allowed values");
    *out = json_string_value(v);
    return true;
}

bool validate_number(const json_t *body, const char *key, double min, double max,
              bool nullable, verr_t *e)
{
    json_t *v = json_object_get(body, key);
    if (!v || (nullable && json_is_null(v)))
        return true;
    if (!json_is_number(v))
        return s_fail(e, key, "must be a number");
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max) {
        char msg[80];
        snprintf(msg, sizeof msg, "must be between %g and %g", min, max);
        return s_fail(e, key, msg);
    }
    return true;
}

bool validate_id_array(const json_t *body, const char *key, verr_t *e)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return true;
    if (!json_is_array(v) || json_array_size(v) > 100)
        return s_fail(e, key, "must be an array of at most 100 task ids");
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x) || json_string_length(x) == 0 ||
            json_string_length(x) > 64)
            return s_fail(e, key, "must hold task ids (strings)");
        json_array_foreach(v, j, y)
        {
            if (j < i && json_equal(x, y))
                return s_fail(e, key, "lists a task twice");
        }
    }
    return true;
}

/* Counts the encoded bytes and stops past the limit. */
static int s_count(const char *buf, size_t size, void *data)
{
    UNUSED(buf);
    size_t *left = data;
    if (size > *left)
        return -1;
    *left -= size;
    return 0;
}

bool validate_json_size(const json_t *body, const char *key, size_t max, verr_t *e)
{
    json_t *v = json_object_get(body, key);
    size_t left = max;
    if (!v ||
        json_dump_callback(v, s_count, &left, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
        return true;
    char msg[64];
    snprintf(msg, sizeof msg, "must be at most %zu bytes of JSON", max);
    return s_fail(e, key, msg);
}
