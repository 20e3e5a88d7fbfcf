/* wire_upstream_gemini.c - the canonical request as a Gemini
 * generateContent request: systemInstruction, contents with "user" and
 * "model" parts (tool results as functionResponse, matched by name),
 * generationConfig, function declarations with their schemas cleaned of
 * what Gemini's schema subset rejects, and toolConfig. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire_internal.h"
#include "base.h"

static json_t *s_ge_user_parts(const json_t *c)
{
    json_t *parts = json_array();
    size_t i;
    const json_t *p;
    char *mime;
    const char *data;
    if (json_string_length(c) > 0)
        json_array_append_new(parts, json_pack("{s:O}", "text", c));
    json_array_foreach(c, i, p)
    {
        const json_t *t = json_object_get(p, "text");
        const char *url = wire__str(json_object_get(p, "image_url"), "url");
        if (wire__is(wire__str(p, "type"), "text") && json_string_length(t) > 0)
            json_array_append_new(parts, json_pack("{s:O}", "text", t));
        if (wire__is(wire__str(p, "type"), "image_url") &&
            wire__data_url(url, &mime, &data)) {
            json_array_append_new(parts, json_pack("{s:{s:s,s:s}}", "inlineData",
                                                   "mimeType", mime, "data", data));
            free(mime);
        }
    }
    return parts;
}

static json_t *s_ge_model_parts(const json_t *m)
{
    json_t *parts = json_array();
    sbuf_t text = {0};
    size_t i;
    const json_t *tc;
    wire__content_text(json_object_get(m, "content"), "", &text);
    if (text.len)
        json_array_append_new(parts,
                              json_pack("{s:o}", "text", wire__sbuf_json(&text)));
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const char *name = wire__str(fn, "name");
        json_array_append_new(
            parts, json_pack("{s:{s:s,s:o}}", "functionCall", "name", name ? name : "",
                             "args", wire__args_object(wire__str(fn, "arguments"))));
    }
    sbuf_free(&text);
    return parts;
}

/* A tool message as a functionResponse part; its response is the result
 * when that is a JSON object, else {"output": text}. */
static json_t *s_ge_response_parts(const json_t *msgs, size_t i, const json_t *m)
{
    sbuf_t t = {0};
    const char *name = wire__tool_name(msgs, i, wire__str(m, "tool_call_id"));
    wire__content_text(json_object_get(m, "content"), "\n", &t);
    json_t *resp = t.len ? json_loadb(t.data, t.len, 0, NULL) : NULL;
    if (!json_is_object(resp)) {
        json_decref(resp);
        resp = json_pack("{s:o}", "output", wire__sbuf_json(&t));
    }
    if (!name)
        name = wire__str(m, "name");
    sbuf_free(&t);
    return json_pack("[{s:{s:s,s:o}}]", "functionResponse", "name", name ? name : "",
                     "response", resp);
}

static void s_ge_contents(const json_t *canon, json_t *r)
{
    const json_t *ms = json_object_get(canon, "messages"), *m;
    json_t *out = json_array();
    sbuf_t sys = {0};
    size_t i;
    wire__system_text(ms, &sys);
    if (sys.len)
        json_object_set_new(
            r, "systemInstruction",
            json_pack("{s:[{s:o}]}", "parts", "text", wire__sbuf_json(&sys)));
    sbuf_free(&sys);
    json_array_foreach(ms, i, m)
    {
        const char *role = wire__str(m, "role");
        if (wire__is(role, "assistant"))
            wire__push(out, "model", "parts", s_ge_model_parts(m));
        else if (wire__is(role, "tool"))
            wire__push(out, "user", "parts", s_ge_response_parts(ms, i, m));
        else if (wire__is(role, "user"))
            wire__push(out, "user", "parts",
                       s_ge_user_parts(json_object_get(m, "content")));
    }
    json_object_set_new(r, "contents", out);
}

static const char *const s_ge_unsupported[] = {"$schema", "$id", "$comment",
                                               "additionalProperties"};

static json_t *s_ge_schema(const json_t *s);

/* A "properties" object: the names are kept, each schema cleaned. */
static json_t *s_ge_properties(const json_t *props)
{
    json_t *o = json_object(), *v;
    const char *k;
    json_object_foreach((json_t *)props, k, v)
    {
        json_object_set_new(o, k, s_ge_schema(v));
    }
    return o;
}

/* A JSON Schema copied without the keywords Gemini's schema subset rejects. */
static json_t *s_ge_schema(const json_t *s)
{
    const char *k;
    json_t *v, *o;
    size_t i;
    if (json_is_array(s)) {
        o = json_array();
        json_array_foreach(s, i, v)
        {
            json_array_append_new(o, s_ge_schema(v));
        }
        return o;
    }
    if (!json_is_object(s))
        return json_deep_copy(s);
    o = json_object();
    json_object_foreach((json_t *)s, k, v)
    {
        if (wire__in(k, s_ge_unsupported, ARRAY_LEN(s_ge_unsupported)))
            continue;
        json_object_set_new(o, k,
                            strcmp(k, "properties") == 0 && json_is_object(v)
                                ? s_ge_properties(v)
                                : s_ge_schema(v));
    }
    return o;
}

static void s_ge_tools(const json_t *canon, json_t *r)
{
    const json_t *t;
    size_t i;
    json_t *decls = json_array();
    json_array_foreach(json_object_get(canon, "tools"), i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const json_t *params = json_object_get(fn, "parameters");
        json_t *d = json_pack("{s:s}", "name",
                              wire__str(fn, "name") ? wire__str(fn, "name") : "");
        wire__copy(d, "description", fn, "description");
        /* Gemini refuses an OBJECT schema without properties. */
        if (json_object_size(json_object_get(params, "properties")) > 0)
            json_object_set_new(d, "parameters", s_ge_schema(params));
        json_array_append_new(decls, d);
    }
    if (json_array_size(decls))
        json_object_set_new(r, "tools",
                            json_pack("[{s:O}]", "functionDeclarations", decls));
    json_decref(decls);
}

static void s_ge_tool_config(const json_t *canon, json_t *r)
{
    const json_t *tc = json_object_get(canon, "tool_choice");
    const char *s = json_string_value(tc);
    const char *name = wire__str(json_object_get(tc, "function"), "name");
    const char *mode = wire__is(s, "auto")               ? "AUTO"
                       : wire__is(s, "none")             ? "NONE"
                       : wire__is(s, "required") || name ? "ANY"
                                                         : NULL;
    if (!mode)
        return;
    json_t *fcc = json_pack("{s:s}", "mode", mode);
    if (name)
        json_object_set_new(fcc, "allowedFunctionNames", json_pack("[s]", name));
    json_object_set_new(r, "toolConfig",
                        json_pack("{s:o}", "functionCallingConfig", fcc));
}

static void s_ge_config(const json_t *canon, json_t *r)
{
    json_t *gc = json_object(), *stop = wire__stop_array(canon);
    long max;
    if (wire_max_tokens(canon, &max))
        json_object_set_new(gc, "maxOutputTokens", json_integer(max));
    wire__copy(gc, "temperature", canon, "temperature");
    wire__copy(gc, "topP", canon, "top_p");
    if (stop)
        json_object_set_new(gc, "stopSequences", stop);
    if (json_object_size(gc))
        json_object_set(r, "generationConfig", gc);
    json_decref(gc);
}

json_t *wire__upstream_gemini(const json_t *canon, const char *model, bool stream,
                              char *path, size_t pathlen)
{
    json_t *r = json_object();
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    snprintf(path, pathlen, "/v1beta/models/%s:%s", model,
             stream ? "streamGenerateContent?alt=sse" : "generateContent");
    s_ge_contents(canon, r);
    s_ge_config(canon, r);
    s_ge_tools(canon, r);
    s_ge_tool_config(canon, r);
    return r;
}
