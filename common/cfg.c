/* cfg.c - loads etc/vapora.conf into an immutable cfg_t (see cfg.h).
 *
 * DESIGN: libinih does the INI syntax, but we feed it through our own line
 * reader (ini_parse_stream) rather than ini_parse_file/ini_parse_string,
 * because the reader is the only place that sees raw lines. It counts them
 * for messages, rejects lines that do not fit inih's fixed line buffer
 * (inih would silently split them and parse the tail as a line of its own),
 * records sections that have no keys (inih only reports key/value pairs) and
 * spots indented lines that inih would glue onto the previous key as a
 * multi-line "continuation" value, which VAPORA does not support.
 *
 * Raw values are stored first; ${...} interpolation runs once the whole
 * file has been read, so only the value that wins for a duplicated key is
 * expanded. Storage is a dynamic array of sections, each a dynamic array of
 * key/value pairs; lookups are linear, which is fine for a small file. */
#define _GNU_SOURCE
#include "cfg.h"
#include "alloc.h"
#include "vp_error.h"
#include "sbuf.h"
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* inih keeps section names in a buffer of this size (MAX_SECTION in ini.c)
 * and truncates longer ones. */
#define CFG_MAX_SECTION 50
#define CFG_VAR_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"

typedef struct cfg_pair {
    char *key;
    char *value;
    int line;
} cfg_pair_t;

typedef struct cfg_section {
    char *name;
    cfg_pair_t *pairs;
    size_t npairs;
    size_t cap;
} cfg_section_t;

struct cfg {
    cfg_section_t *sections;
    size_t nsections;
    size_t cap;
};

/* The state of one load: the input, the current line, the first error. */
typedef struct parse {
    cfg_t *cfg;
    const char *name; /* file name used in messages */
    FILE *fp;         /* the input file, or NULL when reading text */
    const char *text; /* the unread rest of the input text */
    int line;
    int read_errno;
    bool have_key; /* a key was read since the last section header */
    bool cont;     /* the current line would continue the previous key */
    bool failed;
    int fail_line;
    char *err;
    size_t errlen;
} parse_t;

static void s_fail(parse_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first error of a load as "name:line: message". */
static void s_fail(parse_t *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    sbuf_t msg = {0};
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&msg, fmt, ap);
    va_end(ap);
    vp_errorf(p->err, p->errlen, 0, "%s:%d: %s", p->name, p->line, msg.data);
    sbuf_free(&msg);
    p->failed = true;
    p->fail_line = p->line;
}

/* ---- storage ---------------------------------------------------------- */

static cfg_section_t *s_section_find(const cfg_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->nsections; i++) {
        cfg_section_t *sec = &cfg->sections[i];
        if (strlen(sec->name) == len && memcmp(sec->name, name, len) == 0)
            return sec;
    }
    return NULL;
}

/* Finds or appends a section. The pointer is valid until the next add. */
static cfg_section_t *s_section_add(cfg_t *cfg, const char *name, size_t len)
{
    cfg_section_t *sec = s_section_find(cfg, name, len);
    if (sec)
        return sec;
    if (cfg->nsections == cfg->cap) {
        cfg->cap = cfg->cap ? cfg->cap * 2 : 8;
        cfg->sections = xrealloc(cfg->sections, cfg->cap * sizeof(*cfg->sections));
    }
    sec = &cfg->sections[cfg->nsections++];
    *sec = (cfg_section_t){.name = xstrndup(name, len)};
    return sec;
}

static cfg_pair_t *s_pair_find(const cfg_section_t *sec, const char *key)
{
    for (size_t i = 0; i < sec->npairs; i++) {
        if (strcmp(sec->pairs[i].key, key) == 0)
            return &sec->pairs[i];
    }
    return NULL;
}

/* Sets key; a duplicate keeps its first position but takes the new value. */
static void s_pair_set(cfg_section_t *sec, const char *key, const char *value, int line)
{
    cfg_pair_t *kv = s_pair_find(sec, key);
    if (kv) {
        free(kv->value);
        kv->value = xstrdup(value);
        kv->line = line;
        return;
    }
    if (sec->npairs == sec->cap) {
        sec->cap = sec->cap ? sec->cap * 2 : 8;
        sec->pairs = xrealloc(sec->pairs, sec->cap * sizeof(*sec->pairs));
    }
    kv = &sec->pairs[sec->npairs++];
    kv->key = xstrdup(key);
    kv->value = xstrdup(value);
    kv->line = line;
}

static const cfg_section_t *s_section_get(const cfg_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    return s_section_find(cfg, name, strlen(name));
}

/* ---- reading lines ---------------------------------------------------- */

/* fgets() on the file, or its equivalent on the text. */
static bool s_fill(parse_t *p, char *buf, int num)
{
    if (p->fp) {
        if (fgets(buf, num, p->fp))
            return true;
        if (ferror(p->fp))
            p->read_errno = errno ? errno : EIO;
        return false;
    }
    size_t n = 0;
    while (n < (size_t)num - 1 && p->text[n] != '\0') {
        if (p->text[n++] == '\n')
            break;
    }
    if (n == 0)
        return false;
    memcpy(buf, p->text, n);
    buf[n] = '\0';
    p->text += n;
    return true;
}

static bool s_at_eof(parse_t *p)
{
    if (!p->fp)
        return *p->text == '\0';
    int c = getc(p->fp);
    if (c == EOF)
        return true;
    ungetc(c, p->fp);
    return false;
}

/* Registers "[name]" the way inih reads it: the name ends at ']' and an
 * inline comment (" ;") before it makes the line a syntax error. */
static void s_scan_section(parse_t *p, const char *s)
{
    const char *e = s;
    bool was_space = false;
    while (*e && *e != ']' && !(was_space && *e == ';')) {
        was_space = isspace((unsigned char)*e);
        e++;
    }
    if (*e != ']')
        return; /* inih reports the syntax error */
    size_t len = (size_t)(e - s);
    if (len == 0)
        s_fail(p, "empty section name []");
    else if (len >= CFG_MAX_SECTION)
        s_fail(p, "section name longer than %d characters", CFG_MAX_SECTION - 1);
    else
        s_section_add(p->cfg, s, len);
    p->have_key = false;
}

/* Classifies a raw line in the same order as inih: comment or blank, then
 * continuation (indented, after a key in this section), then section. */
static void s_scan_line(parse_t *p, const char *raw)
{
    const char *s = raw;
    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    bool indented = isspace((unsigned char)*s);
    while (isspace((unsigned char)*s))
        s++;
    p->cont = false;
    if (*s == '\0' || *s == ';' || *s == '#')
        return;
    if (indented && p->have_key)
        p->cont = true;
    else if (*s == '[')
        s_scan_section(p, s + 1);
}

/* The ini_reader: one line per call, NULL at the end or after an error. */
static char *s_read_line(char *buf, int num, void *stream)
{
    parse_t *p = stream;
    if (p->failed || num < 3 || !s_fill(p, buf, num))
        return NULL;
    p->line++;
    size_t len = strlen(buf);
    if (len == (size_t)num - 1 && buf[len - 1] != '\n' && !s_at_eof(p)) {
        s_fail(p, "line longer than %d characters", num - 2);
        return NULL;
    }
    s_scan_line(p, buf);
    return p->failed ? NULL : buf;
}

/* The ini_handler: stores one raw key/value pair. */
static int s_on_pair(void *user, const char *section, const char *key,
                     const char *value)
{
    parse_t *p = user;
    if (p->cont)
        s_fail(p,
               "indented line continues key '%s' (multi-line values are "
               "not supported; remove the indentation)",
               key);
    else if (*section == '\0')
        s_fail(p, "key '%s' outside any section", key);
    else if (*key == '\0')
        s_fail(p, "missing key name before '='");
    if (p->failed)
        return 0;
    s_pair_set(s_section_add(p->cfg, section, strlen(section)), key, value, p->line);
    p->have_key = true;
    return 1;
}

/* ---- interpolation ---------------------------------------------------- */

/* Expands the body of "${...}" (s points after "${") into out. Returns the
 * position after the closing '}', or NULL with the reason in why. */
static const char *s_expand_var(const char *s, sbuf_t *out, char *why, size_t whylen)
{
    const char *close = strchr(s, '}');
    if (!close) {
        vp_errorf(why, whylen, 0, "unterminated \"${\" (missing \"}\")");
        return NULL;
    }
    size_t nlen = strspn(s, CFG_VAR_CHARS);
    const char *def = strncmp(s + nlen, ":-", 2) == 0 ? s + nlen + 2 : NULL;
    if (nlen == 0 || isdigit((unsigned char)s[0]) || (!def && s + nlen != close) ||
        (def && memmem(def, (size_t)(close - def), "${", 2))) {
        vp_errorf(why, whylen, 0, "invalid expression \"${%.*s}\"", (int)(close - s),
                  s);
        return NULL;
    }
    char *name = xstrndup(s, nlen);
    const char *env = getenv(name);
    if (env && (*env || !def))
        sbuf_puts(out, env);
    else if (def)
        sbuf_append(out, def, (size_t)(close - def));
    else
        vp_errorf(why, whylen, 0,
                  "environment variable %s is not set and has no default", name);
    free(name);
    return env || def ? close + 1 : NULL;
}

/* Expands "${VAR}", "${VAR:-default}" and "$$"; any other '$' is literal. */
static int s_expand(const char *in, sbuf_t *out, char *why, size_t whylen)
{
    while (*in) {
        const char *d = strchr(in, '$');
        if (!d) {
            sbuf_puts(out, in);
            break;
        }
        sbuf_append(out, in, (size_t)(d - in));
        if (d[1] == '{') {
            in = s_expand_var(d + 2, out, why, whylen);
            if (!in)
                return -EINVAL;
        } else {
            sbuf_append(out, "$", 1);
            in = d + (d[1] == '$' ? 2 : 1);
        }
    }
    return 0;
}

static int s_expand_pair(parse_t *p, const cfg_section_t *sec, cfg_pair_t *kv)
{
    char why[256];
    sbuf_t out = {0};
    if (s_expand(kv->value, &out, why, sizeof(why)) < 0) {
        sbuf_free(&out);
        vp_errorf(p->err, p->errlen, 0, "%s:%d: [%s] %s: %s", p->name, kv->line,
                  sec->name, kv->key, why);
        p->failed = true;
        return -EINVAL;
    }
    free(kv->value);
    kv->value = sbuf_steal(&out);
    return 0;
}

/* ---- loading ---------------------------------------------------------- */

static void s_expand_all(parse_t *p)
{
    for (size_t i = 0; i < p->cfg->nsections; i++) {
        cfg_section_t *sec = &p->cfg->sections[i];
        for (size_t j = 0; j < sec->npairs; j++) {
            if (s_expand_pair(p, sec, &sec->pairs[j]) < 0)
                return;
        }
    }
}

static cfg_t *s_parse(parse_t *p)
{
    p->cfg = xcalloc(1, sizeof(*p->cfg));
    int rc = ini_parse_stream(s_read_line, p, s_on_pair, p);
    /* inih goes on after a syntax error; an earlier one beats ours. */
    if (rc > 0 && (!p->failed || rc < p->fail_line)) {
        vp_errorf(p->err, p->errlen, 0,
                  "%s:%d: syntax error (expected [section] or key = value)", p->name,
                  rc);
        p->failed = true;
    } else if (!p->failed && p->read_errno) {
        vp_errorf(p->err, p->errlen, 0, "cannot read %s: %s", p->name,
                  strerror(p->read_errno));
        p->failed = true;
    } else if (!p->failed && rc < 0) {
        vp_errorf(p->err, p->errlen, 0, "cannot parse %s: inih error %d", p->name, rc);
        p->failed = true;
    }
    if (!p->failed)
        s_expand_all(p);
    if (p->failed)
        cfg_destroy(&p->cfg);
    return p->cfg;
}

cfg_t *cfg_load(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        vp_errorf(err, errlen, 0, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    parse_t p = {.name = path, .fp = fp, .err = err, .errlen = errlen};
    cfg_t *cfg = s_parse(&p);
    fclose(fp);
    return cfg;
}

cfg_t *cfg_load_string(const char *text, const char *name, char *err, size_t errlen)
{
    parse_t p = {.name = name ? name : "<string>",
                 .text = text ? text : "",
                 .err = err,
                 .errlen = errlen};
    return s_parse(&p);
}

void cfg_destroy(cfg_t **cfgp)
{
    if (!cfgp || !*cfgp)
        return;
    cfg_t *cfg = *cfgp;
    for (size_t i = 0; i < cfg->nsections; i++) {
        cfg_section_t *sec = &cfg->sections[i];
        for (size_t j = 0; j < sec->npairs; j++) {
            free(sec->pairs[j].key);
            free(sec->pairs[j].value);
        }
        free(sec->pairs);
        free(sec->name);
    }
    free(cfg->sections);
    free(cfg);
    *cfgp = NULL;
}

/* ---- lookups ---------------------------------------------------------- */

const char *cfg_get(const cfg_t *cfg, const char *section, const char *key)
{
    const cfg_section_t *sec = s_section_get(cfg, section);
    const cfg_pair_t *kv = sec && key ? s_pair_find(sec, key) : NULL;
    return kv ? kv->value : NULL;
}

const char *cfg_get_str(const cfg_t *cfg, const char *section, const char *key,
                        const char *def)
{
    const char *v = cfg_get(cfg, section, key);
    return v ? v : def;
}

int cfg_get_long(const cfg_t *cfg, const char *section, const char *key, long def,
                 long min, long max, long *out, char *err, size_t errlen)
{
    const char *v = cfg_get(cfg, section, key);
    if (!v) {
        *out = def;
        return 0;
    }
    int rc = parse_long(v, min, max, out);
    if (rc == -EINVAL)
        vp_errorf(err, errlen, 0, "[%s] %s: \"%s\" is not a whole number", section, key,
                  v);
    else if (rc < 0)
        vp_errorf(err, errlen, 0, "[%s] %s: \"%s\" must be between %ld and %ld",
                  section, key, v, min, max);
    return rc < 0 ? -EINVAL : 0;
}

int cfg_get_double(const cfg_t *cfg, const char *section, const char *key, double def,
                   double min, double max, double *out, char *err, size_t errlen)
{
    const char *v = cfg_get(cfg, section, key);
    double d;
    if (!v) {
        *out = def;
        return 0;
    }
    if (parse_double(v, &d) < 0) {
        vp_errorf(err, errlen, 0, "[%s] %s: \"%s\" is not a number", section, key, v);
        return -EINVAL;
    }
    if (d < min || d > max) {
        vp_errorf(err, errlen, 0, "[%s] %s: \"%s\" must be between %g and %g", section,
                  key, v, min, max);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int cfg_get_bool(const cfg_t *cfg, const char *section, const char *key, bool def,
                 bool *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    const char *v = cfg_get(cfg, section, key);
    if (!v) {
        *out = def;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    vp_errorf(err, errlen, 0,
              "[%s] %s: \"%s\" is not a boolean (use true/false, yes/no, "
              "on/off or 1/0)",
              section, key, v);
    return -EINVAL;
}

/* "a, b, c" into list (size > 4): the choices, ending in "..." when they
 * do not all fit. */
static void s_choice_list(char *list, size_t size, const char *const *choices)
{
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; choices[i]; i++) {
        int n = snprintf(list + used, size - used, "%s%s", i ? ", " : "", choices[i]);
        if (n < 0 || (size_t)n >= size - used) {
            memcpy(list + size - 4, "...", 4);
            return;
        }
        used += (size_t)n;
    }
}

int cfg_get_choice(const cfg_t *cfg, const char *section, const char *key,
                   const char *const *choices, int def, int *out, char *err,
                   size_t errlen)
{
    const char *v = cfg_get(cfg, section, key);
    if (!v) {
        *out = def;
        return 0;
    }
    for (int i = 0; choices[i]; i++) {
        if (strcasecmp(v, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[256];
    s_choice_list(list, sizeof list, choices);
    vp_errorf(err, errlen, 0, "[%s] %s: \"%s\" is not one of %s", section, key, v,
              list);
    return -EINVAL;
}

bool cfg_has_section(const cfg_t *cfg, const char *section)
{
    return s_section_get(cfg, section) != NULL;
}

size_t cfg_section_count(const cfg_t *cfg)
{
    return cfg ? cfg->nsections : 0;
}

const char *cfg_section_name(const cfg_t *cfg, size_t i)
{
    return cfg && i < cfg->nsections ? cfg->sections[i].name : NULL;
}

size_t cfg_key_count(const cfg_t *cfg, const char *section)
{
    const cfg_section_t *sec = s_section_get(cfg, section);
    return sec ? sec->npairs : 0;
}

const char *cfg_key_name(const cfg_t *cfg, const char *section, size_t i)
{
    const cfg_section_t *sec = s_section_get(cfg, section);
    return sec && i < sec->npairs ? sec->pairs[i].key : NULL;
}

/* ---- schema ----------------------------------------------------------- */

/* "type:*" matches "type:name" with a non-empty name; else exact match. */
static bool s_pattern_match(const char *pattern, const char *section)
{
    size_t plen = strlen(pattern);
    if (plen >= 2 && strcmp(pattern + plen - 2, ":*") == 0)
        return strncmp(section, pattern, plen - 1) == 0 && section[plen - 1] != '\0';
    return strcmp(pattern, section) == 0;
}

static const cfg_schema_t *s_schema_find(const cfg_schema_t *schema, size_t len,
                                         const char *section)
{
    for (size_t i = 0; i < len; i++) {
        if (s_pattern_match(schema[i].section, section))
            return &schema[i];
    }
    return NULL;
}

const cfg_schema_t *cfg_schema_find(const cfg_schema_table_t *const *tables,
                                    size_t ntables, const char *section)
{
    for (size_t t = 0; t < ntables; t++) {
        const cfg_schema_t *e =
            s_schema_find(tables[t]->entries, tables[t]->len, section);
        if (e)
            return e;
    }
    return NULL;
}

const char *cfg_section_reader(const cfg_schema_t *schema, size_t schema_len,
                               const char *section)
{
    const cfg_schema_t *e = s_schema_find(schema, schema_len, section);
    return e ? e->reader : NULL;
}

static bool s_key_allowed(const cfg_schema_t *entry, const char *key)
{
    for (const char *const *k = entry->keys; k && *k; k++) {
        if (strcmp(*k, key) == 0)
            return true;
    }
    return false;
}

/* Hands msg (heap) to warn and frees it; returns 1 for the count. */
static size_t s_warn(void (*warn)(const char *msg, void *ud), void *ud, char *msg)
{
    if (warn)
        warn(msg, ud);
    free(msg);
    return 1;
}

/* Warns about each section no table knows (when sections is set) and each
 * unknown key of the sections one does, in file order. */
static size_t s_check(const cfg_t *cfg, const cfg_schema_table_t *const *tables,
                      size_t ntables, bool sections,
                      void (*warn)(const char *msg, void *ud), void *ud)
{
    size_t n = 0;
    for (size_t i = 0; cfg && i < cfg->nsections; i++) {
        const cfg_section_t *sec = &cfg->sections[i];
        const cfg_schema_t *entry = cfg_schema_find(tables, ntables, sec->name);
        if (!entry) {
            if (sections)
                n += s_warn(warn, ud, xasprintf("unknown section [%s]", sec->name));
            continue;
        }
        for (size_t j = 0; j < sec->npairs; j++) {
            if (!s_key_allowed(entry, sec->pairs[j].key))
                n += s_warn(warn, ud,
                            xasprintf("unknown key '%s' in section [%s]",
                                      sec->pairs[j].key, sec->name));
        }
    }
    return n;
}

size_t cfg_check_schema(const cfg_t *cfg, const cfg_schema_t *schema, size_t schema_len,
                        void (*warn)(const char *msg, void *ud), void *ud)
{
    const cfg_schema_table_t table = {schema, schema_len};
    const cfg_schema_table_t *const tables[] = {&table};
    return s_check(cfg, tables, 1, true, warn, ud);
}

size_t cfg_check_tables(const cfg_t *cfg, const cfg_schema_table_t *const *tables,
                        size_t ntables, void (*warn)(const char *msg, void *ud),
                        void *ud)
{
    return s_check(cfg, tables, ntables, true, warn, ud);
}

size_t cfg_check_keys(const cfg_t *cfg, const cfg_schema_table_t *const *tables,
                      size_t ntables, void (*warn)(const char *msg, void *ud), void *ud)
{
    return s_check(cfg, tables, ntables, false, warn, ud);
}

/* ---- lists ------------------------------------------------------------ */

size_t cfg_split_list(const char *value, char ***items)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    const char *s = value ? value : "";
    for (;;) {
        const char *end = strchrnul(s, ',');
        const char *b = s, *e = end;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                v = xrealloc(v, cap * sizeof(*v));
            }
            v[n++] = xstrndup(b, (size_t)(e - b));
        }
        if (*end == '\0')
            break;
        s = end + 1;
    }
    *items = v;
    return n;
}

void cfg_list_free(char **items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        free(items[i]);
    free(items);
}
