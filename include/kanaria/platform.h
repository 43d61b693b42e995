/*
 * kanaria — the platform contract.
 *
 * A platform type (local today; kubernetes and ecs later) declares what it can do as capability
 * flags. Stage kinds declare the capabilities they need, and `kanaria validate` rejects a
 * pipeline that asks its platform for something it cannot do, before any rollout starts. The
 * operations themselves (apply a variant, remove it, set weights, read live state) join this
 * descriptor with the pipeline engine.
 */
#ifndef KANARIA_PLATFORM_H
#define KANARIA_PLATFORM_H

#include <stddef.h>

#include "kanaria/schema.h"

#define KN_PLATFORM_APPLY 0x01u         /* apply manifests as the primary */
#define KN_PLATFORM_CANARY 0x02u        /* run a canary variant beside the primary */
#define KN_PLATFORM_BASELINE 0x04u      /* run a baseline variant */
#define KN_PLATFORM_TRAFFIC_SPLIT 0x08u /* weighted traffic between variants */
#define KN_PLATFORM_SCRIPT 0x10u        /* run scripts on the controller's host */

/* Names of the flags above, for messages ("traffic splitting"). */
const char *kn_platform_cap_name(unsigned cap);

struct kn_platform_type {
    const char *name;   /* the `type:` in kanaria.yaml */
    unsigned caps;      /* KN_PLATFORM_* */
    const char *manifest_kind; /* the manifest kind that describes a workload ("LocalService") */
    const char *help;
};

/* The registered platform types, NULL-terminated. */
extern const struct kn_platform_type *const kn_platform_types[];

/* A registered type by name, or NULL. */
const struct kn_platform_type *kn_platform_type_find(const char *name);

#endif /* KANARIA_PLATFORM_H */
