/*
 * The `local` platform (design 3.5): each variant of an app is a set of processes on this host,
 * on ports taken from the platform's `ports` range, registered as servers `primary-N`,
 * `canary-N` and `baseline-N` of an HAProxy backend of the app. Weights go through the HAProxy
 * runtime API, so the platform can do everything a pipeline asks.
 *
 * This file holds the descriptor; platform.c the operations.
 */
#include "platforms/local/local.h"

#include "platforms/local/config.h"
#include "platforms/local/local_service.h"

/* Paths of a LocalService whose change changes what runs: anything but spec.replicas (a quick
 * sync scales) and metadata (labels are notes). */
static const char *const local_service_runtime_paths[] = {
    "apiVersion", "spec.command", "spec.env", "spec.workingDir", "spec.healthCheck",
    "spec.frontend", NULL,
};

static const struct kn_manifest_kind local_kinds[] = {
    {.kind = KN_LOCAL_SERVICE_KIND,
     .api_version = "kanaria.dev/v1",
     .role = KN_KIND_WORKLOAD,
     .schema = &kn_local_service_schema,
     .min = 1,
     .max = 1,
     .runtime_paths = local_service_runtime_paths,
     .help = "the command kanaria runs as processes behind HAProxy (`kanaria help "
             "localservice`)"},
    /* Documents of other kinds have always been kept with a local app as they are (hashed,
     * diffed, shown in plans) and ignored by the platform; they stay accepted. */
    {.kind = NULL,
     .role = KN_KIND_OPEN,
     .help = "any other kind: kept with the app and shown in plans, not run"},
};

/* What HAProxy's Prometheus exporter labels the app's metrics with (local_template_vars). */
static const struct kn_placeholder local_placeholders[] = {
    {.name = "backend",
     .help = "the app's HAProxy backend, the exporter's `proxy` label: the app's name, or "
             "REPOSITORY.APP (APP.HASH when that is too long) when an app of that name from "
             "another repository came first, so "
             "write `proxy=\"{{backend}}\"` rather than `proxy=\"{{app}}\"`"},
    {.name = "server",
     .help = "the prefix of the variant's HAProxy server names (`canary-`): the exporter's "
             "`server` label is the prefix and the instance's number, so "
             "`server=~\"{{server}}.*\"` selects the variant"},
    {.name = "variant_url",
     .help = "http checks only: the base URL of one of the variant's instances "
             "(`http://127.0.0.1:PORT`), the next instance at each probe, so that a probe "
             "reaches that variant alone; \"\" while none runs"},
    {.name = NULL},
};

const struct kn_platform_type kn_platform_local = {
    .name = "local",
    .help = "processes on this host behind HAProxy: kanaria spawns each variant's instances on "
            "ports from `ports`, checks their health and splits traffic with server weights; "
            "requests matching a TRAFFIC_ROUTING `match` go to the canary through a route map "
            "changed at run time",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
            KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL |
            KN_PLATFORM_HEADER_ROUTING, /* no mirror: HAProxy 2.6 mirrors only through SPOE */
    /* HAProxy weights are integers 0..256 per server, but the platform turns a split into the
     * per-server weights whose ratio is closest to it (kn_haproxy_weights): any percent is
     * taken, approximated by the instance counts of the moment, so no step is imposed. */
    .weight_step = 0,
    .config_schema = &kn_local_config_schema,
    .app_schema = NULL, /* no `spec.local` options yet */
    .kinds = local_kinds,
    .nkinds = sizeof(local_kinds) / sizeof(local_kinds[0]),
    .placeholders = local_placeholders,
    .check_apps = kn_local_service_check_binds,
    .create = kn_local_create,
    .ops = &kn_local_ops,
};
