/* cfg.h - etc/vapora.conf: one INI file (parsed by libinih) for the supervisor
 * and every service.
 *
 * Values are interpolated when loaded: "${VAR}" is replaced by the
 * environment variable VAR and "${VAR:-default}" by VAR when it is set and
 * non-empty, else by "default". "$$" stands for a literal "$". An unset
 * ${VAR} without a default is a load error that names the section and key.
 * Inline comments start with " ;" as libinih defines.
 *
 * Unknown sections and keys are not errors: cfg_check_schema() reports each
 * one as a warning (the caller logs them). Section names may be typed:
 * "service:backend" has type "service" and name "backend".
 *
 * A cfg_t is immutable after loading and may be read from any thread. */
#ifndef VAPORA_CFG_H
#define VAPORA_CFG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cfg cfg_t;

/* Loads path. On failure returns NULL and writes a one-line human reason
 * (with the file, line, section and key where they apply) into err. */
cfg_t *cfg_load(const char *path, char *err, size_t errlen);
/* The same from a string held in memory; name is used in messages. */
cfg_t *cfg_load_string(const char *text, const char *name, char *err, size_t errlen);
void cfg_destroy(cfg_t **cfgp);

/* The interpolated value of section/key, or NULL when absent. The string is
 * owned by cfg. Later duplicates of a key replace earlier ones. */
const char *cfg_get(const cfg_t *cfg, const char *section, const char *key);
/* As cfg_get, but returns def when absent. */
const char *cfg_get_str(const cfg_t *cfg, const char *section, const char *key,
                        const char *def);
/* Typed getters: 0 and *out set (def when absent), or -EINVAL with a reason
 * naming section, key and value in err. */
int cfg_get_long(const cfg_t *cfg, const char *section, const char *key, long def,
                 long min, long max, long *out, char *err, size_t errlen);
int cfg_get_double(const cfg_t *cfg, const char *section, const char *key, double def,
                   double min, double max, double *out, char *err, size_t errlen);
/* Accepts true/false, yes/no, on/off, 1/0 (case-insensitive). */
int cfg_get_bool(const cfg_t *cfg, const char *section, const char *key, bool def,
                 bool *out, char *err, size_t errlen);

/* One of the words of choices (NULL-terminated; matched case-insensitively):
 * *out is its index (def when absent), or -EINVAL with a reason that names
 * section, key, value and every choice in err. */
int cfg_get_choice(const cfg_t *cfg, const char *section, const char *key,
                   const char *const *choices, int def, int *out, char *err,
                   size_t errlen);

bool cfg_has_section(const cfg_t *cfg, const char *section);
/* Number of sections, and the i-th section name in file order (first
 * appearance); NULL when out of range. */
size_t cfg_section_count(const cfg_t *cfg);
const char *cfg_section_name(const cfg_t *cfg, size_t i);
/* Keys of a section in file order; NULL when out of range. */
size_t cfg_key_count(const cfg_t *cfg, const char *section);
const char *cfg_key_name(const cfg_t *cfg, const char *section, size_t i);

/* One entry of a schema: a section pattern and the keys allowed in it.
 * A pattern is either an exact section name ("supervisor") or a type
 * followed by ":*" ("service:*"). keys is NULL-terminated. */
typedef struct cfg_schema {
    const char *section;
    const char *const *keys;
    const char *reader; /* the one service that reads it; NULL: every one */
} cfg_schema_t;

/* A schema as one declarer hands it out: its entries and their count.
 * Several tables make a process's whole schema (a service declares its own
 * sections, the runtime the shared ones); nothing here knows which. */
typedef struct cfg_schema_table {
    const cfg_schema_t *entries;
    size_t len;
} cfg_schema_table_t;

/* The service that alone reads section per schema, or NULL when every
 * service may (shared sections, and sections the schema does not know). */
const char *cfg_section_reader(const cfg_schema_t *schema, size_t schema_len,
                               const char *section);

/* The entry of the first of ntables tables whose pattern matches section,
 * or NULL when none does. The entry belongs to its table. */
const cfg_schema_t *cfg_schema_find(const cfg_schema_table_t *const *tables,
                                    size_t ntables, const char *section);

/* Calls warn(msg, ud) once per unknown section ("unknown section [x]") and
 * once per unknown key ("unknown key 'k' in section [s]"), in file order.
 * Returns the number of warnings. */
size_t cfg_check_schema(const cfg_t *cfg, const cfg_schema_t *schema, size_t schema_len,
                        void (*warn)(const char *msg, void *ud), void *ud);
/* The same against the union of ntables tables (the first match wins). */
size_t cfg_check_tables(const cfg_t *cfg, const cfg_schema_table_t *const *tables,
                        size_t ntables, void (*warn)(const char *msg, void *ud),
                        void *ud);
/* Only the unknown keys of sections some table knows; sections no table
 * matches are passed over in silence. For a process that knows only part
 * of the file (a worker: the shared sections and its service's own). */
size_t cfg_check_keys(const cfg_t *cfg, const cfg_schema_table_t *const *tables,
                      size_t ntables, void (*warn)(const char *msg, void *ud),
                      void *ud);

/* Splits a comma-separated list value into trimmed, non-empty items.
 * Returns the count; *items is a heap array of heap strings, freed with
 * cfg_list_free. */
size_t cfg_split_list(const char *value, char ***items);
void cfg_list_free(char **items, size_t n);

#endif
