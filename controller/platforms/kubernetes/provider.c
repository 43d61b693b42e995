/*
 * The kubernetes platform's operations, on the API client (kube.h) and the pure builders
 * (render.h).
 */
#include "platforms/kubernetes/kubernetes.h"

#include "platforms/kubernetes/kube.h"
#include "platforms/kubernetes/render.h"

int kn_kube_create(void **out, const struct kn_platform_env *env, const void *config,
                   struct kn_error *err)
{
    (void)env;
    (void)config;
    *out = NULL;
    return kn_error_set(err, KN_EUNSUPPORTED, NULL, "platform %s: the kubernetes provider is "
                        "not built yet", env->name);
}

static void kn_kube_destroy(void *self)
{
    (void)self;
}

const struct kn_platform_provider_ops kn_kube_ops = {
    .destroy = kn_kube_destroy,
};
