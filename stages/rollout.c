/*
 * SYNC, CANARY_ROLLOUT, BASELINE_ROLLOUT and PRIMARY_ROLLOUT: the stages that start a variant.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"

#include "kanaria/engine.h"
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

/* ---- running ------------------------------------------------------------------------------- */

/* Apply `variant` with the manifests of the new commit (or, for the baseline, the last good
 * one) at the replicas of the stage's options. */
static int apply_variant(struct kn_stage_run *run, enum kn_variant variant,
                         const struct kn_platform_req *req, struct kn_platform_op **op)
{
    const struct kn_stage_config *cfg = kn_stage_run_config(run);
    const struct kn_rollout_options *opt = cfg->with;
    const struct kn_app *app = variant == KN_VARIANT_BASELINE ? kn_stage_run_last_good(run)
                                                              : kn_stage_run_app(run);
    struct kn_platform *p = kn_stage_run_platform(run);
    struct kn_variant_spec spec = {
        .variant = variant,
        .commit = variant == KN_VARIANT_BASELINE ? kn_stage_run_last_good_commit(run)
                                                 : kn_stage_run_deployment(run)->commit,
        .manifests = app ? app->manifests : NULL,
        .options = app ? app->cfg.platform_options : NULL,
        /* a stage with its own timeout gives its instances the time it has left; otherwise
         * the platform's own start timeout holds */
        .ready_timeout_ms = cfg->timeout_ms > 0 ? kn_stage_run_time_left(run) : 0,
    };

    if (!app) {
        return KN_ENOTFOUND;
    }
    if (opt) {
        spec.replicas = opt->replicas;
    }
    return kn_platform_apply(p, req, &spec, op);
}

static int apply_primary(struct kn_stage_run *run, const struct kn_platform_req *req,
                         struct kn_platform_op **op)
{
    return apply_variant(run, KN_VARIANT_PRIMARY, req, op);
}

static int apply_canary(struct kn_stage_run *run, const struct kn_platform_req *req,
                        struct kn_platform_op **op)
{
    return apply_variant(run, KN_VARIANT_CANARY, req, op);
}

static int apply_baseline(struct kn_stage_run *run, const struct kn_platform_req *req,
                          struct kn_platform_op **op)
{
    return apply_variant(run, KN_VARIANT_BASELINE, req, op);
}

/*
 * SYNC (a quick sync, and what self-heal runs): the primary at the commit, then all traffic on
 * it and no canary or baseline left. Every step is idempotent, so a resumed SYNC starts over.
 */
struct sync {
    void *op;
    int step;
    char doing[128];
};

/* What the platform cannot do (no traffic splitting, no canary) the front end skips, the same
 * way as for ROLLBACK. */
static int sync_step(struct kn_stage_run *run, const struct kn_platform_req *req,
                     struct kn_platform_op **op)
{
    static const double all_primary[KN_VARIANT_COUNT] = {100, 0, 0};
    struct sync *sy = *kn_stage_run_state(run);
    struct kn_platform *p = kn_stage_run_platform(run);

    switch (sy->step) {
    case 0:
        return apply_primary(run, req, op);
    case 1:
        return kn_platform_set_weights(p, req, all_primary, op);
    case 2:
        return kn_platform_remove(p, req, KN_VARIANT_CANARY, op);
    default:
        return kn_platform_remove(p, req, KN_VARIANT_BASELINE, op);
    }
}

static void sync_next(struct kn_stage_run *run, int status, const char *message)
{
    static const char *const what[] = {"all traffic to the primary", "removing any canary",
                                       "removing any baseline"};
    struct sync *sy = *kn_stage_run_state(run);

    if (status != 0) {
        *kn_stage_run_state(run) = NULL;
        kn_stage_run_finish(run, 0, "%s: %s", sy->doing, message ? message : kn_strerror(status));
        free(sy);
        return;
    }
    if (sy->step == 3) {
        free(sy);
        *kn_stage_run_state(run) = NULL;
        kn_stage_run_finish(run, 1, NULL);
        return;
    }
    snprintf(sy->doing, sizeof(sy->doing), "%s", what[sy->step++]);
    kn_stage_op_run(run, &sy->op, sync_step, sync_next, sy->doing);
}

static void sync_start(struct kn_stage_run *run)
{
    struct sync *sy = kn_calloc(1, sizeof(*sy));

    *kn_stage_run_state(run) = sy;
    snprintf(sy->doing, sizeof(sy->doing), "applying %.7s as the primary",
             kn_stage_run_deployment(run)->commit);
    kn_stage_op_run(run, &sy->op, sync_step, sync_next, sy->doing);
}

static void sync_cancel(struct kn_stage_run *run)
{
    struct sync *sy = *kn_stage_run_state(run);

    if (sy) {
        kn_stage_op_cancel(&sy->op);
        free(sy);
        *kn_stage_run_state(run) = NULL;
    }
}

static void primary_start(struct kn_stage_run *run)
{
    char what[128];
    snprintf(what, sizeof(what), "applying %.7s as the primary",
             kn_stage_run_deployment(run)->commit);
    kn_stage_op_run(run, kn_stage_run_state(run), apply_primary, NULL, what);
}

static void canary_start(struct kn_stage_run *run)
{
    char what[128];
    snprintf(what, sizeof(what), "starting %.7s as the canary",
             kn_stage_run_deployment(run)->commit);
    kn_stage_op_run(run, kn_stage_run_state(run), apply_canary, NULL, what);
}

static void baseline_start(struct kn_stage_run *run)
{
    if (!kn_stage_run_last_good(run)) {
        kn_stage_run_finish(run, 0, "there is no earlier successful deployment to run as the "
                            "baseline");
        return;
    }
    kn_stage_op_run(run, kn_stage_run_state(run), apply_baseline, NULL,
                    "starting the running version as the baseline");
}

static void op_cancel(struct kn_stage_run *run)
{
    kn_stage_op_cancel(kn_stage_run_state(run));
}

const struct kn_stage_kind kn_stage_sync = {
    .name = "SYNC",
    .caps = KN_PLATFORM_APPLY,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "apply every manifest as the primary at once, wait until it is healthy, and put all "
            "traffic on it (removing any canary or baseline)",
    .simulate = sync_simulate,
    .start = sync_start,
    .cancel = sync_cancel,
};

const struct kn_stage_kind kn_stage_canary_rollout = {
    .name = "CANARY_ROLLOUT",
    .with = &rollout_schema,
    .caps = KN_PLATFORM_CANARY,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "start the new version as the canary, with no traffic yet, and wait until healthy",
    .simulate = canary_simulate,
    .start = canary_start,
    .cancel = op_cancel,
};

const struct kn_stage_kind kn_stage_baseline_rollout = {
    .name = "BASELINE_ROLLOUT",
    .with = &rollout_schema,
    .caps = KN_PLATFORM_BASELINE,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "start the running version at canary size, to compare like with like",
    .simulate = baseline_simulate,
    .start = baseline_start,
    .cancel = op_cancel,
};

const struct kn_stage_kind kn_stage_primary_rollout = {
    .name = "PRIMARY_ROLLOUT",
    .caps = KN_PLATFORM_APPLY,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "replace the primary with the new version and wait until it is healthy",
    .simulate = primary_simulate,
    .start = primary_start,
    .cancel = op_cancel,
};
