/* main.c - vapora-agents: agent registry, scored assignment and task execution.
 *
 * Wiring only: the shared worker runtime (common/worker.h) provides the loop,
 * the pool, GET /health and GET /metrics; the service's own routes are added
 * in later issues. */
#include "schema.h"
#include "worker.h"

static const worker_service_t s_service = {
    .name = "agents",
    .default_listen = "0.0.0.0:8002",
    .schema = &agents_schema,
};

int main(int argc, char **argv)
{
    return worker_main(argc, argv, &s_service);
}
