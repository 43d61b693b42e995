/*
 * The Datadog provider's own keys of a `metricsProviders[]` entry in kanaria.yaml (beside `name`
 * and `type`), and its validate-time query check. The descriptor declares
 * kn_datadog_config_schema as its config_schema; the parsed struct is
 * kn_metrics_provider_config.options.
 */
#ifndef KANARIA_METRICS_DATADOG_CONFIG_H
#define KANARIA_METRICS_DATADOG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

struct kn_datadog_config {
    uint64_t set;
    char *site;          /* datadoghq.com, datadoghq.eu, us3.datadoghq.com, ... */
    char *address;       /* a base URL instead of https://api.SITE (a proxy, a test server) */
    char *api_key_file;  /* file holding the API key (DD-API-KEY) */
    char *app_key_file;  /* file holding the application key (DD-APPLICATION-KEY) */
    long long timeout_ms;
};

extern const struct kn_schema kn_datadog_config_schema;

/*
 * A cheap check of a Datadog metrics query (its placeholders already filled in): not empty, no
 * line end, every '(', '{' and '[' closed by its own kind in order. The server judges the rest.
 * Returns 0, or KN_EINVAL with what is wrong and its byte offset in msg.
 */
int kn_datadog_check_query(const char *query, char *msg, size_t size);

#endif /* KANARIA_METRICS_DATADOG_CONFIG_H */
