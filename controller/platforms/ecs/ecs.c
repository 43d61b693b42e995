/*
 * The `ecs` platform's descriptor (see ecs.h for the folder's layout).
 */
#include "platforms/ecs/ecs.h"

#include "cloud/aws/aws.h"

const struct kn_platform_type kn_platform_ecs = {
    .name = "ecs",
    .help = "an Amazon ECS service with the EXTERNAL deployment controller: each variant is a task "
            "set on its own ALB target group, and traffic is split by the weights of every "
            "forward action (listener default actions and listener rules) that points at the "
            "primary/canary target-group pair",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
            KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL |
            KN_PLATFORM_HEADER_ROUTING, /* a listener rule per match; an ALB cannot mirror */
    .weight_step = 1, /* ELBv2 forward weights are integers */
    .config_schema = &kn_aws_config_schema,
    .app_schema = &kn_ecs_app_schema,
    .kinds = kn_ecs_kinds,
    .nkinds = KN_ECS_NKINDS,
    .placeholders = kn_ecs_placeholders,
    .check_apps = kn_ecs_check_apps,
    .check_app = kn_ecs_check_app,
    .create = kn_ecs_create,
    .ops = &kn_ecs_ops,
};
