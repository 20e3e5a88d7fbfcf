/* harness_json.c - see harness_json.h. */
#include "harness_json.h"

#include <string.h>

#include "harness_keep.h"

const char *th_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

json_int_t th_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

double th_num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

json_t *th_find(const json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        json_t *v = json_object_get(o, key);
        if (!v)
            continue;
        const char *s = json_is_string(v) ? json_string_value(v) : th_dump(v);
        if (strcmp(s, value) == 0)
            return o;
    }
    return NULL;
}

const char *th_dump(const json_t *v)
{
    if (!v)
        return "(absent)";
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return s ? th_keep(s) : "(?)";
}
