/* test_file.c - unit tests for common/file.c: shared mappings, lock files and mkdir -p. */
#include "file.h"

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

/* Two mappings of one file see each other's writes (as two workers do);
 * a lock file is created and held; a path that cannot exist fails. */
Test(file, shared_files_and_lock_files)
{
    char dir[] = "/tmp/vapora-file-XXXXXX";
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

Test(file, mkdirs_creates_parents_and_accepts_existing)
{
    char base[64], deep[128], file[160];
    snprintf(base, sizeof base, "/tmp/vapora-dirmake-%d", (int)getpid());
    snprintf(deep, sizeof deep, "%s/a/b/c", base);
    cr_assert_eq(file_mkdirs(deep, 0700), 0);
    struct stat st;
    cr_assert_eq(stat(deep, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(file_mkdirs(deep, 0700), 0, "an existing directory is fine");
    snprintf(file, sizeof file, "%s/f", base);
    int fd = open(file, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(deep, sizeof deep, "%s/f/x", base);
    cr_assert_eq(file_mkdirs(deep, 0700), -ENOTDIR);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    cr_assert_eq(system(cmd), 0);
}
