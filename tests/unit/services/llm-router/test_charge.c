/* test_charge.c - unit tests for a call's charge (charge.c): the
 * provider's counts within the call's bounds, counts over them cut and
 * flagged, and missing or unreadable counts estimated, never free. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "charge.h"

static rt_config_t *s_cfg(void)
{
    char err[256];
    cfg_t *cfg = cfg_load_string("[provider:p]\nkind = ollama\nbase_url = http://a\n"
                                 "models = m\n"
                                 "[model:m]\ninput_usd_per_mtok = 1000\n"
                                 "output_usd_per_mtok = 2000\n",
                                 "test", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    rt_config_t *c = rt_config_load(cfg, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cfg_destroy(&cfg);
    return c;
}

Test(router_charge, counts_within_the_bounds_are_charged_as_reported)
{
    rt_config_t *c = s_cfg();
    wire_usage_t u = {10, 20, true, false};
    charge_t ch = charge_compute(c, "m", &u, 999, 10, 100);
    cr_assert(!ch.estimated && !ch.anomaly);
    cr_assert_eq(ch.tokens.input_tokens, 10);
    cr_assert_eq(ch.tokens.output_tokens, 20);
    cr_assert_float_eq(ch.cost_usd, 0.05, 1e-12);
    rt_config_destroy(&c);
}

/* What a call reserved is the most it costs: a count over its bound is cut
 * to it, and flagged. */
Test(router_charge, counts_over_the_bounds_are_cut_and_flagged)
{
    rt_config_t *c = s_cfg();
    wire_usage_t u = {WIRE_MAX_TOKENS, 20, true, false};
    charge_t ch = charge_compute(c, "m", &u, 0, 10, 100);
    cr_assert(ch.anomaly && !ch.estimated);
    cr_assert_eq(ch.tokens.input_tokens, 10);
    cr_assert_float_eq(ch.cost_usd, 0.05, 1e-12);
    u = (wire_usage_t){5, 101, true, false};
    ch = charge_compute(c, "m", &u, 0, 10, 100);
    cr_assert(ch.anomaly);
    cr_assert_eq(ch.tokens.output_tokens, 100);
    cr_assert_float_eq(ch.cost_usd, 0.205, 1e-12);
    rt_config_destroy(&c);
}

Test(router_charge, missing_or_unreadable_counts_are_estimated)
{
    rt_config_t *c = s_cfg();
    /* No usage: the prompt's bound, a token per 4 bytes of text. */
    wire_usage_t none = {0};
    charge_t ch = charge_compute(c, "m", &none, 41, 10, 100);
    cr_assert(ch.estimated && !ch.anomaly);
    cr_assert_eq(ch.tokens.input_tokens, 10);
    cr_assert_eq(ch.tokens.output_tokens, 11);
    cr_assert_gt(ch.cost_usd, 0);
    /* Present but unreadable (a count sent as text): estimated too. */
    wire_usage_t text = {0, 0, true, true};
    ch = charge_compute(c, "m", &text, 41, 10, 100);
    cr_assert(ch.estimated && ch.cost_usd > 0);
    /* Negative counts are no counts: estimated, not a free call. */
    wire_usage_t neg = {-5, -1000, true, false};
    ch = charge_compute(c, "m", &neg, 41, 10, 100);
    cr_assert(ch.estimated && ch.cost_usd > 0);
    cr_assert_eq(ch.tokens.input_tokens, 10);
    /* An estimate over the output bound is cut, without an anomaly. */
    ch = charge_compute(c, "m", &none, 100000, 10, 100);
    cr_assert(ch.estimated && !ch.anomaly);
    cr_assert_eq(ch.tokens.output_tokens, 100);
    rt_config_destroy(&c);
}
