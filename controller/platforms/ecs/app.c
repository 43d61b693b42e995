/*
 * spec.ecs of an app on an `ecs` platform, and its manifest kinds: the task definition and the
 * service definition, each from the file spec.ecs names (the shapes PipeCD's ECS apps use).
 *
 *     spec:
 *       platform: aws
 *       ecs:
 *         taskDefinitionFile: taskdef.yaml
 *         serviceDefinitionFile: servicedef.yaml
 *         targetGroups:
 *           primary: {targetGroupArn: arn:..., containerName: web, containerPort: 80}
 *           canary:  {targetGroupArn: arn:..., containerName: web, containerPort: 80}
 */
#include "platforms/ecs/ecs.h"

#include <stddef.h>
#include <string.h>

#include "kanaria/app.h"
#include "kanaria/stage.h"
#include "platforms/ecs/shapes.h"

static const struct kn_field kn_ecs_target_group_fields[] = {
    {.key = "targetGroupArn",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_ecs_target_group, target_group_arn),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the ALB target group of the variant's task set"},
    {.key = "containerName",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_ecs_target_group, container_name),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the container of the task definition the target group sends traffic to"},
    {.key = "containerPort",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_ecs_target_group, container_port),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1,
     .max = 65535,
     .help = "its port"},
};

/* A target group given must have all three keys; canary and baseline may be left out (the
 * table cannot say "required when the map is there"). */
static void kn_ecs_check_target_group(void *obj, const struct kn_node *node,
                                      struct kn_schema_ctx *ctx)
{
    static const char *const keys[] = {"targetGroupArn", "containerName", "containerPort"};
    const struct kn_ecs_target_group *tg = obj;

    if (!node || node->type != KN_NODE_MAP) {
        return;
    }
    for (size_t i = 0; i < 3; i++) {
        if (!(tg->set & ((uint64_t)1 << i)) && !kn_node_get(node, keys[i])) {
            kn_schema_error_in(ctx, ctx->path, node, "'%s' is required", keys[i]);
        }
    }
}

static const struct kn_schema kn_ecs_target_group_schema = {
    .name = "target group",
    KN_SCHEMA_FIELDS(kn_ecs_target_group_fields),
    .check = kn_ecs_check_target_group,
    .size = sizeof(struct kn_ecs_target_group),
    .set_offset = offsetof(struct kn_ecs_target_group, set),
};

static const struct kn_field kn_ecs_target_groups_fields[] = {
    {.key = "primary",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_ecs_target_groups, primary),
     .sub = &kn_ecs_target_group_schema,
     .flags = KN_FIELD_REQUIRED,
     .help = "the primary's target group"},
    {.key = "canary",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_ecs_target_groups, canary),
     .sub = &kn_ecs_target_group_schema,
     .help = "the canary's target group; CANARY_ROLLOUT and TRAFFIC_ROUTING need it"},
    {.key = "baseline",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_ecs_target_groups, baseline),
     .sub = &kn_ecs_target_group_schema,
     .help = "the baseline's target group; BASELINE_ROLLOUT needs it"},
};

static const struct kn_schema kn_ecs_target_groups_schema = {
    .name = "target groups",
    KN_SCHEMA_FIELDS(kn_ecs_target_groups_fields),
    .size = sizeof(struct kn_ecs_target_groups),
    .set_offset = offsetof(struct kn_ecs_target_groups, set),
};

static const struct kn_field kn_ecs_app_fields[] = {
    {.key = "taskDefinitionFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_ecs_app_options, task_definition_file),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "RegisterTaskDefinition input (YAML or JSON), relative to the app's folder"},
    {.key = "serviceDefinitionFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_ecs_app_options, service_definition_file),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "CreateService input (cluster, serviceName, desiredCount, launchType, "
             "networkConfiguration, ...), relative to the app's folder"},
    {.key = "targetGroups",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_ecs_app_options, target_groups),
     .sub = &kn_ecs_target_groups_schema,
     .flags = KN_FIELD_REQUIRED,
     .help = "the ALB target group of each variant"},
};

const struct kn_schema kn_ecs_app_schema = {
    .name = "spec.ecs",
    KN_SCHEMA_FIELDS(kn_ecs_app_fields),
    .size = sizeof(struct kn_ecs_app_options),
    .set_offset = offsetof(struct kn_ecs_app_options, set),
};

/* The task definition: the RegisterTaskDefinition input, as the API takes it, with at least one
 * container (the model cannot say so; AWS refuses an empty list at the deployment). */
static void check_task_definition(const struct kn_node *doc, struct kn_schema_ctx *ctx)
{
    const struct kn_node *containers = kn_node_get(doc, "containerDefinitions");

    kn_ecs_shape_check(kn_ecs_register_task_definition_input, doc, ctx);
    if (containers && containers->type == KN_NODE_SEQ && containers->len == 0) {
        kn_schema_error(ctx, containers, "containerDefinitions: must have at least one container");
    }
}

/* A member that is given: present and not null (an empty list counts as not given). */
static const struct kn_pair *given(const struct kn_node *doc, const char *key)
{
    const struct kn_pair *p = kn_node_get_pair(doc, key);

    if (!p || (p->value->type == KN_NODE_SCALAR &&
               kn_node_scalar_kind(p->value) == KN_SCALAR_NULL) ||
        (p->value->type == KN_NODE_SEQ && p->value->len == 0)) {
        return NULL;
    }
    return p;
}

/*
 * The service definition: the CreateService input, and what the EXTERNAL deployment controller
 * allows (ECS docs, "Deploy Amazon ECS services using a third-party controller"): the task
 * definition and the load balancers go on each task set, never on the service, and a DAEMON
 * service cannot have task sets. kanaria also needs the cluster, which every task-set call names.
 */
static void check_service_definition(const struct kn_node *doc, struct kn_schema_ctx *ctx)
{
    const struct kn_node *type = kn_node_get(kn_node_get(doc, "deploymentController"), "type");
    const struct kn_node *strategy = kn_node_get(doc, "schedulingStrategy");
    const struct kn_pair *p;

    kn_ecs_shape_check(kn_ecs_create_service_input, doc, ctx);
    if (type && type->type == KN_NODE_SCALAR && type->len > 0 &&
        (strcmp(type->scalar, "ECS") == 0 || strcmp(type->scalar, "CODE_DEPLOY") == 0)) {
        kn_schema_error(ctx, type,
                        "deploymentController.type: must be EXTERNAL, got '%s' (kanaria deploys "
                        "through task sets; left out, kanaria sets it)",
                        type->scalar);
    }
    if ((p = given(doc, "taskDefinition"))) {
        kn_schema_error(ctx, p->key,
                        "taskDefinition: not taken in a service definition: kanaria registers "
                        "spec.ecs.taskDefinitionFile and puts it on each task set");
    }
    if ((p = given(doc, "loadBalancers"))) {
        kn_schema_error(ctx, p->key,
                        "loadBalancers: not taken in a service definition: kanaria puts each "
                        "task set on its target group of spec.ecs.targetGroups");
    }
    if (strategy && strategy->type == KN_NODE_SCALAR && strcmp(strategy->scalar, "DAEMON") == 0) {
        kn_schema_error(ctx, strategy,
                        "schedulingStrategy: DAEMON is not possible with the EXTERNAL deployment "
                        "controller that kanaria uses (REPLICA only)");
    }
    if (!given(doc, "cluster")) {
        kn_schema_error(ctx, doc,
                        "a service definition needs 'cluster' (kanaria names it in every "
                        "task-set call)");
    }
}

const struct kn_manifest_kind kn_ecs_kinds[KN_ECS_NKINDS] = {
    {.kind = KN_ECS_TASK_DEFINITION,
     .role = KN_KIND_WORKLOAD,
     .min = 1,
     .max = 1,
     .file_key = "taskDefinitionFile",
     .name_key = "family",
     .check = check_task_definition,
     .help = "RegisterTaskDefinition input, from spec.ecs.taskDefinitionFile"},
    {.kind = KN_ECS_SERVICE_DEFINITION,
     .role = KN_KIND_WORKLOAD,
     .min = 1,
     .max = 1,
     .file_key = "serviceDefinitionFile",
     .name_key = "serviceName",
     .check = check_service_definition,
     .help = "CreateService input, from spec.ecs.serviceDefinitionFile"},
};

/* ---- across apps, and with the pipeline -------------------------------------------------- */

/* An app's service: (cluster, serviceName) of its service definition, and where the name is. */
struct service_ref {
    const char *cluster; /* the cluster's name, also when the file gives its ARN */
    const char *name;
    struct kn_loc loc;
};

static int service_of(const struct kn_app *app, struct service_ref *out)
{
    for (size_t i = 0; i < app->ndocs; i++) {
        const struct kn_manifest_doc *d = &app->docs[i];
        const json_t *spec = json_object_get(d->json, "spec");
        const char *cluster = json_string_value(json_object_get(spec, "cluster"));
        const char *slash;

        if (strcmp(d->kind, KN_ECS_SERVICE_DEFINITION) != 0 || !cluster) {
            continue;
        }
        slash = strrchr(cluster, '/'); /* arn:aws:ecs:REGION:ACCOUNT:cluster/NAME */
        out->cluster = strncmp(cluster, "arn:", 4) == 0 && slash ? slash + 1 : cluster;
        out->name = d->name;
        out->loc = d->loc;
        for (size_t f = 0; f < app->nfiles; f++) {
            const struct kn_yaml *y = app->files[f];
            const struct kn_node *at;
            if (y->ndocs == 1 && strcmp(y->file, d->file) == 0 &&
                (at = kn_node_get(y->docs[0], "serviceName"))) {
                out->loc = at->loc;
            }
        }
        return 1;
    }
    return 0;
}

void kn_ecs_check_apps(struct kn_app *const *apps, size_t n)
{
    struct service_ref *refs = kn_calloc(n + 1, sizeof(*refs));
    int *has = kn_calloc(n + 1, sizeof(*has));

    for (size_t i = 0; i < n; i++) {
        /* an invalid app owns nothing (its own errors say why) */
        has[i] = apps[i]->diags.count == 0 && service_of(apps[i], &refs[i]);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; has[i] && j < i; j++) {
            if (!has[j] || strcmp(refs[i].name, refs[j].name) != 0 ||
                strcmp(refs[i].cluster, refs[j].cluster) != 0) {
                continue;
            }
            kn_diags_add(&apps[i]->diags, &refs[i].loc,
                         "service '%s' of cluster '%s' is already deployed by app '%s' (%s) on "
                         "platform '%s'",
                         refs[i].name, refs[i].cluster, apps[j]->name, apps[j]->config_path,
                         apps[i]->cfg.spec.platform);
            has[i] = 0; /* invalid now: owns nothing */
        }
    }
    free(refs);
    free(has);
}

/* The container of the task definition a target group names, and its port among the
 * container's port mappings: else CreateTaskSet fails only at the deployment. */
static void check_container(const struct kn_app *app, const char *variant,
                            const struct kn_ecs_target_group *tg, struct kn_schema_ctx *ctx)
{
    const struct kn_node *root = NULL, *at;
    const json_t *containers = NULL, *c, *ports = NULL, *pm;
    struct kn_buf names;
    int found = 0;
    size_t i;

    for (i = 0; i < app->ndocs; i++) {
        if (strcmp(app->docs[i].kind, KN_ECS_TASK_DEFINITION) == 0) {
            containers = json_object_get(json_object_get(app->docs[i].json, "spec"),
                                         "containerDefinitions");
        }
    }
    for (i = 0; i < app->nfiles; i++) {
        if (app->files[i]->ndocs == 1 && strcmp(app->files[i]->file, app->config_path) == 0) {
            root = app->files[i]->docs[0];
        }
    }
    at = kn_node_get(kn_node_get(kn_node_get(kn_node_get(root, "spec"), "ecs"), "targetGroups"),
                     variant);
    if (!json_is_array(containers) || !at || !tg->container_name) {
        return; /* no task definition (reported), or the group is incomplete (reported) */
    }
    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    json_array_foreach(containers, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (name && strcmp(name, tg->container_name) == 0) {
            ports = json_object_get(c, "portMappings");
            found = 1;
            break;
        }
        kn_buf_addf(&names, "%s%s", names.len ? ", " : "", name ? name : "(no name)");
    }
    if (!found) {
        kn_schema_error(ctx, kn_node_get(at, "containerName"),
                        "'spec.ecs.targetGroups.%s.containerName': the task definition has no "
                        "container '%s' (its containers: %s)",
                        variant, tg->container_name, names.len ? names.data : "none");
    } else if (json_array_size(ports) > 0 && tg->container_port > 0) {
        kn_buf_reset(&names);
        json_array_foreach(ports, i, pm)
        {
            json_t *port = json_object_get(pm, "containerPort");
            if (json_is_integer(port) && json_integer_value(port) == tg->container_port) {
                found = 2;
                break;
            }
            if (json_is_integer(port)) {
                kn_buf_addf(&names, "%s%" JSON_INTEGER_FORMAT, names.len ? ", " : "",
                            json_integer_value(port));
            }
        }
        if (found != 2) {
            kn_schema_error(ctx, kn_node_get(at, "containerPort"),
                            "'spec.ecs.targetGroups.%s.containerPort': container '%s' maps no "
                            "containerPort %lld (its ports: %s)",
                            variant, tg->container_name, tg->container_port,
                            names.len ? names.data : "none");
        }
    }
    kn_buf_release(&names);
}

/* An ALB rule matches a header by its value with * and ? wildcards only: a `regex` in a
 * TRAFFIC_ROUTING `match` is refused, located. */
static void check_route_regex(const struct kn_app *app, struct kn_schema_ctx *ctx)
{
    static const char *const fields[] = {"header", "cookie"};
    const struct kn_stage_config *stages = app->cfg.spec.pipeline.items;

    for (size_t i = 0; i < app->cfg.spec.pipeline.count; i++) {
        const struct kn_node *match = kn_node_get(stages[i].with_node, "match");

        if (!stages[i].name || strcmp(stages[i].name, "TRAFFIC_ROUTING") != 0 || !match ||
            match->type != KN_NODE_SEQ) {
            continue;
        }
        for (size_t k = 0; k < match->len; k++) {
            for (size_t j = 0; j < sizeof(fields) / sizeof(fields[0]); j++) {
                const struct kn_pair *re =
                    kn_node_get_pair(kn_node_get(match->items[k], fields[j]), "regex");
                if (re) {
                    kn_schema_error_at(ctx, &re->key->loc,
                                       "stage '%s': platform '%s' (type ecs) matches a %s by "
                                       "its exact value (an ALB rule has only * and ? "
                                       "wildcards), not by 'regex'",
                                       stages[i].name, app->cfg.spec.platform, fields[j]);
                }
            }
        }
    }
}

void kn_ecs_check_app(const struct kn_app *app, const struct kn_pipeline_uses *uses,
                      struct kn_schema_ctx *ctx)
{
    static const char *const names[KN_VARIANT_COUNT] = {
        [KN_VARIANT_PRIMARY] = "primary",
        [KN_VARIANT_CANARY] = "canary",
        [KN_VARIANT_BASELINE] = "baseline",
    };
    const struct kn_ecs_app_options *o = app->cfg.platform_options;
    const struct kn_ecs_target_group *groups[KN_VARIANT_COUNT];

    check_route_regex(app, ctx);
    if (!o || app->cfg.platform_schema != &kn_ecs_app_schema ||
        !kn_schema_isset(&kn_ecs_app_schema, o, "targetGroups")) {
        return; /* no spec.ecs, or no targetGroups: reported already */
    }
    for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
        const struct kn_stage_config *st = uses->runs[v] ? uses->runs[v] : uses->routes[v];
        if (!st || kn_schema_isset(&kn_ecs_target_groups_schema, &o->target_groups, names[v])) {
            continue;
        }
        kn_schema_error_at(ctx, &st->loc,
                           "stage '%s': platform '%s' needs 'spec.ecs.targetGroups.%s' for the "
                           "%s's task set",
                           st->name, app->cfg.spec.platform, names[v], names[v]);
    }
    groups[KN_VARIANT_PRIMARY] = &o->target_groups.primary;
    groups[KN_VARIANT_CANARY] = &o->target_groups.canary;
    groups[KN_VARIANT_BASELINE] = &o->target_groups.baseline;
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (kn_schema_isset(&kn_ecs_target_groups_schema, &o->target_groups, names[v])) {
            check_container(app, names[v], groups[v], ctx);
        }
    }
}
