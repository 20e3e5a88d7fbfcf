/* test_logins.c - unit tests for services/backend/logins.c: the login
 * throttle, shared by the workers of a data_dir. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "logins.h"

static char s_dir[] = "/tmp/vapora-fails-XXXXXX";

static void s_init(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_fini(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

static struct sockaddr_in s_v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 s_v6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

#define SA(x) ((const struct sockaddr *)&(x))

Test(logins, a_username_is_held_after_five_attempts, .init = s_init, .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 0);
    cr_assert(logins_shared(l));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_admit(l, "bob", NULL), 0, "attempt %d", i + 1);
    uint64_t w = logins_admit(l, "bob", NULL);
    cr_assert(w > 0 && w <= 250, "held for %llu ms", (unsigned long long)w);
    cr_assert_eq(logins_admit(l, "alice", NULL), 0, "another name is not held");
    usleep(260 * 1000);
    cr_assert_eq(logins_admit(l, "bob", NULL), 0, "the 6th after 250 ms");
    w = logins_admit(l, "bob", NULL);
    cr_assert(w > 250 && w <= 500, "then held for %llu ms", (unsigned long long)w);
    /* A success forgets the count. */
    logins_succeeded(l, "bob", NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_admit(l, "bob", NULL), 0);
    logins_destroy(&l);
    cr_assert_null(l);
}

Test(logins, the_delay_runs_from_the_failure, .init = s_init, .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 0);
    for (int i = 0; i < 5; i++)
        logins_admit(l, "dan", NULL);
    usleep(200 * 1000); /* the 5th password check took its time */
    logins_failed(l, "dan", NULL);
    uint64_t w = logins_admit(l, "dan", NULL);
    cr_assert(w > 200 && w <= 250, "held for %llu ms after the failure",
              (unsigned long long)w);
    logins_failed(l, "erin", NULL); /* never admitted: nothing */
    cr_assert_eq(logins_admit(l, "erin", NULL), 0);
    logins_destroy(&l);
}

Test(logins, every_worker_of_a_data_dir_counts_the_same_attempts, .init = s_init,
     .fini = s_fini)
{
    logins_t *a = logins_new(s_dir, 0), *b = logins_new(s_dir, 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_admit(i % 2 ? a : b, "carol", NULL), 0);
    cr_assert_gt(logins_admit(a, "carol", NULL), 0);
    cr_assert_gt(logins_admit(b, "carol", NULL), 0);
    logins_destroy(&b);
    logins_destroy(&a);
}

Test(logins, no_flood_of_other_names_resets_a_count, .init = s_init, .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 0);
    for (int i = 0; i < 5; i++)
        logins_admit(l, "victim", NULL);
    cr_assert_gt(logins_admit(l, "victim", NULL), 0);
    /* More names than the table has slots: none takes the victim's. */
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "flood-%d", i);
        logins_admit(l, name, NULL);
    }
    cr_assert_gt(logins_admit(l, "victim", NULL), 0, "the victim's count was lost");
    /* New names whose run of slots is full share the overflow entry, which
     * is held: they wait together rather than push counted names out. */
    int held = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "new-%d", i);
        held += logins_admit(l, name, NULL) > 0;
    }
    cr_assert_gt(held, 0, "no newcomer waits with the table full");
    logins_destroy(&l);
}

Test(logins, an_address_is_held_whatever_the_name, .init = s_init, .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 3);
    struct sockaddr_in one = s_v4("10.0.0.1"), two = s_v4("10.0.0.2");
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        cr_assert_eq(logins_admit(l, name, SA(one)), 0);
    }
    cr_assert_gt(logins_admit(l, "n9", SA(one)), 0, "the address is held");
    cr_assert_eq(logins_admit(l, "n9", SA(two)), 0, "another address is not");
    /* A success takes its own attempt back, not the failures. */
    logins_t *fresh = logins_new(s_dir, 3);
    struct sockaddr_in three = s_v4("10.0.0.3");
    cr_assert_eq(logins_admit(fresh, "ok-user", SA(three)), 0);
    logins_succeeded(fresh, "ok-user", SA(three));
    cr_assert_eq(logins_admit(fresh, "x1", SA(three)), 0);
    cr_assert_eq(logins_admit(fresh, "x2", SA(three)), 0);
    cr_assert_eq(logins_admit(fresh, "x3", SA(three)), 0);
    cr_assert_gt(logins_admit(fresh, "x4", SA(three)), 0);
    logins_destroy(&fresh);
    logins_destroy(&l);
}

Test(logins, an_ipv6_client_is_counted_by_its_64, .init = s_init, .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 2);
    struct sockaddr_in6 a = s_v6("2001:db8:1:2::1"), b = s_v6("2001:db8:1:2:ffff::9"),
                        c = s_v6("2001:db8:1:3::1");
    cr_assert_eq(logins_admit(l, "p", SA(a)), 0);
    cr_assert_eq(logins_admit(l, "q", SA(b)), 0);
    cr_assert_gt(logins_admit(l, "r", SA(a)), 0, "the same /64 is one client");
    cr_assert_eq(logins_admit(l, "r", SA(c)), 0, "another /64 is another");
    /* An IPv4-mapped address is the IPv4 address. */
    struct sockaddr_in6 m = s_v6("::ffff:10.1.1.1");
    struct sockaddr_in v4 = s_v4("10.1.1.1");
    cr_assert_eq(logins_admit(l, "s", SA(m)), 0);
    cr_assert_eq(logins_admit(l, "t", SA(v4)), 0);
    cr_assert_gt(logins_admit(l, "u", SA(m)), 0);
    logins_destroy(&l);
}

/* A login admitted but never checked (the server was busy) gives its
 * attempt back: a server under load does not lock a user out. */
Test(logins, an_attempt_never_checked_is_given_back, .init = s_init, .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 20);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000001)};
    const struct sockaddr *peer = (const struct sockaddr *)&a;
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(logins_admit(l, "bob", peer), 0, "attempt %d was held", i + 1);
        logins_release(l, "bob", peer);
    }
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_admit(l, "bob", peer), 0);
    cr_assert_gt(logins_admit(l, "bob", peer), 0, "five checked attempts still count");
    logins_destroy(&l);
}

/* A flood of failures from many addresses holds the username, but not at
 * the address it logged in from, until that pair fails five times itself. */
Test(logins, a_flood_cannot_lock_a_user_out_of_where_it_logged_in, .init = s_init,
     .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 20);
    struct sockaddr_in home = s_v4("127.0.0.1");
    cr_assert_eq(logins_admit(l, "agents", SA(home)), 0);
    logins_succeeded(l, "agents", SA(home));
    char ip[32];
    for (int i = 0; i < 200; i++) { /* each address fails once */
        snprintf(ip, sizeof ip, "10.9.%d.%d", i / 250, 1 + i % 250);
        struct sockaddr_in x = s_v4(ip);
        if (logins_admit(l, "agents", SA(x)) == 0)
            logins_failed(l, "agents", SA(x));
    }
    struct sockaddr_in stranger = s_v4("10.10.0.1");
    cr_assert_gt(logins_admit(l, "agents", SA(stranger)), 0, "the name is held");
    cr_assert_eq(logins_admit(l, "agents", SA(home)), 0, "not where it logged in");
    logins_succeeded(l, "agents", SA(home));
    /* The pair's own failures end its trust. */
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(logins_admit(l, "agents", SA(home)), 0, "failure %d", i + 1);
        logins_failed(l, "agents", SA(home));
    }
    for (int i = 0; i < 200; i++) {
        snprintf(ip, sizeof ip, "10.11.%d.%d", i / 250, 1 + i % 250);
        struct sockaddr_in x = s_v4(ip);
        if (logins_admit(l, "agents", SA(x)) == 0)
            logins_failed(l, "agents", SA(x));
    }
    cr_assert_gt(logins_admit(l, "agents", SA(home)), 0, "trust ended by its failures");
    logins_destroy(&l);
}

/* ---- a username and an address never share an entry ---- */

/* White-box: the table's head as logins.c lays it out, with a key of ours,
 * so that the test can tell which slot a key hashes to. */
#define T_MAGIC 0x34534e49474f4c56ull
#define T_SLOTS 16384u

static void s_write_head(const unsigned char key[crypto_shorthash_KEYBYTES])
{
    char path[96];
    snprintf(path, sizeof path, "%s/login-throttle", s_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    uint64_t magic = T_MAGIC;
    uint32_t slots = T_SLOTS, unused = 0;
    fwrite(&magic, sizeof magic, 1, f);
    fwrite(&slots, sizeof slots, 1, f);
    fwrite(&unused, sizeof unused, 1, f);
    fwrite(key, crypto_shorthash_KEYBYTES, 1, f);
    cr_assert_eq(fclose(f), 0);
}

static uint32_t s_slot(const unsigned char *key, const unsigned char *in, size_t n)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, in, n, key);
    return (uint32_t)((h ? h : 1) % T_SLOTS);
}

/* A username whose first slot is the address's (about one name in 16384). */
static void s_colliding_name(const unsigned char *key, const struct sockaddr_in *a,
                             char *name, size_t cap)
{
    unsigned char in[1 + 4] = {'a'};
    memcpy(in + 1, &a->sin_addr, 4);
    uint32_t want = s_slot(key, in, sizeof in);
    for (unsigned i = 0; i < 10000000; i++) {
        unsigned char u[32] = {'u'};
        int n = snprintf((char *)u + 1, sizeof u - 1, "user%u", i);
        if (s_slot(key, u, 1 + (size_t)n) == want) {
            snprintf(name, cap, "%s", (char *)u + 1);
            return;
        }
    }
    cr_assert_fail("no colliding name");
}

/* The username's entry is made first, with no count yet: the address's,
 * made next in the same slot run, once took it as a lapsed slot, and the
 * two counted as one (one attempt held an address allowed two). */
Test(logins, a_username_and_an_address_on_one_slot_count_apart, .init = s_init,
     .fini = s_fini)
{
    cr_assert_geq(sodium_init(), 0);
    unsigned char key[crypto_shorthash_KEYBYTES];
    randombytes_buf(key, sizeof key);
    s_write_head(key);
    struct sockaddr_in a = s_v4("10.7.7.7");
    char name[32];
    s_colliding_name(key, &a, name, sizeof name);
    logins_t *l = logins_new(s_dir, 2);
    cr_assert(logins_shared(l), "the table is the file written above");
    unsigned char head[16 + crypto_shorthash_KEYBYTES]; /* magic, slots, unused, key */
    char path[96];
    snprintf(path, sizeof path, "%s/login-throttle", s_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f && fread(head, sizeof head, 1, f) == 1);
    fclose(f);
    cr_assert(memcmp(head + 16, key, sizeof key) == 0, "the table kept the test's key");
    cr_assert_eq(logins_admit(l, name, SA(a)), 0);
    cr_assert_eq(logins_admit(l, "another", SA(a)), 0, "the address had one attempt");
    cr_assert_gt(logins_admit(l, "a-third", SA(a)), 0, "and now two");
    for (int i = 0; i < 4; i++) /* the username keeps its own count: 1 of 5 */
        cr_assert_eq(logins_admit(l, name, NULL), 0, "attempt %d", i + 2);
    cr_assert_gt(logins_admit(l, name, NULL), 0);
    logins_destroy(&l);
}

/* In the child: holds the table's flock, says so on ready, then for
 * hold_ms exits 0 only if the table did not change meanwhile (1 if it
 * did), or with hold_ms 0 holds it until killed. */
static void s_hold(const char *path, int ready, int hold_ms)
{
    static unsigned char before[1 << 20], after[1 << 20];
    int fd = open(path, O_RDONLY);
    if (fd < 0 || flock(fd, LOCK_EX) != 0)
        _exit(2);
    ssize_t n = pread(fd, before, sizeof before, 0);
    char c = 0;
    if (n <= 0 || write(ready, &c, 1) != 1)
        _exit(2);
    if (hold_ms == 0)
        for (;;)
            pause();
    usleep((useconds_t)hold_ms *
           1000); /* the attempts are counted meanwhile, or wait */
    bool same = pread(fd, after, sizeof after, 0) == n && memcmp(before, after, n) == 0;
    flock(fd, LOCK_UN);
    _exit(same ? 0 : 1);
}

/* Another worker (a child) that holds the table, as s_hold; returns once
 * it does. */
static pid_t s_holder(int hold_ms)
{
    char path[96];
    snprintf(path, sizeof path, "%s/login-throttle", s_dir);
    int ready[2];
    cr_assert(pipe(ready) == 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        s_hold(path, ready[1], hold_ms);
    char c = 0;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the other worker holds the table");
    close(ready[0]);
    close(ready[1]);
    return pid;
}

/* Another worker holding the table (preempted inside its few
 * instructions) once made an attempt count without the lock after 1,000
 * tries (well under a millisecond): two workers' updates could overwrite
 * each other and attempts go uncounted. Now the attempt waits for the lock
 * (up to 200 ms). */
Test(logins, an_attempt_waits_for_another_worker_holding_the_table, .init = s_init,
     .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 0);
    cr_assert(logins_shared(l));
    pid_t pid = s_holder(50);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_admit(l, "frank", NULL), 0, "attempt %d", i + 1);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the table changed while another worker held it (status %d)", st);
    cr_assert_gt(logins_admit(l, "frank", NULL), 0, "the five attempts counted");
    logins_destroy(&l);
}

/* A worker stopped while it holds the table (SIGSTOP, a debugger) must not
 * hang the others' loop threads: past the wait, the attempt is counted
 * without the lock. */
Test(logins, a_table_held_for_ever_does_not_hang_an_attempt, .init = s_init,
     .fini = s_fini)
{
    logins_t *l = logins_new(s_dir, 0);
    pid_t pid = s_holder(0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(logins_admit(l, "gina", NULL), 0, "attempt %d", i + 1);
    cr_assert_gt(logins_admit(l, "gina", NULL), 0, "counted without the lock");
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the holder still holds it");
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    logins_destroy(&l);
}
