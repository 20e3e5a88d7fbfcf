/* test_prompt.c - unit tests for prompt.c: the user message of a task and
 * the results of its blockers, whatever JSON value a result is (a person
 * may PATCH any value there). */
#include "prompt.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* The message for a task blocked by one task whose result is result
 * (taken). */
static char *s_with_result(json_t *result)
{
    json_t *task = json_pack("{s:s,s:s}", "title", "Follow-up", "type", "feature");
    json_t *blockers = json_pack("[{s:s,s:o}]", "title", "Blocker", "result", result);
    char *m = prompt_user_message(task, blockers);
    json_decref(task);
    json_decref(blockers);
    cr_assert_not_null(m);
    return m;
}

static void s_expect(json_t *result, const char *want)
{
    char *m = s_with_result(result);
    cr_assert(strstr(m, "Result of \"Blocker\", which this task was blocked by:\n"), "%s", m);
    cr_assert(strstr(m, want), "wanted <%s> in: %s", want, m);
    free(m);
}

Test(prompt, a_result_of_any_json_value_is_text)
{
    s_expect(json_string("finished by hand"), "blocked by:\nfinished by hand\n");
    s_expect(json_integer(42), "blocked by:\n42\n");
    s_expect(json_true(), "blocked by:\ntrue\n");
    s_expect(json_pack("[i,s]", 1, "x"), "blocked by:\n[1,\"x\"]\n");
    s_expect(json_pack("{s:s}", "content", "the plan"), "blocked by:\nthe plan\n");
    s_expect(json_pack("{s:i}", "score", 3), "blocked by:\n{\"score\":3}\n");
}

Test(prompt, a_null_result_is_left_out)
{
    char *m = s_with_result(json_null());
    cr_assert_null(strstr(m, "Result of"), "%s", m);
    cr_assert(strstr(m, "Task: Follow-up\n"), "%s", m);
    free(m);
}

Test(prompt, a_long_result_is_cut_on_a_character_boundary)
{
    size_t n = PROMPT_BLOCKER_MAX + 100;
    char *big = malloc(n + 1);
    for (size_t i = 0; i + 1 < n; i += 2)
        memcpy(big + i, "\xc3\xa9", 2); /* é */
    big[n] = '\0';
    char *m = s_with_result(json_string(big));
    const char *cut = strstr(m, " [...]");
    cr_assert_not_null(cut, "not cut: %zu bytes", strlen(m));
    cr_assert_neq((unsigned char)cut[-1], 0xc3, "cut inside a character");
    free(big);
    free(m);
}
