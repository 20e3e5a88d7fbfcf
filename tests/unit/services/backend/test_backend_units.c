/* test_backend_units.c - unit tests for the backend's pure parts: the task
 * rules (rules.c), field validation (validate.c), cursors (store.c), tokens
 * and passwords (auth.c). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "rules.h"

Test(rules, transitions)
{
    cr_assert(rules_transition_ok("todo", "in-progress"));
    cr_assert(rules_transition_ok("in-progress", "review"));
    cr_assert(rules_transition_ok("review", "done"));
    cr_assert(rules_transition_ok("review", "in-progress"));
    cr_assert(rules_transition_ok("done", "archived"));
    cr_assert(rules_transition_ok("todo", "archived"));
    cr_assert(rules_transition_ok("todo", "todo"));
    cr_assert_not(rules_transition_ok("todo", "review"));
    cr_assert_not(rules_transition_ok("todo", "done"));
    cr_assert_not(rules_transition_ok("in-progress", "todo"));
    cr_assert_not(rules_transition_ok("done", "in-progress"));
    cr_assert_not(rules_transition_ok("archived", "todo"));
}

Test(rules, done_tasks_blockers_and_codes)
{
    char msg[128];
    cr_assert_null(
        rules_check_change("done", "archived", false, true, msg, sizeof msg));
    cr_assert_str_eq(rules_check_change("done", NULL, true, true, msg, sizeof msg),
                     "task_done");
    cr_assert_str_eq(rules_check_change("done", "review", false, true, msg, sizeof msg),
                     "invalid_transition");
    cr_assert_str_eq(
        rules_check_change("done", "archived", true, true, msg, sizeof msg),
        "task_done");
    cr_assert_str_eq(rules_check_change("todo", "done", false, true, msg, sizeof msg),
                     "invalid_transition");
    cr_assert(strstr(msg, "todo") && strstr(msg, "done"), "%s", msg);
    cr_assert_str_eq(
        rules_check_change("todo", "in-progress", false, false, msg, sizeof msg),
        "blocked");
    cr_assert_null(
        rules_check_change("todo", "in-progress", true, true, msg, sizeof msg));
    cr_assert_null(rules_check_change("todo", NULL, true, false, msg, sizeof msg));
    cr_assert(rules_is_type("tech-debt") && !rules_is_type("chore"));
    cr_assert(rules_is_priority("low") && !rules_is_priority("urgent"));
    cr_assert(rules_is_status("archived") && !rules_is_status("blocked"));
}

Test(validate, fields_name_their_codes)
{
    json_t *b = json_pack("{s:s,s:s,s:i,s:[s,s],s:i}", "title", "", "type", "nope",
                          "progress", 101, "blocked_by", "a", "a", "extra", 1);
    verr_t e;
    const char *s;
    static const char *const allowed[] = {"title", "type", "progress", "blocked_by",
                                          NULL};
    cr_assert_not(v_known_fields(b, allowed, &e));
    cr_assert_str_eq(e.code, "unknown_field");
    cr_assert(strstr(e.msg, "extra"));
    cr_assert_not(v_string(b, "title", true, 1, 10, &s, &e));
    cr_assert_str_eq(e.code, "invalid_title");
    cr_assert_not(v_string(b, "missing", true, 1, 10, &s, &e));
    cr_assert_str_eq(e.code, "invalid_missing");
    cr_assert(v_string(b, "missing", false, 1, 10, &s, &e));
    cr_assert_null(s);
    cr_assert_not(v_enum(b, "type", false, rules_is_type, &s, &e));
    cr_assert_str_eq(e.code, "invalid_type");
    cr_assert_not(v_number(b, "progress", 0, 100, false, &e));
    cr_assert_str_eq(e.code, "invalid_progress");
    cr_assert_not(v_id_array(b, "blocked_by", &e));
    cr_assert_str_eq(e.code, "invalid_blocked_by");
    json_decref(b);
    b = json_pack("{s:s}", "title", "h\xc3\xa9llo"); /* 5 characters, 6 bytes */
    cr_assert(v_string(b, "title", true, 1, 5, &s, &e));
    cr_assert_not(v_string(b, "title", true, 1, 4, &s, &e));
    json_decref(b);
}

Test(cursor, round_trip_and_rejects_garbage)
{
    char buf[64];
    int64_t pos = 0;
    cursor_encode('t', 12345, buf, sizeof buf);
    cr_assert(cursor_decode('t', buf, &pos));
    cr_assert_eq(pos, 12345);
    cr_assert_not(cursor_decode('p', buf, &pos), "a task cursor on projects");
    cr_assert_not(cursor_decode('t', "garbage!", &pos));
    cr_assert_not(cursor_decode('t', "", &pos));
    cursor_encode('t', 0, buf, sizeof buf);
    cr_assert_not(cursor_decode('t', buf, &pos), "position 0 is not a cursor");
}

static void s_backend(backend_t *b, long ttl)
{
    memset(b, 0, sizeof *b);
    cr_assert_geq(sodium_init(), 0);
    b->jwt_key_len = 32;
    b->jwt_key = malloc(32);
    memset(b->jwt_key, 7, 32);
    b->token_ttl = ttl;
}

Test(auth, tokens_verify_and_reject_forgeries)
{
    backend_t b;
    s_backend(&b, 3600);
    json_t *u =
        json_pack("{s:s,s:s,s:s}", "id", "u1", "username", "ann", "role", "member");
    char *tok = auth_issue_token(&b, u);
    cr_assert_not_null(tok);
    claims_t c;
    cr_assert_eq(auth_verify_token(&b, tok, &c), 0);
    cr_assert_str_eq(c.sub, "u1");
    cr_assert_str_eq(c.username, "ann");
    cr_assert_str_eq(c.role, "member");
    char *forged = strdup(tok);
    size_t n = strlen(forged);
    forged[n - 2] = forged[n - 2] == 'A' ? 'B' : 'A';
    cr_assert_eq(auth_verify_token(&b, forged, &c), -1);
    cr_assert_eq(auth_verify_token(&b, "not.a.token", &c), -1);
    b.jwt_key[0] = 8; /* another secret */
    cr_assert_eq(auth_verify_token(&b, tok, &c), -1);
    free(forged);
    free(tok);
    b.jwt_key[0] = 7;
    b.token_ttl = -10; /* already expired */
    tok = auth_issue_token(&b, u);
    cr_assert_eq(auth_verify_token(&b, tok, &c), -1);
    free(tok);
    json_decref(u);
    free(b.jwt_key);
}

Test(auth, passwords_hash_with_argon2id)
{
    char *h = auth_hash_password("correct horse");
    cr_assert_not_null(h);
    cr_assert(strncmp(h, "$argon2id$", 10) == 0, "%s", h);
    cr_assert_null(strstr(h, "correct horse"));
    cr_assert(auth_verify_password(h, "correct horse"));
    cr_assert_not(auth_verify_password(h, "correct horsE"));
    free(h);
}

Test(auth, repeated_failures_are_slowed_down)
{
    backend_t b;
    s_backend(&b, 60);
    char dir[] = "/tmp/vapora-fails-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    b.data_dir = dir;
    auth_failures_open(&b);
    cr_assert(b.fails_shared);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(auth_failure_delay(&b, "bob"), 0);
    cr_assert_eq(auth_failure_delay(&b, "bob"), 250);
    cr_assert_eq(auth_failure_delay(&b, "bob"), 500);
    for (int i = 0; i < 10; i++)
        auth_failure_delay(&b, "bob");
    cr_assert_eq(auth_failure_delay(&b, "bob"), 8000);
    cr_assert_eq(auth_failure_delay(&b, "alice"), 0);
    auth_forget_failures(&b, "bob");
    cr_assert_eq(auth_failure_delay(&b, "bob"), 0);
    /* A second worker on the same data_dir counts the same failures. */
    backend_t other;
    s_backend(&other, 60);
    other.data_dir = dir;
    auth_failures_open(&other);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(auth_failure_delay(i % 2 ? &b : &other, "carol"), 0);
    cr_assert_eq(auth_failure_delay(&other, "carol"), 0);
    cr_assert_eq(auth_failure_delay(&b, "carol"), 250);
    auth_failures_close(&other);
    auth_failures_close(&b);
    free(other.jwt_key);
    free(b.jwt_key);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(roles, ranks)
{
    cr_assert_lt(role_rank("viewer"), role_rank("member"));
    cr_assert_lt(role_rank("member"), role_rank("owner"));
    cr_assert_eq(role_rank("root"), -1);
    cr_assert_eq(role_rank(NULL), -1);
}
