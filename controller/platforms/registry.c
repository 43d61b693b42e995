/*
 * The platform types kanaria knows: one hand-written table. A new type is its folder, its
 * descriptor (with the config_schema of its `platforms[]` keys) and one line here: kanaria.yaml,
 * validation and `kanaria help platform` read everything else from the descriptor.
 */
#include "kanaria/platform.h"

#include <string.h>

#include "platforms/local/local.h"

const struct kn_platform_type *const kn_platform_types[] = {
    &kn_platform_local,
    NULL,
};

const struct kn_platform_type *kn_platform_type_find(const char *name)
{
    const struct kn_platform_type *found = NULL;

    if (!name) {
        goto out;
    }
    for (size_t i = 0; kn_platform_types[i]; i++) {
        if (strcmp(kn_platform_types[i]->name, name) == 0) {
            found = kn_platform_types[i];
            goto out;
        }
    }
out:
    return found;
}

const char *kn_platform_cap_name(unsigned cap)
{
    switch (cap) {
    case KN_PLATFORM_APPLY:
        return "applying manifests";
    case KN_PLATFORM_CANARY:
        return "canary variants";
    case KN_PLATFORM_BASELINE:
        return "baseline variants";
    case KN_PLATFORM_TRAFFIC_SPLIT:
        return "traffic splitting";
    case KN_PLATFORM_SCRIPT:
        return "scripts";
    default:
        return "an unknown capability";
    }
}
