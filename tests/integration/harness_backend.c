/* harness_backend.c - see harness_backend.h. */
#define _GNU_SOURCE
#include "harness_backend.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_assert.h"
#include "harness_base.h"
#include "harness_http.h"
#include "harness_json.h"
#include "harness_keep.h"

json_t *th_be_login_doc(int port, const char *user, const char *pass, int wait_ms)
{
    json_t *b = json_pack("{s:s,s:s}", "username", user, "password", pass);
    char *body = th_keep(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    long long end = th_now_ms() + wait_ms;
    th_resp_t *r = NULL;
    int rc;
    for (;;) {
        th_resp_free(&r);
        rc = th_request(port, "POST", TH_BE_API "/auth/login", TH_JSON_CT, body, &r);
        if ((rc == 0 && r->status == 200) || th_now_ms() >= end)
            break;
        th_sleep_ms(100);
    }
    cr_assert_eq(rc, 0, "login of %s: no answer (%s)", user, strerror(-rc));
    cr_assert_eq(r->status, 200, "login of %s: status %d, want 200; body: %.400s", user,
                 r->status, r->body);
    json_t *j = th_must_json(r);
    th_resp_free(&r);
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    cr_assert(tok && *tok, "login of %s: no access_token in %s", user, th_dump(j));
    return j;
}

const char *th_be_login(int port, const char *user, const char *pass, int wait_ms)
{
    json_t *j = th_be_login_doc(port, user, pass, wait_ms);
    return json_string_value(json_object_get(j, "access_token"));
}

json_t *th_be_call(int port, const char *method, const char *path, const char *token,
                   const char *body, int want)
{
    const char *hdr = th_fmt("%s%s%s%s", body ? TH_JSON_CT : "",
                             token ? "Authorization: Bearer " : "", token ? token : "",
                             token ? "\r\n" : "");
    th_resp_t *r = th_must_request(port, method, path, hdr, body);
    cr_assert_eq(r->status, want, "%s %s: %d, want %d: %.300s", method, path, r->status,
                 want, r->body);
    json_t *j = r->body_len ? th_must_json(r) : NULL;
    th_resp_free(&r);
    return j;
}
