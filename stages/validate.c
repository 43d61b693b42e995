/*
 * Validation above the model: what kn_app_load cannot check alone because it needs the stage
 * kinds and the platform types together (kanaria/validate.h).
 */
#include "kanaria/validate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/stage.h"
#include "stages.h"

#define KN_VALIDATE_TYPES_MAX 32 /* platform types named in one loader */

/* One app's load: the loader's data, and what resolve found for the checks after the load. */
struct validate_run {
    const struct kn_config *controller; /* may be NULL */
    const struct kn_platform_type *ptype; /* the app's platform type; NULL: unknown */
    struct kn_pipeline_uses uses;
};

/* Let stage kinds fill in what their options take from the repository's shared file. */
static void resolve_stages(struct kn_app *app, struct kn_source *src, struct kn_schema_ctx *ctx)
{
    struct kn_stage_config *stages = app->cfg.spec.pipeline.items;
    const struct kn_node *shared = NULL;
    const char *saved = ctx->prefix;
    int loaded = 0;
    char prefix[96];

    struct kn_background_options *bg = app->cfg.spec.analysis;

    for (size_t i = 0; i <= app->cfg.spec.pipeline.count; i++) {
        /* the stages, then the checks of the background analysis */
        struct kn_stage_config *st = i < app->cfg.spec.pipeline.count ? &stages[i]
                                     : bg                                ? &bg->stage
                                                                         : NULL;
        if (!st || !st->kind || !st->kind->resolve || !st->with) {
            continue;
        }
        if (!loaded) {
            shared = kn_app_load_file(app, src, KN_ANALYSIS_TEMPLATES_FILE, 1);
            loaded = 1;
        }
        snprintf(prefix, sizeof(prefix), i < app->cfg.spec.pipeline.count ? "stage '%s'"
                                                                            : "spec.analysis",
                 st->name);
        ctx->prefix = prefix;
        st->kind->resolve(st, shared, ctx);
        ctx->prefix = saved;
    }
}

/* The platform's type, from the controller config or, without one, by name. */
static const struct kn_platform_type *resolve_platform(const struct kn_app *app,
                                                       const struct kn_node *root,
                                                       const struct kn_config *controller,
                                                       struct kn_schema_ctx *ctx)
{
    const char *name = app->cfg.spec.platform;
    const struct kn_node *at = kn_node_get(kn_node_get(root, "spec"), "platform");

    if (!name) {
        return NULL;
    }
    if (controller && controller->platforms.count > 0) {
        const struct kn_platform_config *p = kn_config_platform(controller, name);
        if (!p) {
            struct kn_buf names;
            const struct kn_platform_config *all = controller->platforms.items;
            kn_buf_init(&names, KN_BUF_UNBOUNDED);
            for (size_t i = 0; i < controller->platforms.count; i++) {
                kn_buf_addf(&names, "%s%s", i ? ", " : "", all[i].name);
            }
            if (at) {
                kn_schema_error(ctx, at,
                                "platform '%s' is not declared in kanaria.yaml (declared: %s)",
                                name, names.data);
            } else {
                const struct kn_node *spec = kn_node_get(root, "spec");
                kn_schema_error(ctx, spec ? spec : root,
                                "the default platform '%s' is not declared in kanaria.yaml "
                                "(declared: %s): set 'spec.platform'",
                                name, names.data);
            }
            kn_buf_release(&names);
            return NULL;
        }
        return p->ptype;
    }
    return kn_platform_type_find(name);
}

static void check_pipeline(struct kn_app *app, const struct kn_platform_type *ptype,
                           const char *platform, const struct kn_node *root,
                           const struct kn_config *controller, struct kn_pipeline_uses *uses,
                           struct kn_schema_ctx *ctx)
{
    const struct kn_list *pipeline = &app->cfg.spec.pipeline;
    const struct kn_stage_config *stages = pipeline->items;
    struct kn_pipeline_sim sim;
    int touches_primary = 0;
    int all_known = 1;
    const struct kn_background_options *bg = app->cfg.spec.analysis;
    size_t bg_start = 0, bg_until = 0;

    if (bg) {
        kn_background_check_names(bg, pipeline, ctx);
        if (kn_background_bounds(bg, pipeline, &bg_start, &bg_until) < 0) {
            bg = NULL; /* reported */
        }
    }
    memset(&sim, 0, sizeof(sim));
    sim.running[KN_VARIANT_PRIMARY] = 1;
    sim.weight[KN_VARIANT_PRIMARY] = 100;
    sim.controller = controller;
    sim.platform = platform;
    sim.app = app;
    sim.weight_step = ptype ? ptype->weight_step : 0;
    sim.platform_type = ptype ? ptype->name : NULL;
    sim.placeholders = ptype ? ptype->placeholders : NULL;
    for (size_t i = 0; i < pipeline->count; i++) {
        const struct kn_stage_config *st = &stages[i];
        int was_running[KN_VARIANT_COUNT];
        unsigned missing;

        if (bg && i == bg_start) {
            kn_background_simulate(bg, &sim, i, pipeline, ctx); /* as it starts */
        }
        if (!st->kind) {
            all_known = 0;
            continue;
        }
        missing = ptype ? st->kind->caps & ~ptype->caps : 0;
        for (unsigned bit = 1; missing && bit; bit <<= 1) {
            if (missing & bit) {
                kn_schema_error_at(ctx, &st->loc,
                                   "stage '%s' needs %s, which platform '%s' (type %s) cannot do",
                                   st->name, kn_platform_cap_name(bit), platform, ptype->name);
            }
        }
        if (st->kind == &kn_stage_traffic_routing && st->with) {
            const struct kn_traffic_options *t = st->with;
            if (t->match.count > 0 && !uses->matches) {
                uses->matches = st;
            }
            if (t->mirror > 0 && !uses->mirror) {
                uses->mirror = st;
                uses->mirror_percent = t->mirror;
            }
        }
        memcpy(was_running, sim.running, sizeof(was_running));
        if (st->kind->simulate) {
            st->kind->simulate(&sim, st, ctx);
        }
        for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
            if (sim.running[v] && !was_running[v] && !uses->runs[v]) {
                uses->runs[v] = st;
            }
            if (sim.weight[v] > 0 && !uses->routes[v]) {
                uses->routes[v] = st;
            }
        }
        touches_primary |= sim.primary_replaced;
    }
    if (pipeline->count == 0 || !all_known) {
        return; /* a stage that is not understood would make these guesses */
    }
    if (!touches_primary) {
        kn_schema_error(ctx, kn_node_get(kn_node_get(root, "spec"), "pipeline"),
                        "the pipeline never rolls the new version out to the primary (add "
                        "PRIMARY_ROLLOUT or SYNC)");
    }
    for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
        if (sim.weight[v] > 0) {
            kn_schema_error(ctx, kn_node_get(kn_node_get(root, "spec"), "pipeline"),
                            "the pipeline ends with %g%% of the traffic on the %s (end with "
                            "TRAFFIC_ROUTING to the primary)",
                            sim.weight[v], kn_variant_name(v));
        } else if (sim.running[v]) {
            kn_schema_error(ctx, kn_node_get(kn_node_get(root, "spec"), "pipeline"),
                            "the pipeline ends with the %s still running (add %s)",
                            kn_variant_name(v),
                            v == KN_VARIANT_CANARY ? "CANARY_CLEAN" : "BASELINE_CLEAN");
        }
    }
}

/* kn_app_loader.resolve: data is the struct validate_run. */
static void validate_resolve(struct kn_app_platform *platform, struct kn_app *app,
                             struct kn_source *src, const struct kn_node *root,
                             struct kn_schema_ctx *ctx, void *data)
{
    struct validate_run *run = data;
    const struct kn_platform_type *ptype;

    resolve_stages(app, src, ctx);
    ptype = resolve_platform(app, root, run->controller, ctx);
    run->ptype = ptype;
    check_pipeline(app, ptype, app->cfg.spec.platform, root, run->controller, &run->uses, ctx);
    if (ptype) {
        platform->type = ptype->name;
        platform->app_schema = ptype->app_schema;
        platform->kinds = ptype->kinds;
        platform->nkinds = ptype->nkinds;
    }
}

int kn_validate_app_load(struct kn_app **out, struct kn_source *src, const char *config_path,
                         const struct kn_config *controller)
{
    const char *types[KN_VALIDATE_TYPES_MAX + 1];
    struct validate_run run = {.controller = controller};
    struct kn_app_loader loader = {
        .resolve = validate_resolve,
        .types = types,
        .data = &run,
    };
    struct kn_schema_ctx ctx;
    size_t n = 0;
    int rc;

    for (size_t i = 0; kn_platform_types[i] && n < KN_VALIDATE_TYPES_MAX; i++) {
        types[n++] = kn_platform_types[i]->name;
    }
    types[n] = NULL;
    rc = kn_app_load(out, src, config_path, &loader);
    if (rc == 0 && run.ptype && run.ptype->check_app) {
        /* the type's checks that need its options, parsed only now, with the pipeline */
        memset(&ctx, 0, sizeof(ctx));
        ctx.diags = &(*out)->diags;
        run.ptype->check_app(*out, &run.uses, &ctx);
    }
    return rc;
}

static const struct kn_platform_type *type_of(const char *platform,
                                              const struct kn_config *controller)
{
    const struct kn_platform_config *p;

    if (controller && controller->platforms.count > 0) {
        p = kn_config_platform(controller, platform);
        return p ? p->ptype : NULL;
    }
    return kn_platform_type_find(platform);
}

void kn_validate_check_apps(struct kn_app *const *apps, size_t n,
                            const struct kn_config *controller)
{
    struct kn_app **group = kn_calloc(n + 1, sizeof(*group));
    char *done = kn_calloc(n + 1, 1);

    for (size_t i = 0; i < n; i++) {
        const char *platform = apps[i]->cfg.spec.platform;
        const struct kn_platform_type *ptype;
        size_t m = 0;

        if (done[i] || !platform) {
            continue;
        }
        for (size_t j = i; j < n; j++) {
            if (!done[j] && apps[j]->cfg.spec.platform &&
                strcmp(apps[j]->cfg.spec.platform, platform) == 0) {
                group[m++] = apps[j];
                done[j] = 1;
            }
        }
        ptype = type_of(platform, controller);
        if (ptype && ptype->check_apps) {
            ptype->check_apps(group, m);
        }
    }
    free(group);
    free(done);
}
