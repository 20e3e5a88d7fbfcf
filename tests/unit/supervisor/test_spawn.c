/* test_spawn.c - unit tests for supervisor/spawn.c: fork + exec of real
 * children (sh) that check, from the inside, what they were given: the
 * listening socket as fd 3 with LISTEN_FDS/LISTEN_PID, the extra
 * environment, their own process group, an empty signal mask, SIGPIPE
 * back to its default, the working directory; PATH lookup; and the words
 * for a wait status. */
#define _GNU_SOURCE
#include "spawn.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs argv[0..] through spawn_process and returns the child's exit status
 * (or -1 when it did not exit normally). */
static int s_run(const spawn_req_t *req)
{
    char err[128];
    pid_t pid = spawn_process(req, err, sizeof err);
    cr_assert_gt(pid, 0, "%s", err);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(spawn, describes_wait_statuses)
{
    char buf[96];
    spawn_describe_status(3 << 8, buf, sizeof buf);
    cr_assert_str_eq(buf, "exit status 3");
    spawn_describe_status(SIGKILL, buf, sizeof buf);
    cr_assert_str_eq(buf, "killed by SIGKILL");
    spawn_describe_status(SIGSEGV | 0x80, buf, sizeof buf);
    cr_assert_str_eq(buf, "killed by SIGSEGV (core dumped)");
}

Test(spawn, runs_a_command_with_the_listening_socket_as_fd_3)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    /* The child reports its LISTEN_* variables and whether fd 3 is open. */
    char *const argv[] = {"sh", "-c",
                          "test \"$LISTEN_PID\" = \"$$\" && test \"$LISTEN_FDS\" = 1 "
                          "&& test -e /proc/self/fd/3 && test \"$EXTRA\" = yes",
                          NULL};
    const char *env[] = {"EXTRA=yes", NULL};
    spawn_req_t req = {.argv = argv, .listen_fd = fds[0], .env = env};
    char err[128];
    pid_t pid = spawn_process(&req, err, sizeof err);
    cr_assert_gt(pid, 0, "%s", err);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    close(fds[0]);
    close(fds[1]);
    char *const bad[] = {"/nonexistent/prog", NULL};
    spawn_req_t req2 = {.argv = bad, .listen_fd = -1};
    cr_assert_lt(spawn_process(&req2, err, sizeof err), 0);
    cr_assert(strstr(err, "not found"), "%s", err);
}

/* The child leads its own process group, starts with no signal blocked and
 * SIGPIPE at its default, whatever the supervisor blocks and ignores. */
Test(spawn, child_has_its_own_group_and_clean_signals)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* stat field 5 is the process group. */
    char *const group[] = {"sh", "-c",
                           "test \"$(cut -d' ' -f5 /proc/$$/stat)\" = \"$$\"", NULL};
    spawn_req_t req = {.argv = group, .listen_fd = -1};
    cr_assert_eq(s_run(&req), 0, "not the leader of its own process group");
    /* grep reads its own status: sh would reset the mask itself. */
    char *const mask[] = {"grep", "-Eq", "^SigBlk:[[:space:]]+0+$", "/proc/self/status",
                          NULL};
    req.argv = mask;
    cr_assert_eq(s_run(&req), 0, "signals blocked in the child");
    /* SIGPIPE (13) is bit 12: the lowest bit of the fourth hex digit from
     * the right, even when it is not ignored. */
    char *const sigpipe[] = {"grep", "-Eq",
                             "^SigIgn:[[:space:]]+[0-9a-f]*[02468ace][0-9a-f]{3}$",
                             "/proc/self/status", NULL};
    req.argv = sigpipe;
    cr_assert_eq(s_run(&req), 0, "SIGPIPE ignored in the child");
}

/* directory is the child's working directory. */
Test(spawn, runs_in_the_directory_given)
{
    char dir[] = "/tmp/vapora-spawn-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char marker[64];
    snprintf(marker, sizeof marker, "%s/marker", dir);
    int fd = open(marker, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    char *const argv[] = {"sh", "-c", "test -e marker", NULL};
    spawn_req_t req = {.argv = argv, .directory = dir, .listen_fd = -1};
    cr_assert_eq(s_run(&req), 0);
    spawn_req_t nowhere = {.argv = argv, .directory = "/no/such/dir", .listen_fd = -1};
    cr_assert_eq(s_run(&nowhere), 126, "a directory it cannot enter: exit 126");
    unlink(marker);
    rmdir(dir);
}

/* output_fd takes the child's stdout and stderr (svcheck reads a
 * service's reason there); 0 leaves them inherited. */
Test(spawn, output_fd_takes_stdout_and_stderr)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char *const argv[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    spawn_req_t req = {.argv = argv, .listen_fd = -1, .output_fd = p[1]};
    cr_assert_eq(s_run(&req), 0);
    close(p[1]);
    char buf[64] = {0};
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(p[0]);
    cr_assert_str_eq(buf, "out\nerr\n");
}

/* The supervisor's own LISTEN_* variables never reach a child, which gets
 * LISTEN_FDS only with a socket of its own. */
Test(spawn, drops_inherited_listen_variables)
{
    setenv("LISTEN_FDS", "7", 1);
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDNAMES", "x", 1);
    char *const argv[] = {"sh", "-c",
                          "test -z \"$LISTEN_FDS$LISTEN_PID$LISTEN_FDNAMES\" && "
                          "test ! -e /proc/self/fd/3",
                          NULL};
    spawn_req_t req = {.argv = argv, .listen_fd = -1};
    cr_assert_eq(s_run(&req), 0);
}

/* A socket already at fd 3 (close-on-exec, as every fd of ours) is handed
 * over in place. Checked in a child of the test: criterion keeps fd 3. */
Test(spawn, listening_fd_already_at_3_stays_open)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t helper = fork();
    cr_assert_geq(helper, 0);
    if (helper == 0) {
        if (dup3(fds[0], 3, O_CLOEXEC) != 3)
            _exit(100);
        char *const argv[] = {"sh", "-c",
                              "test -e /proc/self/fd/3 && test $LISTEN_FDS = 1", NULL};
        spawn_req_t req = {.argv = argv, .listen_fd = 3};
        char err[128];
        pid_t pid = spawn_process(&req, err, sizeof err);
        int st;
        if (pid <= 0 || waitpid(pid, &st, 0) != pid)
            _exit(101);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 102);
    }
    int st;
    cr_assert_eq(waitpid(helper, &st, 0), helper);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    close(fds[0]);
    close(fds[1]);
}

Test(spawn, resolves_commands_on_path)
{
    char *sh = spawn_resolve("sh");
    cr_assert_not_null(sh);
    cr_assert_eq(sh[0], '/', "%s", sh);
    cr_assert_eq(access(sh, X_OK), 0);
    free(sh);
    char *abs = spawn_resolve("/bin/sh");
    cr_assert_str_eq(abs, "/bin/sh");
    free(abs);
    cr_assert_null(spawn_resolve("no-such-command-on-path"));
    char plain[] = "/tmp/vapora-spawn-plain-XXXXXX";
    int fd = mkstemp(plain);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_null(spawn_resolve(plain), "a file without x bits is not executable");
    unlink(plain);
    setenv("PATH", "/nonexistent", 1);
    cr_assert_null(spawn_resolve("sh"));
}

/* An extra entry replaces the supervisor's variable of the same name (a
 * program's [program] environment): the environment the child was given
 * (/proc/PID/environ, as execve passed it) holds one entry, the extra one
 * (getenv and Go's os.Getenv take a name's first entry); a variable whose
 * name only starts the same is kept. */
Test(spawn, extra_environment_replaces_the_supervisors_own)
{
    cr_assert_eq(setenv("VAPORA_SPAWN_T", "outer", 1), 0);
    cr_assert_eq(setenv("VAPORA_SPAWN_TX", "kept", 1), 0);
    cr_assert_eq(setenv("VAPORA_WORKER_CPU", "7", 1), 0); /* ours to give, never passed on */
    char *const argv[] = {"sh", "-c",
                          "e=$(tr '\\0' '\\n' < /proc/$$/environ) && "
                          "test \"$(echo \"$e\" | grep '^VAPORA_SPAWN_T=')\" = "
                          "VAPORA_SPAWN_T=inner && "
                          "test \"$(echo \"$e\" | grep '^VAPORA_SPAWN_TX=')\" = "
                          "VAPORA_SPAWN_TX=kept && ! echo \"$e\" | grep -q VAPORA_WORKER_CPU",
                          NULL};
    const char *env[] = {"VAPORA_SPAWN_T=inner", NULL};
    spawn_req_t req = {.argv = argv, .listen_fd = -1, .env = env};
    int rc = s_run(&req);
    unsetenv("VAPORA_SPAWN_T");
    unsetenv("VAPORA_SPAWN_TX");
    unsetenv("VAPORA_WORKER_CPU");
    cr_assert_eq(rc, 0, "the child saw the supervisor's value, or both");
}
