/* fz.h - what the libFuzzer targets of tests/fuzz share: the entry points
 * libFuzzer calls, a check that reports a broken property as a crash, and
 * a reader that takes a target's choices (a kind, a split) from the front
 * of its input. Each target is one fuzz_<name>.c; see README.md. */
#ifndef VAPORA_FZ_H
#define VAPORA_FZ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points (a target defines the first, maybe the others),
 * and its own mutator, which a custom one may call. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* A property of the code under test that the input broke: prints what and
 * where, then aborts, which libFuzzer records as a crash with its input. */
#define FZ_CHECK(cond, ...)                                                            \
    do {                                                                               \
        if (!(cond))                                                                   \
            fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                           \
    } while (0)
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* A property of what the code under test built: v serialises, and the text
 * reads back (as whoever receives it will parse it); what names v. */
void fz_check_json(const json_t *v, const char *what);

/* The input, read from the front. */
typedef struct fz_in {
    const uint8_t *data;
    size_t len;
} fz_in_t;

/* The next byte, or 0 once the input is used up. */
uint8_t fz_byte(fz_in_t *in);
/* A NUL-terminated heap copy of the rest of the input (the caller frees
 * it); an input's NUL bytes end it early, as they would a C string. */
char *fz_rest_str(fz_in_t *in);

/* A mutator for inputs that hold JSON (a target's LLVMFuzzerCustomMutator
 * may return it): one time in three it replaces a scalar outside strings (a
 * number, true, false, null) by one of a list of values at the edges (-1,
 * 2^63-1, 1e30, a number as a string, null, [] ...), which byte mutations
 * almost never make of a count in the middle of a body; otherwise, and when
 * the input holds no scalar, libFuzzer's own mutation. */
size_t fz_mutate_json(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

#endif
