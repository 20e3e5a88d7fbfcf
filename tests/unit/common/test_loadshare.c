/* test_loadshare.c - unit tests for common/loadshare.c: a worker yields
 * a connection only to a live sibling holding fewer (beyond the margin),
 * and gives one back only beyond a wider one;
 * siblings without a recent heartbeat are not waited for; slots of gone
 * processes are taken again; a closed share frees its slot. Siblings are
 * other processes (fork), each with its own mapping of the file. */
#include "../../../common/loadshare.c"

#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/wait.h>

static char s_dir[] = "/tmp/vapora-loadshare-XXXXXX";
static char s_path[80];

static void s_setup(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/backend.accept", s_dir);
}

static void s_teardown(void)
{
    unlink(s_path);
    rmdir(s_dir);
}

TestSuite(loadshare, .init = s_setup, .fini = s_teardown);

/* A sibling process: opens the share, publishes conns at beat_ms, then
 * holds its slot until the parent writes a byte to the pipe (or exits at
 * once, leaving its slot behind, when hold is false). */
static pid_t s_sibling(unsigned conns, uint64_t beat_ms, bool hold, int *release)
{
    int up[2], down[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        loadshare_t *a = loadshare_open(s_path);
        if (a)
            loadshare_set(a, conns, beat_ms);
        char c = a ? 'y' : 'n';
        (void)!write(up[1], &c, 1);
        if (hold)
            (void)!read(down[0], &c, 1);
        if (a && hold)
            loadshare_close(&a);
        _exit(0);
    }
    char c = 0;
    cr_assert_eq(read(up[0], &c, 1), 1);
    cr_assert_eq(c, 'y', "the sibling could not open the share");
    close(up[0]), close(up[1]), close(down[0]);
    *release = down[1];
    return pid;
}

static void s_end(pid_t pid, int release)
{
    (void)!write(release, "x", 1);
    close(release);
    waitpid(pid, NULL, 0);
}

Test(loadshare, a_lone_worker_never_yields)
{
    loadshare_t *a = loadshare_open(s_path);
    cr_assert_not_null(a);
    loadshare_set(a, 1000, 5000);
    cr_assert_not(loadshare_should_yield(a, 1000, 5000));
    loadshare_close(&a);
    cr_assert_null(a);
}

/* 40 against a sibling's 20: yields; 21 against 20 is within the margin. */
Test(loadshare, a_worker_yields_to_a_live_sibling_holding_fewer)
{
    int rel;
    pid_t sib = s_sibling(20, 10000, true, &rel);
    loadshare_t *a = loadshare_open(s_path);
    cr_assert_not_null(a);
    cr_assert(loadshare_should_yield(a, 40, 10500));
    cr_assert_not(loadshare_should_yield(a, 21, 10500));
    cr_assert_not(loadshare_should_yield(a, 20, 10500));
    /* The sibling's heartbeat is 10 s old at 20000: not waited for. */
    cr_assert_not(loadshare_should_yield(a, 40, 10000 + LOADSHARE_STALE_MS + 1));
    s_end(sib, rel);
    /* Its slot is free again: nobody to yield to. */
    cr_assert_not(loadshare_should_yield(a, 40, 10500));
    loadshare_close(&a);
}

/* Giving a connection back takes a wider gap than yielding one: 40
 * against 20 is 14 over (20 + 4 + 20/8), 20 against 0 is 16 over; 26
 * against 20 and 4 against 0 (which yield) are not over; a stale sibling
 * is not given anything. */
Test(loadshare, a_worker_sheds_only_far_above_a_live_sibling)
{
    int rel;
    pid_t sib = s_sibling(20, 10000, true, &rel);
    loadshare_t *a = loadshare_open(s_path);
    cr_assert_not_null(a);
    cr_assert_eq(loadshare_shed_excess(a, 40, 10500), 14);
    cr_assert(loadshare_should_yield(a, 26, 10500));
    cr_assert_eq(loadshare_shed_excess(a, 26, 10500), 0);
    cr_assert_eq(loadshare_shed_excess(a, 40, 10000 + LOADSHARE_STALE_MS + 1), 0);
    s_end(sib, rel);
    sib = s_sibling(0, 10000, true, &rel);
    cr_assert_eq(loadshare_shed_excess(a, 20, 10500), 16);
    cr_assert(loadshare_should_yield(a, 4, 10500));
    cr_assert_eq(loadshare_shed_excess(a, 4, 10500), 0);
    s_end(sib, rel);
    cr_assert_eq(loadshare_shed_excess(a, 40, 10500), 0); /* nobody left */
    loadshare_close(&a);
}

/* A sibling that has not said it lives yet (no heartbeat) is not waited
 * for. */
Test(loadshare, a_sibling_without_a_heartbeat_is_not_waited_for)
{
    int rel;
    pid_t sib = s_sibling(0, 0, true, &rel);
    loadshare_t *a = loadshare_open(s_path);
    cr_assert_not(loadshare_should_yield(a, 500, 10000));
    loadshare_close(&a);
    s_end(sib, rel);
}

/* Every slot held by processes that are gone: the next worker takes one of
 * theirs. */
Test(loadshare, slots_of_gone_processes_are_taken_again)
{
    for (int i = 0; i < LOADSHARE_SLOTS; i++) {
        int rel;
        pid_t p = s_sibling(1, 1, false, &rel); /* exits without closing */
        waitpid(p, NULL, 0);
        close(rel);
    }
    loadshare_t *a = loadshare_open(s_path);
    cr_assert_not_null(a, "no slot was taken back: %s", strerror(errno));
    loadshare_close(&a);
}
