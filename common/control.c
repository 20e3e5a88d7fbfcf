/* control.c - see control.h. */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "alloc.h"
#include "zchan.h"

struct control {
    void *ctx;
    zchan_t *ch;
    control_ops_t ops;
    void *ud;
};

static void s_on_msg(zchan_t *ch, const zchan_msg_t *m, void *ud)
{
    UNUSED(ch);
    control_t *c = ud;
    if (m->n != 1)
        return;
    json_t *j = json_loadb(m->parts[0], m->lens[0], 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) {
        log_warn("control: ignoring a message without a type");
    } else if (strcmp(type, "drain") == 0) {
        if (c->ops.on_drain)
            c->ops.on_drain(c->ud);
    } else if (strcmp(type, "log_level") == 0) {
        const char *lvl = json_string_value(json_object_get(j, "level"));
        if (lvl && c->ops.on_log_level)
            c->ops.on_log_level(c->ud, lvl);
    } else {
        log_warn("control: ignoring unknown message type \"%s\"", type);
    }
    json_decref(j);
}

control_t *control_from_env(loop_t *loop, const control_ops_t *ops, void *ud)
{
    const char *ep = getenv("VAPORA_CONTROL");
    const char *id = getenv("VAPORA_WORKER_ID");
    if (!ep || !*ep)
        return NULL;
    control_t *c = xcalloc(1, sizeof *c);
    c->ops = *ops;
    c->ud = ud;
    c->ctx = zmq_ctx_new();
    void *s = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    int zero = 0, hwm = 100;
    if (s) {
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        if (id && *id)
            zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id));
    }
    if (!s || zmq_connect(s, ep) < 0) {
        log_err(errno, "control: connecting to %s", ep);
        if (s)
            zmq_close(s);
        if (c->ctx)
            zmq_ctx_term(c->ctx);
        free(c);
        return NULL;
    }
    c->ch = zchan_new(loop, s, s_on_msg, c);
    if (!c->ch) {
        log_err(errno, "control: registering the socket");
        zmq_close(s);
        zmq_ctx_term(c->ctx);
        free(c);
        return NULL;
    }
    log_info("control channel connected to %s as %s", ep, id ? id : "(no id)");
    return c;
}

void control_destroy(control_t **cp)
{
    control_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    zchan_destroy(&c->ch);
    zmq_ctx_term(c->ctx);
    free(c);
    *cp = NULL;
}

static int s_send(control_t *c, const char *json)
{
    const void *parts[1] = {json};
    size_t lens[1] = {strlen(json)};
    return zchan_send(c->ch, parts, lens, 1);
}

int control_send_ready(control_t *c)
{
    return s_send(c, "{\"type\":\"ready\"}");
}

char *control_stats_json(const control_stats_t *st)
{
    json_t *j = json_pack(
        "{s:I,s:i,s:f,s:i,s:i,s:f,s:I}", "requests", (json_int_t)st->requests,
        "in_flight", (int)st->in_flight, "loop_lag_ms", st->loop_lag_ms, "pool_queue",
        (int)st->pool_queue, "pool_busy", (int)st->pool_busy, "cpu_seconds",
        st->cpu_seconds, "rss_bytes", (json_int_t)st->rss_bytes);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

int control_stats_parse(const struct json_t *obj, control_stats_t *out)
{
    json_t *o = (json_t *)obj;
    if (!json_is_object(o))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->requests = (uint64_t)json_integer_value(json_object_get(o, "requests"));
    out->in_flight = (unsigned)json_integer_value(json_object_get(o, "in_flight"));
    out->loop_lag_ms = json_number_value(json_object_get(o, "loop_lag_ms"));
    out->pool_queue = (unsigned)json_integer_value(json_object_get(o, "pool_queue"));
    out->pool_busy = (unsigned)json_integer_value(json_object_get(o, "pool_busy"));
    out->cpu_seconds = json_number_value(json_object_get(o, "cpu_seconds"));
    out->rss_bytes = (uint64_t)json_integer_value(json_object_get(o, "rss_bytes"));
    return 0;
}

int control_send_heartbeat(control_t *c, const control_stats_t *st)
{
    char *stats = control_stats_json(st);
    char *msg = xasprintf("{\"type\":\"heartbeat\",\"stats\":%s}", stats);
    int rc = s_send(c, msg);
    free(msg);
    free(stats);
    return rc;
}
