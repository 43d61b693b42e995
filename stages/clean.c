/*
 * CANARY_CLEAN and BASELINE_CLEAN: remove a variant once no traffic reaches it.
 */
#include "kanaria/engine.h"
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

static int remove_canary(struct kn_stage_run *run, const struct kn_platform_req *req,
                         struct kn_platform_op **op)
{
    return kn_platform_remove(kn_stage_run_platform(run), req, KN_VARIANT_CANARY, op);
}

static int remove_baseline(struct kn_stage_run *run, const struct kn_platform_req *req,
                           struct kn_platform_op **op)
{
    return kn_platform_remove(kn_stage_run_platform(run), req, KN_VARIANT_BASELINE, op);
}

static void canary_clean_start(struct kn_stage_run *run)
{
    kn_stage_op_run(run, kn_stage_run_state(run), remove_canary, NULL, "removing the canary");
}

static void baseline_clean_start(struct kn_stage_run *run)
{
    kn_stage_op_run(run, kn_stage_run_state(run), remove_baseline, NULL,
                    "removing the baseline");
}

static void clean_cancel(struct kn_stage_run *run)
{
    kn_stage_op_cancel(kn_stage_run_state(run));
}

const struct kn_stage_kind kn_stage_canary_clean = {
    .name = "CANARY_CLEAN",
    .caps = KN_PLATFORM_CANARY,
    .default_timeout_ms = 5 * 60 * 1000,
    .help = "remove the canary (traffic must already be off it)",
    .simulate = canary_clean_simulate,
    .start = canary_clean_start,
    .cancel = clean_cancel,
};

const struct kn_stage_kind kn_stage_baseline_clean = {
    .name = "BASELINE_CLEAN",
    .caps = KN_PLATFORM_BASELINE,
    .default_timeout_ms = 5 * 60 * 1000,
    .help = "remove the baseline (traffic must already be off it)",
    .simulate = baseline_clean_simulate,
    .start = baseline_clean_start,
    .cancel = clean_cancel,
};
