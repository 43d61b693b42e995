/*
 * The `local` platform (design 3.5): each variant of an app is a set of processes on this host,
 * on ports taken from the platform's `ports` range, registered as servers `primary-N`,
 * `canary-N` and `baseline-N` of an HAProxy backend of the app. Weights go through the HAProxy
 * runtime API, so the platform can do everything a pipeline asks.
 *
 * This file holds the descriptor; platform.c the operations.
 */
#include "platforms/local/local.h"

#include "kanaria/local_service.h"

static const struct kn_manifest_kind local_kinds[] = {
    {
        .kind = "LocalService",
        .api_version = NULL,
        .role = KN_KIND_WORKLOAD,
        .schema = &kn_local_service_schema,
        .min = 1,
        .max = 1,
        .runtime_paths = NULL,
        .help = "the processes of an app: command, env, ports, health check, HAProxy frontend",
    },
};

const struct kn_platform_type kn_platform_local = {
    .name = "local",
    .help = "processes on this host behind HAProxy: kanaria spawns each variant's instances on "
            "ports from `ports`, checks their health and splits traffic with server weights",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
            KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL,
    .weight_step = 0,
    .config_schema = NULL, /* its keys are still in the shared platforms[] section */
    .app_schema = NULL,
    .kinds = local_kinds,
    .nkinds = sizeof(local_kinds) / sizeof(local_kinds[0]),
    .check_apps = NULL,
    .create = kn_local_create,
    .ops = &kn_local_ops,
};
