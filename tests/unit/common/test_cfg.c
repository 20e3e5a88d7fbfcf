/* test_cfg.c - unit tests for common/cfg.c: parsing through libinih,
 * ${VAR} interpolation, typed getters, section order, schema warnings and
 * list splitting. Every test frees what it loads so valgrind stays clean. */
#define _GNU_SOURCE
#include "cfg.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRLEN 512

static cfg_t *s_load(const char *text, char *err)
{
    err[0] = '\0';
    return cfg_load_string(text, "test.conf", err, ERRLEN);
}

/* Loads text that must fail and checks that err contains want. */
static void s_load_fails(const char *text, const char *want)
{
    char err[ERRLEN];
    cfg_t *cfg = s_load(text, err);
    cr_assert_null(cfg, "loaded although it should fail with: %s", want);
    cr_assert(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

/* Loads text that must succeed and returns [s] k. */
static char *s_value(const char *text, const char *section, const char *key)
{
    char err[ERRLEN];
    cfg_t *cfg = s_load(text, err);
    cr_assert_not_null(cfg, "load failed: %s", err);
    const char *v = cfg_get(cfg, section, key);
    char *copy = v ? strdup(v) : NULL;
    cfg_destroy(&cfg);
    return copy;
}

static void s_assert_value(const char *text, const char *section, const char *key,
                           const char *want)
{
    char *v = s_value(text, section, key);
    cr_assert_not_null(v, "[%s] %s is absent", section, key);
    cr_assert_str_eq(v, want);
    free(v);
}

Test(cfg, plain_values)
{
    char err[ERRLEN];
    cfg_t *cfg = s_load("# comment\n"
                        "[service:backend]\n"
                        "listen   =   0.0.0.0:8001   \n"
                        "workers=4\n"
                        "Listen = other\n"
                        "\n"
                        "[nats]\n"
                        "url = nats://127.0.0.1:4222\n",
                        err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_str_eq(cfg_get(cfg, "service:backend", "listen"), "0.0.0.0:8001");
    cr_assert_str_eq(cfg_get(cfg, "service:backend", "workers"), "4");
    cr_assert_str_eq(cfg_get(cfg, "service:backend", "Listen"), "other");
    cr_assert_str_eq(cfg_get(cfg, "nats", "url"), "nats://127.0.0.1:4222");
    cr_assert_null(cfg_get(cfg, "nats", "missing"));
    cr_assert_null(cfg_get(cfg, "missing", "url"));
    cr_assert_str_eq(cfg_get_str(cfg, "nats", "missing", "dflt"), "dflt");
    cr_assert_str_eq(cfg_get_str(cfg, "nats", "url", "dflt"), "nats://127.0.0.1:4222");
    cr_assert(cfg_has_section(cfg, "nats"));
    cr_assert_not(cfg_has_section(cfg, "NATS"));
    cfg_destroy(&cfg);
    cr_assert_null(cfg);
    cfg_destroy(&cfg);
    cfg_destroy(NULL);
}

Test(cfg, inline_comments)
{
    const char *text = "[a]\n"
                       "k = value ; a comment\n"
                       "semi = a;b\n"
                       "tab = x\t; tab comment\n"
                       "; whole line\n"
                       "  # indented comment\n"
                       "empty =\n";
    s_assert_value(text, "a", "k", "value");
    s_assert_value(text, "a", "semi", "a;b");
    s_assert_value(text, "a", "tab", "x");
    s_assert_value(text, "a", "empty", "");
}

Test(cfg, env_set)
{
    setenv("CFGT_A", "hello", 1);
    s_assert_value("[a]\nk = ${CFGT_A}\n", "a", "k", "hello");
    s_assert_value("[a]\nk = pre-${CFGT_A}-${CFGT_A}.post\n", "a", "k",
                   "pre-hello-hello.post");
    setenv("CFGT_A", "", 1);
    s_assert_value("[a]\nk = <${CFGT_A}>\n", "a", "k", "<>");
    unsetenv("CFGT_A");
}

Test(cfg, env_unset_is_error)
{
    char err[ERRLEN];
    unsetenv("CFGT_UNSET");
    cfg_t *cfg = s_load("[backend]\n"
                        "database = x.db\n"
                        "jwt_secret = ${CFGT_UNSET}\n",
                        err);
    cr_assert_null(cfg);
    cr_assert_str_eq(err, "test.conf:3: [backend] jwt_secret: environment "
                          "variable CFGT_UNSET is not set and has no "
                          "default");
}

Test(cfg, env_default)
{
    const char *text = "[a]\nk = ${CFGT_D:-fallback value}\n";
    unsetenv("CFGT_D");
    s_assert_value(text, "a", "k", "fallback value");
    setenv("CFGT_D", "", 1);
    s_assert_value(text, "a", "k", "fallback value");
    setenv("CFGT_D", "real", 1);
    s_assert_value(text, "a", "k", "real");
    unsetenv("CFGT_D");
    s_assert_value("[a]\nk = [${CFGT_D:-}]\n", "a", "k", "[]");
    s_assert_value("[a]\nk = ${CFGT_D:-http://h:1/x}\n", "a", "k", "http://h:1/x");
}

Test(cfg, dollar_escapes)
{
    s_assert_value("[a]\nk = cost $$5\n", "a", "k", "cost $5");
    s_assert_value("[a]\nk = $${HOME}\n", "a", "k", "${HOME}");
    s_assert_value("[a]\nk = $$$$\n", "a", "k", "$$");
    s_assert_value("[a]\nk = a$b $\n", "a", "k", "a$b $");
}

Test(cfg, unterminated_and_invalid_expressions)
{
    s_load_fails("[a]\nx = 1\n[backend]\njwt_secret = ${CFGT_X\n",
                 "test.conf:4: [backend] jwt_secret: unterminated \"${\"");
    s_load_fails("[a]\nk = ${}\n", "test.conf:2: [a] k: invalid expression");
    s_load_fails("[a]\nk = ${A B}\n", "invalid expression \"${A B}\"");
    s_load_fails("[a]\nk = ${1A}\n", "invalid expression");
    s_load_fails("[a]\nk = ${A:=b}\n", "invalid expression");
    s_load_fails("[a]\nk = ${A:-${B}}\n", "invalid expression");
}

Test(cfg, getter_long)
{
    char err[ERRLEN];
    long v = 0;
    cfg_t *cfg = s_load("[service:backend]\nworkers = 8\nbad = abc\n"
                        "big = 100\nneg = -3\nhuge = 99999999999999999999\n",
                        err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(
        cfg_get_long(cfg, "service:backend", "workers", 1, 1, 64, &v, err, ERRLEN), 0);
    cr_assert_eq(v, 8);
    cr_assert_eq(
        cfg_get_long(cfg, "service:backend", "absent", 2, 1, 64, &v, err, ERRLEN), 0);
    cr_assert_eq(v, 2);
    cr_assert_eq(cfg_get_long(cfg, "service:backend", "neg", 0, -5, 5, &v, err, ERRLEN),
                 0);
    cr_assert_eq(v, -3);
    v = 77;
    cr_assert_eq(cfg_get_long(cfg, "service:backend", "bad", 1, 1, 64, &v, err, ERRLEN),
                 -EINVAL);
    cr_assert_str_eq(err, "[service:backend] bad: \"abc\" is not a whole "
                          "number");
    cr_assert_eq(v, 77);
    cr_assert_eq(cfg_get_long(cfg, "service:backend", "big", 1, 1, 64, &v, err, ERRLEN),
                 -EINVAL);
    cr_assert_str_eq(err, "[service:backend] big: \"100\" must be between 1 "
                          "and 64");
    cr_assert_eq(
        cfg_get_long(cfg, "service:backend", "huge", 1, 1, 64, &v, err, ERRLEN),
        -EINVAL);
    cr_assert(strstr(err, "must be between 1 and 64"), "%s", err);
    cfg_destroy(&cfg);
}

Test(cfg, getter_double)
{
    char err[ERRLEN];
    double d = 0;
    cfg_t *cfg = s_load("[model:m]\nin = 2.5\nout = cheap\nneg = -1\n", err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_get_double(cfg, "model:m", "in", 0, 0, 1000, &d, err, ERRLEN), 0);
    cr_assert_float_eq(d, 2.5, 1e-12);
    cr_assert_eq(cfg_get_double(cfg, "model:m", "absent", 0.75, 0, 1, &d, err, ERRLEN),
                 0);
    cr_assert_float_eq(d, 0.75, 1e-12);
    cr_assert_eq(cfg_get_double(cfg, "model:m", "out", 0, 0, 1000, &d, err, ERRLEN),
                 -EINVAL);
    cr_assert_str_eq(err, "[model:m] out: \"cheap\" is not a number");
    cr_assert_eq(cfg_get_double(cfg, "model:m", "neg", 0, 0, 1000, &d, err, ERRLEN),
                 -EINVAL);
    cr_assert_str_eq(err, "[model:m] neg: \"-1\" must be between 0 and 1000");
    cfg_destroy(&cfg);
}

Test(cfg, getter_bool)
{
    static const char *const yes[] = {"true", "YES", "On", "1"};
    static const char *const no[] = {"false", "No", "OFF", "0"};
    char err[ERRLEN], text[64];
    bool b;
    for (size_t i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), "[r]\nt = %s\nf = %s\n", yes[i], no[i]);
        cfg_t *cfg = s_load(text, err);
        cr_assert_not_null(cfg, "%s", err);
        b = false;
        cr_assert_eq(cfg_get_bool(cfg, "r", "t", false, &b, err, ERRLEN), 0);
        cr_assert(b, "%s should be true", yes[i]);
        cr_assert_eq(cfg_get_bool(cfg, "r", "f", true, &b, err, ERRLEN), 0);
        cr_assert_not(b, "%s should be false", no[i]);
        cfg_destroy(&cfg);
    }
    cfg_t *cfg = s_load("[r]\nx = maybe\n", err);
    cr_assert_eq(cfg_get_bool(cfg, "r", "absent", true, &b, err, ERRLEN), 0);
    cr_assert(b);
    cr_assert_eq(cfg_get_bool(cfg, "r", "x", true, &b, err, ERRLEN), -EINVAL);
    cr_assert(strstr(err, "[r] x: \"maybe\" is not a boolean"), "%s", err);
    cfg_destroy(&cfg);
}

/* A word among choices, whatever its case, gives its index; absent, the
 * default; another word, an error that lists the choices. */
Test(cfg, getter_choice)
{
    static const char *const words[] = {"normal", "full", NULL};
    char err[ERRLEN];
    int v = -1;
    cfg_t *cfg = s_load("[r]\na = full\nb = NORMAL\nc = fsync\nd =\n", err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_get_choice(cfg, "r", "a", words, 0, &v, err, ERRLEN), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(cfg_get_choice(cfg, "r", "b", words, 1, &v, err, ERRLEN), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(cfg_get_choice(cfg, "r", "absent", words, 1, &v, err, ERRLEN), 0);
    cr_assert_eq(v, 1);
    v = 7;
    cr_assert_eq(cfg_get_choice(cfg, "r", "c", words, 0, &v, err, ERRLEN), -EINVAL);
    cr_assert_str_eq(err, "[r] c: \"fsync\" is not one of normal, full");
    cr_assert_eq(v, 7, "a refused value leaves *out alone");
    cr_assert_eq(cfg_get_choice(cfg, "r", "d", words, 0, &v, err, ERRLEN), -EINVAL);
    cr_assert_str_eq(err, "[r] d: \"\" is not one of normal, full");
    /* More choices than the message holds: as many as fit, then "...". */
    const char *many[41];
    for (int i = 0; i < 40; i++)
        many[i] = i % 2 ? "a-rather-long-choice-odd" : "a-rather-long-choice-even";
    many[40] = NULL;
    char big[1024];
    cr_assert_eq(cfg_get_choice(cfg, "r", "c", many, 0, &v, big, sizeof big), -EINVAL);
    size_t n = strlen(big);
    cr_assert(n > 200 && strcmp(big + n - 3, "...") == 0, "%s", big);
    cr_assert(
        strstr(big, "not one of a-rather-long-choice-even, a-rather-long-choice-odd, "),
        "%s", big);
    cfg_destroy(&cfg);
}

Test(cfg, duplicate_keys_and_sections)
{
    char err[ERRLEN];
    unsetenv("CFGT_DUP");
    cfg_t *cfg = s_load("[a]\nk = ${CFGT_DUP}\nj = 1\nk = second\n"
                        "[b]\nx = 1\n"
                        "[a]\nk = third\nz = 2\n",
                        err);
    cr_assert_not_null(cfg, "only the winning value is expanded: %s", err);
    cr_assert_str_eq(cfg_get(cfg, "a", "k"), "third");
    cr_assert_eq(cfg_section_count(cfg), 2);
    cr_assert_eq(cfg_key_count(cfg, "a"), 3);
    cr_assert_str_eq(cfg_key_name(cfg, "a", 0), "k");
    cr_assert_str_eq(cfg_key_name(cfg, "a", 1), "j");
    cr_assert_str_eq(cfg_key_name(cfg, "a", 2), "z");
    cr_assert_null(cfg_key_name(cfg, "a", 3));
    cr_assert_eq(cfg_key_count(cfg, "nope"), 0);
    cr_assert_null(cfg_key_name(cfg, "nope", 0));
    cfg_destroy(&cfg);
}

Test(cfg, section_order)
{
    char err[ERRLEN];
    cfg_t *cfg = s_load("[supervisor]\nadmin = :9000\n"
                        "[agents]\n"
                        "[service:b]\nlisten = :2\n"
                        "[service:a]\nlisten = :1\n"
                        "[supervisor]\ndata_dir = /var\n",
                        err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_section_count(cfg), 4);
    cr_assert_str_eq(cfg_section_name(cfg, 0), "supervisor");
    cr_assert_str_eq(cfg_section_name(cfg, 1), "agents");
    cr_assert_str_eq(cfg_section_name(cfg, 2), "service:b");
    cr_assert_str_eq(cfg_section_name(cfg, 3), "service:a");
    cr_assert_null(cfg_section_name(cfg, 4));
    cr_assert(cfg_has_section(cfg, "agents"), "a section without keys");
    cr_assert_eq(cfg_key_count(cfg, "agents"), 0);
    cr_assert_eq(cfg_key_count(cfg, "supervisor"), 2);
    cfg_destroy(&cfg);
}

typedef struct warns {
    char msg[8][128];
    size_t n;
} warns_t;

static void s_collect(const char *msg, void *ud)
{
    warns_t *w = ud;
    if (w->n < 8)
        snprintf(w->msg[w->n], sizeof(w->msg[0]), "%s", msg);
    w->n++;
}

Test(cfg, schema_patterns)
{
    static const char *const keys[] = {"a", NULL};
    static const cfg_schema_t schema[] = {{"exact", keys, NULL}, {"t:*", keys, "svc"}};
    char err[ERRLEN];
    warns_t w = {0};
    cfg_t *cfg = s_load("[exact]\na=1\n[t:x]\na=1\n[t:x:y]\na=1\n[t]\na=1\n"
                        "[exactly]\na=1\n[u:x]\na=1\n",
                        err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_check_schema(cfg, schema, 2, s_collect, &w), 3);
    cr_assert_str_eq(w.msg[0], "unknown section [t]");
    cr_assert_str_eq(w.msg[1], "unknown section [exactly]");
    cr_assert_str_eq(w.msg[2], "unknown section [u:x]");
    cfg_destroy(&cfg);
    cr_assert_null(cfg_section_reader(schema, 2, "exact"));
    cr_assert_str_eq(cfg_section_reader(schema, 2, "t:x"), "svc");
    cr_assert_null(cfg_section_reader(schema, 2, "unknown"));
}

/* Two tables make one schema; the first match wins. Keys-only checking
 * passes over the sections no table knows and still names unknown keys. */
Test(cfg, schema_tables_and_keys_only)
{
    static const char *const a_keys[] = {"a", NULL};
    static const char *const b_keys[] = {"b", NULL};
    static const cfg_schema_t a[] = {{"shared", a_keys, NULL}};
    static const cfg_schema_t b[] = {{"own:*", b_keys, "svc"}, {"shared", b_keys, "x"}};
    static const cfg_schema_table_t ta = {a, 1}, tb = {b, 2};
    static const cfg_schema_table_t *const both[] = {&ta, &tb};
    char err[ERRLEN];
    cfg_t *cfg = s_load("[shared]\na=1\nb=1\n[own:x]\nb=1\nc=1\n[other]\nz=1\n", err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg_schema_find(both, 2, "shared"), &a[0]);
    cr_assert_eq(cfg_schema_find(both, 2, "own:y"), &b[0]);
    cr_assert_null(cfg_schema_find(both, 2, "other"));
    cr_assert_null(cfg_schema_find(both, 1, "own:y"));
    warns_t w = {0};
    cr_assert_eq(cfg_check_tables(cfg, both, 2, s_collect, &w), 3);
    cr_assert_str_eq(w.msg[0], "unknown key 'b' in section [shared]");
    cr_assert_str_eq(w.msg[1], "unknown key 'c' in section [own:x]");
    cr_assert_str_eq(w.msg[2], "unknown section [other]");
    warns_t k = {0};
    cr_assert_eq(cfg_check_keys(cfg, both, 2, s_collect, &k), 2);
    cr_assert_str_eq(k.msg[0], "unknown key 'b' in section [shared]");
    cr_assert_str_eq(k.msg[1], "unknown key 'c' in section [own:x]");
    cr_assert_eq(cfg_check_keys(cfg, both + 1, 1, NULL, NULL), 2,
                 "[shared] takes b's keys alone, [own:x] still lacks c");
    cfg_destroy(&cfg);
}

Test(cfg, split_list)
{
    char **items;
    size_t n = cfg_split_list(" gpt-4o , claude,,  , llama3 ,", &items);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(items[0], "gpt-4o");
    cr_assert_str_eq(items[1], "claude");
    cr_assert_str_eq(items[2], "llama3");
    cfg_list_free(items, n);

    n = cfg_split_list("single", &items);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(items[0], "single");
    cfg_list_free(items, n);

    n = cfg_split_list(" , ,", &items);
    cr_assert_eq(n, 0);
    cfg_list_free(items, n);
    n = cfg_split_list(NULL, &items);
    cr_assert_eq(n, 0);
    cfg_list_free(items, n);
}

Test(cfg, load_file)
{
    char path[] = "/tmp/test_cfg_XXXXXX";
    char err[ERRLEN];
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *fp = fdopen(fd, "w");
    fputs("[nats]\nurl = nats://x:4222 ; comment\n", fp);
    fclose(fp);
    cfg_t *cfg = cfg_load(path, err, sizeof(err));
    unlink(path);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_str_eq(cfg_get(cfg, "nats", "url"), "nats://x:4222");
    cfg_destroy(&cfg);
}

Test(cfg, missing_file)
{
    char err[ERRLEN];
    cfg_t *cfg = cfg_load("/nonexistent/vapora.conf", err, sizeof(err));
    cr_assert_null(cfg);
    cr_assert_str_eq(err, "cannot open /nonexistent/vapora.conf: No such "
                          "file or directory");
    cfg = cfg_load("/tmp", err, sizeof(err));
    cr_assert_null(cfg);
    cr_assert(strstr(err, "/tmp: Is a directory"), "%s", err);
}

Test(cfg, syntax_error_line)
{
    s_load_fails("[a]\nk = 1\n\nthis is not a pair\nj = 2\n",
                 "test.conf:4: syntax error");
    s_load_fails("[a\nk = 1\n", "test.conf:1: syntax error");
    s_load_fails("[a]\n= 1\n", "test.conf:2: missing key name");
    s_load_fails("[]\nk = 1\n", "test.conf:1: empty section name");
    /* The earlier of a syntax error and one of ours is reported. */
    s_load_fails("[a]\nbad\nk = 1\n  j = 2\n", "test.conf:2: syntax error");
}

Test(cfg, key_outside_section)
{
    s_load_fails("# header\nk = 1\n[a]\nj = 2\n",
                 "test.conf:2: key 'k' outside any section");
}

Test(cfg, long_line)
{
    char text[400];
    int n = snprintf(text, sizeof(text), "[a]\nk = ");
    memset(text + n, 'x', 250);
    strcpy(text + n + 250, ":y\nj = 1\n");
    s_load_fails(text, "test.conf:2: line longer than");

    /* 198 characters plus the newline still fit inih's 200-byte buffer. */
    n = snprintf(text, sizeof(text), "[a]\nk = ");
    memset(text + n, 'x', 198 - 4);
    strcpy(text + 198 + 4, "\nj = 1\n");
    char *v = s_value(text, "a", "k");
    cr_assert_not_null(v);
    cr_assert_eq(strlen(v), 198 - 4);
    free(v);
}

Test(cfg, continuation_line)
{
    s_load_fails("[a]\nk = 1\n    j = 2\n",
                 "test.conf:3: indented line continues key 'k'");
    /* Indenting the first key of a section is fine. */
    s_assert_value("[a]\n  k = 1\n[b]\n\tj = 2\n", "b", "j", "2");
}

Test(cfg, long_section_name)
{
    char text[128];
    snprintf(text, sizeof(text), "[service:%s]\nk = 1\n",
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
    s_load_fails(text, "test.conf:1: section name longer than 49");
}
