/*
 * The CloudWatch metrics provider: a metric is one GetMetricData query (a metric or metric math,
 * see query.h for its form), sent through the AWS session of controller/cloud/aws with the
 * credentials, region and endpoint of the ecs platform the provider's entry names. The
 * descriptor is registered in controller/metrics/registry.c.
 *
 *   config.c      the provider's keys in kanaria.yaml
 *   query.c       the query read into a GetMetricData request, replies into a result (pure)
 *   cloudwatch.c  the descriptor, the instance, paging
 */
#ifndef KANARIA_METRICS_CLOUDWATCH_H
#define KANARIA_METRICS_CLOUDWATCH_H

#include "kanaria/metrics.h"

/* Used when neither the query nor the provider's config gives a timeout. */
#define KN_CLOUDWATCH_DEFAULT_TIMEOUT_MS 30000L

extern const struct kn_metrics_type kn_metrics_cloudwatch;

#endif /* KANARIA_METRICS_CLOUDWATCH_H */
