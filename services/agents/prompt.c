/* prompt.c - see prompt.h. */
#include "prompt.h"

#include <stdlib.h>
#include <string.h>

#include "sbuf.h"

static const char *s_str(const json_t *o, const char *k, const char *def)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v && *v ? v : def;
}

/* The text of a blocker's result: its "content" when it has one, the
 * string when it is one (a person may write any JSON value there), else
 * the JSON, cut to PROMPT_BLOCKER_MAX bytes (on a UTF-8 boundary). */
static void s_result(sbuf_t *b, const json_t *result)
{
    const char *content = json_is_string(result)
                              ? json_string_value(result)
                              : json_string_value(json_object_get(result, "content"));
    char *dump = content ? NULL : json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *text = content ? content : dump ? dump : "";
    size_t n = strlen(text);
    if (n > PROMPT_BLOCKER_MAX) {
        n = PROMPT_BLOCKER_MAX;
        while (n && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    sbuf_append(b, text, n);
    if (n < strlen(text))
        sbuf_puts(b, " [...]");
    free(dump);
}

char *prompt_user_message(const json_t *task, const json_t *blockers)
{
    sbuf_t b = {0};
    sbuf_printf(&b, "Task: %s\nType: %s\nPriority: %s\n", s_str(task, "title", "(untitled)"),
                s_str(task, "type", "feature"), s_str(task, "priority", "medium"));
    const char *desc = s_str(task, "description", NULL);
    if (desc)
        sbuf_printf(&b, "\nDescription:\n%s\n", desc);
    size_t i;
    json_t *t;
    json_array_foreach(blockers, i, t)
    {
        const json_t *res = json_object_get(t, "result");
        if (!res || json_is_null(res))
            continue;
        sbuf_printf(&b, "\nResult of \"%s\", which this task was blocked by:\n",
                    s_str(t, "title", "a prior task"));
        s_result(&b, res);
        sbuf_puts(&b, "\n");
    }
    return sbuf_steal(&b);
}
