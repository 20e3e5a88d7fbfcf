/* test_backend_ws.c - GET /ws through the supervisor: a WebSocket client
 * on one backend worker receives, as a JSON text frame, the event of a
 * change made through another worker (both share the database and learn of
 * changes through a real nats-server); the project filter holds; a new
 * session misses no event while its token is checked; ping gets pong; the
 * close handshake completes; bad upgrades get JSON errors; a worker
 * subscribes to the events only while sessions listen. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define PW "ws-test-password"

/* Two backend services on one database and one NATS: the WebSocket goes
 * to @PORT3@ (backend2), the changes to @PORT1@ (backend). */
#define SETUP                                                                          \
    "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"               \
    "[backend]\nadmin_password = " PW "\n\n"                                           \
    "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = 1\n\n"                   \
    "[service:backend2]\nlisten = 127.0.0.1:@PORT3@\nworkers = 1\n"                    \
    "command = @BACKEND@\n\n"                                                          \
    "[program:nats]\ncommand = nats-server -js -a 127.0.0.1 -p @PORT2@ -sd "           \
    "@DATA@/nats\n"

/* One backend worker and NATS; keys go into [backend]. */
#define ONE_WORKER(keys)                                                               \
    "shutdown_timeout = 3\n\n[nats]\nurl = nats://127.0.0.1:@PORT2@\n\n"               \
    "[backend]\nadmin_password = " PW "\n" keys "\n"                                    \
    "[service:backend]\nlisten = 127.0.0.1:@PORT1@\nworkers = 1\n\n"                   \
    "[program:nats]\ncommand = nats-server -js -a 127.0.0.1 -p @PORT2@ -sd "           \
    "@DATA@/nats\n"

Test(backend_ws, events_of_another_worker_reach_the_socket, .timeout = 60,
     .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(SETUP);
    const char *tok = th_be_login(sv->ports[0], "admin", PW, 10000);
    th_be_login(sv->ports[2], "admin", PW, 10000); /* backend2 is up too */
    json_t *p1 = th_be_call(sv->ports[0], "POST", "/api/v1/projects", tok,
                            "{\"name\":\"a\"}", 201);
    json_t *p2 = th_be_call(sv->ports[0], "POST", "/api/v1/projects", tok,
                            "{\"name\":\"b\"}", 201);
    const char *pid1 = json_string_value(json_object_get(p1, "id"));
    char path[512];
    snprintf(path, sizeof path, "/ws?token=%s&project_id=%s", tok, pid1);
    int fd = th_ws_open(sv->ports[2], path);
    th_sleep_ms(300); /* backend2's subscription is in place */

    char tasks[160];
    snprintf(tasks, sizeof tasks, "/api/v1/projects/%s/tasks",
             json_string_value(json_object_get(p2, "id")));
    th_be_call(sv->ports[0], "POST", tasks, tok, "{\"title\":\"other\"}", 201);
    snprintf(tasks, sizeof tasks, "/api/v1/projects/%s/tasks", pid1);
    json_t *t =
        th_be_call(sv->ports[0], "POST", tasks, tok, "{\"title\":\"mine\"}", 201);

    json_t *ev = th_ws_wait_event(fd, "task.created", 5000);
    cr_assert_not_null(ev, "no task.created event on the WebSocket");
    cr_assert(json_equal(json_object_get(ev, "id"), json_object_get(t, "id")),
              "the filtered-out project's event came first");
    cr_assert_str_eq(json_string_value(json_object_get(ev, "project_id")), pid1);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(ev, "data"), "title")),
        "mine");
    json_decref(ev);

    th_ws_write(fd, 0x9, "hi", 2); /* ping → pong with the same payload */
    char *pl = NULL;
    size_t n = 0;
    int op;
    while ((op = th_ws_read(fd, &pl, &n, 3000)) == 1) {
        free(pl);
        pl = NULL;
    }
    cr_assert_eq(op, 0xA, "no pong (opcode %d)", op);
    cr_assert_eq(n, 2);
    cr_assert(memcmp(pl, "hi", 2) == 0);
    free(pl);

    th_ws_write(fd, 0x8, "\x03\xe8", 2); /* close 1000 → the server closes too */
    op = th_ws_read(fd, &pl, &n, 3000);
    cr_assert_eq(op, 0x8, "no close frame back (opcode %d)", op);
    free(pl);
    char b;
    cr_assert_leq(read(fd, &b, 1), 0, "the server kept the socket open");
    close(fd);
}

/* A token backend2 has never seen: its session waits for a check of the
 * token on the pool (the next tick), and the events that come meanwhile
 * are kept for it, not dropped. The change follows the upgrade at once. */
Test(backend_ws, a_new_session_misses_no_event_while_its_token_is_checked,
     .timeout = 60, .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(SETUP);
    const char *tok = th_be_login(sv->ports[0], "admin", PW, 10000);
    th_be_login(sv->ports[2], "admin", PW, 10000); /* backend2 is up too */
    json_t *p = th_be_call(sv->ports[0], "POST", "/api/v1/projects", tok,
                           "{\"name\":\"a\"}", 201);
    const char *pid = json_string_value(json_object_get(p, "id"));
    th_sleep_ms(300); /* backend2's subscription is in place */
    for (int i = 0; i < 3; i++) {
        const char *fresh = th_be_login(sv->ports[0], "admin", PW, 10000);
        int fd = th_ws_open(sv->ports[2], th_fmt("/ws?token=%s&project_id=%s", fresh, pid));
        char *title = th_fmt("right after %d", i);
        th_be_call(sv->ports[0], "POST", th_fmt("/api/v1/projects/%s/tasks", pid), tok,
                   th_fmt("{\"title\":\"%s\"}", title), 201);
        json_t *ev = th_ws_wait_event(fd, "task.created", 5000);
        cr_assert_not_null(ev, "the event right after the upgrade was lost (round %d)", i);
        cr_assert_str_eq(
            json_string_value(json_object_get(json_object_get(ev, "data"), "title")),
            title);
        json_decref(ev);
        close(fd);
        th_sleep_ms(1100); /* the next login's token differs (its iat) */
    }
}

/* Sends the upgrade request for path on a socket with a tiny receive
 * window, which the test then never reads; returns it. */
static int s_upgrade_and_never_read(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 2048;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *req = th_ws_upgrade_request(path);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    return fd;
}

/* A client that never reads is closed once ws_max_queue bytes wait for
 * it, instead of growing the worker's memory. */
Test(backend_ws, a_client_that_does_not_read_is_dropped, .timeout = 60,
     .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(ONE_WORKER("ws_max_queue = 16384\n"));
    const char *tok = th_be_login(sv->ports[0], "admin", PW, 10000);
    json_t *p = th_be_call(sv->ports[0], "POST", "/api/v1/projects", tok,
                           "{\"name\":\"slow\"}", 201);
    int fd = s_upgrade_and_never_read(sv->ports[0], th_fmt("/ws?token=%s", tok));
    th_sleep_ms(300);
    char path[160];
    snprintf(path, sizeof path, "/api/v1/projects/%s/tasks",
             json_string_value(json_object_get(p, "id")));
    char title[600];
    memset(title, 'x', sizeof title - 1);
    title[sizeof title - 1] = '\0';
    char body[700];
    snprintf(body, sizeof body, "{\"title\":\"%.480s\"}", title);
    bool dropped = false;
    for (int i = 0; i < 3000 && !dropped; i++) {
        th_be_call(sv->ports[0], "POST", path, tok, body, 201);
        if (i % 100 == 99) {
            th_resp_t *m = NULL;
            cr_assert_eq(th_request(sv->ports[0], "GET", "/metrics", NULL, NULL, &m),
                         0);
            dropped =
                strstr(m->body, "vapora_ws_sessions{service=\"backend\"} 0") != NULL;
            th_resp_free(&m);
        }
    }
    cr_assert(dropped, "the session that never reads is still open after 3000 events");
    char *log = th_log(sv->proc);
    cr_assert(strstr(log, "websocket client too slow"), "no log line for the drop");
    char buf[65536];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) >
           0) { /* what reached the kernel, then EOF */
    }
    cr_assert_leq(got, 0, "the dropped socket is still open");
    free(log);
    close(fd);
}

Test(backend_ws, bad_upgrades_and_tokens_get_json_errors, .timeout = 60,
     .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(SETUP);
    th_be_login(sv->ports[0], "admin", PW, 10000);
    th_resp_t *r = NULL;
    cr_assert_eq(
        th_request(sv->ports[0], "GET", "/ws?token=forged.token.x", NULL, NULL, &r), 0);
    cr_assert_eq(r->status, 401, "%d %s", r->status, r->body);
    cr_assert(strstr(r->body, "\"unauthorized\""));
    th_resp_free(&r);
    const char *tok = th_be_login(sv->ports[0], "admin", PW, 10000);
    char path[512];
    snprintf(path, sizeof path, "/ws?token=%s", tok);
    cr_assert_eq(th_request(sv->ports[0], "GET", path, NULL, NULL, &r), 0);
    cr_assert_eq(r->status, 400, "a plain GET: %d %s", r->status, r->body);
    cr_assert(strstr(r->body, "\"not_websocket\""));
    th_resp_free(&r);
    /* Upgrades that are not quite WebSocket: each a JSON 400 at once. */
    static const struct {
        const char *version, *headers, *code;
    } bad[] = {
        {"HTTP/1.0",
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
         "bad_request"},
        {"HTTP/1.1",
         "Connection: Upgrade\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n",
         "not_websocket"},
        {"HTTP/1.1",
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n",
         "not_websocket"},
        {"HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
         "not_websocket"},
        {"HTTP/1.1",
         "Connection: close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
         "not_websocket"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        th_conn_t *c = th_connect(sv->ports[0], 3000);
        cr_assert_not_null(c);
        char req[1024];
        int n = snprintf(req, sizeof req,
                         "GET %s %s\r\nHost: x\r\nUpgrade: websocket\r\n%s"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         path, bad[i].version, bad[i].headers);
        cr_assert_eq(th_send_raw(c, req, (size_t)n, 3000), 0);
        int rc = th_read_response(c, &r, 3000);
        cr_assert_eq(rc, 0, "case %zu: no answer: %s", i, strerror(-rc));
        cr_assert_eq(r->status, 400, "case %zu: %d %s", i, r->status, r->body);
        cr_assert(strstr(r->body, bad[i].code), "case %zu: %s", i, r->body);
        cr_assert_null(th_resp_header(r, "Sec-WebSocket-Accept"),
                       "case %zu: a refusal with the upgrade's headers", i);
        th_resp_free(&r);
        th_conn_close(&c);
    }
}

/* Tries to open ws://127.0.0.1:port/path: the status of a refusal, or
 * once upgraded, the code of the close frame that ends the session before
 * any event (0: an event came, -1: nothing within 5 s). */
static int s_ws_refused(int port, const char *path)
{
    th_conn_t *c = th_connect(port, 3000);
    cr_assert_not_null(c);
    const char *req = th_ws_upgrade_request(path);
    cr_assert_eq(th_send_raw(c, req, strlen(req), 3000), 0);
    th_resp_t *r = NULL;
    cr_assert_eq(th_read_response(c, &r, 3000), 0);
    int status = r->status;
    th_resp_free(&r);
    if (status != 101) {
        th_conn_close(&c);
        return status;
    }
    int fd = dup(th_conn_fd(c));
    th_conn_close(&c);
    char *pl = NULL;
    size_t n = 0;
    int op = th_ws_read(fd, &pl, &n, 5000);
    int code = op == 0x8 && n >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1])
               : op < 0            ? -1
                                   : 0;
    free(pl);
    close(fd);
    return code;
}

/* Reads frames until the server closes the session; asserts none carries
 * text; returns the close code. */
static int s_ws_closed_without(int fd, const char *text, int timeout_ms)
{
    char *pl = NULL;
    size_t n = 0;
    int op;
    long long end = th_now_ms() + timeout_ms;
    while ((op = th_ws_read(fd, &pl, &n, timeout_ms)) == 1 && th_now_ms() < end) {
        cr_assert_null(strstr(pl, text), "an event it should not get: %s", pl);
        free(pl);
        pl = NULL;
    }
    cr_assert_eq(op, 0x8, "the session was not closed (opcode %d)", op);
    int code = n >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) : -1;
    free(pl);
    return code;
}

/* A session whose user is deleted is closed (1008) and gets no more
 * events; the same token cannot open another. */
Test(backend_ws, a_deleted_users_session_is_closed, .timeout = 60, .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(SETUP);
    int port = sv->ports[0];
    const char *adm = th_be_login(port, "admin", PW, 10000);
    th_be_login(sv->ports[2], "admin", PW, 10000); /* backend2 is up too */
    json_t *u = th_be_call(port, "POST", "/api/v1/users", adm,
                           "{\"username\":\"mia\",\"password\":\"member-pass-1\","
                           "\"role\":\"member\"}",
                           201);
    const char *tok = th_be_login(port, "mia", "member-pass-1", 0);
    json_t *p =
        th_be_call(port, "POST", "/api/v1/projects", adm, "{\"name\":\"a\"}", 201);
    const char *tasks = th_fmt("/api/v1/projects/%s/tasks",
                               json_string_value(json_object_get(p, "id")));
    /* On backend2, which has not seen her token before. */
    int fd = th_ws_open(sv->ports[2], th_fmt("/ws?token=%s", tok));
    th_sleep_ms(300);
    th_be_call(port, "POST", tasks, adm, "{\"title\":\"seen\"}", 201);
    json_t *ev = th_ws_wait_event(fd, "task.created", 5000);
    cr_assert_not_null(ev, "no event before the deletion");
    json_decref(ev);

    th_be_call(port, "DELETE",
               th_fmt("/api/v1/users/%s", json_string_value(json_object_get(u, "id"))),
               adm, NULL, 204);
    th_be_call(port, "POST", tasks, adm, "{\"title\":\"not for her\"}", 201);
    cr_assert_eq(s_ws_closed_without(fd, "not for her", 5000), 1008);
    close(fd);
    /* Her token opens no other session on either worker: refused (401),
     * or, where the worker has yet to learn of the deletion, upgraded and
     * closed (1008) before any event. */
    for (int i = 0; i < 4; i++) {
        int b = i % 2 ? port : sv->ports[2];
        int code = s_ws_refused(b, th_fmt("/ws?token=%s", tok));
        cr_assert(code == 401 || code == 1008, "attempt %d: %d", i, code);
    }
}

/* Whether the backend on port is subscribed to the events now
 * (vapora_ws_subscribed: 1 or 0; -1 when it does not say). */
static double s_subscribed(int port)
{
    th_resp_t *m = th_must_request(port, "GET", "/metrics", NULL, NULL);
    static const char *const none[] = {NULL};
    double v = th_metric(m->body, "vapora_ws_subscribed", none);
    th_resp_free(&m);
    return v;
}

/* A worker nobody listens to does not subscribe to the events (NATS would
 * send it every write's, its loop waking for each); the first session
 * subscribes before its 101, so it misses nothing; a while after the last
 * session ended (ws_idle_unsubscribe) the subscription ends, and the next
 * session subscribes again, missing nothing either. */
Test(backend_ws, a_worker_subscribes_to_events_only_while_sessions_listen, .timeout = 60,
     .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(ONE_WORKER("ws_idle_unsubscribe = 1\n"));
    int port = sv->ports[0];
    const char *tok = th_be_login(port, "admin", PW, 10000);
    json_t *p = th_be_call(port, "POST", "/api/v1/projects", tok, "{\"name\":\"a\"}", 201);
    const char *tasks = th_fmt("/api/v1/projects/%s/tasks",
                               json_string_value(json_object_get(p, "id")));
    th_be_call(port, "POST", tasks, tok, "{\"title\":\"unheard\"}", 201);
    cr_assert_eq(s_subscribed(port), 0, "subscribed with no session");
    for (int round = 0; round < 2; round++) {
        int fd = th_ws_open(port, th_fmt("/ws?token=%s", tok));
        cr_assert_eq(s_subscribed(port), 1, "a session is open (round %d)", round);
        char *title = th_fmt("heard %d", round);
        th_be_call(port, "POST", tasks, tok, th_fmt("{\"title\":\"%s\"}", title), 201);
        /* Earlier events may come first: the publisher may send them after
         * the subscription began. */
        bool heard = false;
        for (int i = 0; i < 10 && !heard; i++) {
            json_t *ev = th_ws_wait_event(fd, "task.created", 5000);
            cr_assert_not_null(ev, "the event right after the upgrade was lost (round %d)",
                               round);
            const char *t =
                json_string_value(json_object_get(json_object_get(ev, "data"), "title"));
            heard = t && strcmp(t, title) == 0;
            json_decref(ev);
        }
        cr_assert(heard, "round %d: no event of the task made after the upgrade", round);
        close(fd);
        double v = 1;
        for (int i = 0; i < 100 && v != 0; i++) {
            th_sleep_ms(100);
            v = s_subscribed(port);
        }
        cr_assert_eq(v, 0, "still subscribed 10 s after the last session (round %d)", round);
    }
}

/* Clients that send an upgrade and leave at once, while the worker is not
 * subscribed (their 101 waits for the subscription): each such session is
 * let go, whether it opened before the client's close was seen or never
 * did; so the worker's count of listeners goes back to none, and its
 * subscription ends. A session lost on the way (never told closed) kept
 * the worker subscribed for ever, and its memory. */
Test(backend_ws, upgrades_whose_clients_leave_at_once_are_let_go, .timeout = 60,
     .fini = th_cleanup)
{
    th_sv_t *sv = th_must_sv_start(ONE_WORKER("ws_idle_unsubscribe = 1\n"));
    int port = sv->ports[0];
    const char *tok = th_be_login(port, "admin", PW, 10000);
    for (int round = 0; round < 20; round++) {
        double v = 1;
        for (int i = 0; i < 100 && v != 0; i++) { /* unsubscribed again */
            v = s_subscribed(port);
            if (v != 0)
                th_sleep_ms(100);
        }
        cr_assert_eq(v, 0, "round %d: still subscribed 10 s after its clients left", round);
        int fd = s_upgrade_and_never_read(port, th_fmt("/ws?token=%s", tok));
        struct linger off = {1, 0}; /* a reset: gone before anything comes back */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof off);
        close(fd);
    }
    /* The worker still serves sessions. */
    int fd = th_ws_open(port, th_fmt("/ws?token=%s", tok));
    close(fd);
}
