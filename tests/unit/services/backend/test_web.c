/* test_web.c - unit tests for services/backend/web.c: what a web root
 * loads (the page, app/ and vendor/PACKAGE/ files; no dotfiles, symlinks,
 * other folders or deeper files), a missing root, and the file limit. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web.h"

static char s_root[256];

static void s_put(const char *name, const char *text)
{
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s/%s", s_root, name);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/vapora-web-%d", (int)getpid());
    mkdir(s_root, 0700);
}

static void s_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(web, .init = s_setup, .fini = s_teardown);

Test(web, loads_the_page_app_and_vendor_files_only)
{
    s_put("index.html", "12345");
    s_put("app/a.js", "123");
    s_put("app/.hidden.js", "secret");
    s_put("app/sub/deep.js", "deep");
    s_put("vendor/lib-1.0/lib.mjs", "1234567");
    s_put("vendor/lib-1.0/LICENSE", "MIT");
    s_put("vendor/.git/config", "secret");
    s_put("other/x.js", "not served");
    s_put("outside.txt", "secret");
    char link[512], target[512];
    snprintf(link, sizeof link, "%s/app/link.js", s_root);
    snprintf(target, sizeof target, "%s/outside.txt", s_root);
    cr_assert_eq(symlink(target, link), 0);
    char err[256] = "";
    web_t *w = web_new(s_root, err, sizeof err);
    cr_assert_not_null(w, "%s", err);
    cr_assert_eq(web_files(w), 4,
                 "index.html, app/a.js, vendor/lib-1.0/{lib.mjs,LICENSE}");
    cr_assert_eq(web_bytes(w), 5 + 3 + 7 + 3);
    web_destroy(&w);
    cr_assert_null(w);
    web_destroy(NULL);
}

Test(web, a_missing_root_serves_nothing_and_is_no_error)
{
    char err[256] = "";
    web_t *w = web_new("/nonexistent/web/root", err, sizeof err);
    cr_assert_not_null(w);
    cr_assert_eq(web_files(w), 0);
    web_destroy(&w);
}

Test(web, too_many_files_is_an_error)
{
    for (unsigned i = 0; i <= WEB_MAX_FILES; i++) {
        char name[64];
        snprintf(name, sizeof name, "app/f%u.js", i);
        s_put(name, "x");
    }
    char err[256] = "";
    web_t *w = web_new(s_root, err, sizeof err);
    cr_assert_null(w);
    cr_assert(strstr(err, "512 files"), "%s", err);
}
