/* harness_metrics.c - see harness_metrics.h. */
#define _GNU_SOURCE
#include "harness_metrics.h"

#include <stdlib.h>
#include <string.h>

bool th_metric_has(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, name, n) == 0 && (l[n] == '{' || l[n] == ' '))
            return true;
    }
    return false;
}

double th_metric(const char *text, const char *name, const char *const *labels)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        const char *eol = strchrnul(l, '\n');
        if (strncmp(l, name, n) != 0 || l[n] != '{')
            continue;
        char *line = strndup(l, (size_t)(eol - l));
        bool all = true;
        for (const char *const *f = labels; *f && all; f++)
            all = strstr(line, *f) != NULL;
        char *sp = strrchr(line, ' ');
        double v = all && sp ? strtod(sp + 1, NULL) : -1;
        free(line);
        if (all)
            return v;
    }
    return -1;
}
