/* charge.c - a call's charge, bounded by its reservation. See charge.h. */
#include "charge.h"

static long s_min(long a, long b)
{
    return a < b ? a : b;
}

charge_t charge_compute(const rt_config_t *cfg, const char *model,
                        const wire_usage_t *reported, size_t text_bytes,
                        long prompt_bound, long max_tokens)
{
    charge_t ch = {0};
    /* Negative counts are no counts: estimated, as unreadable ones, not a
     * free call. */
    bool negative = reported->input_tokens < 0 || reported->output_tokens < 0;
    ch.estimated = !reported->present || reported->unreadable || negative;
    wire_usage_t u = *reported;
    if (ch.estimated)
        u = (wire_usage_t){prompt_bound, (long)((text_bytes + 3) / 4), false, false};
    long in = s_min(u.input_tokens, prompt_bound);
    long out = s_min(u.output_tokens, max_tokens);
    /* An estimate over a bound is only an estimate's error: cut silently. */
    ch.anomaly = !ch.estimated && (in != u.input_tokens || out != u.output_tokens);
    ch.tokens = (wire_usage_t){in, out, !ch.estimated, false};
    ch.cost_usd = rt_cost(cfg, model, in, out);
    return ch;
}
