/*
 * Background analysis: an app's `spec.analysis` block, checks that run from one stage of the
 * pipeline until another starts, whatever stage is running (Argo Rollouts' background
 * analysis). Its schema is beside ANALYSIS's (stages/analysis.c), the engine runs it
 * (stages/engine.c); here is what its two stage names mean, and its validation.
 */
#include <stdio.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "stages.h"

/* The first stage at or after `from` whose id, or else whose kind, is `name`; count when none. */
static size_t find_stage(const struct kn_list *pipeline, const char *name, size_t from)
{
    const struct kn_stage_config *stages = pipeline->items;

    for (size_t i = from; i < pipeline->count; i++) {
        if (stages[i].id && strcmp(stages[i].id, name) == 0) {
            return i;
        }
    }
    for (size_t i = from; i < pipeline->count; i++) {
        if (stages[i].name && strcmp(stages[i].name, name) == 0) {
            return i;
        }
    }
    return pipeline->count;
}

int kn_background_bounds(const struct kn_background_options *b, const struct kn_list *pipeline,
                         size_t *start, size_t *until)
{
    *start = 0;
    *until = pipeline->count;
    if (b->starting_stage && (*start = find_stage(pipeline, b->starting_stage, 0)) ==
                                 pipeline->count) {
        *start = 0;
        return KN_ENOTFOUND;
    }
    if (!b->until) {
        *until = find_stage(pipeline, "PRIMARY_ROLLOUT", *start + 1);
        return 0;
    }
    /* an id names one stage wherever it is; a kind, its first stage after the start */
    *until = find_stage(pipeline, b->until, 0);
    if (*until <= *start) {
        *until = find_stage(pipeline, b->until, *start + 1);
    }
    return *until < pipeline->count ? 0 : KN_ENOTFOUND;
}

/* "canary (CANARY_ROLLOUT), WAIT, ..." into names. */
static void stage_names(const struct kn_list *pipeline, struct kn_buf *names)
{
    const struct kn_stage_config *stages = pipeline->items;

    for (size_t i = 0; i < pipeline->count; i++) {
        const char *name = stages[i].name ? stages[i].name : "?";
        if (stages[i].id && strcmp(stages[i].id, name) != 0) {
            kn_buf_addf(names, "%s%s (%s)", i ? ", " : "", stages[i].id, name);
        } else {
            kn_buf_addf(names, "%s%s", i ? ", " : "", name);
        }
    }
}

void kn_background_check_names(const struct kn_background_options *b,
                               const struct kn_list *pipeline, struct kn_schema_ctx *ctx)
{
    const struct kn_node *node = b->stage.with_node;
    size_t start = 0, until = pipeline->count;
    struct kn_buf names;

    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    if (pipeline->count == 0) {
        kn_schema_error(ctx, node,
                        "'spec.analysis' runs along a pipeline, and the app has none (every "
                        "change is a quick sync)");
        goto out;
    }
    stage_names(pipeline, &names);
    if (b->starting_stage && (start = find_stage(pipeline, b->starting_stage, 0)) ==
                                 pipeline->count) {
        kn_schema_error(ctx, kn_node_get(node, "startingStage"),
                        "'spec.analysis.startingStage': no stage '%s' in the pipeline (it has: "
                        "%s)",
                        b->starting_stage, names.data ? names.data : "none");
        goto out;
    }
    if (!b->until) {
        goto out;
    }
    until = find_stage(pipeline, b->until, 0);
    if (until == pipeline->count) {
        kn_schema_error(ctx, kn_node_get(node, "until"),
                        "'spec.analysis.until': no stage '%s' in the pipeline (it has: %s)",
                        b->until, names.data ? names.data : "none");
    } else if (until <= start && find_stage(pipeline, b->until, start + 1) == pipeline->count) {
        kn_schema_error(ctx, kn_node_get(node, "until"),
                        "'spec.analysis.until': stage '%s' (stage %zu) does not come after "
                        "startingStage '%s' (stage %zu), so the analysis would never run",
                        b->until, until, b->starting_stage ? b->starting_stage : "(the first)",
                        start);
    }
out:
    kn_buf_release(&names);
}

void kn_background_simulate(const struct kn_background_options *b,
                            const struct kn_pipeline_sim *sim, size_t start,
                            const struct kn_list *pipeline, struct kn_schema_ctx *ctx)
{
    const struct kn_analysis_metric *metrics = b->checks.metrics.items;
    const struct kn_stage_config *stages = pipeline->items;
    const char *at = start < pipeline->count && stages[start].name ? stages[start].name : "?";
    struct kn_pipeline_sim seen = *sim;

    if (start < pipeline->count && stages[start].id) {
        at = stages[start].id;
    }
    for (size_t i = 0; i < b->checks.metrics.count; i++) {
        const struct kn_analysis_metric *m = &metrics[i];
        const char *name = m->name ? m->name : "?";
        if ((m->strategy == KN_STRATEGY_CANARY_PRIMARY ||
             m->strategy == KN_STRATEGY_CANARY_BASELINE) &&
            !sim->running[KN_VARIANT_CANARY]) {
            kn_schema_error_at(ctx, &b->stage.loc,
                               "'spec.analysis': metric '%s' compares the canary, but no canary "
                               "runs when stage '%s' starts the analysis (add CANARY_ROLLOUT "
                               "before it, or start later with 'startingStage')",
                               name, at);
        }
        if (m->strategy == KN_STRATEGY_CANARY_BASELINE && !sim->running[KN_VARIANT_BASELINE]) {
            kn_schema_error_at(ctx, &b->stage.loc,
                               "'spec.analysis': metric '%s' compares with the baseline, but no "
                               "baseline runs when stage '%s' starts the analysis (add "
                               "BASELINE_ROLLOUT before it, or start later with "
                               "'startingStage')",
                               name, at);
        }
    }
    /* the rest as ANALYSIS checks it (placeholders, providers, queries); the variants were
     * checked above, with the words of this block */
    seen.running[KN_VARIANT_CANARY] = 1;
    seen.running[KN_VARIANT_BASELINE] = 1;
    if (kn_stage_analysis.simulate) {
        kn_stage_analysis.simulate(&seen, &b->stage, ctx);
    }
}
