/* harness_fake_llm.c - see harness_fake_llm.h. */
#define _GNU_SOURCE
#include "harness_fake_llm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_base.h"
#include "harness_http.h"

th_proc_t *th_fake_llm_start(void)
{
    const char *dir = getenv("VAPORA_FAKES_DIR");
    char *script = NULL, parent[32];
    if (asprintf(&script, "%s/fake_llm.py", dir && *dir ? dir : "tests/fakes") < 0)
        return NULL;
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    const char *argv[] = {"python3", script,  "--port", "0", "--parent-pid",
                          parent,    "--ttl", "300",    NULL};
    th_proc_t *p = th_spawn_argv(argv, NULL);
    free(script);
    if (!p)
        return NULL;
    long long end = th_now_ms() + 10000;
    while (th_now_ms() < end && th_running(p)) {
        char *log = th_log(p);
        char *at = strstr(log, "ready ");
        if (at && strchr(at, '\n'))
            p->port = atoi(at + 6);
        free(log);
        if (p->port > 0)
            return p;
        th_sleep_ms(20);
    }
    fprintf(stderr, "the fake LLM provider did not start\n");
    th_proc_free(&p);
    return NULL;
}

int th_fake_llm_config(const th_proc_t *fake, const char *scope, const char *json)
{
    char path[160];
    snprintf(path, sizeof path, "%s%s/_fake/config", scope ? "/s/" : "",
             scope ? scope : "");
    char *body = NULL;
    int st = th_call(fake->port, "POST", path, "Content-Type: application/json\r\n",
                     json, &body, TH_IO_MS);
    free(body);
    return st == 200 ? 0 : -EPROTO;
}

json_t *th_fake_llm_stats(const th_proc_t *fake, const char *scope)
{
    char path[160];
    snprintf(path, sizeof path, "%s%s/_fake/stats", scope ? "/s/" : "",
             scope ? scope : "");
    char *body = NULL;
    int st = th_call(fake->port, "GET", path, NULL, NULL, &body, TH_IO_MS);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}
