/* render.c - see render.h. */
#include "render.h"

#include <stdlib.h>

#include "sbuf.h"

/* Enough for a task with a short description and a few blockers. */
#define RENDER_FIRST 1024

static int s_append(const char *buf, size_t size, void *data)
{
    sbuf_append(data, buf, size);
    return 0;
}

char *render_json(const json_t *v, size_t flags)
{
    sbuf_t b = {0};
    sbuf_reserve(&b, RENDER_FIRST - 1);
    if (json_dump_callback(v, s_append, &b, flags) != 0) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_steal(&b);
}
