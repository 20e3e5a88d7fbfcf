/* fuzz_cfg.c - etc/vapora.conf as each reader takes it: the INI parser and
 * ${VAR} interpolation (common/cfg.c), the typed getters and list
 * splitting, the schema checks of every declarer (supervisor/schemas.c),
 * the runtime settings of each [service:*] (common/settings.c), the LLM
 * router's loader (services/llm-router/config.c) and the supervisor's
 * (supervisor/sv_config.c, from a file as it reads one).
 *
 * Input: the file's text (up to its first NUL). FZ_A and FZ_EMPTY are set
 * for ${...} to find. Properties: every section and key the loaded config
 * lists can be read back. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base.h"
#include "cfg.h"
#include "fz.h"
#include "llm-router/config.h"
#include "log.h"
#include "schemas.h"
#include "settings.h"
#include "sv_config.h"

static int s_memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    UNUSED(argc);
    UNUSED(argv);
    setenv("FZ_A", "alpha", 1);
    setenv("FZ_EMPTY", "", 1);
    log_set_level(LOG_ERROR);
    s_memfd = memfd_create("vapora-fuzz.conf", MFD_CLOEXEC);
    FZ_CHECK(s_memfd >= 0, "memfd_create failed");
    return 0;
}

static void s_warn(const char *msg, void *ud)
{
    UNUSED(msg);
    UNUSED(ud);
}

/* Every getter on every key of section sec. */
static void s_read_section(const cfg_t *cfg, const char *sec)
{
    char err[256];
    FZ_CHECK(cfg_has_section(cfg, sec), "section [%s] listed but not found", sec);
    size_t nk = cfg_key_count(cfg, sec);
    for (size_t k = 0; k < nk; k++) {
        const char *key = cfg_key_name(cfg, sec, k);
        FZ_CHECK(key && cfg_get(cfg, sec, key), "key %zu of [%s] cannot be read", k,
                 sec);
        long l;
        double d;
        bool b;
        char **items;
        cfg_get_long(cfg, sec, key, 0, -1000, 1000000, &l, err, sizeof err);
        cfg_get_double(cfg, sec, key, 0, -1e9, 1e9, &d, err, sizeof err);
        cfg_get_bool(cfg, sec, key, false, &b, err, sizeof err);
        size_t n = cfg_split_list(cfg_get(cfg, sec, key), &items);
        cfg_list_free(items, n);
    }
    if (strncmp(sec, "service:", 8) == 0)
        settings_check(cfg, sec, err, sizeof err);
}

/* The supervisor reads its config from a file: the same text, through a
 * memfd's /proc path. */
static void s_supervisor(const char *text, size_t len)
{
    char err[512], path[64];
    FZ_CHECK(ftruncate(s_memfd, 0) == 0 &&
                 pwrite(s_memfd, text, len, 0) == (ssize_t)len,
             "writing the memfd failed");
    snprintf(path, sizeof path, "/proc/self/fd/%d", s_memfd);
    sv_config_t *sv = sv_config_load(path, "/nonexistent/bin", err, sizeof err);
    sv_config_destroy(&sv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    char *text = fz_rest_str(&in);
    char err[512];
    cfg_t *cfg = cfg_load_string(text, "fuzz.conf", err, sizeof err);
    if (cfg) {
        size_t ns = cfg_section_count(cfg);
        for (size_t i = 0; i < ns; i++) {
            const char *sec = cfg_section_name(cfg, i);
            FZ_CHECK(sec, "section %zu of %zu has no name", i, ns);
            s_read_section(cfg, sec);
        }
        sv_schemas_check(cfg, s_warn, NULL);
        rt_config_t *rc = rt_config_load(cfg, err, sizeof err);
        rt_config_destroy(&rc);
        cfg_destroy(&cfg);
        s_supervisor(text, strlen(text));
    } else {
        FZ_CHECK(err[0], "a refused config without a reason");
    }
    free(text);
    return 0;
}
