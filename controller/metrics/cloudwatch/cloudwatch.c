/*
 * The CloudWatch metrics provider (see cloudwatch.h and include/kanaria/metrics.h).
 *
 * One query is one GetMetricData call, then one more per NextToken (at most
 * KN_CLOUDWATCH_MAX_PAGES), all within the query's timeout. A call holds the session it pages
 * on; destroying the instance frees the session, which ends the calls in flight with
 * KN_ECANCELLED, so each still calls back exactly once ("cancelled") and starts no next page.
 */
#include "metrics/cloudwatch/cloudwatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cloud/aws/aws.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "metrics/cloudwatch/config.h"
#include "metrics/cloudwatch/query.h"

struct kn_cloudwatch {
    char who[160];       /* "metrics provider=cw" */
    struct kn_aws *aws;  /* (owned) */
    uv_loop_t *loop;     /* borrowed: the HTTP client's */
    long timeout_ms;
};

/* One query in flight, from its first page until its callback has run. */
struct kn_cloudwatch_call {
    char who[160];
    struct kn_aws *aws; /* borrowed: freeing it ends this call first */
    uv_loop_t *loop;
    struct kn_cloudwatch_request req;
    struct kn_metrics_result r;
    uint64_t deadline; /* uv_now() ms */
    int pages;         /* asked for so far */
    kn_metrics_cb cb;
    void *data;
};

static void kn_cloudwatch_on_page(const struct kn_aws_result *res, void *data);

/* Ask for the next page within what is left of the query's time. 0, or <0 (cb never runs). */
static int kn_cloudwatch_send(struct kn_cloudwatch_call *call)
{
    uint64_t now = uv_now(call->loop);
    long long left = call->deadline > now ? (long long)(call->deadline - now) : 0;

    if (left <= 0) {
        return KN_ETIMEDOUT;
    }
    call->pages++;
    return kn_aws_call(NULL, call->aws, KN_AWS_CLOUDWATCH, "GetMetricData", call->req.params,
                       left, kn_cloudwatch_on_page, call);
}

static void kn_cloudwatch_done(struct kn_cloudwatch_call *call)
{
    call->cb(&call->r, call->data);
    kn_metrics_result_release(&call->r);
    kn_cloudwatch_request_release(&call->req);
    free(call);
}

static void kn_cloudwatch_on_page(const struct kn_aws_result *res, void *data)
{
    struct kn_cloudwatch_call *call = data;
    const char *token = NULL;
    int rc;

    if (res->status < 0) {
        const char *why = res->message ? res->message : kn_strerror(res->status);
        /* the session's own words name the service already ("cloudwatch GetMetricData: ...") */
        kn_cloudwatch_fail(&call->r, "%s",
                           strncmp(why, "cloudwatch ", 11) == 0 ? why + 11 : why);
        goto done;
    }
    if (kn_cloudwatch_add_page(&call->r, &call->req, res->reply, &token) < 0) {
        goto done;
    }
    if (!token) {
        kn_cloudwatch_finish(&call->r);
        goto done;
    }
    if (call->pages >= KN_CLOUDWATCH_MAX_PAGES) {
        kn_cloudwatch_fail(&call->r, "the answer takes more than %d pages; narrow the window or "
                           "raise the period", KN_CLOUDWATCH_MAX_PAGES);
        goto done;
    }
    json_object_set_new(call->req.params, "NextToken", json_string(token));
    if ((rc = kn_cloudwatch_send(call)) < 0) {
        kn_cloudwatch_fail(&call->r, "page %d: %s", call->pages + 1,
                           rc == KN_ETIMEDOUT ? "timed out" : kn_strerror(rc));
        goto done;
    }
    return;
done:
    kn_cloudwatch_done(call);
}

static int kn_cloudwatch_query(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb,
                               void *data)
{
    struct kn_cloudwatch *cw = instance;
    struct kn_cloudwatch_call *call = NULL;
    char msg[512];
    int rc = 0;

    if (!cw || !q || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    call = kn_calloc(1, sizeof(*call));
    if ((rc = kn_cloudwatch_request_init(&call->req, q, msg, sizeof(msg))) < 0) {
        kn_log_error(cw->who, "the query is not valid: %s", msg);
        goto out;
    }
    snprintf(call->who, sizeof(call->who), "%s", cw->who);
    call->aws = cw->aws;
    call->loop = cw->loop;
    call->deadline = uv_now(cw->loop) + (uint64_t)(q->timeout_ms > 0 ? q->timeout_ms
                                                                       : cw->timeout_ms);
    call->cb = cb;
    call->data = data;
    if ((rc = kn_cloudwatch_send(call)) < 0) {
        kn_log_error(cw->who, "GetMetricData: %s", kn_strerror(rc));
        goto out;
    }
    call = NULL;
out:
    if (call) {
        kn_cloudwatch_request_release(&call->req);
        free(call);
    }
    return rc;
}

static void kn_cloudwatch_destroy(void *instance)
{
    struct kn_cloudwatch *cw = instance;

    if (!cw) {
        return;
    }
    kn_aws_free(cw->aws);
    free(cw);
}

static int kn_cloudwatch_create(void **out, const struct kn_metrics_provider_config *mc,
                                struct kn_http_client *http, struct kn_error *err)
{
    static const struct kn_cloudwatch_config none = {0};
    const struct kn_cloudwatch_config *cfg = mc->options ? mc->options : &none;
    const struct kn_aws_config *platform = mc->platform ? mc->platform->options : NULL;
    struct kn_cloudwatch *cw = NULL;
    struct kn_aws_config aws;
    struct kn_error e;
    int rc = 0;

    *out = NULL;
    if (!platform) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "metrics provider '%s': no platform of type ecs to take credentials and "
                          "region from", mc->name);
        goto out;
    }
    cw = kn_calloc(1, sizeof(*cw));
    snprintf(cw->who, sizeof(cw->who), "metrics provider=%s", mc->name ? mc->name : "");
    cw->loop = kn_http_client_loop(http);
    cw->timeout_ms = cfg->timeout_ms > 0 ? (long)cfg->timeout_ms : KN_CLOUDWATCH_DEFAULT_TIMEOUT_MS;
    aws = *platform; /* kn_aws_new copies what it keeps */
    if (cfg->region) {
        aws.region = cfg->region;
    }
    kn_error_clear(&e);
    if ((rc = kn_aws_new(&cw->aws, cw->loop, http, &aws, &e)) < 0) {
        rc = kn_error_set(err, rc, NULL, "metrics provider '%s': %s", mc->name, e.msg);
        goto out;
    }
    *out = cw;
    cw = NULL;
out:
    kn_cloudwatch_destroy(cw);
    return rc;
}

const struct kn_metrics_type kn_metrics_cloudwatch = {
    .name = "cloudwatch",
    .help = "Amazon CloudWatch's GetMetricData: a metric's query is one CloudWatch metric or a "
            "metric-math expression over metrics, with the credentials, region and endpoint of "
            "the ecs platform named by `platform`; {{targetGroup}} and {{loadBalancer}} give the "
            "ALB dimensions of the variant measured",
    .platform_type = "ecs",
    .query_help =
        "A query is one JSON object, or the same in YAML flow form, with the camelCase names of "
        "the AWS API's MetricDataQuery (MetricStat and Metric flattened into it, dimensions as a "
        "map):\n\n"
        "- a metric: `namespace`, `metricName`, `stat` (required), `dimensions` "
        "(`{NAME: VALUE}`, 30 at most), `period`, `unit`, `id`, `label`\n"
        "- metric math: `expression`, `metrics` (`{ID: metric}`, each without `id` and "
        "`label`; IDs start with a lower-case letter), `period` (for the metrics without "
        "one), `id`, `label`\n\n"
        "A period (seconds) is 1, 5, 10, 30 or a multiple of 60; without one it is 60 s. The "
        "window is the check's interval, read with ScanBy TimestampAscending and NextToken "
        "paging (10 pages, 10000 points at most). A reply without points is no data (the "
        "check's `noData` decides), never a zero; PartialData is read on, InternalError and "
        "Forbidden are errors in AWS's words. The series is labelled `{label=\"...\"}`, or "
        "`{id=\"...\"}` without a label.\n\n"
        "    query: >-\n"
        "      {\"expression\": \"100*FILL(err,0)/req\",\n"
        "       \"metrics\": {\n"
        "         \"err\": {\"namespace\": \"AWS/ApplicationELB\", \"metricName\": "
        "\"HTTPCode_Target_5XX_Count\",\n"
        "                 \"dimensions\": {\"TargetGroup\": \"{{targetGroup}}\", "
        "\"LoadBalancer\": \"{{loadBalancer}}\"},\n"
        "                 \"stat\": \"Sum\"},\n"
        "         \"req\": {\"namespace\": \"AWS/ApplicationELB\", \"metricName\": "
        "\"RequestCount\",\n"
        "                 \"dimensions\": {\"TargetGroup\": \"{{targetGroup}}\", "
        "\"LoadBalancer\": \"{{loadBalancer}}\"},\n"
        "                 \"stat\": \"Sum\"}},\n"
        "       \"period\": 60}\n",
    .config_schema = &kn_cloudwatch_config_schema,
    .metric_schema = NULL,
    .min_step_ms = 1000,
    .check_query = kn_cloudwatch_check_query,
    .create = kn_cloudwatch_create,
    .query = kn_cloudwatch_query,
    .destroy = kn_cloudwatch_destroy,
};
