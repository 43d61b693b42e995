/*
 * The CloudWatch provider's keys in kanaria.yaml (see config.h):
 *
 *     metricsProviders:
 *       - name: cw
 *         type: cloudwatch
 *         platform: aws        # a platforms[] entry of type ecs
 *         region: eu-west-1    # optional: else the platform's
 *         timeout: 30s
 */
#include "metrics/cloudwatch/config.h"

#include <stddef.h>

static const struct kn_field kn_cloudwatch_config_fields[] = {
    {.key = "region",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_cloudwatch_config, region),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the region of the metrics (us-east-1); else the platform's"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_cloudwatch_config, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "30s",
     .min = 1000,
     .max = 300000,
     .help = "limit on one query with its pages and retries, 1s to 5m; a query that takes "
             "longer is inconclusive"},
};

const struct kn_schema kn_cloudwatch_config_schema = {
    .name = "cloudwatch provider",
    KN_SCHEMA_FIELDS(kn_cloudwatch_config_fields),
    .size = sizeof(struct kn_cloudwatch_config),
    .set_offset = offsetof(struct kn_cloudwatch_config, set),
};
