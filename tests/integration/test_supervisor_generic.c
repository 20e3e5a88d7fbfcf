/* test_supervisor_generic.c - services that do not speak the control
 * protocol (control = no) are supervised all the same, and a worker that
 * never says ready is aborted after start_timeout. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor_fixture.h"

/* ---- services that do not speak the control protocol ---- */

/* A plain HTTP server on fd 3 (LISTEN_FDS), no control channel: it answers
 * with its pid and how many arguments it got. */
static const char s_plain_py[] =
    "import http.server, os, socket, socketserver, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        b = ('{\"pid\":%d,\"args\":%d}' % (os.getpid(), len(sys.argv) - "
    "1)).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "srv = S(('127.0.0.1', 0), H, bind_and_activate=False)\n"
    "srv.socket = socket.socket(fileno=3)\n"
    "srv.serve_forever()\n";

Test(supervisor_generic, service_without_control_channel_is_supervised, .timeout = 60,
     .fini = sup_fini)
{
    char *script = th_write_temp("plain", ".py", s_plain_py);
    cr_assert_not_null(script);
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl,
             "shutdown_timeout = 3\n\n[service:plain]\nlisten = 127.0.0.1:@PORT2@\n"
             "workers = 2\ncontrol = no\ncommand = python3 %s\n",
             script);
    th_sv_t *sv = th_must_sv_start(tmpl);
    th_assert_settled(sv, "plain", 2, 5000);
    pid_t pids[2];
    cr_assert_eq(sup_pids(sup_service(sv, "plain"), pids, 2), 2);
    /* It serves through the supervisor's socket, given no -c. */
    th_resp_t *r = NULL;
    long long until = th_now_ms() + 5000;
    while (th_request(sv->ports[1], "GET", "/", NULL, NULL, &r) != 0 &&
           th_now_ms() < until) {
        th_resp_free(&r);
        th_sleep_ms(50);
    }
    cr_assert_not_null(r, "the plain service does not answer");
    cr_assert_eq(r->status, 200, "%d %.300s", r->status, r->body);
    cr_assert(strstr(r->body, "\"args\":0"), "%.300s", r->body);
    th_resp_free(&r);
    th_sleep_ms(1200); /* well past a heartbeat: no watchdog for it */
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    th_sleep_ms(500);
    th_assert_settled(sv, "plain", 2, 5000);
    pid_t now[2];
    cr_assert_eq(sup_pids(sup_service(sv, "plain"), now, 2), 2);
    cr_assert(!sup_has_pid(now, 2, pids[0]) && sup_has_pid(now, 2, pids[1]),
              "kill -9 of %d: workers now %d, %d", (int)pids[0], (int)now[0],
              (int)now[1]);
    char *log = th_log(sv->proc);
    cr_assert_null(strstr(log, "hung"), "log:\n%s", log);
    free(log);
    cr_assert_eq(th_signal(sv->proc, SIGTERM), 0);
    cr_assert_eq(th_wait_exit(sv->proc, 8000), 0);
    unlink(script);
    free(script);
}

/* A worker that never says ready is hung after start_timeout. */
Test(supervisor_generic, worker_silent_at_start_is_aborted_after_start_timeout,
     .timeout = 60, .fini = sup_fini)
{
    th_sv_t *sv =
        th_must_sv_start("[service:mute]\nlisten = 127.0.0.1:@PORT2@\nworkers = 1\n"
                         "start_timeout = 1\ncommand = sh -c 'exec sleep 1000'\n");
    long long until = th_now_ms() + 8000;
    bool seen = false;
    while (!seen && th_now_ms() < until) {
        char *log = th_log(sv->proc);
        seen = strstr(log, "did not say ready in 1 s (start_timeout)") != NULL;
        free(log);
        th_sleep_ms(100);
    }
    char *log = th_log(sv->proc);
    cr_assert(seen, "log:\n%s", log);
    free(log);
    until = th_now_ms() + 5000;
    while (
        th_int(json_array_get(json_object_get(sup_service(sv, "mute"), "workers"), 0),
               "restarts") < 1 &&
        th_now_ms() < until)
        th_sleep_ms(100);
    cr_assert_geq(
        th_int(json_array_get(json_object_get(sup_service(sv, "mute"), "workers"), 0),
               "restarts"),
        1);
}
