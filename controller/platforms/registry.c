/*
 * The platform types kanaria knows: one hand-written table. A new type is its folder (its
 * descriptor, with the config_schema of its `platforms[]` keys), one line here and one in
 * CMakeLists.txt: kanaria.yaml, validation, serve, stages, drift and `kanaria help platform` read
 * everything else from the descriptor (include/kanaria/plugin/platform.h).
 *
 * The last slot holds the test builds' `fake` type (tests/fakes/fake_platform.c), a weak
 * reference: the kanaria binary does not link it, so the slot is NULL there and ends the table
 * one entry early; a test binary that links the fake gets it registered like any other type.
 */
#include "kanaria/platform.h"

#include <string.h>

#include "kanaria/plugin/platform.h"
#include "platforms/ecs/ecs.h"
#include "platforms/kubernetes/kubernetes.h"
#include "platforms/local/local.h"

extern const struct kn_platform_type kn_platform_fake __attribute__((weak));

const struct kn_platform_type *const kn_platform_types[] = {
    &kn_platform_local,
    &kn_platform_ecs,
    &kn_platform_kubernetes,
    &kn_platform_fake, /* NULL outside test builds */
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
    case KN_PLATFORM_LIVE:
        return "reading live state";
    case KN_PLATFORM_CANCEL:
        return "cancelling an operation";
    case KN_PLATFORM_HEADER_ROUTING:
        return "header and cookie routing";
    case KN_PLATFORM_MIRROR:
        return "traffic mirroring";
    default:
        return "an unknown capability";
    }
}
