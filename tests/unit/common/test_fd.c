/* test_fd.c - unit tests for common/fd.c: whole writes. */
#include "fd.h"

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

Test(fd, fd_write_all_writes_everything_or_says_why)
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
