/*
 * Unit and component tests for controller/metrics/datadog: the URL of a query, the parsing of
 * Datadog's replies, the rate-limit headers, and whole queries against a scripted server on the
 * test's own libuv loop (127.0.0.1, ephemeral port) that answers in Datadog's documented shapes.
 *
 * The shapes follow Datadog's API reference, "Query timeseries points" (v1 tab,
 * https://docs.datadoghq.com/api/latest/metrics/query-timeseries-points/): GET /api/v1/query
 * with from and to in seconds since the epoch and the query; the OK response object has status,
 * res_type, query, from_date, to_date (ms), group_by and series[], each series with metric,
 * display_name, scope ("comma separated list of tags"), tag_set, expression, aggr, interval,
 * length, start, end (ms), query_index and pointlist ([[ms, value], ...]); error responses
 * (400 Bad Request, 403 Forbidden, 429 Too many requests) are the API's error object
 * {"errors": ["..."]}. The rate-limit headers follow "Rate Limits"
 * (https://docs.datadoghq.com/api/latest/rate-limits/): X-RateLimit-Limit (requests allowed in a
 * period), X-RateLimit-Period (its length, seconds), X-RateLimit-Remaining (requests left in it),
 * X-RateLimit-Reset (seconds until the next reset). The example reply below is written from
 * those field lists (values made up); the documentation shows the same fields.
 */
#include "testutil.h"
#include "testsrv.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "kanaria/metrics.h"
#include "metrics/datadog/config.h"
#include "metrics/datadog/datadog.h"

#define API_KEY "d4e5f6a7b8c9d0e1f2a3b4c5d6e7f809"
#define APP_KEY "0123456789abcdef0123456789abcdef01234567"

/* Two series grouped by host, one null point (no data at that time). */
static const char ok_body[] =
    "{\"status\": \"ok\", \"res_type\": \"time_series\", \"resp_version\": 1,"
    " \"query\": \"avg:system.cpu.idle{*} by {host}\","
    " \"from_date\": 1700000000000, \"to_date\": 1700000600000, \"group_by\": [\"host\"],"
    " \"message\": \"\","
    " \"series\": ["
    "  {\"metric\": \"system.cpu.idle\", \"display_name\": \"system.cpu.idle\","
    "   \"scope\": \"host:web-1\", \"tag_set\": [\"host:web-1\"],"
    "   \"expression\": \"avg:system.cpu.idle{host:web-1}\", \"aggr\": \"avg\", \"unit\": null,"
    "   \"interval\": 20, \"length\": 3, \"start\": 1700000000000, \"end\": 1700000059000,"
    "   \"query_index\": 0,"
    "   \"pointlist\": [[1700000000000.0, 97.5], [1700000020000.0, null],"
    "                   [1700000040000.0, 96.25]]},"
    "  {\"metric\": \"system.cpu.idle\", \"display_name\": \"system.cpu.idle\","
    "   \"scope\": \"env:prod,host:web-2\", \"tag_set\": [\"host:web-2\", \"env:prod\"],"
    "   \"expression\": \"avg:system.cpu.idle{env:prod,host:web-2}\", \"aggr\": \"avg\","
    "   \"unit\": null, \"interval\": 20, \"length\": 2, \"start\": 1700000000000,"
    "   \"end\": 1700000039000, \"query_index\": 0,"
    "   \"pointlist\": [[1700000000000.0, 12], [1700000020000.0, 1.5e1]]}"
    " ]}";

/* ---- the pure parts ------------------------------------------------------------------------ */

static void test_url(void **state)
{
    struct kn_metrics_query q = {
        .query = "avg:system.cpu.idle{env:prod} by {host}",
        .start_ms = 1700000000500LL,
        .end_ms = 1700000300500LL,
    };
    struct kn_error err;
    char *url;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_datadog_url(&url, "https://api.datadoghq.eu", &q, &err), 0);
    assert_string_equal(url, "https://api.datadoghq.eu/api/v1/query?from=1700000000&to="
                             "1700000301&query=avg%3Asystem.cpu.idle%7Benv%3Aprod%7D%20by%20%7B"
                             "host%7D");
    free(url);
    /* an instant query asks for the last minute; a trailing '/' is dropped */
    q.query = "x";
    q.start_ms = q.end_ms = 1700000000000LL;
    assert_int_equal(kn_datadog_url(&url, "http://127.0.0.1:9/dd/", &q, &err), 0);
    assert_string_equal(url, "http://127.0.0.1:9/dd/api/v1/query?from=1699999940&to=1700000000"
                             "&query=x");
    free(url);
    q.query = "";
    assert_int_equal(kn_datadog_url(&url, "http://x", &q, &err), KN_EINVAL);
    assert_null(url);
    assert_string_equal(err.msg, "datadog: no query");
    q.query = "x";
    q.end_ms = q.start_ms - 1;
    assert_int_equal(kn_datadog_url(&url, "http://x", &q, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "bad window"));
}

static void parse(struct kn_metrics_result *r, int status, const char *body)
{
    kn_datadog_parse(r, status, body, body ? strlen(body) : 0);
}

static void test_parse_series(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 200, ok_body);
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 2);
    assert_string_equal(r.series[0].labels, "{host=\"web-1\",scope=\"host:web-1\"}");
    assert_int_equal(r.series[0].count, 2); /* the null point is left out */
    assert_true(r.series[0].values[0] == 97.5);
    assert_true(r.series[0].values[1] == 96.25);
    assert_true(r.series[0].times_ms[1] == 1700000040000LL);
    assert_string_equal(r.series[1].labels,
                        "{env=\"prod\",host=\"web-2\",scope=\"env:prod,host:web-2\"}");
    assert_int_equal(r.series[1].count, 2);
    assert_true(r.series[1].values[1] == 15.0);
    kn_metrics_result_release(&r);

    /* no series: no data, not an error */
    parse(&r, 200, "{\"status\": \"ok\", \"res_type\": \"time_series\", \"series\": []}");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 0);
    kn_metrics_result_release(&r);

    /* a tag without a value, quotes escaped */
    parse(&r, 200, "{\"series\": [{\"scope\": \"a\\\"b\", \"tag_set\": [\"canary\"],"
                   " \"pointlist\": [[1000, 1]]}]}");
    assert_int_equal(r.ok, 1);
    assert_string_equal(r.series[0].labels, "{canary=\"\",scope=\"a\\\"b\"}");
    kn_metrics_result_release(&r);
}

static void test_parse_errors(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 403, "{\"errors\": [\"Forbidden\"]}");
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error, "datadog: http status 403: Forbidden");
    parse(&r, 400, "{\"errors\": [\"Bad Request\", \"query: unknown function 'avgg'\"]}");
    assert_string_equal(r.error,
                        "datadog: http status 400: Bad Request; query: unknown function 'avgg'");
    /* the query endpoint's own error field */
    parse(&r, 200, "{\"status\": \"error\", \"error\": \"Error parsing query: unable to parse "
                   "avg:: Rule 'scope_expr' didn't match\", \"series\": []}");
    assert_string_equal(r.error, "datadog: http status 200: Error parsing query: unable to parse "
                                 "avg:: Rule 'scope_expr' didn't match");
    parse(&r, 502, "<html>bad gateway</html>\n");
    assert_string_equal(r.error, "datadog: http status 502: <html>bad gateway</html>");
    parse(&r, 500, NULL);
    assert_string_equal(r.error, "datadog: http status 500 with an empty body");
    parse(&r, 500, "{}");
    assert_string_equal(r.error, "datadog: http status 500");
    parse(&r, 200, "{\"status\": \"ok\"}");
    assert_string_equal(r.error, "datadog: reply has no series array");
    parse(&r, 200, "{\"series\": [{\"pointlist\": [[1, \"x\"]]}]}");
    assert_string_equal(r.error,
                        "datadog: bad series 0 in the reply (pointlist is not [[ms, value], ...])");
    assert_int_equal(r.nseries, 0);
    parse(&r, 200, "[1]");
    assert_string_equal(r.error, "datadog: reply is not a json object: [1]");
}

static void test_parse_too_many_points(void **state)
{
    struct kn_buf b;
    struct kn_metrics_result r;
    char *body;

    (void)state;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "{\"series\": [{\"scope\": \"*\", \"pointlist\": [");
    for (int i = 0; i <= KN_DATADOG_MAX_SAMPLES; i++) {
        kn_buf_addf(&b, "%s[%d, 1]", i ? "," : "", i);
    }
    kn_buf_adds(&b, "]}]}");
    body = kn_buf_detach(&b, NULL);
    parse(&r, 200, body);
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error, "datadog: reply holds 10001 points in 1 series, more than 10000; "
                                 "narrow the query (a rollup, fewer groups)");
    free(body);
}

static void test_ratelimit(void **state)
{
    struct kn_datadog_ratelimit rl;
    char buf[160];

    (void)state;
    kn_datadog_ratelimit_parse(&rl, "100", "3600", "0", "1234");
    assert_true(rl.limit == 100 && rl.period == 3600 && rl.remaining == 0 && rl.reset == 1234);
    assert_string_equal(kn_datadog_ratelimit_describe(&rl, buf, sizeof(buf)),
                        "the limit is 100 requests per 3600 s, reset in 1234 s");
    kn_datadog_ratelimit_parse(&rl, NULL, "x", "-1", "");
    assert_true(rl.limit == -1 && rl.period == -1 && rl.remaining == -1 && rl.reset == -1);
    assert_string_equal(kn_datadog_ratelimit_describe(&rl, buf, sizeof(buf)),
                        "no X-RateLimit-Limit given, no X-RateLimit-Reset given");
}

static void test_check_query(void **state)
{
    char msg[256];

    (void)state;
    assert_int_equal(kn_datadog_check_query("sum:trace.http.request.errors{service:web,version:"
                                            "canary}.as_count() / sum:trace.http.request.hits{"
                                            "service:web}.as_count()", msg, sizeof(msg)), 0);
    assert_int_equal(kn_datadog_check_query("avg:x{a:b", msg, sizeof(msg)), KN_EINVAL);
    assert_string_equal(msg, "the '{' at offset 5 is never closed");
    assert_int_equal(kn_datadog_check_query("avg:x{a:b)", msg, sizeof(msg)), KN_EINVAL);
    assert_string_equal(msg, "')' at offset 9 does not close the '{' at offset 5");
    assert_int_equal(kn_datadog_check_query("", msg, sizeof(msg)), KN_EINVAL);
    assert_string_equal(msg, "the query is empty");
    assert_int_equal(kn_datadog_check_query("a\nb", msg, sizeof(msg)), KN_EINVAL);
    assert_string_equal(msg, "a line end at offset 1");
}

static void test_registry(void **state)
{
    (void)state;
    assert_ptr_equal(kn_metrics_type_find("datadog"), &kn_metrics_datadog);
    assert_ptr_equal(kn_metrics_datadog.config_schema, &kn_datadog_config_schema);
    assert_ptr_equal(kn_metrics_datadog.check_query, kn_datadog_check_query);
    assert_null(kn_metrics_datadog.platform_type);
}

/* ---- a scripted server ---------------------------------------------------------------------- */

struct reply {
    int status;
    const char *headers; /* extra header lines, each ending in CRLF */
    const char *body;
    size_t len;          /* 0: strlen(body) */
};

struct script {
    struct reply replies[8]; /* answered in order; the last one repeats */
    int nreplies;
    int requests;
    char *target;  /* of the last request (owned) */
    char *api_key; /* its DD-API-KEY and DD-APPLICATION-KEY (owned) */
    char *app_key;
};

static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    struct script *s = data;
    const struct reply *r = &s->replies[s->requests < s->nreplies ? s->requests
                                                                   : s->nreplies - 1];
    char *headers = kn_asprintf("Content-Type: application/json\r\n%s",
                                r->headers ? r->headers : "");

    s->requests++;
    free(s->target);
    free(s->api_key);
    free(s->app_key);
    s->target = kn_strdup(req->target);
    s->api_key = kn_testsrv_header(req->head, "DD-API-KEY");
    s->app_key = kn_testsrv_header(req->head, "DD-APPLICATION-KEY");
    kn_testsrv_reply(c, r->status, headers, r->body, r->len ? r->len : strlen(r->body), 0);
    free(headers);
}

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct script script;
    struct kn_http_client *http;
    char *dir;
    char *address;
    char *api_file;
    char *app_file;
    struct kn_datadog_config dc;
    struct kn_metrics_provider_config cfg;
};

static uv_loop_t *test_loop;

struct got {
    int calls;
    int ok;
    char error[1024];
    size_t nseries;
    size_t count0;
};

static char cfg_name[] = "dd";
static char cfg_type[] = "datadog";

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, &f->script);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    f->dir = kn_test_tmpdir();
    f->address = kn_asprintf("http://127.0.0.1:%d/", f->srv.port);
    kn_test_write(f->dir, "api", API_KEY "\n");
    kn_test_write(f->dir, "app", APP_KEY "\n");
    f->api_file = kn_asprintf("%s/api", f->dir);
    f->app_file = kn_asprintf("%s/app", f->dir);
    f->dc.address = f->address;
    f->dc.api_key_file = f->api_file;
    f->dc.app_key_file = f->app_file;
    f->dc.timeout_ms = 15000;
    f->cfg.name = cfg_name;
    f->cfg.type = cfg_type;
    f->cfg.options = &f->dc;
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
    free(f->script.target);
    free(f->script.api_key);
    free(f->script.app_key);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f->address);
    free(f->api_file);
    free(f->app_file);
    free(f);
    return 0;
}

static void on_result(const struct kn_metrics_result *r, void *data)
{
    struct got *g = data;

    uv_stop(test_loop);
    g->calls++;
    g->ok = r->ok;
    g->nseries = r->nseries;
    g->count0 = r->nseries ? r->series[0].count : 0;
    snprintf(g->error, sizeof(g->error), "%s", r->error);
}

static void start_query(struct kn_metrics *m, long timeout_ms, struct got *g)
{
    struct kn_metrics_query q = {
        .query = "avg:system.cpu.idle{*} by {host}",
        .start_ms = 1700000000000LL,
        .end_ms = 1700000600000LL,
        .timeout_ms = timeout_ms,
    };

    memset(g, 0, sizeof(*g));
    assert_int_equal(kn_metrics_query(m, &q, on_result, g), 0);
    assert_int_equal(g->calls, 0); /* never from inside the call */
}

/* Wait for the callback, 20 s at most. */
static void wait_for(struct fx *f, struct got *g)
{
    uint64_t until = uv_now(&f->loop) + 20000;

    while (g->calls < 1 && uv_now(&f->loop) < until) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(g->calls, 1);
}

static void run_query(struct fx *f, struct kn_metrics *m, long timeout_ms, struct got *g)
{
    start_query(m, timeout_ms, g);
    wait_for(f, g);
}

static void test_query_ok(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;

    f->script.replies[0] = (struct reply){200, "X-RateLimit-Limit: 1600\r\nX-RateLimit-Period: "
                                          "3600\r\nX-RateLimit-Remaining: 1599\r\n"
                                          "X-RateLimit-Reset: 1000\r\n", ok_body, 0};
    f->script.nreplies = 1;
    kn_error_clear(&err);
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, 0, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.nseries, 2);
    assert_int_equal(g.count0, 2);
    assert_string_equal(f->script.target, "/api/v1/query?from=1700000000&to=1700000600&query=avg"
                                          "%3Asystem.cpu.idle%7B%2A%7D%20by%20%7Bhost%7D");
    assert_string_equal(f->script.api_key, API_KEY);
    assert_string_equal(f->script.app_key, APP_KEY);
    /* read at each query: a rotated key is used at once */
    kn_test_write(f->dir, "app", "rotated\n");
    run_query(f, m, 0, &g);
    assert_int_equal(g.ok, 1);
    assert_string_equal(f->script.app_key, "rotated");
    kn_metrics_free(m);
}

#define LIMITED "{\"errors\": [\"Too many requests\"]}"

static void test_query_error_reply(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;

    f->script.replies[0] = (struct reply){403, NULL, "{\"errors\": [\"Forbidden\"]}", 0};
    f->script.nreplies = 1;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, 0, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "datadog: http status 403: Forbidden");
    /* a 429 without a reset to wait for fails at once, in Datadog's words */
    f->script.replies[1] = (struct reply){429, NULL, LIMITED, 0};
    f->script.nreplies = 2;
    run_query(f, m, 0, &g);
    assert_string_equal(g.error, "datadog: rate limited (http status 429: Too many requests): no "
                                 "X-RateLimit-Limit given, no X-RateLimit-Reset given");
    assert_int_equal(f->script.requests, 2);
    kn_metrics_free(m);
}

static void test_query_429_then_ok(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    uint64_t t0;

    f->script.replies[0] = (struct reply){429, "X-RateLimit-Limit: 100\r\nX-RateLimit-Period: "
                                          "3600\r\nX-RateLimit-Remaining: 0\r\n"
                                          "X-RateLimit-Reset: 1\r\n", LIMITED, 0};
    f->script.replies[1] = (struct reply){200, NULL, ok_body, 0};
    f->script.nreplies = 2;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    t0 = uv_now(&f->loop);
    run_query(f, m, 15000, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.nseries, 2);
    assert_int_equal(f->script.requests, 2);
    /* it waited for the reset before asking again (a lower bound: the wait is a timer) */
    assert_true(uv_now(&f->loop) - t0 >= 1000);
    kn_metrics_free(m);
}

static void test_query_429_beyond_timeout(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;

    f->script.replies[0] = (struct reply){429, "X-RateLimit-Limit: 100\r\nX-RateLimit-Period: "
                                          "3600\r\nX-RateLimit-Remaining: 0\r\n"
                                          "X-RateLimit-Reset: 60\r\n", LIMITED, 0};
    f->script.replies[1] = (struct reply){200, NULL, ok_body, 0};
    f->script.nreplies = 2;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, 2000, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "datadog: rate limited (http status 429: Too many requests): "
                                 "the limit is 100 requests per 3600 s, reset in 60 s, beyond "
                                 "the query's timeout");
    assert_int_equal(f->script.requests, 1);
    /* the limit is used up: the next query is held, here beyond its timeout, and not sent */
    run_query(f, m, 2000, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "datadog: rate limit used up (the limit is 100 requests per "
                                 "3600 s, reset in 60 s), beyond the query's timeout");
    assert_int_equal(f->script.requests, 1);
    kn_metrics_free(m);
}

static void test_query_remaining_zero_delays(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    uint64_t t0;

    f->script.replies[0] = (struct reply){200, "X-RateLimit-Limit: 100\r\nX-RateLimit-Period: "
                                          "10\r\nX-RateLimit-Remaining: 0\r\n"
                                          "X-RateLimit-Reset: 1\r\n", ok_body, 0};
    f->script.replies[1] = (struct reply){200, NULL, ok_body, 0};
    f->script.nreplies = 2;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    t0 = uv_now(&f->loop); /* before the reply that sets the wait */
    run_query(f, m, 0, &g);
    assert_int_equal(g.ok, 1);
    start_query(m, 15000, &g);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->script.requests, 1); /* held */
    wait_for(f, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(f->script.requests, 2);
    assert_true(uv_now(&f->loop) - t0 >= 1000);

    /* a query held when the instance goes away ends "cancelled", once */
    f->script.replies[2] = (struct reply){429, "X-RateLimit-Reset: 1\r\n", LIMITED, 0};
    f->script.nreplies = 3;
    start_query(m, 15000, &g);
    while (f->script.requests < 3) {
        uv_run(&f->loop, UV_RUN_ONCE); /* the 429 arrives and the retry waits */
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 0);
    kn_metrics_free(m);
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.error, "datadog: cancelled");
}

static void test_query_too_large(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    size_t len = KN_DATADOG_MAX_RESPONSE + 100;
    char *big = kn_calloc(1, len + 1);

    memset(big, ' ', len);
    big[0] = '{';
    big[len - 1] = '}';
    f->script.replies[0] = (struct reply){200, NULL, big, len};
    f->script.nreplies = 1;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, 0, &g);
    assert_int_equal(g.ok, 0);
    assert_non_null(strstr(g.error, "datadog: response larger than"));
    kn_metrics_free(m);
    free(big);
}

static void on_never(const struct kn_metrics_result *r, void *data)
{
    (void)r;
    (void)data;
    fail_msg("callback of a refused query");
}

/* Every message and every log line of a run with good and bad keys, with the keys nowhere. */
static void test_keys_never_shown(void **state)
{
    struct fx *f = *state;
    struct kn_metrics_query q = {.query = "x", .start_ms = 1000, .end_ms = 2000};
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    char *log = kn_asprintf("%s/stderr", f->dir);
    char *missing = kn_asprintf("%s/missing", f->dir);
    char buf[65536];
    int saved = dup(2), fd;
    ssize_t n;

    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    close(fd);
    kn_log_setup(KN_LOG_DEBUG, KN_LOG_LOGFMT);

    f->script.replies[0] = (struct reply){200, "X-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: "
                                          "0\r\n", ok_body, 0};
    f->script.replies[1] = (struct reply){401, NULL, "{\"errors\": [\"Unauthorized\"]}", 0};
    f->script.nreplies = 2;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, 0, &g);
    assert_null(strstr(g.error, API_KEY));
    run_query(f, m, 0, &g);
    assert_string_equal(g.error, "datadog: http status 401: Unauthorized");
    /* a key file gone: refused, the file named */
    assert_int_equal(unlink(f->app_file), 0);
    assert_int_equal(kn_metrics_query(m, &q, on_never, NULL), KN_ENOENT);
    kn_metrics_free(m);
    /* a key file of two lines (a header injection) at start: named, its content not shown */
    kn_test_write(f->dir, "app", APP_KEY "\nX-Other: " APP_KEY "\n");
    kn_error_clear(&err);
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "metrics provider 'dd': appKeyFile: secret file '"));
    assert_null(strstr(err.msg, APP_KEY));
    f->dc.app_key_file = missing;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), KN_ENOENT);
    assert_null(m);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fd = open(log, O_RDONLY);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "/app")); /* the file is named */
    assert_null(strstr(buf, API_KEY));
    assert_null(strstr(buf, APP_KEY));
    free(log);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_parse_series),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_too_many_points),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_check_query),
        cmocka_unit_test(test_registry),
        cmocka_unit_test_setup_teardown(test_query_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_error_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_429_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_429_beyond_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_remaining_zero_delays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_never_shown, setup, teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
