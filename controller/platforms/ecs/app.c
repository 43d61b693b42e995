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

const struct kn_manifest_kind kn_ecs_kinds[KN_ECS_NKINDS] = {
    {.kind = KN_ECS_TASK_DEFINITION,
     .role = KN_KIND_WORKLOAD,
     .min = 1,
     .max = 1,
     .file_key = "taskDefinitionFile",
     .name_key = "family",
     .help = "RegisterTaskDefinition input, from spec.ecs.taskDefinitionFile"},
    {.kind = KN_ECS_SERVICE_DEFINITION,
     .role = KN_KIND_WORKLOAD,
     .min = 1,
     .max = 1,
     .file_key = "serviceDefinitionFile",
     .name_key = "serviceName",
     .help = "CreateService input, from spec.ecs.serviceDefinitionFile"},
};

void kn_ecs_check_apps(struct kn_app *const *apps, size_t n)
{
    (void)apps;
    (void)n;
}
