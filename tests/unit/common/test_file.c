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
#include <sys/mount.h>
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

/* A shared mapping owns its blocks: writing any page of it later cannot
 * meet a full disk (SIGBUS). On a full file system, mapping fails with
 * ENOSPC at once. The full case needs a small tmpfs (root). */
Test(file, shared_mappings_are_preallocated_and_a_full_disk_is_enospc)
{
    char dir[] = "/tmp/vapora-file-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/map", dir);
    void *p = file_map_shared(path, 1 << 20, NULL);
    cr_assert_not_null(p);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_geq((long long)st.st_blocks * 512, 1 << 20, "the file is sparse");
    munmap(p, 1 << 20);
    unlink(path);
    char opts[32];
    snprintf(opts, sizeof opts, "size=%d", 64 << 10);
    bool mounted = mount("tmpfs", dir, "tmpfs", 0, opts) == 0;
    if (mounted) {
        errno = 0;
        cr_assert_null(file_map_shared(path, 1 << 20, NULL));
        cr_assert_eq(errno, ENOSPC);
        cr_assert_not_null(p = file_map_shared(path, 16 << 10, NULL), "room for 16 KiB");
        memset(p, 1, 16 << 10);
        munmap(p, 16 << 10);
        cr_assert_eq(umount(dir), 0);
    }
    cr_assert_eq(rmdir(dir), 0);
    if (!mounted)
        cr_log_warn("no tmpfs (not root?): the full-disk half did not run");
}
