/* test_shwake.c - unit tests for common/shwake.c: a kick in one process
 * wakes a sleeper in another; waits time out; no kick is lost. */
#include "shwake.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_dir[] = "/tmp/vapora-shwake-XXXXXX";
static char s_path[64];

static void s_setup(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/wake", s_dir);
}

static void s_teardown(void)
{
    unlink(s_path);
    rmdir(s_dir);
}

TestSuite(shwake, .init = s_setup, .fini = s_teardown);

/* A child sleeps on the word (up to 10 s); the parent's kick, through its
 * own mapping of the same file, wakes it: the child reports a kick, not a
 * timeout. */
Test(shwake, a_kick_wakes_another_process)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        shwake_t *w = shwake_open(s_path);
        uint32_t seen = shwake_seq(w);
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        bool kicked = w && shwake_wait(w, seen, 10000);
        _exit(kicked ? 0 : 1);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    usleep(50 * 1000); /* most likely asleep by now; a kick before is not lost either */
    shwake_t *w = shwake_open(s_path);
    cr_assert_not_null(w);
    shwake_kick(w);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the child was not woken (status %d)", st);
    shwake_close(&w);
    cr_assert_null(w);
    close(ready[0]);
    close(ready[1]);
}

/* With no kick the wait times out; a kick made after the sequence was read
 * (before the wait) is seen at once. */
Test(shwake, timeouts_and_early_kicks)
{
    shwake_t *w = shwake_open(s_path);
    cr_assert_not_null(w);
    uint32_t seen = shwake_seq(w);
    cr_assert_not(shwake_wait(w, seen, 20), "woken with no kick");
    shwake_kick(w);
    cr_assert_neq(shwake_seq(w), seen);
    cr_assert(shwake_wait(w, seen, 10000), "a kick before the wait was lost");
    shwake_close(&w);
}

/* Without a mapping (NULL) the calls still work within one process. */
Test(shwake, null_handle_is_private)
{
    uint32_t seen = shwake_seq(NULL);
    cr_assert_not(shwake_wait(NULL, seen, 10));
    shwake_kick(NULL);
    cr_assert(shwake_wait(NULL, seen, 10000));
    shwake_close(NULL);
}

/* A path that cannot be mapped gives NULL, not a crash. */
Test(shwake, unmappable_path)
{
    cr_assert_null(shwake_open("/nonexistent-dir/wake"));
}
