/* fuzz_jparse.c - the request-body fast path (common/jparse.c) against
 * jansson, the parser it stands in for: whatever text jparse_load takes,
 * json_loadb(text, len, 0) takes too, and the two trees are equal (same
 * members, same order, same values: dumped alike). A text jparse leaves
 * (NULL) is jansson's to read or refuse. Inputs are mutated as JSON
 * (fz_mutate_json), as the other JSON targets' are. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "jparse.h"

/* The tree as text, member order kept (json_equal ignores it). */
static char *s_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *fast = jparse_load(text, size);
    if (!fast)
        return 0;
    json_error_t err;
    json_t *ref = json_loadb(text, size, 0, &err);
    FZ_CHECK(ref != NULL, "jparse took a text jansson refuses: %s (at %d)", err.text,
             err.position);
    char *a = s_dump(fast), *b = s_dump(ref);
    FZ_CHECK(json_equal(fast, ref) && a && b && strcmp(a, b) == 0,
             "jparse read %s where jansson reads %s", a ? a : "?", b ? b : "?");
    free(a);
    free(b);
    json_decref(fast);
    json_decref(ref);
    return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    return fz_mutate_json(data, size, max_size, seed);
}
