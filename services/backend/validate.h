/* validate.h - checks of request fields, shared by the handlers. Each
 * check returns true when the field is acceptable, else false with a
 * 422-style error naming the field in its code (invalid_<field>). Pure
 * functions on borrowed JSON; any thread. */
#ifndef VAPORA_BACKEND_VALIDATE_H
#define VAPORA_BACKEND_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A failed check. The error owns its text: a later failure does not
 * change what an earlier one said. */
typedef struct verr {
    char code[64];
    char msg[200];
} verr_t;

/* Fills e with code and the printf-formatted message; returns false. */
bool validate_error(verr_t *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Every key of body is in allowed (NULL-terminated), else unknown_field. */
bool validate_known_fields(const json_t *body, const char *const *allowed, verr_t *e);
/* A string of min..max characters; absent is fine unless required. *out is
 * borrowed from body (NULL when absent). */
bool validate_string(const json_t *body, const char *key, bool required, size_t min,
                     size_t max, const char **out, verr_t *e);
/* A string from a set (checked by fn); absent is fine unless required. */
bool validate_enum(const json_t *body, const char *key, bool required,
                   bool (*fn)(const char *), const char **out, verr_t *e);
/* A number in [min,max] or null (when nullable); absent is fine. */
bool validate_number(const json_t *body, const char *key, double min, double max,
                     bool nullable, verr_t *e);
/* An array of at most 100 distinct id strings; absent is fine. */
bool validate_id_array(const json_t *body, const char *key, verr_t *e);
/* Any JSON value (or null) of at most max bytes once encoded. */
bool validate_json_size(const json_t *body, const char *key, size_t max, verr_t *e);

#endif
