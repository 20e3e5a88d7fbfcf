/* test_supervisor_security.c - what the supervisor keeps from other users
 * and other web pages: data_dir and everything the supervisor, its workers
 * and its programs create there are theirs alone (0700 / 0600), also when
 * started with a lax umask in a data_dir someone made 0755, and what a
 * worker run alone creates. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor_fixture.h"

/* A data_dir a test made itself, removed by s_fini. */
static char *s_dir;

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

static void s_fini(void)
{
    sup_fini();
    if (s_dir && !th_keep_files())
        nftw(s_dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(s_dir);
    s_dir = NULL;
}

/* ---- file modes ---- */

/* What nftw found open to the group or others, one "mode path" a line. */
static char s_open_to_others[4096];
static size_t s_entries;

static int s_check_mode(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)flag, (void)ftw;
    s_entries++;
    if ((st->st_mode & 077) != 0 && !S_ISLNK(st->st_mode)) {
        size_t n = strlen(s_open_to_others);
        snprintf(s_open_to_others + n, sizeof s_open_to_others - n, "%04o %s\n",
                 (unsigned)(st->st_mode & 07777), path);
    }
    return 0;
}

/* Checks every entry under dir: none open to the group or others, and
 * more than min of them. */
static void s_assert_private(const char *dir, size_t min)
{
    s_open_to_others[0] = '\0';
    s_entries = 0;
    cr_assert_eq(nftw(dir, s_check_mode, 16, FTW_PHYS), 0);
    cr_assert_gt(s_entries, min, "only %zu entries under %s", s_entries, dir);
    cr_assert_str_empty(s_open_to_others, "open to the group or others:\n%s",
                        s_open_to_others);
}

/* The backend (database, WAL, its secrets, the login-failure map, the
 * event lock) and nats-server's JetStream store, all under a supervisor
 * started with umask 022 in a data_dir made 0755 beforehand. */
Test(supervisor_security, data_dir_and_its_files_are_private, .timeout = 90,
     .fini = s_fini)
{
    umask(022); /* what a shell usually has: the supervisor must not rely on it */
    s_dir = th_tmp_path("svdata", "");
    cr_assert_eq(mkdir(s_dir, 0755), 0);
    th_sv_t *sv = th_sv_start_in(
        s_dir, "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"
             "[backend]\nadmin_password = modes-test-password\n\n"
             "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = 2\n\n"
             "[program:nats]\ncommand = nats-server -js -a 127.0.0.1 -p @PORT2@ "
             "-sd @DATA@/nats\n");
    cr_assert_not_null(sv);
    th_assert_settled(sv, "backend", 2, 20000);
    const char *tok = th_be_login(sv->ports[0], "admin", "modes-test-password", 10000);
    th_be_call(sv->ports[0], "POST", TH_BE_API "/projects", tok, "{\"name\":\"modes\"}",
               201);
    th_be_call(sv->ports[0], "POST", TH_BE_API "/auth/login", NULL,
               "{\"username\":\"admin\",\"password\":\"wrong-password\"}", 401);
    /* JetStream has written its store by the time the event is out. */
    char *js = th_fmt("%s/nats/jetstream", sv->data_dir);
    for (int i = 0; i < 100 && access(js, F_OK) != 0; i++)
        th_sleep_ms(50);
    cr_assert_eq(access(js, F_OK), 0, "no JetStream store at %s", js);

    s_assert_private(sv->data_dir, 8);
    th_assert_log(sv->proc, "was open to other users (mode 0755): now 0700", "warn");
}

/* A backend worker run alone (no supervisor to inherit a umask from)
 * creates its data_dir and files private too. */
Test(supervisor_security, a_worker_alone_creates_private_files, .timeout = 60,
     .fini = s_fini)
{
    umask(022);
    s_dir = th_tmp_path("bedata", "");
    th_proc_t *p = th_must_start(
        "vapora-backend", "backend",
        th_fmt("\n[supervisor]\ndata_dir = %s\n\n[backend]\nadmin_password = "
               "alone-test-password\n",
               s_dir));
    th_be_login(p->port, "admin", "alone-test-password", 10000);
    th_be_call(p->port, "POST", TH_BE_API "/auth/login", NULL,
               "{\"username\":\"admin\",\"password\":\"wrong-password\"}", 401);
    s_assert_private(s_dir, 4);
}
