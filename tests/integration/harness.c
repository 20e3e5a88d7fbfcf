/* harness.c - see harness.h: the per-test cleanup across the modules. */
#include "harness.h"

void th_cleanup(void)
{
    th__loads_release();
    th__svs_release();
    th__http_release();
    th__procs_release();
    th__pids_kill();
    th__keep_release();
}
