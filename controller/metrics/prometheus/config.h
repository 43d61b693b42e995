/*
 * The Prometheus provider's own keys of a `metricsProviders[]` entry in kanaria.yaml (beside
 * `name` and `type`), and its validate-time query check. The descriptor declares
 * kn_prometheus_config_schema as its config_schema; the parsed struct is
 * kn_metrics_provider_config.options.
 */
#ifndef KANARIA_METRICS_PROMETHEUS_CONFIG_H
#define KANARIA_METRICS_PROMETHEUS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

struct kn_prometheus_basic_auth {
    uint64_t set;
    char *username;
    char *password_file;
};

struct kn_prometheus_config {
    uint64_t set;
    char *address;
    long long timeout_ms;
    struct kn_prometheus_basic_auth basic_auth;
    char *bearer_token_file;
};

extern const struct kn_schema kn_prometheus_config_schema;

/*
 * A cheap syntax check of a PromQL query (its placeholders already filled in): every '(', '['
 * and '{' is closed by its own kind in order, and every string ("...", '...' with backslash
 * escapes, `...` raw) ends. Nothing else of PromQL is checked; the server judges the rest.
 * Returns 0, or KN_EINVAL with what is wrong and its byte offset in msg.
 */
int kn_prometheus_check_query(const char *query, char *msg, size_t size);

#endif /* KANARIA_METRICS_PROMETHEUS_CONFIG_H */
