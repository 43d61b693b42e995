/*
 * TRAFFIC_ROUTING: set the share of traffic each variant takes.
 */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "kanaria/engine.h"
#include "kanaria/platform.h"
#include "stages.h"

static const char *const variant_names[] = {"primary", "canary", "baseline", NULL};

static const struct kn_field traffic_fields[] = {
    {.key = "primary",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, percent[KN_VARIANT_PRIMARY]),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of traffic to the primary (default: what the others leave)"},
    {.key = "canary",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, percent[KN_VARIANT_CANARY]),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of traffic to the canary"},
    {.key = "baseline",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, percent[KN_VARIANT_BASELINE]),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of traffic to the baseline"},
    {.key = "all",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_traffic_options, all),
     .enums = variant_names,
     .help = "send all traffic to one variant (instead of percents)"},
};

static void traffic_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_traffic_options *t = obj;
    int given = 0;
    double sum = 0;

    /* fields 0..2 of the table are the variants in enum order */
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (t->set & (1u << v)) {
            if (t->percent[v] < 0 || t->percent[v] > 100) {
                return; /* already reported; a sum would only repeat it */
            }
            given++;
            sum += t->percent[v];
        }
    }
    if (t->set & (1u << 3)) {
        if (given) {
            kn_schema_error(ctx, kn_node_get(node, "all"),
                            "'all' cannot be combined with percents");
            return;
        }
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            t->percent[v] = v == t->all ? 100 : 0;
        }
        t->valid = 1;
        return;
    }
    if (!given) {
        kn_schema_error(ctx, node, "set 'primary', 'canary', 'baseline' (percents) or 'all'");
        return;
    }
    if (t->set & (1u << KN_VARIANT_PRIMARY)) {
        if (sum < 99.999 || sum > 100.001) {
            kn_schema_error(ctx, node, "'primary', 'canary' and 'baseline' must add up to 100, "
                            "got %g", sum);
            return;
        }
    } else if (sum > 100.001) {
        kn_schema_error(ctx, node, "'canary' and 'baseline' add up to %g, more than 100", sum);
        return;
    } else {
        t->percent[KN_VARIANT_PRIMARY] = 100 - sum;
    }
    t->valid = 1;
}

static const struct kn_schema traffic_schema = {
    .name = "TRAFFIC_ROUTING",
    KN_SCHEMA_FIELDS(traffic_fields),
    .size = sizeof(struct kn_traffic_options),
    .set_offset = offsetof(struct kn_traffic_options, set),
    .check = traffic_check,
};

static void traffic_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                             struct kn_schema_ctx *ctx)
{
    const struct kn_traffic_options *t = stage->with;

    if (!t || !t->valid) {
        return; /* already reported; guessing weights would only add errors */
    }
    for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
        if (t->percent[v] > 0 && !sim->running[v]) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'TRAFFIC_ROUTING': sends %g%% to the %s, but no %s runs "
                               "at this point (add %s before it)",
                               t->percent[v], kn_variant_name(v), kn_variant_name(v),
                               v == KN_VARIANT_CANARY ? "CANARY_ROLLOUT" : "BASELINE_ROLLOUT");
        }
    }
    for (int v = 0; sim->weight_step > 0 && v < KN_VARIANT_COUNT; v++) {
        double steps = t->percent[v] / sim->weight_step;
        if (fabs(steps - round(steps)) > 1e-9) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'TRAFFIC_ROUTING': %g%% to the %s is not a multiple of "
                               "%g%%, the smallest traffic step of platform '%s'",
                               t->percent[v], kn_variant_name(v), sim->weight_step,
                               sim->platform ? sim->platform : "?");
        }
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        sim->weight[v] = t->percent[v];
    }
    if (t->percent[KN_VARIANT_PRIMARY] < 100) {
        sim->traffic_shifted = 1;
    }
}

static int set_weights(struct kn_stage_run *run, const struct kn_platform_req *req,
                       struct kn_platform_op **op)
{
    const struct kn_traffic_options *t = kn_stage_run_config(run)->with;

    return kn_platform_set_weights(kn_stage_run_platform(run), req, t->percent, op);
}

static void traffic_start(struct kn_stage_run *run)
{
    const struct kn_traffic_options *t = kn_stage_run_config(run)->with;
    char what[128];

    snprintf(what, sizeof(what), "routing traffic: primary %g%%, canary %g%%, baseline %g%%",
             t->percent[KN_VARIANT_PRIMARY], t->percent[KN_VARIANT_CANARY],
             t->percent[KN_VARIANT_BASELINE]);
    kn_stage_op_run(run, kn_stage_run_state(run), set_weights, NULL, what);
}

static void traffic_cancel(struct kn_stage_run *run)
{
    kn_stage_op_cancel(kn_stage_run_state(run));
}

static void traffic_describe(const struct kn_stage_config *stage, json_t *out)
{
    const struct kn_traffic_options *t = stage->with;

    if (t->valid) {
        json_object_set_new(out, "weights",
                            json_pack("{s:f, s:f, s:f}", "primary",
                                      t->percent[KN_VARIANT_PRIMARY], "canary",
                                      t->percent[KN_VARIANT_CANARY], "baseline",
                                      t->percent[KN_VARIANT_BASELINE]));
    }
}

const struct kn_stage_kind kn_stage_traffic_routing = {
    .name = "TRAFFIC_ROUTING",
    .with = &traffic_schema,
    .caps = KN_PLATFORM_TRAFFIC_SPLIT,
    .default_timeout_ms = 2 * 60 * 1000,
    .help = "set the percent of traffic each variant takes",
    .simulate = traffic_simulate,
    .start = traffic_start,
    .cancel = traffic_cancel,
    .describe = traffic_describe,
};
