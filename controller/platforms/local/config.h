/*
 * The `local` platform's own keys of a `platforms[]` entry in kanaria.yaml (beside `name` and
 * `type`): the HAProxy in front of the instances and the ports they listen on. Parsed through
 * kn_local_config_schema, which the descriptor declares as its config_schema; the config's
 * parser allocates the struct and hangs it at kn_platform_config.options.
 */
#ifndef KANARIA_PLATFORMS_LOCAL_CONFIG_H
#define KANARIA_PLATFORMS_LOCAL_CONFIG_H

#include <stdint.h>

#include "kanaria/schema.h"

struct kn_local_haproxy_config {
    uint64_t set;
    int managed;
    char *socket;       /* NULL: under the platform's folder in dataDir */
    char *binary;
    char *metrics_bind; /* HOST:PORT of a managed HAProxy's Prometheus exporter */
};

struct kn_local_ports {
    uint64_t set;
    long long min;
    long long max;
};

struct kn_local_config {
    uint64_t set;
    struct kn_local_haproxy_config haproxy;
    struct kn_local_ports ports;
};

extern const struct kn_schema kn_local_config_schema;

#endif /* KANARIA_PLATFORMS_LOCAL_CONFIG_H */
