/*
 * CANARY_CLEAN and BASELINE_CLEAN: remove a variant once no traffic reaches it.
 */
#include "kanaria/platform.h"
#include "stages.h"

static void clean_simulate(struct kn_pipeline_sim *sim, enum kn_variant v,
                           const struct kn_stage_config *stage, struct kn_schema_ctx *ctx)
{
    const char *rollout = v == KN_VARIANT_CANARY ? "CANARY_ROLLOUT" : "BASELINE_ROLLOUT";

    if (!sim->running[v]) {
        kn_schema_error_at(ctx, &stage->loc, "stage '%s': there is no %s to remove (no %s before it)",
                           stage->name, kn_variant_name(v), rollout);
    } else if (sim->weight[v] > 0) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage '%s': the %s still takes %g%% of the traffic; route it away "
                           "with TRAFFIC_ROUTING first",
                           stage->name, kn_variant_name(v), sim->weight[v]);
        sim->weight[KN_VARIANT_PRIMARY] += sim->weight[v]; /* reported once is enough */
        sim->weight[v] = 0;
    }
    sim->running[v] = 0;
}

static void canary_clean_simulate(struct kn_pipeline_sim *sim,
                                  const struct kn_stage_config *stage, struct kn_schema_ctx *ctx)
{
    clean_simulate(sim, KN_VARIANT_CANARY, stage, ctx);
}

static void baseline_clean_simulate(struct kn_pipeline_sim *sim,
                                    const struct kn_stage_config *stage,
                                    struct kn_schema_ctx *ctx)
{
    clean_simulate(sim, KN_VARIANT_BASELINE, stage, ctx);
}

const struct kn_stage_kind kn_stage_canary_clean = {
    .name = "CANARY_CLEAN",
    .caps = KN_PLATFORM_CANARY,
    .default_timeout_ms = 5 * 60 * 1000,
    .help = "remove the canary (traffic must already be off it)",
    .simulate = canary_clean_simulate,
};

const struct kn_stage_kind kn_stage_baseline_clean = {
    .name = "BASELINE_CLEAN",
    .caps = KN_PLATFORM_BASELINE,
    .default_timeout_ms = 5 * 60 * 1000,
    .help = "remove the baseline (traffic must already be off it)",
    .simulate = baseline_clean_simulate,
};
