/*
 * The `ecs` platform's operations (skeleton: replaced by the real provider).
 */
#include "platforms/ecs/ecs.h"

const struct kn_placeholder kn_ecs_placeholders[] = {
    {.name = "targetGroup", .help = "the variant's ALB target group dimension (targetgroup/NAME/ID)"},
    {.name = "loadBalancer", .help = "the ALB dimension of the primary's load balancer (app/NAME/ID)"},
    {.name = NULL},
};

const struct kn_platform_provider_ops kn_ecs_ops = {0};

int kn_ecs_create(void **out, const struct kn_platform_env *env, const void *config,
                  struct kn_error *err)
{
    (void)out;
    (void)env;
    (void)config;
    return kn_error_set(err, KN_EUNSUPPORTED, NULL, "the ecs platform is not built yet");
}
