/* test_util.c - unit tests for common/util.c: address parsing, number
 * parsing and the string buffer. */
#include "util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

Test(util, addr_split_forms)
{
    char host[64];
    int port = 0;
    cr_assert_eq(addr_split("0.0.0.0:8001", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "0.0.0.0");
    cr_assert_eq(port, 8001);
    cr_assert_eq(addr_split("[::1]:9", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 9);
    cr_assert_eq(addr_split(":80", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "");
    cr_assert_eq(addr_split("localhost", host, sizeof host, &port), -EINVAL);
    cr_assert_eq(addr_split("h:0", host, sizeof host, &port), 0);
    cr_assert_eq(port, 0);
    cr_assert_eq(addr_split("h:-1", host, sizeof host, &port), -EINVAL);
    cr_assert_eq(addr_split("h:70000", host, sizeof host, &port), -EINVAL);
    cr_assert_eq(addr_split("[::1:80", host, sizeof host, &port), -EINVAL);
}

Test(util, parse_numbers)
{
    long v;
    double d;
    cr_assert_eq(parse_long("42", 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(parse_long("101", 0, 100, &v), -ERANGE);
    cr_assert_eq(parse_long("4x", 0, 100, &v), -EINVAL);
    cr_assert_eq(parse_long("", 0, 100, &v), -EINVAL);
    cr_assert_eq(parse_double("0.5", &d), 0);
    cr_assert_float_eq(d, 0.5, 1e-12);
    cr_assert_eq(parse_double("nan", &d), -EINVAL);
    cr_assert_eq(parse_double("1e999", &d), -EINVAL);
}

Test(util, sbuf_grows_and_steals)
{
    sbuf_t b = {0};
    for (int i = 0; i < 1000; i++)
        sbuf_printf(&b, "%d,", i);
    cr_assert_eq(b.len, strlen(b.data));
    cr_assert(strncmp(b.data, "0,1,2,", 6) == 0);
    char *s = sbuf_steal(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    free(s);
    s = sbuf_steal(&b); /* an empty buffer yields "" */
    cr_assert_str_eq(s, "");
    free(s);
}

/* Two mappings of one file see each other's writes (as two workers do);
 * a lock file is created and held; a path that cannot exist fails. */
Test(util, shared_files_and_lock_files)
{
    char dir[] = "/tmp/vapora-util-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64], lock[64];
    snprintf(path, sizeof path, "%s/shared", dir);
    snprintf(lock, sizeof lock, "%s/lock", dir);
    int fd = -1;
    unsigned char *a = file_map_shared(path, 4096, &fd);
    unsigned char *b = file_map_shared(path, 4096, NULL);
    cr_assert(a && b && fd >= 0);
    a[100] = 42;
    cr_assert_eq(b[100], 42);
    munmap(a, 4096);
    munmap(b, 4096);
    close(fd);
    int l = file_lock(lock);
    cr_assert_geq(l, 0);
    int other = open(lock, O_RDWR | O_CLOEXEC);
    cr_assert_neq(flock(other, LOCK_EX | LOCK_NB), 0,
                  "a second description took a held lock");
    close(other);
    close(l);
    cr_assert_eq(file_lock("/nonexistent-dir/x.lock"), -ENOENT);
    cr_assert_null(file_map_shared("/nonexistent-dir/x", 4096, NULL));
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(util, utf8_repair_keeps_valid_text_and_replaces_the_rest)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"\xff", "\xef\xbf\xbd"},
        {"a\xc3", "a\xef\xbf\xbd"},                               /* cut at the end */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\x9f\xbf|\xf4\x8f\xbf\xbf", "\xed\x9f\xbf|\xf4\x8f\xbf\xbf"}, /* edges */
        {"x\xe2\x82y", "x\xef\xbf\xbd\xef\xbf\xbdy"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *got = utf8_repair(cases[i].in);
        cr_assert_str_eq(got, cases[i].out, "case %zu", i);
        free(got);
    }
}

Test(util, dir_make_creates_parents_and_accepts_existing)
{
    char base[64], deep[128], file[160];
    snprintf(base, sizeof base, "/tmp/vapora-dirmake-%d", (int)getpid());
    snprintf(deep, sizeof deep, "%s/a/b/c", base);
    cr_assert_eq(dir_make(deep, 0700), 0);
    struct stat st;
    cr_assert_eq(stat(deep, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(dir_make(deep, 0700), 0, "an existing directory is fine");
    snprintf(file, sizeof file, "%s/f", base);
    int fd = open(file, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(deep, sizeof deep, "%s/f/x", base);
    cr_assert_eq(dir_make(deep, 0700), -ENOTDIR);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    cr_assert_eq(system(cmd), 0);
}

Test(util, fd_write_all_writes_everything_or_says_why)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    static char big[200000]; /* more than a pipe holds: short writes */
    memset(big, 'z', sizeof big);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[1]);
        size_t got = 0;
        char buf[4096];
        ssize_t n;
        while ((n = read(p[0], buf, sizeof buf)) > 0)
            got += (size_t)n;
        _exit(got == sizeof big ? 0 : 1);
    }
    close(p[0]);
    cr_assert_eq(fd_write_all(p[1], big, sizeof big), 0);
    close(p[1]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the reader did not get it all");
    cr_assert_eq(fd_write_all(-1, "x", 1), -EBADF);
}
