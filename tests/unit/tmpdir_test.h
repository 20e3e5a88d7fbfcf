/* tmpdir_test.h - what the unit tests on real files share (the router's
 * ledger and book, the agents' database and slots, common/sqldb and
 * sqlwal): a fresh temporary directory per test, a file path in it, and
 * its removal. Header only, included once per test file; each test runs in
 * a process of its own (criterion), so the statics are per test. */
#ifndef VAPORA_TEST_TMPDIR_TEST_H
#define VAPORA_TEST_TMPDIR_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static char s_dir[64];
static char s_path[128];

/* Makes /tmp/<prefix>-XXXXXX and sets s_path to <that>/<file>. */
static inline void tmpdir_make(const char *prefix, const char *file)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/%s-XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/%s", s_dir, file);
}

/* Removes the directory and everything in it. */
static inline void tmpdir_remove(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

#endif
