/*
 * Unit tests for controller/metrics/cloudwatch: a query read into a GetMetricData request, the
 * query check of `kanaria validate`, replies and their pages read into a result, the provider's
 * entry in kanaria.yaml through the config loader, and whole queries against a scripted
 * CloudWatch on the test's own loop (127.0.0.1, ephemeral port).
 */
#include "testutil.h"
#include "testsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cloud/aws/aws.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "kanaria/metrics.h"
#include "kanaria/validate.h"
#include "metrics/cloudwatch/cloudwatch.h"
#include "metrics/cloudwatch/config.h"
#include "metrics/cloudwatch/query.h"

/* ---- the request ---------------------------------------------------------------------------- */

static void test_period(void **state)
{
    (void)state;
    assert_int_equal(kn_cloudwatch_period(0), 60);
    assert_int_equal(kn_cloudwatch_period(1), 1);
    assert_int_equal(kn_cloudwatch_period(1000), 1);
    assert_int_equal(kn_cloudwatch_period(1001), 5);
    assert_int_equal(kn_cloudwatch_period(7000), 10);
    assert_int_equal(kn_cloudwatch_period(30000), 30);
    assert_int_equal(kn_cloudwatch_period(31000), 60);
    assert_int_equal(kn_cloudwatch_period(60000), 60);
    assert_int_equal(kn_cloudwatch_period(61000), 120);
}

/* Build the request of `query` over q's window and compare its params with `want` (JSON). */
static void expect_request(const struct kn_metrics_query *q, const char *want, const char *id,
                           const char *labels)
{
    struct kn_cloudwatch_request req;
    json_error_t jerr;
    json_t *expected = json_loads(want, 0, &jerr);
    char msg[256];

    if (!expected) {
        fail_msg("bad expected JSON: %s", jerr.text);
    }
    assert_int_equal(kn_cloudwatch_request_init(&req, q, msg, sizeof(msg)), 0);
    if (!json_equal(req.params, expected)) {
        char *got = json_dumps(req.params, JSON_SORT_KEYS);
        fail_msg("request %s\nwant %s", got, want);
    }
    assert_string_equal(req.id, id);
    assert_string_equal(req.labels, labels);
    kn_cloudwatch_request_release(&req);
    json_decref(expected);
}

static void test_request_metric(void **state)
{
    struct kn_metrics_query q = {
        .query = "{\"namespace\": \"AWS/ApplicationELB\", \"metricName\": "
                 "\"HTTPCode_Target_5XX_Count\", \"dimensions\": {\"TargetGroup\": "
                 "\"targetgroup/web-canary/73e2d6bc24d8a067\", \"LoadBalancer\": "
                 "\"app/web/50dc6c495c0c9188\"}, \"stat\": \"Sum\", \"period\": 60}",
        .start_ms = 1700000000500LL,
        .end_ms = 1700000300500LL,
    };

    (void)state;
    /* start rounded down, end up, to whole seconds; the dimensions in the query's order */
    expect_request(&q,
                   "{\"MetricDataQueries\": [{\"Id\": \"q\", \"ReturnData\": true, "
                   " \"MetricStat\": {\"Metric\": {\"Namespace\": \"AWS/ApplicationELB\", "
                   "   \"MetricName\": \"HTTPCode_Target_5XX_Count\", \"Dimensions\": ["
                   "   {\"Name\": \"TargetGroup\", \"Value\": "
                   "\"targetgroup/web-canary/73e2d6bc24d8a067\"},"
                   "   {\"Name\": \"LoadBalancer\", \"Value\": \"app/web/50dc6c495c0c9188\"}]},"
                   "  \"Period\": 60, \"Stat\": \"Sum\"}}],"
                   " \"StartTime\": 1700000000, \"EndTime\": 1700000301, "
                   " \"ScanBy\": \"TimestampAscending\", \"MaxDatapoints\": 10000}",
                   "q", "{id=\"q\"}");

    /* YAML flow form; no period: the step decides (15 s -> 30); a label and a unit */
    q.query = "{namespace: AWS/ApplicationELB, metricName: RequestCount, stat: p99.9, "
              "unit: Count, label: \"5xx \\\"canary\\\"\", id: canary_req}";
    q.step_ms = 15000;
    expect_request(&q,
                   "{\"MetricDataQueries\": [{\"Id\": \"canary_req\", \"ReturnData\": true, "
                   " \"Label\": \"5xx \\\"canary\\\"\", "
                   " \"MetricStat\": {\"Metric\": {\"Namespace\": \"AWS/ApplicationELB\", "
                   "   \"MetricName\": \"RequestCount\"}, \"Period\": 30, \"Stat\": \"p99.9\", "
                   "   \"Unit\": \"Count\"}}],"
                   " \"StartTime\": 1700000000, \"EndTime\": 1700000301, "
                   " \"ScanBy\": \"TimestampAscending\", \"MaxDatapoints\": 10000}",
                   "canary_req", "{label=\"5xx \\\"canary\\\"\"}");

    /* an instant query asks for the last period */
    q.query = "{namespace: N, metricName: M, stat: Average, period: 300}";
    q.start_ms = q.end_ms = 1700000300000LL;
    expect_request(&q,
                   "{\"MetricDataQueries\": [{\"Id\": \"q\", \"ReturnData\": true, "
                   " \"MetricStat\": {\"Metric\": {\"Namespace\": \"N\", \"MetricName\": \"M\"}, "
                   "   \"Period\": 300, \"Stat\": \"Average\"}}],"
                   " \"StartTime\": 1700000000, \"EndTime\": 1700000300, "
                   " \"ScanBy\": \"TimestampAscending\", \"MaxDatapoints\": 10000}",
                   "q", "{id=\"q\"}");
}

static void test_request_math(void **state)
{
    struct kn_metrics_query q = {
        .query = "{\"expression\": \"100*FILL(err,0)/q\", \"period\": 120, \"metrics\": {"
                 " \"err\": {\"namespace\": \"AWS/ApplicationELB\", \"metricName\": "
                 "\"HTTPCode_Target_5XX_Count\", \"dimensions\": {\"TargetGroup\": \"tg\"}, "
                 "\"stat\": \"Sum\"},"
                 " \"q\": {\"namespace\": \"AWS/ApplicationELB\", \"metricName\": "
                 "\"RequestCount\", \"dimensions\": {\"TargetGroup\": \"tg\"}, \"stat\": "
                 "\"Sum\", \"period\": 60}}}",
        .start_ms = 1700000000000LL,
        .end_ms = 1700000600000LL,
    };

    (void)state;
    /* the metrics first with ReturnData false; the expression's period is theirs when they
     * have none; its id avoids the metric named q */
    expect_request(&q,
                   "{\"MetricDataQueries\": ["
                   " {\"Id\": \"err\", \"ReturnData\": false, \"MetricStat\": {\"Metric\": {"
                   "   \"Namespace\": \"AWS/ApplicationELB\", \"MetricName\": "
                   "\"HTTPCode_Target_5XX_Count\", \"Dimensions\": [{\"Name\": \"TargetGroup\", "
                   "\"Value\": \"tg\"}]}, \"Period\": 120, \"Stat\": \"Sum\"}},"
                   " {\"Id\": \"q\", \"ReturnData\": false, \"MetricStat\": {\"Metric\": {"
                   "   \"Namespace\": \"AWS/ApplicationELB\", \"MetricName\": \"RequestCount\", "
                   "   \"Dimensions\": [{\"Name\": \"TargetGroup\", \"Value\": \"tg\"}]}, "
                   "   \"Period\": 60, \"Stat\": \"Sum\"}},"
                   " {\"Id\": \"q_1\", \"Expression\": \"100*FILL(err,0)/q\", "
                   "  \"ReturnData\": true}],"
                   " \"StartTime\": 1700000000, \"EndTime\": 1700000600, "
                   " \"ScanBy\": \"TimestampAscending\", \"MaxDatapoints\": 10000}",
                   "q_1", "{id=\"q_1\"}");
}

/* The query check of `kanaria validate`: each bad query and its message. */
static void test_check_query(void **state)
{
    static const struct {
        const char *query;
        const char *msg; /* NULL: valid */
    } cases[] = {
        {"{namespace: N, metricName: M, stat: Sum}", NULL},
        {"{\"namespace\":\"N\",\"metricName\":\"M\",\"stat\":\"Sum\",\"period\":1}", NULL},
        {"{expression: SUM(METRICS()), metrics: {a: {namespace: N, metricName: M, stat: Sum}}}",
         NULL},
        {"", "no query"},
        {"{namespace: N", "not JSON or YAML (line 2, column 1): did not find expected ',' or '}'"},
        {"[1, 2]", "a query is a map (a metric, or an expression with metrics), got a list"},
        {"{namespace: N, metricName: M}",
         "'stat' is required (a metric has namespace, metricName and stat)"},
        {"{metricName: M, stat: Sum}",
         "'namespace' is required (a metric has namespace, metricName and stat)"},
        {"{Namespace: N, MetricName: M, Stat: Sum}",
         "unknown key 'Namespace', did you mean 'namespace'? (keys of a metric are camelCase: "
         "namespace, metricName, dimensions, stat, period, unit, id, label)"},
        {"{namespace: N, metricName: M, stat: Sum, region: x}",
         "unknown key 'region' (keys of a metric: namespace, metricName, dimensions, stat, "
         "period, unit, id, label)"},
        {"{namespace: N, metricName: M, stat: Sum, period: 90}",
         "'period' must be 1, 5, 10, 30 or a multiple of 60 (seconds), got '90'"},
        {"{namespace: N, metricName: M, stat: Sum, period: 0}",
         "'period' must be 1, 5, 10, 30 or a multiple of 60 (seconds), got '0'"},
        {"{namespace: N, metricName: M, stat: Sum, period: 1m}",
         "'period' must be 1, 5, 10, 30 or a multiple of 60 (seconds), got '1m'"},
        {"{namespace: N, metricName: M, stat: Sum, unit: count}",
         "'unit' must be a CloudWatch unit (Count, Percent, Seconds, Bytes/Second, ...), got "
         "'count'"},
        {"{namespace: N, metricName: M, stat: \"\"}", "'stat' must not be empty"},
        {"{namespace: N, metricName: [M], stat: Sum}", "'metricName' must be a string, got a list"},
        {"{namespace: N, metricName: M, stat: Sum, dimensions: [a]}",
         "'dimensions' must be a map of NAME: VALUE, got a list"},
        {"{namespace: N, metricName: M, stat: Sum, dimensions: {TargetGroup: null}}",
         "dimension 'TargetGroup' must be a string, got null"},
        {"{namespace: N, metricName: M, stat: Sum, metrics: {a: {}}}",
         "'metrics' goes with an 'expression', and there is none"},
        {"{expression: a*2}",
         "'metrics' must be a map of ID: metric that the expression uses, got none"},
        {"{expression: a*2, metrics: {}}",
         "'metrics' must be a map of ID: metric that the expression uses, got a map"},
        {"{expression: a*2, metrics: {A: {namespace: N, metricName: M, stat: Sum}}}",
         "metric id 'A' must start with a lower-case letter and hold only letters, digits and "
         "'_'"},
        {"{expression: a*2, metrics: {a: {namespace: N, metricName: M}}}",
         "metrics.a: 'stat' is required (a metric has namespace, metricName and stat)"},
        {"{expression: a*2, metrics: {a: {namespace: N, metricName: M, Stat: Sum}}}",
         "metrics.a: unknown key 'Stat', did you mean 'stat'? (keys of an expression's metric "
         "are camelCase: namespace, metricName, dimensions, stat, period, unit)"},
        {"{expression: a*2, metrics: {a: {namespace: N, metricName: M, stat: Sum, label: x}}}",
         "metrics.a: unknown key 'label' (keys of an expression's metric: namespace, metricName, "
         "dimensions, stat, period, unit)"},
        {"{expression: a*2, metrics: {a: 1}}",
         "metrics.a: must be a metric (a map with namespace, metricName, stat), got a number"},
        {"{expression: a*2, namespace: N, metrics: {a: {namespace: N, metricName: M, stat: Sum}}}",
         "unknown key 'namespace' (keys of an expression: expression, metrics, period, id, "
         "label)"},
        {"{expression: a*2, id: a, metrics: {a: {namespace: N, metricName: M, stat: Sum}}}",
         "'id' 'a' is also the id of one of 'metrics'"},
        {"{namespace: N, metricName: M, stat: Sum, id: 9x}",
         "'id' must start with a lower-case letter and hold only letters, digits and '_', got "
         "'9x'"},
        {"{Expression: a*2}",
         "unknown key 'Expression', did you mean 'expression'? (keys of a metric are camelCase: "
         "namespace, metricName, dimensions, stat, period, unit, id, label)"},
    };
    char msg[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = kn_cloudwatch_check_query(cases[i].query, msg, sizeof(msg));
        if (!cases[i].msg) {
            if (rc != 0) {
                fail_msg("case %zu '%s': %s", i, cases[i].query, msg);
            }
            continue;
        }
        if (rc != KN_EINVAL || strcmp(msg, cases[i].msg) != 0) {
            fail_msg("case %zu '%s':\n got  %s\n want %s", i, cases[i].query, msg, cases[i].msg);
        }
    }
    /* the descriptor checks queries with it */
    assert_ptr_equal(kn_metrics_type_find("cloudwatch"), &kn_metrics_cloudwatch);
    assert_ptr_equal(kn_metrics_cloudwatch.check_query, kn_cloudwatch_check_query);
}

/* ---- the reply ------------------------------------------------------------------------------ */

/* A request with Id `id`, unlabelled. */
static void request_for(struct kn_cloudwatch_request *req, const char *id)
{
    memset(req, 0, sizeof(*req));
    req->id = kn_strdup(id);
    req->labels = kn_asprintf("{id=\"%s\"}", id);
}

/* Add the page `text` to r; returns add_page's result and the token (copied) in *token. */
static int add(struct kn_metrics_result *r, const struct kn_cloudwatch_request *req,
               const char *text, char **token)
{
    json_error_t jerr;
    json_t *reply = json_loads(text, 0, &jerr);
    const char *next = NULL;
    int rc;

    if (!reply) {
        fail_msg("bad reply JSON: %s", jerr.text);
    }
    rc = kn_cloudwatch_add_page(r, req, reply, &next);
    *token = next ? kn_strdup(next) : NULL;
    json_decref(reply);
    return rc;
}

static void test_reply_pages(void **state)
{
    struct kn_cloudwatch_request req;
    struct kn_metrics_result r = {0};
    char *token;

    (void)state;
    request_for(&req, "q");
    /* PartialData reads on; another Id is not the answer; times as epoch seconds */
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Label\": \"x\", "
                         "\"Timestamps\": [1700000060, 1700000000], \"Values\": [2.5, 1], "
                         "\"StatusCode\": \"PartialData\"}, {\"Id\": \"other\", \"Timestamps\": "
                         "[1], \"Values\": [99], \"StatusCode\": \"Complete\"}], "
                         "\"NextToken\": \"page-2\", \"Messages\": []}",
                         &token),
                     0);
    assert_string_equal(token, "page-2");
    free(token);
    /* an ISO 8601 time is read too; no NextToken ends it */
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": "
                         "[\"2023-11-14T22:15:20Z\"], \"Values\": [0], \"StatusCode\": "
                         "\"Complete\"}]}",
                         &token),
                     0);
    assert_null(token);
    kn_cloudwatch_finish(&r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 1);
    assert_string_equal(r.series[0].labels, "{id=\"q\"}");
    assert_int_equal(r.series[0].count, 3);
    /* sorted by time: a zero is a value like any other */
    assert_true(r.series[0].times_ms[0] == 1700000000000LL && r.series[0].values[0] == 1.0);
    assert_true(r.series[0].times_ms[1] == 1700000060000LL && r.series[0].values[1] == 2.5);
    assert_true(r.series[0].times_ms[2] == 1700000120000LL && r.series[0].values[2] == 0.0);
    kn_metrics_result_release(&r);

    /* no point at all is no series: no data, not a zero */
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [], "
                         "\"Values\": [], \"StatusCode\": \"Complete\"}]}",
                         &token),
                     0);
    assert_null(token);
    kn_cloudwatch_finish(&r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 0);
    kn_metrics_result_release(&r);
    assert_int_equal(add(&r, &req, "{\"MetricDataResults\": []}", &token), 0);
    kn_cloudwatch_finish(&r);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 0);
    kn_metrics_result_release(&r);
    kn_cloudwatch_request_release(&req);
}

static void test_reply_errors(void **state)
{
    struct kn_cloudwatch_request req;
    struct kn_metrics_result r = {0};
    char *token;

    (void)state;
    request_for(&req, "q");
    /* InternalError fails with AWS's words, dropping what earlier pages gave */
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [1], "
                         "\"Values\": [1], \"StatusCode\": \"PartialData\"}], \"NextToken\": "
                         "\"t\"}",
                         &token),
                     0);
    free(token);
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [], "
                         "\"Values\": [], \"StatusCode\": \"InternalError\", \"Messages\": ["
                         "{\"Code\": \"InternalError\", \"Value\": \"try again later\"}]}]}",
                         &token),
                     KN_EIO);
    assert_null(token);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.nseries, 0);
    assert_string_equal(r.error, "cloudwatch: InternalError: InternalError: try again later");
    kn_metrics_result_release(&r);

    /* without messages of its own, the reply's */
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"StatusCode\": "
                         "\"Forbidden\"}], \"Messages\": [{\"Code\": \"AccessDenied\", "
                         "\"Value\": \"not allowed\"}]}",
                         &token),
                     KN_EIO);
    assert_string_equal(r.error, "cloudwatch: Forbidden: AccessDenied: not allowed");
    kn_metrics_result_release(&r);

    /* shapes that are not the API's */
    assert_int_equal(add(&r, &req, "[]", &token), KN_EPARSE);
    assert_string_equal(r.error, "cloudwatch: the GetMetricData reply is not of the API's shape");
    kn_metrics_result_release(&r);
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [1, 2], "
                         "\"Values\": [1]}]}",
                         &token),
                     KN_EPARSE);
    assert_string_equal(r.error, "cloudwatch: result 'q' has 2 timestamps for 1 values");
    kn_metrics_result_release(&r);
    assert_int_equal(add(&r, &req,
                         "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [\"soon\"], "
                         "\"Values\": [1]}]}",
                         &token),
                     KN_EPARSE);
    assert_string_equal(r.error, "cloudwatch: result 'q': point 0 is not a time and a number");
    kn_metrics_result_release(&r);
    kn_cloudwatch_request_release(&req);
}

static void test_reply_too_many_points(void **state)
{
    struct kn_cloudwatch_request req;
    struct kn_metrics_result r = {0};
    struct kn_buf b;
    char *token;
    int rc = 0;

    (void)state;
    request_for(&req, "q");
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [");
    for (int i = 0; i < 4000; i++) {
        kn_buf_addf(&b, "%s%d", i ? "," : "", 1700000000 + i);
    }
    kn_buf_adds(&b, "], \"Values\": [");
    for (int i = 0; i < 4000; i++) {
        kn_buf_addf(&b, "%s%d", i ? "," : "", i);
    }
    kn_buf_adds(&b, "], \"StatusCode\": \"PartialData\"}], \"NextToken\": \"more\"}");
    /* 4000 and 4000 fit, 4000 more do not */
    for (int page = 0; page < 3 && rc == 0; page++) {
        rc = add(&r, &req, b.data, &token);
        free(token);
    }
    assert_int_equal(rc, KN_ELIMIT);
    assert_string_equal(r.error, "cloudwatch: the answer holds more than 10000 data points; "
                                 "narrow the window or raise the period");
    kn_metrics_result_release(&r);
    kn_buf_release(&b);
    kn_cloudwatch_request_release(&req);
}

/* ---- kanaria.yaml --------------------------------------------------------------------------- */

#define BASE "dataDir: /var/lib/kanaria\n"
#define AWS_PLATFORM "platforms:\n  - {name: aws, type: ecs, region: us-east-1}\n"

/* Load `yaml` as kanaria.yaml; the diagnostics one a line into *diags_out (caller frees). */
static int load_config(const char *yaml, struct kn_config **cfg, char **diags_out)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/kanaria.yaml", dir);
    struct kn_diags diags;
    struct kn_buf b;
    char line[1024];
    int rc;

    kn_test_write(dir, "kanaria.yaml", yaml);
    kn_diags_init(&diags, 0);
    rc = kn_config_load(cfg, path, &diags);
    static char file[] = "kanaria.yaml";

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "");
    for (size_t i = 0; i < diags.count; i++) {
        struct kn_diag d = diags.items[i];
        d.file = file;
        kn_buf_addf(&b, "%s\n", kn_diag_format(&d, line, sizeof(line)));
    }
    *diags_out = kn_buf_detach(&b, NULL);
    kn_diags_release(&diags);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
    return rc;
}

static void expect_config_error(const char *yaml, const char *want)
{
    struct kn_config *cfg = NULL;
    char *diags;

    assert_int_equal(load_config(yaml, &cfg, &diags), KN_ESCHEMA);
    assert_null(cfg);
    assert_string_equal(diags, want);
    free(diags);
}

static void test_config(void **state)
{
    struct kn_config *cfg = NULL;
    const struct kn_metrics_provider_config *mp;
    const struct kn_cloudwatch_config *cc;
    char *diags;

    (void)state;
    /* the platform may come after the provider; the provider's own keys */
    assert_int_equal(load_config(BASE "metricsProviders:\n"
                                      "  - {name: cw, type: cloudwatch, platform: aws, region: "
                                      "eu-west-1, timeout: 45s}\n"
                                      "  - {name: cw2, type: cloudwatch, platform: aws}\n" AWS_PLATFORM,
                                 &cfg, &diags),
                     0);
    assert_string_equal(diags, "");
    free(diags);
    mp = kn_config_metrics_provider(cfg, "cw");
    assert_ptr_equal(mp->mtype, &kn_metrics_cloudwatch);
    assert_ptr_equal(mp->platform, kn_config_platform(cfg, "aws"));
    assert_string_equal(((const struct kn_aws_config *)mp->platform->options)->region,
                        "us-east-1");
    cc = mp->options;
    assert_string_equal(cc->region, "eu-west-1");
    assert_int_equal(cc->timeout_ms, 45000);
    cc = kn_config_metrics_provider(cfg, "cw2")->options;
    assert_null(cc->region);
    assert_int_equal(cc->timeout_ms, 30000);
    kn_config_free(cfg);

    expect_config_error(BASE AWS_PLATFORM "metricsProviders:\n"
                                          "  - {name: cw, type: cloudwatch}\n",
                        "kanaria.yaml:5:5: metricsProviders[0]: 'platform' is required: type "
                        "cloudwatch takes its credentials and region from a platform of type "
                        "ecs\n");
    expect_config_error(BASE AWS_PLATFORM "metricsProviders:\n"
                                          "  - {name: cw, type: cloudwatch, platform: aws2}\n",
                        "kanaria.yaml:5:44: metricsProviders[0]: platform 'aws2' is not in "
                        "'platforms' (aws)\n");
    expect_config_error(BASE "metricsProviders:\n"
                             "  - {name: cw, type: cloudwatch, platform: aws}\n",
                        "kanaria.yaml:3:44: metricsProviders[0]: platform 'aws' is not in "
                        "'platforms' (it declares none)\n");
    expect_config_error(BASE "platforms:\n  - {name: vm, type: local}\n"
                             "metricsProviders:\n"
                             "  - {name: cw, type: cloudwatch, platform: vm}\n",
                        "kanaria.yaml:5:44: metricsProviders[0]: platform 'vm' is of type local, "
                        "type cloudwatch needs one of type ecs\n");
    expect_config_error(BASE AWS_PLATFORM "metricsProviders:\n"
                                          "  - {name: p, type: prometheus, address: "
                                          "'http://127.0.0.1:9090', platform: aws}\n",
                        "kanaria.yaml:5:77: metricsProviders[0]: type prometheus takes no "
                        "'platform'\n");
    expect_config_error(BASE AWS_PLATFORM "metricsProviders:\n"
                                          "  - {name: cw, type: cloudwatch, platform: aws, "
                                          "timeout: 0s, endpointUrl: x}\n",
                        "kanaria.yaml:5:62: unknown key 'endpointUrl' in 'metricsProviders[0]' "
                        "(allowed: name, type, platform, region, timeout)\n"
                        "kanaria.yaml:5:58: 'metricsProviders[0].timeout' must be between 1s "
                        "and 5m, got 0s\n");
}

/* ---- an app's analysis on the provider ------------------------------------------------------ */

#define CW_CONFIG                                                                                  \
    BASE "platforms:\n  - {name: aws, type: ecs, region: us-east-1}\n"                             \
         "  - {name: vm, type: local}\n"                                                           \
         "metricsProviders:\n  - {name: cw, type: cloudwatch, platform: aws}\n"

#define CW_APP(platform, spec, query)                                                             \
    "apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: web}\n"                      \
    "spec:\n  platform: " platform "\n" spec                                                      \
    "  pipeline:\n"                                                                               \
    "    - name: CANARY_ROLLOUT\n"                                                                \
    "    - name: ANALYSIS\n"                                                                      \
    "      with:\n"                                                                               \
    "        duration: 10m\n"                                                                     \
    "        metrics:\n"                                                                          \
    "          - name: errors\n"                                                                  \
    "            provider: cw\n"                                                                  \
    "            strategy: canary-primary\n"                                                      \
    "            interval: 5m\n"                                                                  \
    "            query: >-\n"                                                                     \
    "              " query "\n"                                                                   \
    "    - name: PRIMARY_ROLLOUT\n"                                                               \
    "    - name: CANARY_CLEAN\n"

#define ECS_SPEC                                                                                   \
    "  ecs:\n"                                                                                     \
    "    taskDefinitionFile: taskdef.yaml\n"                                                       \
    "    serviceDefinitionFile: servicedef.yaml\n"                                                 \
    "    targetGroups:\n"                                                                          \
    "      primary: {targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:"       \
    "targetgroup/web-primary/73e2d6bc24d8a067', containerName: web, containerPort: 80}\n"        \
    "      canary: {targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:"        \
    "targetgroup/web-canary/83e2d6bc24d8a067', containerName: web, containerPort: 80}\n"

#define LOCAL_SPEC "  manifests: [m.yaml]\n"

#define GOOD_QUERY                                                                                 \
    "{\"namespace\": \"AWS/ApplicationELB\", \"metricName\": \"HTTPCode_Target_5XX_Count\", "   \
    "\"dimensions\": {\"TargetGroup\": \"{{targetGroup}}\", \"LoadBalancer\": "                  \
    "\"{{loadBalancer}}\"}, \"stat\": \"Sum\", \"period\": 60}"

/* Every diagnostic of the app `app` (with the ecs and local files beside it) validated against
 * the controller config CW_CONFIG, one a line. */
static char *validate_app(const char *app_yaml)
{
    char *dir = kn_test_tmpdir();
    struct kn_config *cfg = NULL;
    struct kn_source *src = NULL;
    struct kn_app *app = NULL;
    struct kn_error err;
    struct kn_buf b;
    char line[1024];
    char *diags;

    assert_int_equal(load_config(CW_CONFIG, &cfg, &diags), 0);
    free(diags);
    kn_test_write(dir, "app.kanaria.yaml", app_yaml);
    kn_test_write(dir, "taskdef.yaml",
                  "family: web\ncontainerDefinitions:\n"
                  "  - {name: web, image: 'nginx:1.25', memory: 128, "
                  "portMappings: [{containerPort: 80}]}\n");
    kn_test_write(dir, "servicedef.yaml", "cluster: prod\nserviceName: web\ndesiredCount: 2\n");
    kn_test_write(dir, "m.yaml",
                  "apiVersion: kanaria.dev/v1\nkind: LocalService\nmetadata: {name: web}\n"
                  "spec: {command: [./web, '--port={{port}}']}\n");
    kn_error_clear(&err);
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_validate_app_load(&app, src, "app.kanaria.yaml", cfg), 0);
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "");
    for (size_t i = 0; i < app->diags.count; i++) {
        kn_buf_addf(&b, "%s\n", kn_diag_format(&app->diags.items[i], line, sizeof(line)));
    }
    kn_app_free(app);
    kn_source_free(src);
    kn_config_free(cfg);
    kn_test_rmtree(dir);
    free(dir);
    return kn_buf_detach(&b, NULL);
}

static void test_analysis_validated(void **state)
{
    char *diags;

    (void)state;
    /* an ecs app has {{targetGroup}} and {{loadBalancer}} */
    diags = validate_app(CW_APP("aws", ECS_SPEC, GOOD_QUERY));
    assert_string_equal(diags, "");
    free(diags);
    /* a local app has not */
    diags = validate_app(CW_APP("vm", LOCAL_SPEC, GOOD_QUERY));
    assert_non_null(strstr(diags, "uses unknown placeholder '{{targetGroup}}'"));
    free(diags);
    /* the query is checked once its placeholders are filled in */
    diags = validate_app(CW_APP("aws", ECS_SPEC,
                                "{namespace: AWS/ApplicationELB, metricName: RequestCount, "
                                "dimensions: {TargetGroup: '{{targetGroup}}'}, stat: Sum, "
                                "period: 45}"));
    assert_string_equal(diags, "app.kanaria.yaml:22:20: stage 'ANALYSIS': metric 'errors': the "
                               "cloudwatch query is not valid: 'period' must be 1, 5, 10, 30 or "
                               "a multiple of 60 (seconds), got '45'\n");
    free(diags);
}

/* ---- whole queries: a scripted CloudWatch --------------------------------------------------- */

#define MAX_SEEN 16

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct kn_http_client *http;
    /* what the server answers, request by request: status and body; after the last, `repeat`
     * with 200 when set, else a 400 */
    int nreplies;
    const char *repeat;
    long delay_ms; /* before each reply */
    int nrequests;
    int status[MAX_SEEN];
    const char *reply[MAX_SEEN];
    /* what it was sent */
    int nseen;
    char *target[MAX_SEEN];
    char *content_type[MAX_SEEN];
    char *authorization[MAX_SEEN];
    json_t *body[MAX_SEEN];
    char *endpoint;
};

static uv_loop_t *test_loop;

static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    struct fx *f = data;
    int i = f->nseen;
    const char *body;

    if (i < MAX_SEEN) {
        f->target[i] = kn_testsrv_header(req->head, "X-Amz-Target");
        f->content_type[i] = kn_testsrv_header(req->head, "Content-Type");
        f->authorization[i] = kn_testsrv_header(req->head, "Authorization");
        f->body[i] = json_loadb(req->body, req->body_len, 0, NULL);
        f->nseen++;
    }
    f->nrequests++;
    body = i < f->nreplies ? f->reply[i] : f->repeat ? f->repeat : "{\"__type\": \"Unscripted\"}";
    kn_testsrv_reply(c, i < f->nreplies ? f->status[i] : f->repeat ? 200 : 400,
                     "Content-Type: application/x-amz-json-1.0\r\n", body, strlen(body),
                     f->delay_ms);
}

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, f);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    f->endpoint = kn_asprintf("http://127.0.0.1:%d", f->srv.port);
    /* the standard chain's first link; nothing of the machine's own AWS setup is read */
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_CLOUDWATCH");
    unsetenv("AWS_PROFILE");
    setenv("AWS_CONFIG_FILE", "/nonexistent/kanaria-test", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kanaria-test", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    test_loop = &f->loop;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_http_client_close(f->http);
    kn_testsrv_stop(&f->srv);
    while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < f->nseen; i++) {
        free(f->target[i]);
        free(f->content_type[i]);
        free(f->authorization[i]);
        json_decref(f->body[i]);
    }
    free(f->endpoint);
    free(f);
    return 0;
}

struct got {
    int calls;
    int ok;
    char error[1024];
    size_t nseries;
    size_t count;
    double values[16];
    long long times_ms[16];
    char labels[128];
};

static void on_result(const struct kn_metrics_result *r, void *data)
{
    struct got *g = data;

    uv_stop(test_loop);
    g->calls++;
    g->ok = r->ok;
    snprintf(g->error, sizeof(g->error), "%s", r->error);
    g->nseries = r->nseries;
    if (r->nseries > 0) {
        g->count = r->series[0].count;
        for (size_t i = 0; i < g->count && i < 16; i++) {
            g->values[i] = r->series[0].values[i];
            g->times_ms[i] = r->series[0].times_ms[i];
        }
        snprintf(g->labels, sizeof(g->labels), "%s", r->series[0].labels);
    }
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    uv_stop(test_loop);
}

static void on_guard_closed(uv_handle_t *h)
{
    *(int *)h->data = 1;
}

/* Close a guard timer and wait for it (a few loop turns at most). */
static void close_guard(uv_loop_t *loop, uv_timer_t *guard)
{
    int closed = 0;

    guard->data = &closed;
    uv_close((uv_handle_t *)guard, on_guard_closed);
    for (int i = 0; i < 100 && !closed; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
    }
    assert_true(closed);
}

/* Run one query and wait (10 s at most) for its callback. */
static void run_query(struct fx *f, struct kn_metrics *m, const char *query, struct got *g)
{
    struct kn_metrics_query q = {
        .query = query,
        .start_ms = 1700000000000LL,
        .end_ms = 1700000600000LL,
    };
    uv_timer_t guard;

    memset(g, 0, sizeof(*g));
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 10000, 0);
    assert_int_equal(kn_metrics_query(m, &q, on_result, g), 0);
    assert_int_equal(g->calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    close_guard(&f->loop, &guard);
    assert_int_equal(g->calls, 1);
}

static char name_cw[] = "cw", type_cw[] = "cloudwatch", name_aws[] = "aws", type_ecs[] = "ecs",
            region[] = "us-east-1";

/* A provider on the scripted server: an ecs platform entry with its endpoint. */
static struct kn_metrics *provider(struct fx *f, struct kn_platform_config *pc,
                                   struct kn_aws_config *ac, struct kn_cloudwatch_config *cc)
{
    struct kn_metrics_provider_config mc = {
        .name = name_cw,
        .type = type_cw,
        .platform_name = name_aws,
        .platform = pc,
        .options = cc,
    };
    struct kn_metrics *m = NULL;
    struct kn_error err;

    memset(ac, 0, sizeof(*ac));
    ac->region = region;
    ac->endpoint_url = f->endpoint;
    memset(pc, 0, sizeof(*pc));
    pc->name = name_aws;
    pc->type = type_ecs;
    pc->options = ac;
    memset(cc, 0, sizeof(*cc));
    cc->timeout_ms = 5000;
    kn_error_clear(&err);
    if (kn_metrics_new(&m, &mc, f->http, &err) < 0) {
        fail_msg("kn_metrics_new: %s", err.msg);
    }
    return m;
}

#define ELB_5XX                                                                                    \
    "{\"namespace\": \"AWS/ApplicationELB\", \"metricName\": \"HTTPCode_Target_5XX_Count\", "     \
    "\"dimensions\": {\"TargetGroup\": \"targetgroup/web-canary/73e2d6bc24d8a067\"}, "            \
    "\"stat\": \"Sum\"}"

static void test_query_pages(void **state)
{
    struct fx *f = *state;
    struct kn_platform_config pc;
    struct kn_aws_config ac;
    struct kn_cloudwatch_config cc;
    struct kn_metrics *m = provider(f, &pc, &ac, &cc);
    struct got g;
    const json_t *q;

    f->nreplies = 2;
    f->status[0] = f->status[1] = 200;
    f->reply[0] = "{\"MetricDataResults\": [{\"Id\": \"q\", \"Label\": \"5xx\", \"Timestamps\": "
                  "[1700000000, 1700000060], \"Values\": [0, 3], \"StatusCode\": "
                  "\"PartialData\"}], \"NextToken\": \"tok-2\", \"Messages\": []}";
    f->reply[1] = "{\"MetricDataResults\": [{\"Id\": \"q\", \"Label\": \"5xx\", \"Timestamps\": "
                  "[1700000120], \"Values\": [1.5], \"StatusCode\": \"Complete\"}], "
                  "\"Messages\": []}";
    run_query(f, m, ELB_5XX, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.nseries, 1);
    assert_string_equal(g.labels, "{id=\"q\"}");
    assert_int_equal(g.count, 3);
    assert_true(g.values[0] == 0.0 && g.values[1] == 3.0 && g.values[2] == 1.5);
    assert_true(g.times_ms[2] == 1700000120000LL);

    /* two requests, awsJson1_0, signed for monitoring; the second with the first's NextToken */
    assert_int_equal(f->nseen, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(f->target[i], "GraniteServiceVersion20100801.GetMetricData");
        assert_string_equal(f->content_type[i], "application/x-amz-json-1.0");
        assert_non_null(strstr(f->authorization[i], "/us-east-1/monitoring/aws4_request"));
        assert_non_null(f->body[i]);
        q = json_array_get(json_object_get(f->body[i], "MetricDataQueries"), 0);
        assert_string_equal(json_string_value(json_object_get(q, "Id")), "q");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(q, "MetricStat"),
                                                            "Period")),
                         60);
        assert_int_equal(json_integer_value(json_object_get(f->body[i], "StartTime")),
                         1700000000);
        assert_int_equal(json_integer_value(json_object_get(f->body[i], "EndTime")),
                         1700000600);
        assert_string_equal(json_string_value(json_object_get(f->body[i], "ScanBy")),
                            "TimestampAscending");
    }
    assert_null(json_object_get(f->body[0], "NextToken"));
    assert_string_equal(json_string_value(json_object_get(f->body[1], "NextToken")), "tok-2");
    kn_metrics_free(m);
}

static void test_query_errors(void **state)
{
    struct fx *f = *state;
    struct kn_platform_config pc;
    struct kn_aws_config ac;
    struct kn_cloudwatch_config cc;
    struct kn_metrics *m = provider(f, &pc, &ac, &cc);
    struct got g;

    /* AWS's error in its words */
    f->nreplies = 3;
    f->status[0] = 400;
    f->reply[0] = "{\"__type\": \"com.amazonaws.cloudwatch#InvalidParameterValueException\", "
                  "\"message\": \"The value 7 for parameter Period is not valid.\"}";
    run_query(f, m, ELB_5XX, &g);
    assert_int_equal(g.ok, 0);
    assert_non_null(strstr(g.error, "cloudwatch: InvalidParameterValueException: The value 7 "
                                    "for parameter Period is not valid."));
    /* InternalError in a result */
    f->status[1] = 200;
    f->reply[1] = "{\"MetricDataResults\": [{\"Id\": \"q\", \"StatusCode\": \"InternalError\", "
                  "\"Messages\": [{\"Code\": \"InternalError\", \"Value\": \"boom\"}]}]}";
    run_query(f, m, ELB_5XX, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "cloudwatch: InternalError: InternalError: boom");
    /* no points: ok with no series */
    f->status[2] = 200;
    f->reply[2] = "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [], \"Values\": [], "
                  "\"StatusCode\": \"Complete\"}]}";
    run_query(f, m, ELB_5XX, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.nseries, 0);
    /* a query that is not valid is refused at once, and nothing is sent */
    {
        struct kn_metrics_query q = {.query = "{namespace: N}", .start_ms = 0, .end_ms = 1000};
        assert_int_equal(kn_metrics_query(m, &q, on_result, &g), KN_EINVAL);
    }
    assert_int_equal(f->nseen, 3);
    kn_metrics_free(m);
}

/* Pages are bounded: the eleventh NextToken fails the query. */
static void test_query_page_limit(void **state)
{
    struct fx *f = *state;
    struct kn_platform_config pc;
    struct kn_aws_config ac;
    struct kn_cloudwatch_config cc;
    struct kn_metrics *m = provider(f, &pc, &ac, &cc);
    static const char page[] = "{\"MetricDataResults\": [{\"Id\": \"q\", \"Timestamps\": [1], "
                               "\"Values\": [1], \"StatusCode\": \"PartialData\"}], "
                               "\"NextToken\": \"again\"}";
    struct got g;

    f->repeat = page;
    run_query(f, m, ELB_5XX, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "cloudwatch: the answer takes more than 10 pages; narrow the "
                                 "window or raise the period");
    assert_int_equal(f->nrequests, KN_CLOUDWATCH_MAX_PAGES);
    kn_metrics_free(m);
}

/* The query's timeout bounds it, pages and retries included; freeing the provider ends what is
 * in flight: each query calls back once. */
static void test_query_timeout_and_free(void **state)
{
    struct fx *f = *state;
    struct kn_platform_config pc;
    struct kn_aws_config ac;
    struct kn_cloudwatch_config cc;
    struct kn_metrics *m = provider(f, &pc, &ac, &cc);
    struct kn_metrics_query q = {.query = ELB_5XX, .start_ms = 0, .end_ms = 600000,
                                 .timeout_ms = 300};
    uv_timer_t guard;
    struct got g;

    f->repeat = "{\"MetricDataResults\": []}";
    f->delay_ms = 3000;
    memset(&g, 0, sizeof(g));
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 10000, 0);
    assert_int_equal(kn_metrics_query(m, &q, on_result, &g), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "cloudwatch: GetMetricData: timed out after 300 ms waiting "
                                 "for an answer (1 attempt)");

    /* in flight when the provider goes */
    memset(&g, 0, sizeof(g));
    q.timeout_ms = 0;
    assert_int_equal(kn_metrics_query(m, &q, on_result, &g), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 0);
    kn_metrics_free(m);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "cloudwatch: GetMetricData: cancelled");
    close_guard(&f->loop, &guard);
}

/* ---- metric math on the scripted AWS fake (tests/fakes/aws_fake.py) ------------------------ */

struct fake {
    uv_loop_t loop;
    struct kn_http_client *http;
    pid_t pid;
    int port;
    char *endpoint;
};

/* Start the fake; 0, or 1 (the test is skipped) when python3 or the script is missing. */
static int fake_start(struct fake *f)
{
    const char *src = getenv("KANARIA_SOURCE_DIR");
    char *script = kn_asprintf("%s/tests/fakes/aws_fake.py", src ? src : ".");
    char line[64] = "";
    size_t len = 0;
    int fds[2];
    int rc = 1;

    if (access(script, R_OK) != 0) {
        goto out;
    }
    assert_int_equal(pipe(fds), 0);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", script, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* "listening PORT", within 10 s */
    while (len + 1 < sizeof(line) && !strchr(line, '\n')) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        ssize_t n;
        if (poll(&pfd, 1, 10000) <= 0 || (n = read(fds[0], line + len, 1)) <= 0) {
            break;
        }
        len += (size_t)n;
        line[len] = '\0';
    }
    close(fds[0]);
    if (sscanf(line, "listening %d", &f->port) != 1 || f->port <= 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
        goto out;
    }
    rc = 0;
out:
    free(script);
    return rc;
}

static void fake_stop(struct fake *f)
{
    if (f->pid <= 0) {
        return;
    }
    kill(f->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
            f->pid = 0;
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;
}

/* POST a control request to the fake (blocking, 10 s at most); fails the test unless it is 200. */
static void fake_control(struct fake *f, const char *path, const char *body)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    char *req = kn_asprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                            "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                            path, f->port, strlen(body), body);
    char reply[4096];
    size_t len = 0, sent = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int status = 0;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    while (sent < strlen(req)) {
        ssize_t n = write(fd, req + sent, strlen(req) - sent);
        assert_true(n > 0);
        sent += (size_t)n;
    }
    for (;;) {
        ssize_t n = read(fd, reply + len, sizeof(reply) - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        assert_true(n >= 0); /* a timeout fails the test */
        if (n == 0 || (len += (size_t)n) + 1 >= sizeof(reply)) {
            break;
        }
    }
    close(fd);
    reply[len] = '\0';
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        fail_msg("fake %s: %s", path, reply);
    }
    free(req);
}

static int fake_setup(void **state)
{
    struct fake *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    test_loop = &f->loop;
    setenv("AWS_ACCESS_KEY_ID", "AKIDKANARIATEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "kanaria-test-secret", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_CLOUDWATCH");
    unsetenv("AWS_PROFILE");
    setenv("AWS_CONFIG_FILE", "/nonexistent/kanaria-test", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kanaria-test", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    if (fake_start(f) == 0) {
        f->endpoint = kn_asprintf("http://127.0.0.1:%d", f->port);
        /* signatures checked by the fake's own SigV4 verifier */
        fake_control(f, "/__setup",
                     "{\"region\": \"us-east-1\", \"verifySignatures\": true, \"users\": "
                     "[{\"accessKeyId\": \"AKIDKANARIATEST\", \"secretAccessKey\": "
                     "\"kanaria-test-secret\"}]}");
        /* two points a page, so that a query pages */
        fake_control(f, "/__faults", "{\"cloudwatchPagePoints\": 2}");
    }
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;

    fake_stop(f);
    kn_http_client_close(f->http);
    while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->endpoint);
    free(f);
    return 0;
}

static void on_put(const struct kn_aws_result *r, void *data)
{
    int *status = data;

    *status = r->status == 0 ? 1 : -1;
    if (r->status != 0) {
        fprintf(stderr, "PutMetricData: %s\n", r->message ? r->message : "?");
    }
    uv_stop(test_loop);
}

/* PutMetricData of one metric of target group `tg`: values at 0, 60, 120... s after t0. */
static void fake_put(struct fake *f, struct kn_aws *aws, const char *name, const char *tg,
                     long long t0, const double *values, size_t n)
{
    json_t *data = json_array();
    uv_timer_t guard;
    int status = 0;

    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            data, json_pack("{s:s, s:I, s:f, s:[{s:s, s:s}]}", "MetricName", name, "Timestamp",
                            (json_int_t)(t0 + 60 * (long long)i), "Value", values[i],
                            "Dimensions", "Name", "TargetGroup", "Value", tg));
    }
    json_t *params = json_pack("{s:s, s:o}", "Namespace", "AWS/ApplicationELB", "MetricData",
                               data);
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 10000, 0);
    assert_int_equal(kn_aws_call(NULL, aws, KN_AWS_CLOUDWATCH, "PutMetricData", params, 5000,
                                 on_put, &status),
                     0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    close_guard(&f->loop, &guard);
    assert_int_equal(status, 1);
    json_decref(params);
}

#define FAKE_MATH(tg)                                                                              \
    "{expression: 100*err/req, metrics: {"                                                        \
    "err: {namespace: AWS/ApplicationELB, metricName: HTTPCode_Target_5XX_Count, "               \
    "dimensions: {TargetGroup: " tg "}, stat: Sum}, "                                             \
    "req: {namespace: AWS/ApplicationELB, metricName: RequestCount, "                             \
    "dimensions: {TargetGroup: " tg "}, stat: Sum}}, period: 60, label: error rate}"

/* The error rate of a target group by metric math, read over pages, in time order, signed. */
static void test_fake_metric_math(void **state)
{
    struct fake *f = *state;
    static const double err[] = {1, 0, 6, 2, 5}, req[] = {100, 50, 200, 0, 50};
    struct kn_platform_config pc = {.name = name_aws, .type = type_ecs};
    struct kn_aws_config ac = {.region = region};
    struct kn_cloudwatch_config cc = {.timeout_ms = 10000};
    struct kn_metrics_provider_config mc = {
        .name = name_cw, .type = type_cw, .platform_name = name_aws, .platform = &pc,
        .options = &cc};
    long long t0 = 1700000040; /* a multiple of 60 */
    struct kn_metrics_query q = {.query = FAKE_MATH("targetgroup/web-canary/1"),
                                 .start_ms = t0 * 1000, .end_ms = (t0 + 300) * 1000};
    struct kn_metrics *m = NULL;
    struct kn_aws *aws = NULL;
    struct kn_error e;
    uv_timer_t guard;
    struct got g;

    if (f->pid <= 0) {
        fprintf(stderr, "SKIPPED: python3 or tests/fakes/aws_fake.py is missing\n");
        if (getenv("CI") && strcmp(getenv("CI"), "true") == 0) {
            fail_msg("the AWS fake is needed when CI=true");
        }
        skip();
    }
    ac.endpoint_url = f->endpoint;
    pc.options = &ac;
    kn_error_clear(&e);
    assert_int_equal(kn_aws_new(&aws, &f->loop, f->http, &ac, &e), 0);
    fake_put(f, aws, "HTTPCode_Target_5XX_Count", "targetgroup/web-canary/1", t0, err, 5);
    fake_put(f, aws, "RequestCount", "targetgroup/web-canary/1", t0, req, 5);
    fake_put(f, aws, "RequestCount", "targetgroup/web-primary/1", t0, req, 5);
    kn_aws_free(aws);

    assert_int_equal(kn_metrics_new(&m, &mc, f->http, &e), 0);
    memset(&g, 0, sizeof(g));
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 10000, 0);
    assert_int_equal(kn_metrics_query(m, &q, on_result, &g), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    if (!g.ok) {
        fail_msg("query: %s", g.error);
    }
    /* the minute without requests has no point (no division by zero), so four, oldest first,
     * over two pages of two */
    assert_string_equal(g.labels, "{label=\"error rate\"}");
    assert_int_equal(g.count, 4);
    assert_true(g.times_ms[0] == t0 * 1000 && g.values[0] == 1.0);
    assert_true(g.times_ms[1] == (t0 + 60) * 1000 && g.values[1] == 0.0);
    assert_true(g.times_ms[2] == (t0 + 120) * 1000 && g.values[2] == 3.0);
    assert_true(g.times_ms[3] == (t0 + 240) * 1000 && g.values[3] == 10.0);

    /* a target group without 5xx data: the expression has no point, which is no data */
    memset(&g, 0, sizeof(g));
    q.query = FAKE_MATH("targetgroup/web-primary/1");
    assert_int_equal(kn_metrics_query(m, &q, on_result, &g), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.nseries, 0);
    close_guard(&f->loop, &guard);
    kn_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_period),
        cmocka_unit_test(test_request_metric),
        cmocka_unit_test(test_request_math),
        cmocka_unit_test(test_check_query),
        cmocka_unit_test(test_reply_pages),
        cmocka_unit_test(test_reply_errors),
        cmocka_unit_test(test_reply_too_many_points),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_analysis_validated),
        cmocka_unit_test_setup_teardown(test_query_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_page_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout_and_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_metric_math, fake_setup, fake_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
