/* test_validate.c - unit tests for services/backend/validate.c: each
 * failure names its field, and an error keeps its own text. */
#include <criterion/criterion.h>
#include <string.h>

#include "rules.h"
#include "validate.h"

Test(validate, fields_name_their_codes)
{
    json_t *b = json_pack("{s:s,s:s,s:i,s:[s,s],s:i}", "title", "", "type", "nope",
                          "progress", 101, "blocked_by", "a", "a", "extra", 1);
    verr_t e;
    const char *s;
    static const char *const allowed[] = {"title", "type", "progress", "blocked_by",
                                          NULL};
    cr_assert_not(validate_known_fields(b, allowed, &e));
    cr_assert_str_eq(e.code, "unknown_field");
    cr_assert(strstr(e.msg, "extra"));
    cr_assert_not(validate_string(b, "title", true, 1, 10, &s, &e));
    cr_assert_str_eq(e.code, "invalid_title");
    cr_assert_not(validate_string(b, "missing", true, 1, 10, &s, &e));
    cr_assert_str_eq(e.code, "invalid_missing");
    cr_assert(validate_string(b, "missing", false, 1, 10, &s, &e));
    cr_assert_null(s);
    cr_assert_not(validate_enum(b, "type", false, rules_is_type, &s, &e));
    cr_assert_str_eq(e.code, "invalid_type");
    cr_assert_not(validate_number(b, "progress", 0, 100, false, &e));
    cr_assert_str_eq(e.code, "invalid_progress");
    cr_assert_not(validate_id_array(b, "blocked_by", &e));
    cr_assert_str_eq(e.code, "invalid_blocked_by");
    json_decref(b);
    b = json_pack("{s:s}", "title", "h\xc3\xa9llo"); /* 5 characters, 6 bytes */
    cr_assert(validate_string(b, "title", true, 1, 5, &s, &e));
    cr_assert_not(validate_string(b, "title", true, 1, 4, &s, &e));
    json_decref(b);
}

/* An error owns its code: a later failure (into another verr_t) does not
 * change what an earlier one said. */
Test(validate, an_error_keeps_its_code_after_later_failures)
{
    json_t *b = json_pack("{s:i,s:i}", "title", 1, "priority", 2);
    verr_t first, second;
    const char *s;
    cr_assert_not(validate_string(b, "title", true, 1, 10, &s, &first));
    cr_assert_not(validate_string(b, "priority", true, 1, 10, &s, &second));
    cr_assert_str_eq(first.code, "invalid_title");
    cr_assert_str_eq(second.code, "invalid_priority");
    cr_assert_not(validate_error(&first, "empty_patch", "no field: %d", 0));
    cr_assert_str_eq(first.code, "empty_patch");
    cr_assert_str_eq(first.msg, "no field: 0");
    json_decref(b);
}
