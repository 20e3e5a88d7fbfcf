/* test_call.c - unit tests for what call.c formats by hand (no printf on a
 * call's path): the call's id and the caller's bytes with the router's
 * output bound appended. Each is held to what printf makes. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../../../services/llm-router/call.c"

Test(call, hex_digits_as_printf_makes_them)
{
    static const struct {
        unsigned long v;
        int width;
    } cases[] = {{0, 1},        {0, 6},       {0xabc, 6},   {0x1234567, 6},
                 {0xffffff, 6}, {1, 8},       {0x7fffffffUL, 8}, {~0UL, 8},
                 {123456, 1},   {0x10, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[32], want[32];
        *s_hex(got, cases[i].v, cases[i].width) = '\0';
        snprintf(want, sizeof want, "%0*lx", cases[i].width, cases[i].v);
        cr_assert_str_eq(got, want, "%lx in %d", cases[i].v, cases[i].width);
    }
}

Test(call, ids_are_prefix_pid_sequence_and_time)
{
    call_t c = {.format = CALL_ANTHROPIC};
    s_call_id(&c);
    call_t d = {.format = CALL_OPENAI};
    s_call_id(&d);
    unsigned long seq, t;
    char tail[2];
    /* pid in %x, then 6 digits of sequence and the time in 8 */
    char fmt[64];
    snprintf(fmt, sizeof fmt, "chatcmpl-vp%x%%6lx%%8lx%%1s", (unsigned)getpid());
    cr_assert_eq(sscanf(d.id, fmt, &seq, &t, tail), 2, "%s", d.id);
    char want[48];
    snprintf(want, sizeof want, "chatcmpl-vp%x%06lx%08lx", (unsigned)getpid(), seq, t);
    cr_assert_str_eq(d.id, want);
    snprintf(want, sizeof want, "msg_vp%x%06lx%08lx", (unsigned)getpid(), seq - 1, t);
    cr_assert(strncmp(c.id, want, strlen(want) - 8) == 0, "%s then %s", c.id, d.id);
    cr_assert(t + 2 >= (unsigned long)time(NULL) && t <= (unsigned long)time(NULL));
}

Test(call, the_bound_is_appended_as_printf_would)
{
    static const struct {
        const char *raw;
        long bound;
    } cases[] = {{"{\"model\":\"m\"}", 1000},
                 {"{\"model\":\"m\"}  \n\t", 7},
                 {"{}", 0},
                 {"{\"a\":1}", -42},
                 {"{\"a\":1}", 9223372036854775807L}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *raw = cases[i].raw;
        char *got = s_with_bound(raw, strlen(raw), cases[i].bound);
        size_t n = strcspn(raw, " \n\t");
        char want[128];
        snprintf(want, sizeof want, "%.*s,\"max_completion_tokens\":%ld}", (int)n - 1,
                 raw, cases[i].bound);
        cr_assert_str_eq(got, want);
        free(got);
    }
}
