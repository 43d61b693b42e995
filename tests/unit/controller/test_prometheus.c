/*
 * Unit tests for controller/metrics/prometheus and the metrics registry: the URL of a query, the
 * parsing of Prometheus's replies, and whole queries against a tiny HTTP server on the test's
 * own libuv loop (127.0.0.1, ephemeral port) that serves canned Prometheus replies by query.
 */
#include "testutil.h"
#include "testsrv.h"

#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/metrics.h"
#include "kanaria/http.h"
#include "metrics/prometheus/config.h"
#include "metrics/prometheus/prometheus.h"

/* ---- the pure parts ------------------------------------------------------------------------ */

static void test_step(void **state)
{
    struct kn_metrics_query q = {.query = "up", .start_ms = 0, .end_ms = 600000};

    (void)state;
    assert_int_equal(kn_prometheus_step_ms(&q), 10000); /* 10 min in 60 points */
    q.end_ms = 30000;
    assert_int_equal(kn_prometheus_step_ms(&q), 1000); /* never below 1 s */
    q.end_ms = 100000;
    assert_int_equal(kn_prometheus_step_ms(&q), 2000); /* 1.67 s rounded up to whole seconds */
    q.step_ms = 250;
    assert_int_equal(kn_prometheus_step_ms(&q), 250); /* the caller's choice wins */
}

static void test_url(void **state)
{
    struct kn_metrics_query q = {
        .query = "sum(rate(http_requests_total{code=~\"5..\",app=\"hello\"}[1m])) / 2",
        .start_ms = 1700000000000LL,
        .end_ms = 1700000300500LL,
    };
    struct kn_error err;
    char *url;

    (void)state;
    kn_error_clear(&err);
    /* Range query; the query percent-encoded as curl_easy_escape does (unreserved kept). */
    assert_int_equal(kn_prometheus_url(&url, "http://prom:9090", &q, &err), 0);
    assert_string_equal(url, "http://prom:9090/api/v1/query_range?query="
                             "sum%28rate%28http_requests_total%7Bcode%3D~%225..%22%2Capp%3D%22"
                             "hello%22%7D%5B1m%5D%29%29%20%2F%202"
                             "&start=1700000000.000&end=1700000300.500&step=6.000");
    free(url);

    /* A trailing slash and a path prefix. */
    q.query = "up";
    q.step_ms = 15000;
    assert_int_equal(kn_prometheus_url(&url, "https://example.org/prometheus//", &q, &err), 0);
    assert_string_equal(url, "https://example.org/prometheus/api/v1/query_range?query=up"
                             "&start=1700000000.000&end=1700000300.500&step=15.000");
    free(url);

    /* start == end: an instant query. */
    q.start_ms = 1700000000042LL;
    q.end_ms = 1700000000042LL;
    assert_int_equal(kn_prometheus_url(&url, "http://prom:9090/", &q, &err), 0);
    assert_string_equal(url, "http://prom:9090/api/v1/query?query=up&time=1700000000.042");
    free(url);

    /* Refused: no query, a window that runs backwards. */
    q.query = "";
    assert_int_equal(kn_prometheus_url(&url, "http://prom:9090", &q, &err), KN_EINVAL);
    assert_null(url);
    assert_string_equal(err.msg, "prometheus: no query");
    q.query = "up";
    q.end_ms = q.start_ms - 1;
    assert_int_equal(kn_prometheus_url(&url, "http://prom:9090", &q, &err), KN_EINVAL);
    assert_null(url);
    assert_non_null(strstr(err.msg, "bad window"));
}

static void parse(struct kn_metrics_result *r, int status, const char *body)
{
    kn_prometheus_parse(r, status, body, body ? strlen(body) : 0);
}

static void test_parse_matrix(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 200,
          "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
          "{\"metric\":{\"variant\":\"canary\",\"__name__\":\"errors\",\"app\":\"hello\"},"
          " \"values\":[[1700000000,\"0.5\"],[1700000015.25,\"NaN\"],[1700000030,\"+Inf\"],"
          "             [1700000045,\"-Inf\"],[1700000060,\"1e-3\"]]},"
          "{\"metric\":{},\"values\":[[1700000000,\"42\"]]}"
          "]},\"warnings\":[\"ignored\"]}");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 2);
    assert_string_equal(r.series[0].labels,
                        "{__name__=\"errors\",app=\"hello\",variant=\"canary\"}");
    assert_int_equal(r.series[0].count, 5);
    assert_true(r.series[0].values[0] == 0.5);
    assert_true(isnan(r.series[0].values[1]));
    assert_true(isinf(r.series[0].values[2]) && r.series[0].values[2] > 0);
    assert_true(isinf(r.series[0].values[3]) && r.series[0].values[3] < 0);
    assert_true(r.series[0].values[4] == 1e-3);
    assert_true(r.series[0].times_ms[0] == 1700000000000LL);
    assert_true(r.series[0].times_ms[1] == 1700000015250LL);
    assert_string_equal(r.series[1].labels, "{}");
    assert_int_equal(r.series[1].count, 1);
    assert_true(r.series[1].values[0] == 42.0);
    kn_metrics_result_release(&r);
    assert_int_equal(r.nseries, 0);
    assert_null(r.series);
}

static void test_parse_vector_and_scalar(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 200,
          "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
          "{\"metric\":{\"b\":\"quote\\\" and \\\\ and\\nline\",\"a\":\"1\"},"
          " \"value\":[1700000000.5,\"3.25\"]}]}}");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 1);
    assert_string_equal(r.series[0].labels, "{a=\"1\",b=\"quote\\\" and \\\\ and\\nline\"}");
    assert_int_equal(r.series[0].count, 1);
    assert_true(r.series[0].values[0] == 3.25);
    assert_true(r.series[0].times_ms[0] == 1700000000500LL);
    kn_metrics_result_release(&r);

    parse(&r, 200,
          "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
          "\"result\":[1700000000,\"NaN\"]}}");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 1);
    assert_string_equal(r.series[0].labels, "{}");
    assert_int_equal(r.series[0].count, 1);
    assert_true(isnan(r.series[0].values[0]));
    kn_metrics_result_release(&r);
}

static void test_parse_empty_result(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 0);
    kn_metrics_result_release(&r);

    parse(&r, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 0);
    kn_metrics_result_release(&r);
}

static void test_parse_error_body(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 400,
          "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter "
          "\\\"query\\\": 1:4: parse error: unexpected <EOF>\"}");
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.nseries, 0);
    assert_string_equal(r.error, "prometheus: bad_data: invalid parameter \"query\": 1:4: parse "
                                 "error: unexpected <EOF>");

    parse(&r, 422,
          "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"too many "
          "samples\"}");
    assert_string_equal(r.error, "prometheus: execution: too many samples");

    parse(&r, 503, "{\"status\":\"error\"}");
    assert_string_equal(r.error, "prometheus: error: (no message)");
}

static void test_parse_garbage(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 503, NULL);
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error, "prometheus: http status 503 with an empty body");

    parse(&r, 502, "<html>bad\ngateway</html>\n");
    assert_string_equal(r.error, "prometheus: http status 502: <html>bad gateway</html>");

    parse(&r, 200, "hello");
    assert_int_equal(r.ok, 0);
    assert_non_null(strstr(r.error, "prometheus: reply is not json ("));
    assert_non_null(strstr(r.error, "): hello"));

    parse(&r, 200, "[1,2]");
    assert_string_equal(r.error, "prometheus: reply is not a json object: [1,2]");

    parse(&r, 500, "{\"status\":\"success\"}");
    assert_string_equal(r.error, "prometheus: http status 500");

    parse(&r, 200, "{\"data\":{}}");
    assert_string_equal(r.error, "prometheus: reply has no status \"success\"");

    parse(&r, 200, "{\"status\":\"success\"}");
    assert_string_equal(r.error, "prometheus: reply has no data object");

    parse(&r, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\"}}");
    assert_string_equal(r.error, "prometheus: reply has no data.resultType or data.result");

    parse(&r, 200,
          "{\"status\":\"success\",\"data\":{\"resultType\":\"string\",\"result\":[1,\"x\"]}}");
    assert_string_equal(r.error, "prometheus: result type 'string' holds no numbers");

    parse(&r, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":{}}}");
    assert_string_equal(r.error, "prometheus: data.result of a matrix is not an array");

    /* A bad value in a later series drops the whole result. */
    parse(&r, 200,
          "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
          "{\"metric\":{},\"values\":[[1,\"1\"]]},"
          "{\"metric\":{},\"values\":[[1,\"1\"],[2,\"abc\"]]}]}}");
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.nseries, 0);
    assert_null(r.series);
    assert_string_equal(r.error, "prometheus: bad series 1 in the matrix reply");

    parse(&r, 200,
          "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
          "{\"metric\":{},\"value\":[\"1\",\"1\"]}]}}");
    assert_string_equal(r.error, "prometheus: bad series 0 in the vector reply");

    parse(&r, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1]}}");
    assert_string_equal(r.error, "prometheus: bad scalar in the reply");
}

static void test_parse_too_many_samples(void **state)
{
    struct kn_metrics_result r;
    struct kn_buf b;

    (void)state;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[");
    for (int s = 0; s < 3; s++) {
        kn_buf_addf(&b, "%s{\"metric\":{\"s\":\"%d\"},\"values\":[", s ? "," : "", s);
        for (int i = 0; i < 3334; i++) {
            kn_buf_addf(&b, "%s[%d,\"1\"]", i ? "," : "", i);
        }
        kn_buf_adds(&b, "]}");
    }
    kn_buf_adds(&b, "]}}");
    kn_prometheus_parse(&r, 200, b.data, b.len);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.nseries, 0);
    assert_string_equal(r.error, "prometheus: reply holds 10002 samples in 3 series, more than "
                                 "10000; narrow the query or raise the step");
    kn_buf_release(&b);
}

/* ---- the test server ------------------------------------------------------------------------ */

/* What the server saw of the last request. */
struct seen {
    char *target;        /* request target (owned) */
    char *authorization; /* its Authorization header, "" when none (owned) */
    char *accept;
};

static const char ok_body[] =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
    "{\"metric\":{\"variant\":\"canary\"},\"values\":[[1700000000,\"1.5\"],[1700000060,\"2.5\"]]}"
    "]}}";
static const char bad_body[] =
    "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"1:1: parse error\"}";

static void json_reply(struct kn_testsrv_conn *c, int status, const char *body, long delay_ms)
{
    kn_testsrv_reply(c, status, "Content-Type: application/json\r\n", body, strlen(body),
                     delay_ms);
}

/* Answer by the query: ok, bad (400 with an error body), down (503, no body), slow (ok after
 * 2 s). Only paths under /prom/api/v1/ exist. */
static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    struct seen *s = data;
    const char *target = req->target;

    free(s->target);
    free(s->authorization);
    free(s->accept);
    s->target = kn_strdup(target);
    s->authorization = kn_testsrv_header(req->head, "Authorization");
    s->accept = kn_testsrv_header(req->head, "Accept");
    if (strncmp(target, "/prom/api/v1/", 13) != 0) {
        json_reply(c, 404, "", 0);
    } else if (strstr(target, "query=bad&")) {
        json_reply(c, 400, bad_body, 0);
    } else if (strstr(target, "query=down&")) {
        json_reply(c, 503, "", 0);
    } else {
        json_reply(c, 200, ok_body, strstr(target, "query=slow&") ? 2000 : 0);
    }
}

static void seen_release(struct seen *s)
{
    free(s->target);
    free(s->authorization);
    free(s->accept);
    memset(s, 0, sizeof(*s));
}

/* ---- fixture -------------------------------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct seen seen;
    struct kn_http_client *http;
    char *dir;     /* for password and token files (owned) */
    char *address; /* the server's base URL with the /prom prefix (owned) */
};

static uv_loop_t *test_loop;

/* What one callback saw. */
struct got {
    int calls;
    int ok;
    char error[1024];
    struct kn_metrics_result copy; /* the series, copied out of the borrowed result */
};

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, &f->seen);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    f->dir = kn_test_tmpdir();
    f->address = kn_asprintf("http://127.0.0.1:%d/prom/", f->srv.port);
    test_loop = &f->loop;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_http_client_close(f->http);
    kn_testsrv_stop(&f->srv);
    seen_release(&f->seen);
    while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f->address);
    free(f);
    return 0;
}

static void on_result(const struct kn_metrics_result *r, void *data)
{
    struct got *g = data;

    uv_stop(test_loop);
    g->calls++;
    g->ok = r->ok;
    snprintf(g->error, sizeof(g->error), "%s", r->error);
    g->copy.nseries = r->nseries;
    g->copy.series = kn_calloc(r->nseries + 1, sizeof(*g->copy.series));
    for (size_t i = 0; i < r->nseries; i++) {
        const struct kn_metrics_series *s = &r->series[i];
        struct kn_metrics_series *c = &g->copy.series[i];
        c->labels = kn_strdup(s->labels);
        c->count = s->count;
        c->values = kn_reallocarray(NULL, s->count + 1, sizeof(*c->values));
        c->times_ms = kn_reallocarray(NULL, s->count + 1, sizeof(*c->times_ms));
        memcpy(c->values, s->values, s->count * sizeof(*c->values));
        memcpy(c->times_ms, s->times_ms, s->count * sizeof(*c->times_ms));
    }
}

/* Run one query and wait for its callback. */
static void run_query(struct fx *f, struct kn_metrics *m, const char *query, long timeout_ms,
                      struct got *g)
{
    struct kn_metrics_query q = {
        .query = query,
        .start_ms = 1700000000000LL,
        .end_ms = 1700000600000LL,
        .timeout_ms = timeout_ms,
    };

    memset(g, 0, sizeof(*g));
    assert_int_equal(kn_metrics_query(m, &q, on_result, g), 0);
    assert_int_equal(g->calls, 0);
    while (g->calls < 1) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(g->calls, 1);
}

/* The config strings are not const in struct kn_metrics_provider_config. */
static char cfg_name[] = "main";
static char cfg_admin[] = "admin";

static char cfg_type[] = "prometheus";
static char cfg_unknown_type[] = "graphite";

/* A provider entry whose Prometheus keys are *pc (filled here). */
static struct kn_metrics_provider_config config(struct fx *f, struct kn_prometheus_config *pc)
{
    struct kn_metrics_provider_config cfg = {
        .name = cfg_name,
        .type = cfg_type,
        .options = pc,
    };
    memset(pc, 0, sizeof(*pc));
    pc->address = f->address;
    pc->timeout_ms = 5000;
    return cfg;
}

static void test_query_ok_with_basic_auth(void **state)
{
    struct fx *f = *state;
    struct kn_prometheus_config pc;
    struct kn_metrics_provider_config cfg = config(f, &pc);
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    char *pw = kn_asprintf("%s/password", f->dir);

    kn_test_write(f->dir, "password", "s3cret\n");
    pc.basic_auth.username = cfg_admin;
    pc.basic_auth.password_file = pw;
    kn_error_clear(&err);
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);
    assert_string_equal(m->name, "main");
    assert_string_equal(m->type->name, "prometheus");

    run_query(f, m, "rate(errors{app=\"hello\"}[1m])", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.copy.nseries, 1);
    assert_string_equal(g.copy.series[0].labels, "{variant=\"canary\"}");
    assert_int_equal(g.copy.series[0].count, 2);
    assert_true(g.copy.series[0].values[1] == 2.5);
    assert_true(g.copy.series[0].times_ms[1] == 1700000060000LL);
    /* base64("admin:s3cret"): the newline at the end of the file is not part of the password. */
    assert_string_equal(f->seen.authorization, "Basic YWRtaW46czNjcmV0");
    assert_string_equal(f->seen.accept, "application/json");
    kn_metrics_result_release(&g.copy);

    /* read at each query: a rotated password is used at once (base64("admin:n3w")) */
    kn_test_write(f->dir, "password", "n3w\n");
    run_query(f, m, "rate(errors{app=\"hello\"}[1m])", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_string_equal(f->seen.authorization, "Basic YWRtaW46bjN3");
    assert_string_equal(f->seen.target,
                        "/prom/api/v1/query_range?query=rate%28errors%7Bapp%3D%22hello%22%7D%5B1m"
                        "%5D%29&start=1700000000.000&end=1700000600.000&step=10.000");
    kn_metrics_result_release(&g.copy);

    kn_metrics_free(m);
    free(pw);
}

static void on_result_never(const struct kn_metrics_result *r, void *data);

static void test_query_bearer_token(void **state)
{
    struct fx *f = *state;
    struct kn_prometheus_config pc;
    struct kn_metrics_provider_config cfg = config(f, &pc);
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    char *token = kn_asprintf("%s/token", f->dir);

    kn_test_write(f->dir, "token", "abc.def.ghi\r\n");
    pc.bearer_token_file = token;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);
    run_query(f, m, "up", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_string_equal(f->seen.authorization, "Bearer abc.def.ghi");
    kn_metrics_result_release(&g.copy);
    /* read at each query: a rotated token is used at once; one that is gone refuses the query */
    kn_test_write(f->dir, "token", "rotated\n");
    run_query(f, m, "up", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_string_equal(f->seen.authorization, "Bearer rotated");
    kn_metrics_result_release(&g.copy);
    struct kn_metrics_query q = {.query = "up", .start_ms = 1, .end_ms = 1};
    assert_int_equal(unlink(token), 0);
    assert_int_equal(kn_metrics_query(m, &q, on_result_never, NULL), KN_ENOENT);
    kn_metrics_free(m);

    /* No credentials: no Authorization header. */
    pc.bearer_token_file = NULL;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);
    run_query(f, m, "up", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_string_equal(f->seen.authorization, "");
    kn_metrics_result_release(&g.copy);
    kn_metrics_free(m);
    free(token);
}

static void test_query_errors(void **state)
{
    struct fx *f = *state;
    struct kn_prometheus_config pc;
    struct kn_metrics_provider_config cfg = config(f, &pc);
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;

    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);

    run_query(f, m, "bad", 0, &g);
    assert_int_equal(g.ok, 0);
    assert_int_equal(g.copy.nseries, 0);
    assert_string_equal(g.error, "prometheus: bad_data: 1:1: parse error");
    kn_metrics_result_release(&g.copy);

    run_query(f, m, "down", 0, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "prometheus: http status 503 with an empty body");
    kn_metrics_result_release(&g.copy);

    /* The query's own timeout wins over the provider's 5 s. */
    run_query(f, m, "slow", 300, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "prometheus: timed out after 300 ms");
    kn_metrics_result_release(&g.copy);

    kn_metrics_free(m);

    /* And the provider's timeout when the query gives none. */
    pc.timeout_ms = 200;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);
    run_query(f, m, "slow", 0, &g);
    assert_string_equal(g.error, "prometheus: timed out after 200 ms");
    kn_metrics_result_release(&g.copy);
    kn_metrics_free(m);
}

static void test_query_connection_refused(void **state)
{
    struct fx *f = *state;
    struct kn_prometheus_config pc;
    struct kn_metrics_provider_config cfg = config(f, &pc);
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof(addr);
    char *address;

    /* Bound but not listening: connections are refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    address = kn_asprintf("http://127.0.0.1:%d", ntohs(addr.sin_port));
    pc.address = address;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);
    run_query(f, m, "up", 0, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "prometheus: connection refused");
    kn_metrics_result_release(&g.copy);
    kn_metrics_free(m);
    free(address);
    close(fd);
}

static void on_result_never(const struct kn_metrics_result *r, void *data)
{
    (void)r;
    (void)data;
    fail_msg("callback of a refused query");
}

static void test_refused_queries_and_configs(void **state)
{
    struct fx *f = *state;
    struct kn_prometheus_config pc;
    struct kn_metrics_provider_config cfg = config(f, &pc);
    struct kn_metrics_query q = {.query = "", .start_ms = 1000, .end_ms = 2000};
    struct kn_metrics *m;
    struct kn_error err;
    char *missing = kn_asprintf("%s/missing", f->dir);
    char *empty = kn_asprintf("%s/empty", f->dir);

    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), 0);
    assert_int_equal(kn_metrics_query(m, &q, on_result_never, NULL), KN_EINVAL);
    q.query = "up";
    q.end_ms = 500;
    assert_int_equal(kn_metrics_query(m, &q, on_result_never, NULL), KN_EINVAL);
    assert_int_equal(kn_metrics_query(m, NULL, on_result_never, NULL), KN_EINVAL);
    assert_int_equal(kn_metrics_query(m, &q, NULL, NULL), KN_EINVAL);
    assert_int_equal(kn_metrics_query(NULL, &q, on_result_never, NULL), KN_EINVAL);
    kn_metrics_free(m);
    kn_metrics_free(NULL);

    /* An unknown type. */
    cfg.type = cfg_unknown_type;
    kn_error_clear(&err);
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), KN_EINVAL);
    assert_null(m);
    assert_string_equal(err.msg, "metrics provider 'main': unknown type 'graphite'");
    cfg.type = cfg_type;

    /* Credentials that cannot be read. */
    pc.bearer_token_file = missing;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), KN_ENOENT);
    assert_null(m);
    assert_non_null(strstr(err.msg, "metrics provider 'main': bearerTokenFile: secret file '"));
    assert_non_null(strstr(err.msg, "cannot open"));
    kn_test_write(f->dir, "empty", "\n");
    pc.bearer_token_file = empty;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
    /* two lines would inject a header */
    kn_test_write(f->dir, "empty", "tok\nX-Other: 1\n");
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "more than one line"));
    assert_null(strstr(err.msg, "tok"));
    pc.bearer_token_file = NULL;
    pc.basic_auth.username = cfg_admin;
    pc.basic_auth.password_file = missing;
    assert_int_equal(kn_metrics_new(&m, &cfg, f->http, &err), KN_ENOENT);
    assert_non_null(
        strstr(err.msg, "metrics provider 'main': basicAuth.passwordFile: secret file"));

    free(missing);
    free(empty);
}

static void test_registry(void **state)
{
    (void)state;
    assert_ptr_equal(kn_metrics_type_find("prometheus"), &kn_metrics_prometheus);
    assert_null(kn_metrics_type_find("graphite"));
    assert_null(kn_metrics_type_find(NULL));
    assert_ptr_equal(kn_metrics_prometheus.config_schema, &kn_prometheus_config_schema);
    assert_ptr_equal(kn_metrics_prometheus.check_query, kn_prometheus_check_query);
    assert_int_equal(kn_metrics_prometheus.min_step_ms, 1000);
    kn_metrics_result_release(NULL);
}

/* The validate-time check: brackets, braces and parentheses closed in order, strings ended;
 * what is inside a string does not count. */
static void test_check_query(void **state)
{
    static const char *const ok[] = {
        "up",
        "sum(rate(http_requests_total{app=\"web\",code=~\"5..\"}[1m])) / "
        "sum(rate(http_requests_total[1m]))",
        "up{job=\"a(b\"}",
        "up{job='it\\'s ]'}",
        "up{job=`raw \\ ) `}",
        "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
    };
    static const struct {
        const char *query;
        const char *msg;
    } bad[] = {
        {"sum(rate(x[1m])", "the '(' at offset 3 is never closed"},
        {"rate(x[1m)]", "')' at offset 9 does not close the '[' at offset 6"},
        {"up}", "'}' at offset 2 closes nothing"},
        {"up{job=\"web}", "the string opened with \" at offset 7 never ends"},
        {"up{job='web\\'}", "the string opened with ' at offset 7 never ends"},
    };
    char msg[256];

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        msg[0] = '\0';
        if (kn_prometheus_check_query(ok[i], msg, sizeof(msg)) != 0) {
            fail_msg("'%s' refused: %s", ok[i], msg);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kn_prometheus_check_query(bad[i].query, msg, sizeof(msg)), KN_EINVAL);
        assert_string_equal(msg, bad[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_parse_matrix),
        cmocka_unit_test(test_parse_vector_and_scalar),
        cmocka_unit_test(test_parse_empty_result),
        cmocka_unit_test(test_parse_error_body),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_parse_too_many_samples),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_check_query),
        cmocka_unit_test_setup_teardown(test_query_ok_with_basic_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_bearer_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_queries_and_configs, setup, teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
