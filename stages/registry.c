/*
 * The stage-kind registry: the one table of kinds, and the schema of a pipeline entry whose
 * check hook resolves the kind and parses its `with:` options.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kanaria/alloc.h"
#include "stages.h"

const struct kn_stage_kind *const kn_stage_kinds[] = {
    &kn_stage_sync,
    &kn_stage_canary_rollout,
    &kn_stage_baseline_rollout,
    &kn_stage_traffic_routing,
    &kn_stage_analysis,
    &kn_stage_canary_steps,
    &kn_stage_wait,
    &kn_stage_wait_approval,
    &kn_stage_primary_rollout,
    &kn_stage_canary_clean,
    &kn_stage_baseline_clean,
    &kn_stage_script_run,
    &kn_stage_rollback,
    NULL,
};

const struct kn_stage_kind *kn_stage_kind_find(const char *name)
{
    for (size_t i = 0; name && kn_stage_kinds[i]; i++) {
        if (strcmp(kn_stage_kinds[i]->name, name) == 0) {
            return kn_stage_kinds[i];
        }
    }
    return NULL;
}

const char *kn_variant_name(enum kn_variant v)
{
    switch (v) {
    case KN_VARIANT_PRIMARY:
        return "primary";
    case KN_VARIANT_CANARY:
        return "canary";
    case KN_VARIANT_BASELINE:
        return "baseline";
    default:
        return "?";
    }
}

long long kn_stage_timeout_ms(const struct kn_stage_config *stage)
{
    if (stage->timeout_ms > 0) {
        return stage->timeout_ms;
    }
    return stage->kind ? stage->kind->default_timeout_ms : 0;
}

json_t *kn_stage_describe(const struct kn_stage_config *stage, int index, long long timeout_ms)
{
    json_t *j = json_pack("{s:i, s:s, s:s, s:I, s:I, s:[], s:I}", "index", index, "kind",
                          stage->kind ? stage->kind->name : (stage->name ? stage->name : ""),
                          "id", stage->id ? stage->id : "", "timeout_ms", (json_int_t)timeout_ms,
                          "duration_ms", (json_int_t)0, "approvers", "min_approvals",
                          (json_int_t)0);

    if (stage->kind && stage->kind->describe && (stage->with || !stage->kind->with)) {
        stage->kind->describe(stage, j);
    }
    return j;
}

static const struct kn_field skip_on_fields[] = {
    {.key = "commitMessagePrefixes",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_skip_on, commit_message_prefixes),
     .help = "skip the stage when the commit message starts with one of these"},
    {.key = "paths",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_skip_on, paths),
     .help = "skip the stage when every changed file matches one of these globs"},
};

static const struct kn_schema skip_on_schema = {
    .name = "skipOn",
    KN_SCHEMA_FIELDS(skip_on_fields),
    .size = sizeof(struct kn_skip_on),
    .set_offset = offsetof(struct kn_skip_on, set),
};

static void unknown_stage(const struct kn_node *node, const char *name,
                          struct kn_schema_ctx *ctx)
{
    struct kn_buf names;

    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    for (size_t i = 0; kn_stage_kinds[i]; i++) {
        if (!(kn_stage_kinds[i]->flags & KN_STAGE_IMPLICIT)) {
            kn_buf_addf(&names, "%s%s", names.len ? ", " : "", kn_stage_kinds[i]->name);
        }
    }
    kn_schema_error(ctx, node, "unknown stage '%s' (stages: %s)", name, names.data);
    kn_buf_release(&names);
}

/* A kind may also take `timeout` inside `with:` (WAIT_APPROVAL, as in design.md); it then
 * becomes the stage's timeout. */
static void take_with_timeout(struct kn_stage_config *st, struct kn_schema_ctx *ctx)
{
    const struct kn_schema *ws = st->kind->with;

    for (size_t i = 0; i < ws->nfields; i++) {
        const struct kn_field *f = &ws->fields[i];
        if (strcmp(f->key, "timeout") != 0 || f->type != KN_TYPE_DURATION) {
            continue;
        }
        if (!kn_schema_isset(ws, st->with, "timeout")) {
            return;
        }
        if (kn_schema_isset(&kn_stage_config_schema, st, "timeout")) {
            kn_schema_error(ctx, kn_node_get(st->with_node, "timeout"),
                            "'timeout' is given both on the stage and in 'with'; keep one");
            return;
        }
        st->timeout_ms = *(const long long *)((const char *)st->with + f->offset);
        return;
    }
}

static void stage_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_stage_config *st = obj;
    const char *saved_prefix = ctx->prefix;
    char saved_path[sizeof(ctx->path)];
    char prefix[96];

    if (node) {
        st->loc = node->loc;
    }
    if (!st->name) {
        return; /* reported as required */
    }
    st->kind = kn_stage_kind_find(st->name);
    if (!st->kind) {
        unknown_stage(kn_node_get(node, "name"), st->name, ctx);
        return;
    }
    if (st->kind->flags & KN_STAGE_IMPLICIT) {
        kn_schema_error(ctx, kn_node_get(node, "name"),
                        "'%s' is added by kanaria when autoRollback is true; it cannot be listed "
                        "in a pipeline", st->name);
        return;
    }
    snprintf(prefix, sizeof(prefix), "stage '%s'", st->name);
    ctx->prefix = prefix;
    memcpy(saved_path, ctx->path, sizeof(saved_path));
    ctx->path[0] = '\0';
    if (!st->kind->with) {
        if (st->with_node && st->with_node->type == KN_NODE_MAP && st->with_node->len > 0) {
            kn_schema_error(ctx, st->with_node->pairs[0].key, "takes no options in 'with', got '%s'",
                            st->with_node->pairs[0].key->scalar);
        } else if (st->with_node && st->with_node->type != KN_NODE_MAP &&
                   kn_node_scalar_kind(st->with_node) != KN_SCALAR_NULL) {
            kn_schema_error(ctx, st->with_node, "'with' must be a map, got %s",
                            kn_node_describe(st->with_node));
        }
    } else {
        const struct kn_node *with = st->with_node;
        if (with && with->type != KN_NODE_MAP && kn_node_scalar_kind(with) != KN_SCALAR_NULL) {
            kn_schema_error(ctx, with, "'with' must be a map, got %s", kn_node_describe(with));
            with = NULL;
        }
        st->with = kn_calloc(1, st->kind->with->size);
        kn_schema_parse(st->kind->with, with, with ? &with->loc : &st->loc, st->with, ctx);
        take_with_timeout(st, ctx);
    }
    memcpy(ctx->path, saved_path, sizeof(saved_path));
    ctx->prefix = saved_prefix;
}

static void stage_release(void *obj)
{
    struct kn_stage_config *st = obj;

    if (st->with && st->kind && st->kind->with) {
        kn_schema_release(st->kind->with, st->with);
    }
    free(st->with);
    st->with = NULL;
}

static const struct kn_field stage_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_stage_config, name),
     .flags = KN_FIELD_REQUIRED,
     .help = "the stage kind: SYNC, CANARY_ROLLOUT, TRAFFIC_ROUTING, ANALYSIS, ..."},
    {.key = "id",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_stage_config, id),
     .help = "a label for this stage in status and logs (default: its name)"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_stage_config, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1000,
     .max = 7 * 24 * 3600 * 1000.0,
     .help = "fail the stage after this long (default: per kind)"},
    {.key = "skipOn",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_stage_config, skip_on),
     .sub = &skip_on_schema,
     .help = "conditions under which the stage is skipped"},
    {.key = "with",
     .type = KN_TYPE_NODE,
     .offset = offsetof(struct kn_stage_config, with_node),
     .help = "the stage kind's options"},
};

const struct kn_schema kn_stage_config_schema = {
    .name = "stage",
    KN_SCHEMA_FIELDS(stage_fields),
    .size = sizeof(struct kn_stage_config),
    .set_offset = offsetof(struct kn_stage_config, set),
    .check = stage_check,
    .release = stage_release,
};
