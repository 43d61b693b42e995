/*
 * The `local` platform (design 3.5): each variant of an app is a set of processes on this host,
 * on ports taken from the platform's `ports` range, registered as servers `primary-N`,
 * `canary-N` and `baseline-N` of an HAProxy backend named after the app. Weights go through the
 * HAProxy runtime API, so the platform can do everything a pipeline asks, scripts included (they
 * run on the same host).
 *
 * This file holds the descriptor; the operations join it with the pipeline engine.
 */
#include "platforms/local/local.h"

#include "platforms/local/config.h"

const struct kn_platform_type kn_platform_local = {
    .name = "local",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
            KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_SCRIPT,
    .manifest_kind = "LocalService",
    .help = "processes on this host behind HAProxy: kanaria spawns each variant's instances on "
            "ports from `ports`, checks their health and splits traffic with server weights",
    .config_schema = &kn_local_config_schema,
};
