/*
 * Applications: the app.kanaria.yaml schema, loading an app with its manifests from a source,
 * and the checks that need the whole app (the pipeline walk, the platform's capabilities, the
 * names the controller config declares).
 */
#include "kanaria/app.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/local_service.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"

#define KN_API_VERSION "kanaria.dev/v1"

/* ---- schema ------------------------------------------------------------------------------- */

static const struct kn_field metadata_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_app_metadata, name),
     .flags = KN_FIELD_REQUIRED,
     .help = "the app's name: lower-case letters, digits and '-', at most 63"},
    {.key = "labels",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_app_metadata, labels),
     .help = "free-form labels, shown in status"},
    {.key = "annotations",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_app_metadata, annotations),
     .help = "free-form notes"},
};

static int valid_app_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

static void metadata_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_app_metadata *m = obj;

    if (m->name && !valid_app_name(m->name)) {
        kn_schema_error(ctx, kn_node_get(node, "name"),
                        "'metadata.name' must be 1 to 63 lower-case letters, digits or '-', not "
                        "starting or ending with '-', got '%s'",
                        m->name);
    }
}

static const struct kn_schema metadata_schema = {
    .name = "metadata",
    KN_SCHEMA_FIELDS(metadata_fields),
    .size = sizeof(struct kn_app_metadata),
    .set_offset = offsetof(struct kn_app_metadata, set),
    .check = metadata_check,
};

static const struct kn_field trigger_fields[] = {
    {.key = "paths",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_trigger_config, paths),
     .def = "**",
     .help = "globs, relative to the app's folder, of the changes that deploy it"},
    {.key = "ignore",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_trigger_config, ignore),
     .help = "globs of changes that never deploy it"},
    {.key = "onOutOfSync",
     .type = KN_TYPE_BOOL,
     .offset = offsetof(struct kn_trigger_config, on_out_of_sync),
     .def = "false",
     .help = "re-apply the last good commit when live state drifts (self-heal)"},
};

static const struct kn_schema trigger_schema = {
    .name = "trigger",
    KN_SCHEMA_FIELDS(trigger_fields),
    .size = sizeof(struct kn_trigger_config),
    .set_offset = offsetof(struct kn_trigger_config, set),
};

static const struct kn_field planner_fields[] = {
    {.key = "alwaysUsePipeline",
     .type = KN_TYPE_BOOL,
     .offset = offsetof(struct kn_planner_config, always_use_pipeline),
     .def = "false",
     .help = "run the pipeline for every change, even a change of replicas alone"},
};

static const struct kn_schema planner_schema = {
    .name = "planner",
    KN_SCHEMA_FIELDS(planner_fields),
    .size = sizeof(struct kn_planner_config),
    .set_offset = offsetof(struct kn_planner_config, set),
};

static const struct kn_field spec_fields[] = {
    {.key = "platform",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_app_spec, platform),
     .def = "local",
     .help = "a platforms name of kanaria.yaml"},
    {.key = "manifests",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_app_spec, manifests),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "manifest files, relative to the app's folder"},
    {.key = "trigger",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_app_spec, trigger),
     .sub = &trigger_schema,
     .help = "which changes deploy the app"},
    {.key = "planner",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_app_spec, planner),
     .sub = &planner_schema,
     .help = "how a change is planned"},
    {.key = "autoRollback",
     .type = KN_TYPE_BOOL,
     .offset = offsetof(struct kn_app_spec, auto_rollback),
     .def = "true",
     .help = "roll back on failure, timeout, cancel or reject"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_app_spec, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "6h",
     .min = 1000,
     .max = 7 * 24 * 3600 * 1000.0,
     .help = "the whole deployment fails (and rolls back) after this long"},
    {.key = "prune",
     .type = KN_TYPE_BOOL,
     .offset = offsetof(struct kn_app_spec, prune),
     .def = "false",
     .help = "when the app's folder is deleted, remove the app from its platform (instances, "
             "frontend, backend); false: it keeps running, shown as orphaned, until `kanaria "
             "prune APP`"},
    {.key = "pipeline",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_app_spec, pipeline),
     .sub = &kn_stage_config_schema,
     .help = "stages run in order; none means every change is a quick sync"},
};

static const struct kn_schema spec_schema = {
    .name = "spec",
    KN_SCHEMA_FIELDS(spec_fields),
    .size = sizeof(struct kn_app_spec),
    .set_offset = offsetof(struct kn_app_spec, set),
};

static void app_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_app_config *c = obj;

    if (c->api_version && strcmp(c->api_version, KN_API_VERSION) != 0) {
        kn_schema_error(ctx, kn_node_get(node, "apiVersion"),
                        "'apiVersion' must be " KN_API_VERSION ", got '%s'", c->api_version);
    }
    if (c->kind && strcmp(c->kind, "Application") != 0) {
        kn_schema_error(ctx, kn_node_get(node, "kind"),
                        "'kind' must be Application, got '%s'", c->kind);
    }
}

static const struct kn_field app_fields[] = {
    {.key = "apiVersion",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_app_config, api_version),
     .flags = KN_FIELD_REQUIRED,
     .help = KN_API_VERSION},
    {.key = "kind",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_app_config, kind),
     .flags = KN_FIELD_REQUIRED,
     .help = "Application"},
    {.key = "metadata",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_app_config, metadata),
     .flags = KN_FIELD_REQUIRED,
     .sub = &metadata_schema,
     .help = "name and labels"},
    {.key = "spec",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_app_config, spec),
     .flags = KN_FIELD_REQUIRED,
     .sub = &spec_schema,
     .help = "what to deploy and how"},
};

const struct kn_schema kn_app_config_schema = {
    .name = "Application",
    KN_SCHEMA_FIELDS(app_fields),
    .size = sizeof(struct kn_app_config),
    .set_offset = offsetof(struct kn_app_config, set),
    .check = app_check,
};

/* ---- loading -------------------------------------------------------------------------------- */

static void diag_error(struct kn_app *app, const struct kn_error *err)
{
    struct kn_loc loc = {.file = err->file_buf[0] ? err->file_buf : NULL,
                         .line = err->line,
                         .col = err->col};
    kn_diags_add(&app->diags, &loc, "%s", err->msg);
}

/* Read and parse one file of the app; NULL (and a diagnostic) when that fails. A file that
 * cannot be read is reported at `listed` (where it was named), when given. */
static struct kn_yaml *load_file(struct kn_app *app, struct kn_source *src, const char *relpath,
                                 const struct kn_loc *listed)
{
    struct kn_buf buf;
    struct kn_error err;
    struct kn_yaml *y = NULL;

    kn_error_clear(&err);
    kn_buf_init(&buf, KN_APP_MAX_FILE_BYTES);
    if (src->ops->read(src, relpath, &buf, &err) < 0) {
        if (listed) {
            kn_diags_add(&app->diags, listed, "%s", err.msg);
            goto out;
        }
        if (!err.file_buf[0]) {
            snprintf(err.file_buf, sizeof(err.file_buf), "%s", relpath);
        }
        diag_error(app, &err);
        goto out;
    }
    if (kn_yaml_parse(&y, relpath, buf.data ? buf.data : "", buf.len, NULL, &err) < 0) {
        diag_error(app, &err);
        goto out;
    }
    app->files = kn_reallocarray(app->files, app->nfiles + 1, sizeof(*app->files));
    app->files[app->nfiles++] = y;
out:
    kn_buf_release(&buf);
    return y;
}

/* The repository's file shared by stage kinds (ANALYSIS templates): NULL, silently, when the
 * repository has none; NULL with a diagnostic when it cannot be read or parsed. */
static const struct kn_node *load_shared(struct kn_app *app, struct kn_source *src)
{
    struct kn_buf buf;
    struct kn_error err;
    struct kn_yaml *y = NULL;

    kn_error_clear(&err);
    kn_buf_init(&buf, KN_APP_MAX_FILE_BYTES);
    if (src->ops->read(src, KN_ANALYSIS_TEMPLATES_FILE, &buf, &err) < 0) {
        if (err.code != KN_ENOENT) {
            if (!err.file_buf[0]) {
                snprintf(err.file_buf, sizeof(err.file_buf), "%s", KN_ANALYSIS_TEMPLATES_FILE);
            }
            diag_error(app, &err);
        }
        goto out;
    }
    if (kn_yaml_parse(&y, KN_ANALYSIS_TEMPLATES_FILE, buf.data ? buf.data : "", buf.len, NULL,
                      &err) < 0) {
        diag_error(app, &err);
        goto out;
    }
    app->files = kn_reallocarray(app->files, app->nfiles + 1, sizeof(*app->files));
    app->files[app->nfiles++] = y;
out:
    kn_buf_release(&buf);
    return y && y->ndocs > 0 ? y->docs[0] : NULL;
}

/* Let stage kinds fill in what their options take from the repository's shared file. */
static void resolve_stages(struct kn_app *app, struct kn_source *src, struct kn_schema_ctx *ctx)
{
    struct kn_stage_config *stages = app->cfg.spec.pipeline.items;
    const struct kn_node *shared = NULL;
    const char *saved = ctx->prefix;
    int loaded = 0;
    char prefix[96];

    for (size_t i = 0; i < app->cfg.spec.pipeline.count; i++) {
        struct kn_stage_config *st = &stages[i];
        if (!st->kind || !st->kind->resolve || !st->with) {
            continue;
        }
        if (!loaded) {
            shared = load_shared(app, src);
            loaded = 1;
        }
        snprintf(prefix, sizeof(prefix), "stage '%s'", st->name);
        ctx->prefix = prefix;
        st->kind->resolve(st, shared, ctx);
        ctx->prefix = saved;
    }
}

static const char *scalar_at(const struct kn_node *map, const char *key)
{
    const struct kn_node *n = kn_node_get(map, key);
    return n && n->type == KN_NODE_SCALAR && n->len > 0 ? n->scalar : NULL;
}

static void add_doc(struct kn_app *app, const char *file, const struct kn_node *doc,
                    struct kn_schema_ctx *ctx)
{
    const char *kind = scalar_at(doc, "kind");
    const char *name = scalar_at(kn_node_get(doc, "metadata"), "name");
    struct kn_manifest_doc *d;

    if (doc->type != KN_NODE_MAP) {
        kn_schema_error(ctx, doc, "a manifest must be a map, got %s", kn_node_describe(doc));
        return;
    }
    if (!kind || !name) {
        kn_schema_error(ctx, doc, "a manifest needs 'kind' and 'metadata.name'");
        return;
    }
    for (size_t i = 0; i < app->ndocs; i++) {
        if (strcmp(app->docs[i].kind, kind) == 0 && strcmp(app->docs[i].name, name) == 0) {
            kn_schema_error(ctx, doc, "%s '%s' is defined twice (first in %s:%u)", kind, name,
                            app->docs[i].file, app->docs[i].loc.line);
            return;
        }
    }
    if (strcmp(kind, KN_LOCAL_SERVICE_KIND) == 0) {
        struct kn_local_service ls;
        memset(&ls, 0, sizeof(ls));
        kn_schema_parse(&kn_local_service_schema, doc, &doc->loc, &ls, ctx);
        kn_schema_release(&kn_local_service_schema, &ls);
    }
    app->docs = kn_reallocarray(app->docs, app->ndocs + 1, sizeof(*app->docs));
    d = &app->docs[app->ndocs++];
    memset(d, 0, sizeof(*d));
    d->file = kn_strdup(file);
    d->loc = doc->loc;
    d->kind = kn_strdup(kind);
    d->name = kn_strdup(name);
    d->json = kn_node_to_json(doc);
    kn_json_hash(d->json, d->hash);
}

static void load_manifests(struct kn_app *app, struct kn_source *src, const struct kn_node *root,
                           struct kn_schema_ctx *ctx)
{
    const struct kn_strlist *list = &app->cfg.spec.manifests;
    const struct kn_node *nodes = kn_node_get(kn_node_get(root, "spec"), "manifests");

    for (size_t i = 0; i < list->count; i++) {
        const struct kn_node *at = nodes && nodes->type == KN_NODE_SEQ && i < nodes->len
                                       ? nodes->items[i]
                                       : root;
        char *path = NULL;
        struct kn_yaml *y;

        if (kn_path_resolve(&path, app->dir, list->items[i]) < 0) {
            kn_schema_error(ctx, at, "manifest path '%s' leaves the repository",
                            list->items[i]);
            continue;
        }
        int twice = 0;
        for (size_t j = 0; j < i && !twice; j++) {
            twice = strcmp(list->items[j], list->items[i]) == 0;
        }
        if (twice) {
            kn_schema_error(ctx, at, "manifest '%s' is listed twice", list->items[i]);
            free(path);
            continue;
        }
        if (strcmp(path, app->config_path) == 0) {
            kn_schema_error(ctx, at, "'%s' is the app's own config, not a manifest",
                            list->items[i]);
            free(path);
            continue;
        }
        y = load_file(app, src, path, &at->loc);
        if (y && y->ndocs == 0) {
            struct kn_loc loc = {.file = y->file, .line = 0, .col = 0};
            kn_schema_error_at(ctx, &loc, "the manifest file is empty");
        }
        for (size_t d = 0; y && d < y->ndocs; d++) {
            if (kn_node_scalar_kind(y->docs[d]) == KN_SCALAR_NULL &&
                y->docs[d]->type == KN_NODE_SCALAR) {
                continue; /* an empty `---` document */
            }
            add_doc(app, path, y->docs[d], ctx);
        }
        free(path);
    }
}

static int doc_cmp(const void *a, const void *b)
{
    const struct kn_manifest_doc *x = a, *y = b;
    int c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->name, y->name);
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
                           const struct kn_config *controller, struct kn_schema_ctx *ctx)
{
    const struct kn_list *pipeline = &app->cfg.spec.pipeline;
    const struct kn_stage_config *stages = pipeline->items;
    struct kn_pipeline_sim sim;
    int touches_primary = 0;
    int all_known = 1;

    memset(&sim, 0, sizeof(sim));
    sim.running[KN_VARIANT_PRIMARY] = 1;
    sim.weight[KN_VARIANT_PRIMARY] = 100;
    sim.controller = controller;
    for (size_t i = 0; i < pipeline->count; i++) {
        const struct kn_stage_config *st = &stages[i];
        unsigned missing;

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
        if (st->kind->simulate) {
            st->kind->simulate(&sim, st, ctx);
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

static void check_workload(struct kn_app *app, const struct kn_platform_type *ptype,
                           const char *platform, const struct kn_node *root,
                           struct kn_schema_ctx *ctx)
{
    const char *workload = NULL;
    size_t found = 0;

    for (size_t k = 0; ptype && k < ptype->nkinds; k++) {
        if (ptype->kinds[k].role == KN_KIND_WORKLOAD) {
            workload = ptype->kinds[k].kind;
        }
    }
    if (!workload) {
        return;
    }
    for (size_t i = 0; i < app->ndocs; i++) {
        found += strcmp(app->docs[i].kind, workload) == 0;
    }
    if (found != 1) {
        kn_schema_error(ctx, kn_node_get(kn_node_get(root, "spec"), "manifests"),
                        "platform '%s' needs exactly one %s manifest, found %zu", platform,
                        workload, found);
    }
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? kn_strndup(path, (size_t)(slash - path)) : kn_strdup("");
}

int kn_app_load(struct kn_app **out, struct kn_source *src, const char *config_path,
                const struct kn_config *controller)
{
    struct kn_app *app;
    struct kn_yaml *y;
    struct kn_schema_ctx ctx;
    const struct kn_node *root;
    const struct kn_platform_type *ptype;
    size_t before;

    if (!out || !src || !config_path) {
        return KN_EINVAL;
    }
    app = kn_calloc(1, sizeof(*app));
    kn_diags_init(&app->diags, 0);
    app->config_path = kn_strdup(config_path);
    app->dir = dir_of(config_path);
    app->manifests = json_array();
    memset(&ctx, 0, sizeof(ctx));
    ctx.diags = &app->diags;
    ctx.data = (void *)(uintptr_t)controller;

    y = load_file(app, src, config_path, NULL);
    if (!y) {
        goto out;
    }
    if (y->ndocs != 1) {
        struct kn_loc loc = {.file = y->file, .line = y->ndocs ? y->docs[1]->loc.line : 0,
                             .col = y->ndocs ? y->docs[1]->loc.col : 0};
        if (y->ndocs == 0) {
            kn_schema_error_at(&ctx, &loc, "the app config is empty");
        } else {
            kn_schema_error_at(&ctx, &loc, "an app config holds one document, found %zu",
                               y->ndocs);
        }
        goto out;
    }
    root = y->docs[0];
    kn_schema_parse(&kn_app_config_schema, root, &root->loc, &app->cfg, &ctx);
    if (app->cfg.metadata.name) {
        app->name = kn_strdup(app->cfg.metadata.name);
    }
    resolve_stages(app, src, &ctx);
    ptype = resolve_platform(app, root, controller, &ctx);
    check_pipeline(app, ptype, app->cfg.spec.platform, root, controller, &ctx);
    before = app->diags.count + app->diags.dropped;
    load_manifests(app, src, root, &ctx);
    if (app->cfg.spec.manifests.count > 0 && app->diags.count + app->diags.dropped == before) {
        /* "found 0" after a manifest failed to load would only repeat that failure */
        check_workload(app, ptype, app->cfg.spec.platform, root, &ctx);
    }
    if (app->ndocs > 1) {
        qsort(app->docs, app->ndocs, sizeof(*app->docs), doc_cmp);
    }
    for (size_t i = 0; i < app->ndocs; i++) {
        json_array_append(app->manifests, app->docs[i].json);
    }
    kn_json_hash(app->manifests, app->hash);
out:
    if (!app->name) {
        const char *base = strrchr(app->dir, '/');
        app->name = kn_strdup(base ? base + 1 : app->dir[0] ? app->dir : "(top)");
    }
    *out = app;
    return 0;
}

void kn_app_free(struct kn_app *app)
{
    if (!app) {
        return;
    }
    kn_schema_release(&kn_app_config_schema, &app->cfg);
    for (size_t i = 0; i < app->ndocs; i++) {
        free(app->docs[i].file);
        free(app->docs[i].kind);
        free(app->docs[i].name);
        json_decref(app->docs[i].json);
    }
    free(app->docs);
    json_decref(app->manifests);
    for (size_t i = 0; i < app->nfiles; i++) {
        kn_yaml_free(app->files[i]);
    }
    free(app->files);
    kn_diags_release(&app->diags);
    free(app->dir);
    free(app->config_path);
    free(app->name);
    free(app);
}

size_t kn_app_stage_count(const struct kn_app *app)
{
    return app->cfg.spec.pipeline.count;
}

/* ---- checks across the apps of a repository --------------------------------------------- */

/* By name, then by place in the refs array (one array, so the addresses order it). */
static int kn_app_ref_order(const void *a, const void *b)
{
    const struct kn_app_ref *x = *(const struct kn_app_ref *const *)a;
    const struct kn_app_ref *y = *(const struct kn_app_ref *const *)b;
    int c = strcmp(x->name, y->name);

    return c ? c : (x > y) - (x < y);
}

void kn_app_check_unique_names(const struct kn_app_ref *refs, size_t n)
{
    const struct kn_app_ref **order;
    size_t start = 0;

    if (n < 2) {
        return;
    }
    order = kn_calloc(n, sizeof(*order));
    for (size_t i = 0; i < n; i++) {
        order[i] = &refs[i];
    }
    qsort(order, n, sizeof(*order), kn_app_ref_order);
    while (start < n) {
        size_t end = start + 1;
        while (end < n && strcmp(order[end]->name, order[start]->name) == 0) {
            end++;
        }
        for (size_t k = start; end - start > 1 && k < end; k++) {
            const struct kn_app_ref *me = order[k];
            const struct kn_app_ref *other = order[k == start ? start + 1 : start];
            struct kn_loc loc = {.file = me->config_path};
            size_t more = end - start - 2;
            if (more > 0) {
                kn_diags_add(me->diags, &loc, "app name '%s' is also used by %s (and %zu more)",
                             me->name, other->config_path, more);
            } else {
                kn_diags_add(me->diags, &loc, "app name '%s' is also used by %s", me->name,
                             other->config_path);
            }
        }
        start = end;
    }
    free((void *)order);
}
