/*
 * kanaria — the `LocalService` manifest of the local platform (design.md §3.5): a command that
 * kanaria runs as processes behind HAProxy.
 */
#ifndef KANARIA_LOCAL_SERVICE_H
#define KANARIA_LOCAL_SERVICE_H

#include <stdint.h>

#include "kanaria/schema.h"

#define KN_LOCAL_SERVICE_KIND "LocalService"

struct kn_health_check {
    uint64_t set;
    char *path;
    long long interval_ms;
    long long timeout_ms;
    long long healthy_threshold;
};

struct kn_frontend {
    uint64_t set;
    char *bind;
};

struct kn_local_service_spec {
    uint64_t set;
    struct kn_strlist command; /* argv; {{port}} and {{variant}} are substituted per instance */
    struct kn_strmap env;
    char *working_dir;         /* relative to the app's folder */
    long long replicas;
    struct kn_health_check health_check;
    struct kn_frontend frontend;
};

struct kn_local_service {
    uint64_t set;
    char *api_version;
    char *kind;
    struct {
        uint64_t set;
        char *name;
        struct kn_strmap labels;
    } metadata;
    struct kn_local_service_spec spec;
};

extern const struct kn_schema kn_local_service_schema;

#endif /* KANARIA_LOCAL_SERVICE_H */
