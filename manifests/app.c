/*
 * Applications: the app.kanaria.yaml schema, and loading an app with its manifests from a
 * source against the tables a struct kn_app_loader hands in (the manifest kinds and app options
 * of the app's platform type). The model knows neither stage kinds beyond their schemas nor
 * platforms: the checks that need them are the loader's (stages/validate.c).
 */
#include "kanaria/app.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/freeze.h"

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


/* ---- SLOs and the error-budget policy ----------------------------------------------------- */

static void slo_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_slo_config *c = obj;

    if (kn_node_get(node, "objective") && !(c->objective > 0 && c->objective < 100)) {
        kn_schema_error(ctx, kn_node_get(node, "objective"),
                        "'%s.objective' must be a percentage above 0 and below 100, got %g",
                        ctx->path, c->objective);
    }
}

static const struct kn_field slo_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_slo_config, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "the SLO's name, unique in the app; an entry with a name alone is the SLO of that "
             "name in " KN_SLO_FILE},
    {.key = "objective",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_slo_config, objective),
     .help = "the share of good events to keep, in percent, above 0 and below 100 (99.9)"},
    {.key = "window",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_slo_config, window_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "30d",
     .min = 60 * 1000,
     .max = 366 * 24 * 3600 * 1000.0,
     .help = "the window the SLI and the error budget are measured over"},
    {.key = "good",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_slo_config, good),
     .flags = KN_FIELD_NONEMPTY,
     .help = "query of the good events over {{window}} (filled in with \"30d\", \"1h\", ...)"},
    {.key = "total",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_slo_config, total),
     .flags = KN_FIELD_NONEMPTY,
     .help = "query of all events over {{window}}"},
    {.key = "provider",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_slo_config, provider),
     .flags = KN_FIELD_NONEMPTY,
     .help = "a metricsProviders name of kanaria.yaml; default: the first"},
};

static const struct kn_schema slo_schema = {
    .name = "SLO",
    KN_SCHEMA_FIELDS(slo_fields),
    .size = sizeof(struct kn_slo_config),
    .set_offset = offsetof(struct kn_slo_config, set),
    .check = slo_check,
};

static const char *const budget_actions[] = {"block", "approve", NULL};
static const char *const budget_on_error[] = {"block", "allow", NULL};

static void budget_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_error_budget_policy *p = obj;

    (void)ctx;
    p->given = node != NULL && node->type == KN_NODE_MAP;
}

static const struct kn_field budget_fields[] = {
    {.key = "minRemaining",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_error_budget_policy, min_remaining),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "0",
     .min = 0,
     .max = 100,
     .help = "a PIPELINE deployment waits while an SLO has less of its error budget left"},
    {.key = "action",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_error_budget_policy, action),
     .def = "block",
     .enums = budget_actions,
     .help = "block: wait until the budget recovers; approve: or until `kanaria approve APP`"},
    {.key = "onError",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_error_budget_policy, on_error),
     .def = "block",
     .enums = budget_on_error,
     .help = "when an SLO cannot be read: block (wait, naming the error) or allow (go, "
             "recorded with the error)"},
};

static const struct kn_schema budget_schema = {
    .name = "errorBudgetPolicy",
    KN_SCHEMA_FIELDS(budget_fields),
    .size = sizeof(struct kn_error_budget_policy),
    .set_offset = offsetof(struct kn_error_budget_policy, set),
    .check = budget_check,
};

/* KN_SLO_FILE: `slos:`, entries as spec.slos, each complete. */
struct slo_file {
    uint64_t set;
    struct kn_list slos;
};

static const struct kn_field slo_file_fields[] = {
    {.key = "slos",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct slo_file, slos),
     .flags = KN_FIELD_REQUIRED,
     .sub = &slo_schema,
     .help = "the SLOs apps name in spec.slos"},
};

static const struct kn_schema slo_file_schema = {
    .name = KN_SLO_FILE,
    KN_SCHEMA_FIELDS(slo_file_fields),
    .size = sizeof(struct slo_file),
    .set_offset = offsetof(struct slo_file, set),
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
     .flags = KN_FIELD_NONEMPTY, /* required unless the platform reads files spec.<type> names */
     .help = "manifest files, relative to the app's folder (required, except on a platform "
             "whose manifests are files named in spec.<type>, such as ecs)"},
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
    {.key = "analysis",
     .type = KN_TYPE_NODE,
     .offset = offsetof(struct kn_app_spec, analysis_node),
     .help = "background analysis: startingStage, until, and the metrics and http checks of "
             "ANALYSIS, run from that stage until that one starts"},
    {.key = "slos",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_app_spec, slos),
     .sub = &slo_schema,
     .help = "SLOs on a metrics provider: name, objective, window, good, total, provider (or "
             "a name of " KN_SLO_FILE ")"},
    {.key = "errorBudgetPolicy",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_app_spec, budget),
     .sub = &budget_schema,
     .help = "hold PIPELINE deployments while an SLO's error budget is spent"},
    {.key = "freezeWindows",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_app_spec, freeze_windows),
     .sub = &kn_freeze_app_window_schema,
     .help = "the app's own freeze windows, as kanaria.yaml's freezeWindows without apps and "
             "repositories: a deployment waits FROZEN while one is open"},
};

/* `analysis:` parsed by its schema, which the stages own (kanaria/stage.h). */
static void spec_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_app_spec *s = obj;
    const struct kn_node *a = s->analysis_node;
    char saved[sizeof(ctx->path)];
    const char *prefix;

    kn_freeze_check_unique(ctx, kn_node_get(node, "freezeWindows"), &s->freeze_windows,
                           "spec.freezeWindows");
    if (!a || (a->type != KN_NODE_MAP && kn_node_scalar_kind(a) == KN_SCALAR_NULL)) {
        return;
    }
    if (a->type != KN_NODE_MAP) {
        kn_schema_error(ctx, a, "'spec.analysis' must be a map, got %s", kn_node_describe(a));
        return;
    }
    memcpy(saved, ctx->path, sizeof(saved));
    prefix = ctx->prefix;
    ctx->path[0] = '\0';
    ctx->prefix = "spec.analysis";
    s->analysis = kn_calloc(1, kn_background_schema.size);
    kn_schema_parse(&kn_background_schema, a, &a->loc, s->analysis, ctx);
    ctx->prefix = prefix;
    memcpy(ctx->path, saved, sizeof(saved));
}

static void spec_release(void *obj)
{
    struct kn_app_spec *s = obj;

    if (s->analysis) {
        kn_schema_release(&kn_background_schema, s->analysis);
    }
    free(s->analysis);
    s->analysis = NULL;
}

/* `spec.<type>`: the options for a platform type the loader names, read once the app's
 * platform is resolved (platform_options below). */
static int spec_other_key(const struct kn_pair *pair, struct kn_schema_ctx *ctx)
{
    const struct kn_app_loader *loader = ctx->data;

    for (size_t i = 0; loader && loader->types && loader->types[i]; i++) {
        if (strcmp(pair->key->scalar, loader->types[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static const struct kn_schema spec_schema = {
    .name = "spec",
    KN_SCHEMA_FIELDS(spec_fields),
    .size = sizeof(struct kn_app_spec),
    .set_offset = offsetof(struct kn_app_spec, set),
    .check = spec_check,
    .release = spec_release,
    .other_key = spec_other_key,
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

const struct kn_node *kn_app_load_file(struct kn_app *app, struct kn_source *src,
                                       const char *relpath, int missing_ok)
{
    struct kn_buf buf;
    struct kn_error err;
    struct kn_yaml *y = NULL;

    kn_error_clear(&err);
    kn_buf_init(&buf, KN_APP_MAX_FILE_BYTES);
    if (src->ops->read(src, relpath, &buf, &err) < 0) {
        if (err.code != KN_ENOENT || !missing_ok) {
            if (!err.file_buf[0]) {
                snprintf(err.file_buf, sizeof(err.file_buf), "%s", relpath);
            }
            diag_error(app, &err);
        }
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
    return y && y->ndocs > 0 ? y->docs[0] : NULL;
}

static const char *scalar_at(const struct kn_node *map, const char *key)
{
    const struct kn_node *n = kn_node_get(map, key);
    return n && n->type == KN_NODE_SCALAR && n->len > 0 ? n->scalar : NULL;
}

/* The entry of the platform's table for `kind`: its own, else the entry for any other kind;
 * NULL when the platform takes no such kind. */
static const struct kn_manifest_kind *find_kind(const struct kn_app_platform *p, const char *kind)
{
    const struct kn_manifest_kind *any = NULL;

    for (size_t i = 0; i < p->nkinds; i++) {
        if (!p->kinds[i].kind) {
            any = &p->kinds[i];
        } else if (strcmp(p->kinds[i].kind, kind) == 0) {
            return &p->kinds[i];
        }
    }
    return any;
}

static void unknown_kind(const struct kn_app *app, const struct kn_app_platform *p,
                         const struct kn_node *doc, const char *kind, struct kn_schema_ctx *ctx)
{
    struct kn_buf names;

    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < p->nkinds; i++) {
        kn_buf_addf(&names, "%s%s", names.len ? ", " : "", p->kinds[i].kind);
    }
    kn_schema_error(ctx, kn_node_get(doc, "kind"),
                    "platform '%s' (type %s) takes no manifest of kind '%s' (accepted: %s)",
                    app->cfg.spec.platform, p->type, kind, names.len ? names.data : "none");
    kn_buf_release(&names);
}

/* The document against its entry of the platform's table: its closed schema, its apiVersion. */
static void check_doc(const struct kn_manifest_kind *def, const char *kind,
                      const struct kn_node *doc, struct kn_schema_ctx *ctx)
{
    const char *api_version = scalar_at(doc, "apiVersion");

    if (def->check) {
        def->check(doc, ctx);
    }
    if (def->schema) {
        void *obj = kn_calloc(1, def->schema->size);
        kn_schema_parse(def->schema, doc, &doc->loc, obj, ctx);
        kn_schema_release(def->schema, obj);
        free(obj);
    }
    if (def->api_version && api_version && strcmp(api_version, def->api_version) != 0) {
        kn_schema_error(ctx, kn_node_get(doc, "apiVersion"),
                        "'apiVersion' of a %s must be %s, got '%s'", kind, def->api_version,
                        api_version);
    } else if (def->api_version && !api_version && !def->schema) {
        kn_schema_error(ctx, doc, "a %s needs 'apiVersion: %s'", kind, def->api_version);
    }
}

static void add_doc(struct kn_app *app, const char *file, const struct kn_node *doc,
                    const struct kn_app_platform *platform, struct kn_schema_ctx *ctx)
{
    const char *kind = scalar_at(doc, "kind");
    const char *name = scalar_at(kn_node_get(doc, "metadata"), "name");
    const struct kn_manifest_kind *def = NULL;
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
    if (platform->type) {
        def = find_kind(platform, kind);
        if (def && def->file_key) {
            kn_schema_error(ctx, kn_node_get(doc, "kind"),
                            "a %s comes from 'spec.%s.%s', not from spec.manifests", kind,
                            platform->type, def->file_key);
            return;
        }
        if (!def) {
            unknown_kind(app, platform, doc, kind, ctx);
        } else {
            check_doc(def, kind, doc, ctx);
        }
    }
    app->docs = kn_reallocarray(app->docs, app->ndocs + 1, sizeof(*app->docs));
    d = &app->docs[app->ndocs++];
    memset(d, 0, sizeof(*d));
    d->file = kn_strdup(file);
    d->loc = doc->loc;
    d->kind = kn_strdup(kind);
    d->name = kn_strdup(name);
    d->def = def;
    d->json = kn_node_to_json(doc);
    kn_json_hash(d->json, d->hash);
}

static void load_manifests(struct kn_app *app, struct kn_source *src, const struct kn_node *root,
                           const struct kn_app_platform *platform, struct kn_schema_ctx *ctx)
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
            add_doc(app, path, y->docs[d], platform, ctx);
        }
        free(path);
    }
}

static int has_file_kinds(const struct kn_app_platform *platform)
{
    for (size_t k = 0; k < platform->nkinds; k++) {
        if (platform->kinds[k].file_key) {
            return 1;
        }
    }
    return 0;
}

/* spec.manifests is required, except where the platform's manifests are files its options name
 * (and of an unknown platform, which is reported already, nothing more is said). */
static void manifests_required(const struct kn_app *app, const struct kn_app_platform *platform,
                               const struct kn_node *root, struct kn_schema_ctx *ctx)
{
    const struct kn_node *spec = kn_node_get(root, "spec");
    const struct kn_node *list = kn_node_get(spec, "manifests");

    if (list && (list->type != KN_NODE_SCALAR || kn_node_scalar_kind(list) != KN_SCALAR_NULL)) {
        return;
    }
    if (has_file_kinds(platform) || (!platform->type && app->cfg.spec.platform &&
                                     strcmp(app->cfg.spec.platform, "local") != 0)) {
        return;
    }
    if (spec && spec->type == KN_NODE_MAP) {
        kn_schema_error_at(ctx, list ? &list->loc : &spec->loc, "'spec.manifests' is required");
    }
}

/* The kinds read from files the app's options name (kn_manifest_kind.file_key). */
static void load_option_files(struct kn_app *app, struct kn_source *src,
                              const struct kn_node *root, const struct kn_app_platform *platform,
                              struct kn_schema_ctx *ctx)
{
    const struct kn_node *opts = kn_node_get(kn_node_get(root, "spec"), platform->type);

    for (size_t k = 0; platform->type && k < platform->nkinds; k++) {
        const struct kn_manifest_kind *def = &platform->kinds[k];
        const struct kn_node *at = kn_node_get(opts, def->file_key);
        const struct kn_node *doc;
        const char *name;
        char *path = NULL;
        struct kn_yaml *y;
        struct kn_manifest_doc *d;
        json_t *meta;

        if (!def->kind || !def->file_key || !at || at->type != KN_NODE_SCALAR || !at->len) {
            continue; /* a missing or mistyped key is the app schema's to report */
        }
        if (kn_path_resolve(&path, app->dir, at->scalar) < 0) {
            kn_schema_error(ctx, at, "'%s' leaves the repository", at->scalar);
            continue;
        }
        y = load_file(app, src, path, &at->loc);
        free(path);
        if (!y) {
            continue;
        }
        if (y->ndocs != 1 || y->docs[0]->type != KN_NODE_MAP) {
            struct kn_loc loc = {.file = y->file, .line = y->ndocs ? y->docs[0]->loc.line : 0,
                                 .col = y->ndocs ? y->docs[0]->loc.col : 0};
            kn_schema_error_at(ctx, &loc, "a %s file holds one map, found %s", def->kind,
                               y->ndocs == 1 ? kn_node_describe(y->docs[0])
                               : y->ndocs ? "several documents" : "nothing");
            continue;
        }
        doc = y->docs[0];
        name = def->name_key ? scalar_at(doc, def->name_key) : def->file_key;
        if (!name) {
            kn_schema_error(ctx, doc, "a %s needs '%s'", def->kind, def->name_key);
            continue;
        }
        check_doc(def, def->kind, doc, ctx);
        app->docs = kn_reallocarray(app->docs, app->ndocs + 1, sizeof(*app->docs));
        d = &app->docs[app->ndocs++];
        memset(d, 0, sizeof(*d));
        d->file = kn_strdup(y->file);
        d->loc = doc->loc;
        d->kind = kn_strdup(def->kind);
        d->name = kn_strdup(name);
        d->def = def;
        meta = json_object();
        json_object_set_new(meta, "name", json_string(name));
        d->json = json_object();
        json_object_set_new(d->json, "kind", json_string(def->kind));
        json_object_set_new(d->json, "metadata", meta);
        json_object_set_new(d->json, "spec", kn_node_to_json(doc));
        kn_json_hash(d->json, d->hash);
    }
}

static int doc_cmp(const void *a, const void *b)
{
    const struct kn_manifest_doc *x = a, *y = b;
    int c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->name, y->name);
}

/* How many documents of each kind of the platform's table the app has, against min and max. */
static void check_counts(struct kn_app *app, const struct kn_app_platform *platform,
                         const struct kn_node *root, struct kn_schema_ctx *ctx)
{
    const struct kn_node *at = kn_node_get(kn_node_get(root, "spec"), "manifests");
    const char *name = app->cfg.spec.platform;

    for (size_t k = 0; k < platform->nkinds; k++) {
        const struct kn_manifest_kind *def = &platform->kinds[k];
        size_t found = 0;

        if (!def->kind) {
            continue;
        }
        for (size_t i = 0; i < app->ndocs; i++) {
            found += app->docs[i].def == def;
        }
        if (def->file_key) {
            if (found == 0 && def->min > 0) {
                const struct kn_node *spec = kn_node_get(root, "spec");
                const struct kn_node *opts = kn_node_get(spec, platform->type);
                kn_schema_error(ctx, opts ? opts : spec ? spec : root,
                                "platform '%s' needs 'spec.%s.%s' (its %s)", name,
                                platform->type, def->file_key, def->kind);
            }
            continue;
        }
        if (def->min == 1 && def->max == 1 && found != 1) {
            kn_schema_error(ctx, at, "platform '%s' needs exactly one %s manifest, found %zu",
                            name, def->kind, found);
        } else if (def->max > 0 && def->min == def->max && found != (size_t)def->min) {
            kn_schema_error(ctx, at, "platform '%s' needs exactly %d %s manifests, found %zu",
                            name, def->min, def->kind, found);
        } else if (found < (size_t)def->min) {
            kn_schema_error(ctx, at, "platform '%s' needs at least %d %s manifest%s, found %zu",
                            name, def->min, def->kind, def->min == 1 ? "" : "s", found);
        } else if (def->max > 0 && found > (size_t)def->max) {
            kn_schema_error(ctx, at, "platform '%s' takes at most %d %s manifest%s, found %zu",
                            name, def->max, def->kind, def->max == 1 ? "" : "s", found);
        }
    }
}

/* `spec.<type>`: the app's options for its platform type, parsed with the type's app_schema;
 * the key of another type is an error. */
static void platform_options(struct kn_app *app, const struct kn_app_platform *platform,
                             const struct kn_node *root, struct kn_schema_ctx *ctx)
{
    const struct kn_node *spec = kn_node_get(root, "spec");
    char saved[sizeof(ctx->path)];

    if (!platform->type || !spec || spec->type != KN_NODE_MAP) {
        return; /* an unknown platform is reported already */
    }
    for (size_t i = 0; i < spec->len; i++) {
        const struct kn_pair *pair = &spec->pairs[i];
        const char *key = pair->key->scalar;

        if (!spec_other_key(pair, ctx)) {
            continue;
        }
        if (strcmp(key, platform->type) != 0) {
            kn_schema_error(ctx, pair->key,
                            "'spec.%s' holds options for platform type %s, but platform '%s' is "
                            "of type %s",
                            key, key, app->cfg.spec.platform, platform->type);
            continue;
        }
        if (!platform->app_schema) {
            kn_schema_error(ctx, pair->key, "platform type %s takes no app options ('spec.%s')",
                            key, key);
            continue;
        }
        app->cfg.platform_schema = platform->app_schema;
        app->cfg.platform_options = kn_calloc(1, platform->app_schema->size);
        memcpy(saved, ctx->path, sizeof(saved));
        snprintf(ctx->path, sizeof(ctx->path), "spec.%s", key);
        kn_schema_parse(platform->app_schema, pair->value, &pair->key->loc,
                        app->cfg.platform_options, ctx);
        memcpy(ctx->path, saved, sizeof(saved));
    }
}

/* ---- SLOs: shared entries, then the rules on the whole list ------------------------------- */

/* The placeholders an SLO query may use. */
static const char *const slo_placeholders[] = {"window", "app", "repository", NULL};

static void slo_check_placeholders(const char *query, const char *slo, const char *what,
                                   const struct kn_node *at, struct kn_schema_ctx *ctx)
{
    const char *p = query;

    while (p && (p = strstr(p, "{{")) != NULL) {
        const char *end = strstr(p + 2, "}}");
        const char *b = p + 2, *e;
        int known = 0;

        if (!end) {
            kn_schema_error(ctx, at, "SLO '%s': '%s' has '{{' without a closing '}}'", slo, what);
            return;
        }
        while (b < end && *b == ' ') {
            b++;
        }
        e = end;
        while (e > b && e[-1] == ' ') {
            e--;
        }
        for (size_t i = 0; slo_placeholders[i]; i++) {
            known |= strlen(slo_placeholders[i]) == (size_t)(e - b) &&
                     strncmp(b, slo_placeholders[i], (size_t)(e - b)) == 0;
        }
        if (!known) {
            kn_schema_error(ctx, at,
                            "SLO '%s': '%s' uses unknown placeholder '{{%.*s}}' (known: "
                            "{{window}}, {{app}}, {{repository}})",
                            slo, what, (int)(e - b), b);
        }
        p = end + 2;
    }
}

static void slo_take(char **dst, const char *src)
{
    if (!*dst && src) {
        *dst = kn_strdup(src);
    }
}

/* Fill the app's SLOs that name an entry of KN_SLO_FILE, then check each: unique names, an
 * objective, both queries with known placeholders. */
static void resolve_slos(struct kn_app *app, struct kn_source *src, const struct kn_node *root,
                         struct kn_schema_ctx *ctx)
{
    struct kn_slo_config *slos = app->cfg.spec.slos.items;
    size_t n = app->cfg.spec.slos.count;
    const struct kn_node *list = kn_node_get(kn_node_get(root, "spec"), "slos");
    const struct kn_node *shared_root = NULL;
    struct slo_file shared;
    int loaded = 0;

    memset(&shared, 0, sizeof(shared));
    for (size_t i = 0; i < n; i++) {
        struct kn_slo_config *c = &slos[i];
        const struct kn_node *at = list && list->type == KN_NODE_SEQ && i < list->len
                                       ? list->items[i]
                                       : list;
        const struct kn_slo_config *from = NULL;

        if (!c->name) {
            continue; /* reported */
        }
        for (size_t j = 0; j < i; j++) {
            if (slos[j].name && strcmp(slos[j].name, c->name) == 0) {
                kn_schema_error(ctx, at, "'spec.slos[%zu]': SLO '%s' is declared twice (first "
                                "as spec.slos[%zu])", i, c->name, j);
            }
        }
        if (!c->good || !c->total || !kn_node_get(at, "objective")) {
            if (!loaded) {
                loaded = 1;
                shared_root = kn_app_load_file(app, src, KN_SLO_FILE, 1);
                if (shared_root) {
                    struct kn_schema_ctx sctx = *ctx;
                    sctx.prefix = NULL;
                    sctx.path[0] = '\0';
                    kn_schema_parse(&slo_file_schema, shared_root, &shared_root->loc, &shared,
                                    &sctx);
                }
            }
            for (size_t j = 0; j < shared.slos.count; j++) {
                const struct kn_slo_config *sc =
                    (const struct kn_slo_config *)shared.slos.items + j;
                if (sc->name && strcmp(sc->name, c->name) == 0) {
                    from = sc;
                }
            }
            if (!from && !c->good && !c->total) {
                kn_schema_error(ctx, at,
                                "'spec.slos[%zu]': SLO '%s' has no queries and %s %s", i,
                                c->name, KN_SLO_FILE,
                                shared_root ? "declares no SLO of that name" : "does not exist");
                continue;
            }
        }
        if (from) {
            slo_take(&c->good, from->good);
            slo_take(&c->total, from->total);
            slo_take(&c->provider, from->provider);
            if (!kn_node_get(at, "objective")) {
                c->objective = from->objective;
            }
            if (!kn_node_get(at, "window")) {
                c->window_ms = from->window_ms;
            }
        }
        if (!c->good || !c->total) {
            kn_schema_error(ctx, at, "'spec.slos[%zu]': SLO '%s' needs both 'good' and 'total' "
                            "queries", i, c->name);
        }
        if (!(c->objective > 0 && c->objective < 100)) {
            if (!kn_node_get(at, "objective") && !(from && from->objective > 0)) {
                kn_schema_error(ctx, at, "'spec.slos[%zu]': SLO '%s' needs an 'objective'", i,
                                c->name);
            }
        }
        slo_check_placeholders(c->good, c->name, "good", kn_node_get(at, "good") ? kn_node_get(at, "good") : at, ctx);
        slo_check_placeholders(c->total, c->name, "total", kn_node_get(at, "total") ? kn_node_get(at, "total") : at, ctx);
    }
    if (app->cfg.spec.budget.given && n == 0) {
        kn_schema_error(ctx, kn_node_get(kn_node_get(root, "spec"), "errorBudgetPolicy"),
                        "'spec.errorBudgetPolicy' needs at least one SLO in 'spec.slos'");
    }
    kn_schema_release(&slo_file_schema, &shared);
}

const struct kn_slo_config *kn_app_slo(const struct kn_app *app, const char *name)
{
    const struct kn_slo_config *slos = app->cfg.spec.slos.items;

    for (size_t i = 0; name && i < app->cfg.spec.slos.count; i++) {
        if (slos[i].name && strcmp(slos[i].name, name) == 0) {
            return &slos[i];
        }
    }
    return NULL;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? kn_strndup(path, (size_t)(slash - path)) : kn_strdup("");
}

int kn_app_load(struct kn_app **out, struct kn_source *src, const char *config_path,
                const struct kn_app_loader *loader)
{
    struct kn_app *app;
    struct kn_yaml *y;
    struct kn_schema_ctx ctx;
    const struct kn_node *root;
    struct kn_app_platform platform;
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
    memset(&platform, 0, sizeof(platform));
    ctx.diags = &app->diags;
    ctx.data = (void *)(uintptr_t)loader; /* for spec_other_key */

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
    resolve_slos(app, src, root, &ctx);
    if (loader && loader->resolve) {
        loader->resolve(&platform, app, src, root, &ctx, loader->data);
    }
    platform_options(app, &platform, root, &ctx);
    manifests_required(app, &platform, root, &ctx);
    before = app->diags.count + app->diags.dropped;
    load_manifests(app, src, root, &platform, &ctx);
    load_option_files(app, src, root, &platform, &ctx);
    if ((app->cfg.spec.manifests.count > 0 || has_file_kinds(&platform)) &&
        app->diags.count + app->diags.dropped == before) {
        /* "found 0" after a manifest failed to load would only repeat that failure */
        check_counts(app, &platform, root, &ctx);
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
    if (app->cfg.platform_options) {
        kn_schema_release(app->cfg.platform_schema, app->cfg.platform_options);
        free(app->cfg.platform_options);
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
