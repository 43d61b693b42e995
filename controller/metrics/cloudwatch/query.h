/*
 * The CloudWatch provider's pure parts: a metric's query text turned into a GetMetricData
 * request, and GetMetricData replies turned into a kn_metrics_result. No I/O here, so that unit
 * tests check them without a server; cloudwatch.c sends and pages.
 *
 * A query is one JSON object, or the same in YAML flow form, with its placeholders already filled
 * in. Its keys are the camelCase names of the AWS API's MetricDataQuery with MetricStat and
 * Metric flattened into it and the dimensions as a map:
 *
 *   a metric      {namespace, metricName, dimensions: {NAME: VALUE, ...}, stat, period, unit,
 *                  id, label}                     namespace, metricName and stat required
 *   metric math   {expression, metrics: {ID: <a metric without id and label>, ...}, period, id,
 *                  label}                         a metric of `metrics` without a period takes
 *                                                 the expression's
 *
 * e.g. {"namespace": "AWS/ApplicationELB", "metricName": "HTTPCode_Target_5XX_Count",
 *       "dimensions": {"TargetGroup": "targetgroup/web/73e2d6bc24d8a067"}, "stat": "Sum"}
 *
 * A period (seconds) is 1, 5, 10, 30 or a multiple of 60; without one the query's step decides
 * (kn_cloudwatch_period). The answer is the data of the one query whose ReturnData is true: the
 * metric, or the expression (its metrics are sent with ReturnData false).
 */
#ifndef KANARIA_METRICS_CLOUDWATCH_QUERY_H
#define KANARIA_METRICS_CLOUDWATCH_QUERY_H

#include <jansson.h>
#include <stddef.h>

#include "kanaria/metrics.h"

#define KN_CLOUDWATCH_MAX_METRICS    100   /* metrics of one expression */
#define KN_CLOUDWATCH_MAX_DIMENSIONS 30    /* AWS's limit per metric */
#define KN_CLOUDWATCH_MAX_PAGES      10    /* NextToken pages of one query */
#define KN_CLOUDWATCH_MAX_SAMPLES    10000 /* data points of one answer, all pages */
#define KN_CLOUDWATCH_DEFAULT_PERIOD 60    /* seconds, when neither the query nor a step says */

/* One GetMetricData request made from a query. */
struct kn_cloudwatch_request {
    json_t *params; /* the GetMetricData input, without NextToken (owned) */
    char *id;       /* the Id of the MetricDataQuery that answers (owned) */
    char *labels;   /* the answer's kn_metrics_series.labels: {label="..."} when the query has
                       a label, else {id="..."} (owned) */
};

/*
 * The period of a metric that gives none, in seconds: KN_CLOUDWATCH_DEFAULT_PERIOD when
 * step_ms is 0, else the step rounded up to a period CloudWatch takes (1, 5, 10, 30, or a
 * multiple of 60).
 */
long long kn_cloudwatch_period(long long step_ms);

/*
 * Read q->query and build the request for q's window: StartTime and EndTime in epoch seconds
 * (start rounded down, end up; an instant query, start == end, asks for the last period),
 * ScanBy TimestampAscending, MaxDatapoints KN_CLOUDWATCH_MAX_SAMPLES. 0 and *req filled (release
 * with kn_cloudwatch_request_release), or KN_EINVAL with a plain message in msg ("'stat' is
 * required"; "metrics.err: unknown key 'Stat', did you mean 'stat'? (...)") and *req zeroed.
 */
int kn_cloudwatch_request_init(struct kn_cloudwatch_request *req,
                               const struct kn_metrics_query *q, char *msg, size_t size);
void kn_cloudwatch_request_release(struct kn_cloudwatch_request *req);

/* The descriptor's check_query: kn_cloudwatch_request_init over a sample window. */
int kn_cloudwatch_check_query(const char *query, char *msg, size_t size);

/*
 * Add one GetMetricData reply page to r: the Timestamps and Values of the result whose Id is
 * req->id into r's one series (labelled req->labels). A StatusCode of Complete or PartialData
 * continues; InternalError, Forbidden or any other fails with AWS's Messages. Returns 0 with
 * *next_token the page's NextToken (borrowed from reply) or NULL when there are no more pages;
 * or KN_EIO (CloudWatch's error), KN_EPARSE (a reply of another shape), KN_ELIMIT (more than
 * KN_CLOUDWATCH_MAX_SAMPLES points), with r->error set ("cloudwatch: ...") and r->ok 0. r starts
 * zeroed.
 */
int kn_cloudwatch_add_page(struct kn_metrics_result *r, const struct kn_cloudwatch_request *req,
                           const json_t *reply, const char **next_token);

/*
 * The last page was added: points sorted by time, r->ok 1. No point at all is no series (the
 * analysis's "no data", never a zero).
 */
void kn_cloudwatch_finish(struct kn_metrics_result *r);

/* Drop what r holds and say why, prefixed "cloudwatch: ". */
void kn_cloudwatch_fail(struct kn_metrics_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* KANARIA_METRICS_CLOUDWATCH_QUERY_H */
