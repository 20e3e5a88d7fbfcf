/* charge.h - what one call is charged: the provider's token counts, or an
 * estimate when it reported none (or none readable), and never more than
 * the call's own bounds.
 *
 * DESIGN. A call is admitted by reserving its worst case: the prompt's
 * token bound plus its output bound (max_tokens, or default_max_tokens,
 * which the router then asks of the provider) at the dearest model of its
 * plan (admit.h). The provider's counts are not trusted beyond that: a
 * count over its bound is cut to it, and the call flagged as an anomaly
 * (a corrupt or hostile provider; a tokenizer that disagrees with the
 * bound would show here too). So a call never costs more than it
 * reserved, whatever the provider claims. Unreadable or missing counts are
 * estimated from the prompt's bound and the answer's text (about 4 bytes
 * a token), never taken as zero.
 *
 * Pure: any thread. */
#ifndef VAPORA_ROUTER_CHARGE_H
#define VAPORA_ROUTER_CHARGE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "wire.h"

typedef struct charge {
    wire_usage_t tokens; /* charged (present: as counted, maybe estimated) */
    double cost_usd;
    bool estimated; /* counted from the prompt's bound and the answer's text */
    bool anomaly;   /* a reported count was over its bound and was cut */
} charge_t;

/* The charge of a call to model whose provider reported `reported`, whose
 * answer had text_bytes bytes of text, bounded by prompt_bound input and
 * max_tokens output tokens. */
charge_t charge_compute(const rt_config_t *cfg, const char *model,
                        const wire_usage_t *reported, size_t text_bytes,
                        long prompt_bound, long max_tokens);

#endif
