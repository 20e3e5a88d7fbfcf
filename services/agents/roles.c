/* roles.c - see roles.h. */
#include "roles.h"

#include <string.h>

#include "base.h"

static const struct {
    const char *name;
    const char *task_types;
} s_roles[ROLES_COUNT] = {
    {"architect", "architecture, design, api, schema"},
    {"developer", "feature, bugfix, enhancement, implementation, refactor, code"},
    {"code-reviewer", "code-review, review, pull-request"},
    {"tester", "test, testing, qa, regression"},
    {"documenter", "documentation, docs, readme, guide"},
    {"marketer", "marketing, announcement, blog, launch"},
    {"presenter", "presentation, slides, demo, talk"},
    {"devops", "deployment, ci, infrastructure, docker, pipeline"},
    {"security", "security, vulnerability, audit, threat-model"},
    {"project-manager", "planning, roadmap, estimate, tech-debt"},
    {"decision-maker", "decision, tradeoff, adr, approval"},
    {"monitor", "monitoring, alert, incident, metrics"},
};

const char *roles_name(size_t i)
{
    return i < ROLES_COUNT ? s_roles[i].name : NULL;
}

static int s_find(const char *name)
{
    for (size_t i = 0; name && i < ROLES_COUNT; i++)
        if (strcmp(s_roles[i].name, name) == 0)
            return (int)i;
    return -1;
}

bool roles_valid(const char *name)
{
    return s_find(name) >= 0;
}

const char *roles_default_task_types(const char *role)
{
    int i = s_find(role);
    return i < 0 ? NULL : s_roles[i].task_types;
}
