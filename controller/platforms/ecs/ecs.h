/*
 * The `ecs` platform: an app is an Amazon ECS service with the EXTERNAL deployment controller;
 * each variant is a task set on its own ALB target group, and traffic is split by the weights of
 * the forward actions that point at the primary/canary pair, on the listener's default action and
 * on every listener rule. Private to controller/platforms; the rest of the code reaches it through
 * kn_platform_types[] and the front end.
 *
 *   ecs.c        the descriptor
 *   app.c        spec.ecs (the app's options) and the manifest kinds: the task and service
 *                definition files, checked against the AWS API's input shapes (shapes.c)
 *   provider.c   the operations, on controller/cloud/aws
 */
#ifndef KANARIA_PLATFORMS_ECS_H
#define KANARIA_PLATFORMS_ECS_H

#include <stdint.h>

#include "kanaria/error.h"
#include "kanaria/manifest.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/schema.h"

/* The manifest kinds of an ECS app (kn_manifest_doc.kind): the canonical manifest of each is
 * {"kind": K, "metadata": {"name": N}, "spec": <the file's map>}. */
#define KN_ECS_TASK_DEFINITION "TaskDefinition"       /* N: family */
#define KN_ECS_SERVICE_DEFINITION "ServiceDefinition" /* N: serviceName */

/* spec.ecs.targetGroups.<variant> */
struct kn_ecs_target_group {
    uint64_t set;
    char *target_group_arn;
    char *container_name;
    long long container_port;
};

struct kn_ecs_target_groups {
    uint64_t set;
    struct kn_ecs_target_group primary;
    struct kn_ecs_target_group canary;
    struct kn_ecs_target_group baseline; /* optional; BASELINE_ROLLOUT needs it */
};

/* spec.ecs, parsed with kn_ecs_app_schema (kn_variant_spec.options, kn_desired.options). */
struct kn_ecs_app_options {
    uint64_t set;
    char *task_definition_file;
    char *service_definition_file;
    struct kn_ecs_target_groups target_groups;
};

extern const struct kn_schema kn_ecs_app_schema;
extern const struct kn_manifest_kind kn_ecs_kinds[];
#define KN_ECS_NKINDS 2 /* entries of kn_ecs_kinds */
/* Two apps of one platform on one service (cluster, serviceName): a located error in the later. */
void kn_ecs_check_apps(struct kn_app *const *apps, size_t n);

extern const struct kn_placeholder kn_ecs_placeholders[];
extern const struct kn_platform_provider_ops kn_ecs_ops;
/* The type's create: config is a const struct kn_aws_config * (controller/cloud/aws/aws.h). */
int kn_ecs_create(void **out, const struct kn_platform_env *env, const void *config,
                  struct kn_error *err);

extern const struct kn_platform_type kn_platform_ecs;

#endif /* KANARIA_PLATFORMS_ECS_H */
