/*
 * SYNC, CANARY_ROLLOUT, BASELINE_ROLLOUT and PRIMARY_ROLLOUT: the stages that start a variant.
 */
#include <stddef.h>

#include "kanaria/platform.h"
#include "stages.h"

static const struct kn_field rollout_fields[] = {
    {.key = "replicas",
     .type = KN_TYPE_SCALE,
     .offset = offsetof(struct kn_rollout_options, replicas),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1",
     .min = 1,
     .max = 100,
     .help = "instances to start: a count, or a percent of the primary's (\"20%\")"},
};

static const struct kn_schema rollout_schema = {
    .name = "rollout",
    KN_SCHEMA_FIELDS(rollout_fields),
    .size = sizeof(struct kn_rollout_options),
    .set_offset = offsetof(struct kn_rollout_options, set),
};

static void sync_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                          struct kn_schema_ctx *ctx)
{
    (void)stage;
    (void)ctx;
    sim->primary_replaced = 1;
}

static void variant_simulate(struct kn_pipeline_sim *sim, enum kn_variant v,
                             const struct kn_stage_config *stage, struct kn_schema_ctx *ctx)
{
    if (sim->running[v]) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage '%s': the %s is already running (a %s_CLEAN must come first)",
                           stage->name, kn_variant_name(v),
                           v == KN_VARIANT_CANARY ? "CANARY" : "BASELINE");
    }
    sim->running[v] = 1;
}

static void canary_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                            struct kn_schema_ctx *ctx)
{
    variant_simulate(sim, KN_VARIANT_CANARY, stage, ctx);
}

static void baseline_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                              struct kn_schema_ctx *ctx)
{
    variant_simulate(sim, KN_VARIANT_BASELINE, stage, ctx);
}

static void primary_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                             struct kn_schema_ctx *ctx)
{
    if (sim->traffic_shifted && !sim->running[KN_VARIANT_CANARY]) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage 'PRIMARY_ROLLOUT': traffic was shifted earlier, so a canary "
                           "must be running before the primary is replaced (add CANARY_ROLLOUT "
                           "before it, or move CANARY_CLEAN after it)");
    }
    sim->primary_replaced = 1;
}

const struct kn_stage_kind kn_stage_sync = {
    .name = "SYNC",
    .caps = KN_PLATFORM_APPLY,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "apply every manifest as the primary at once and wait until it is healthy",
    .simulate = sync_simulate,
};

const struct kn_stage_kind kn_stage_canary_rollout = {
    .name = "CANARY_ROLLOUT",
    .with = &rollout_schema,
    .caps = KN_PLATFORM_CANARY,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "start the new version as the canary, with no traffic yet, and wait until healthy",
    .simulate = canary_simulate,
};

const struct kn_stage_kind kn_stage_baseline_rollout = {
    .name = "BASELINE_ROLLOUT",
    .with = &rollout_schema,
    .caps = KN_PLATFORM_BASELINE,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "start the running version at canary size, to compare like with like",
    .simulate = baseline_simulate,
};

const struct kn_stage_kind kn_stage_primary_rollout = {
    .name = "PRIMARY_ROLLOUT",
    .caps = KN_PLATFORM_APPLY,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "replace the primary with the new version and wait until it is healthy",
    .simulate = primary_simulate,
};
