/* base.h - the few macros every module uses: the version, array length,
 * unused parameters, container_of, and invariants asserted in release
 * builds too (an invariant that does not hold is a bug that must not run
 * on). Header only; vp_assert_fail lives in alloc.c beside the other way a
 * worker dies on purpose. */
#ifndef VAPORA_BASE_H
#define VAPORA_BASE_H

#include <stddef.h>

#define VAPORA_VERSION "0.1.0"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

/* The struct of type `type` whose member `member` is at ptr. */
#define container_of(ptr, type, member)                                                \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define VP_ASSERT(cond)                                                                \
    do {                                                                               \
        if (!(cond))                                                                   \
            vp_assert_fail(#cond, __FILE__, __LINE__);                                 \
    } while (0)

/* Prints the failed condition and aborts (alloc.c). */
void vp_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

#endif
