/*
 * The CloudWatch provider's own keys of a `metricsProviders[]` entry in kanaria.yaml (beside
 * `name`, `type` and `platform`). Credentials, the region and the endpoint come from the ecs
 * platform the entry names (struct kn_aws_config, controller/cloud/aws/aws.h); `region` here
 * overrides the platform's. The descriptor declares kn_cloudwatch_config_schema as its
 * config_schema; the parsed struct is kn_metrics_provider_config.options.
 */
#ifndef KANARIA_METRICS_CLOUDWATCH_CONFIG_H
#define KANARIA_METRICS_CLOUDWATCH_CONFIG_H

#include <stdint.h>

#include "kanaria/schema.h"

struct kn_cloudwatch_config {
    uint64_t set;
    char *region;          /* NULL: the platform's */
    long long timeout_ms;  /* one query, all its pages and retries */
};

extern const struct kn_schema kn_cloudwatch_config_schema;

#endif /* KANARIA_METRICS_CLOUDWATCH_CONFIG_H */
