/* render.h - JSON text in one allocation.
 *
 * json_dumps grows its buffer from 16 bytes by doubling and then copies
 * the result: about ten allocations for a task's few hundred bytes, and a
 * task write renders three texts (its stored document, its event, the
 * reply). Rendering into a buffer sized for a typical document costs one.
 * Any thread. */
#ifndef VAPORA_BACKEND_RENDER_H
#define VAPORA_BACKEND_RENDER_H

#include <jansson.h>
#include <stddef.h>

/* v as JSON text (json_dumps' flags): a heap string the caller frees, or
 * NULL when v cannot be encoded. */
char *render_json(const json_t *v, size_t flags);

#endif
