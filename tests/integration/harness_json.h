/* harness_json.h - reading the JSON documents the programs answer: a
 * member as a string or number, the element of an array with a given
 * member, and any value as text for a failure message.
 *
 * None of these asserts. Main thread only (th_dump keeps its text). */
#ifndef VAPORA_TEST_HARNESS_JSON_H
#define VAPORA_TEST_HARNESS_JSON_H

#include <jansson.h>

/* o[key] as a string, or NULL when it is absent or not a string. */
const char *th_str(const json_t *o, const char *key);

/* o[key] as an integer, or 0 when it is absent or not an integer. */
json_int_t th_int(const json_t *o, const char *key);

/* o[key] as a number (integer or real), or 0 when it is not one. */
double th_num(const json_t *o, const char *key);

/* The first element of the array arr whose member key is value: a string
 * equal to value, or another value whose JSON text is value (an integer id
 * "42"). NULL when there is none. Borrowed from arr. */
json_t *th_find(const json_t *arr, const char *key, const char *value);

/* v as compact JSON text (kept until th_cleanup()), for messages and
 * comparisons; "(absent)" when v is NULL. */
const char *th_dump(const json_t *v);

#endif
