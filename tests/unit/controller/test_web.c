/*
 * Unit and component tests for controller/metrics/web: the JSONPath subset, the reading of a
 * reply, the query check, and whole queries against a scripted server on the test's own libuv
 * loop (127.0.0.1, ephemeral port) answering JSON documents such as Argo Rollouts' web metric
 * reads (its documentation's example: `{"data": {"ok": true, "successPercent": 0.9}}` read at
 * `{$.data.ok}` and `{$.data.successPercent}`,
 * https://argo-rollouts.readthedocs.io/en/stable/analysis/web/).
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
#include "metrics/web/config.h"
#include "metrics/web/web.h"

#define TOKEN "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0"

static const char doc[] =
    "{\"data\": {\"ok\": true, \"successPercent\": 0.9, \"errors\": \"0.25\", \"name\": \"web\","
    " \"none\": null, \"hosts\": [{\"p99\": 120}, {\"p99\": 250.5}], \"a b\": {\"c\": 7}}}";

/* ---- the pure parts ------------------------------------------------------------------------ */

static void eval_ok(const char *path, const char *want_json)
{
    json_t *root = json_loads(doc, 0, NULL);
    const json_t *v = NULL;
    char msg[256] = "";
    char *got;

    if (kn_web_path_eval(root, path, &v, msg, sizeof(msg)) != 0) {
        fail_msg("'%s': %s", path, msg);
    }
    got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
    assert_string_equal(got, want_json);
    free(got);
    json_decref(root);
}

static void eval_bad(const char *path, int want_rc, const char *want_msg)
{
    json_t *root = json_loads(doc, 0, NULL);
    const json_t *v = NULL;
    char msg[256] = "";

    assert_int_equal(kn_web_path_eval(root, path, &v, msg, sizeof(msg)), want_rc);
    assert_string_equal(msg, want_msg);
    json_decref(root);
}

static void test_path(void **state)
{
    (void)state;
    eval_ok("$.data.successPercent", "0.9");
    eval_ok("{$.data.ok}", "true");
    eval_ok("$.data.hosts[1].p99", "250.5");
    eval_ok("$.data.hosts[-1].p99", "250.5");
    eval_ok("$['data'][\"a b\"].c", "7");
    eval_ok("$", "{\"data\":{\"ok\":true,\"successPercent\":0.9,\"errors\":\"0.25\",\"name\":"
                 "\"web\",\"none\":null,\"hosts\":[{\"p99\":120},{\"p99\":250.5}],\"a b\":"
                 "{\"c\":7}}}");
    eval_bad("$.data.rate", KN_ENOTFOUND, "no member 'rate' in the object at $.data");
    eval_bad("$.data.hosts[2]", KN_ENOTFOUND, "no element [2] in the array of 2 at $.data.hosts");
    eval_bad("$.data.name.x", KN_ENOTFOUND, "the value at $.data.name is not an object");
    eval_bad("$.data[0]", KN_ENOTFOUND, "the value at $.data is not an array");
    eval_bad("data.x", KN_EINVAL, "a path starts with '$' (at offset 0)");
    eval_bad("$.data..x", KN_EINVAL, "a name (letters, digits, '_', '-') must follow the '.' at "
                                     "offset 6; use ['...'] for others");
    eval_bad("$.data[*]", KN_EINVAL, "expected an index ([0], [-1]) or a quoted name at offset "
                                     "6; wildcards, slices and filters are not supported");
    eval_bad("$.data['x", KN_EINVAL, "the string opened with ' at offset 7 never ends");
    eval_bad("{$.data", KN_EINVAL, "the '{' at offset 0 is never closed");
    eval_bad("$x", KN_EINVAL, "unexpected 'x' at offset 1 (expected '.' or '[')");
}

static void parse(struct kn_metrics_result *r, int status, const char *body, const char *path)
{
    kn_web_parse(r, status, body, body ? strlen(body) : 0, path, 1700000000000LL);
}

static void test_parse(void **state)
{
    struct kn_metrics_result r;

    (void)state;
    parse(&r, 200, doc, "$.data.successPercent");
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 1);
    assert_string_equal(r.series[0].labels, "{}");
    assert_int_equal(r.series[0].count, 1);
    assert_true(r.series[0].values[0] == 0.9);
    assert_true(r.series[0].times_ms[0] == 1700000000000LL);
    kn_metrics_result_release(&r);
    parse(&r, 200, doc, "$.data.errors"); /* a string holding a number */
    assert_true(r.ok && r.series[0].values[0] == 0.25);
    kn_metrics_result_release(&r);
    parse(&r, 200, doc, "{$.data.ok}");
    assert_true(r.ok && r.series[0].values[0] == 1.0);
    kn_metrics_result_release(&r);
    parse(&r, 200, "42", "$"); /* a bare number is a document too */
    assert_true(r.ok && r.series[0].values[0] == 42.0);
    kn_metrics_result_release(&r);
    parse(&r, 200, doc, "$.data.none"); /* null: no data */
    assert_int_equal(r.ok, 1);
    assert_int_equal(r.nseries, 0);
    kn_metrics_result_release(&r);

    parse(&r, 200, doc, "$.data.rate");
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error, "web: no member 'rate' in the object at $.data");
    parse(&r, 200, doc, "$.data.name");
    assert_string_equal(r.error, "web: the value at $.data.name is not a number: \"web\"");
    parse(&r, 200, doc, "$.data.hosts[0]");
    assert_string_equal(r.error, "web: the value at $.data.hosts[0] is not a number: "
                                 "{\"p99\":120}");
    parse(&r, 503, "upstream down\n", "$");
    assert_string_equal(r.error, "web: http status 503: upstream down");
    parse(&r, 500, NULL, "$");
    assert_string_equal(r.error, "web: http status 500");
    parse(&r, 200, "<html>", "$");
    assert_non_null(strstr(r.error, "web: reply is not json ("));
    parse(&r, 200, doc, NULL);
    assert_string_equal(r.error, "web: no JSONPath: give one after the url in the query, or "
                                 "'jsonPath' in the provider's entry");
}

static void test_check_query(void **state)
{
    char msg[256];
    const char *path;
    size_t n;

    (void)state;
    assert_int_equal(kn_web_check_query("https://stats.example/api?app=web&v=canary", msg,
                                        sizeof(msg)), 0);
    assert_int_equal(kn_web_check_query("http://127.0.0.1:9/x  $.a[0]", msg, sizeof(msg)), 0);
    kn_web_split_query("http://127.0.0.1:9/x  $.a[0]", &n, &path);
    assert_int_equal(n, 20);
    assert_string_equal(path, "$.a[0]");
    kn_web_split_query("http://h/x", &n, &path);
    assert_null(path);
    assert_int_equal(kn_web_check_query("stats.example/api", msg, sizeof(msg)), KN_EINVAL);
    assert_string_equal(msg, "the query must be an http:// or https:// url, got "
                             "'stats.example/api'");
    assert_int_equal(kn_web_check_query("http://h/x $.a[*]", msg, sizeof(msg)), KN_EINVAL);
    assert_string_equal(msg, "the JSONPath after the url is not valid: expected an index ([0], "
                             "[-1]) or a quoted name at offset 3; wildcards, slices and filters "
                             "are not supported");
    assert_ptr_equal(kn_metrics_type_find("web"), &kn_metrics_web);
}

/* ---- a scripted server ---------------------------------------------------------------------- */

struct script {
    int status;
    const char *body;
    long delay_ms;
    int requests;
    char *method;        /* of the last request (owned) */
    char *target;
    char *authorization;
    char *tenant;        /* its X-Tenant */
    char *content_type;
    char *body_seen;
};

static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    struct script *s = data;

    s->requests++;
    free(s->method);
    free(s->target);
    free(s->authorization);
    free(s->tenant);
    free(s->content_type);
    free(s->body_seen);
    s->method = kn_strdup(req->method);
    s->target = kn_strdup(req->target);
    s->authorization = kn_testsrv_header(req->head, "Authorization");
    s->tenant = kn_testsrv_header(req->head, "X-Tenant");
    s->content_type = kn_testsrv_header(req->head, "Content-Type");
    s->body_seen = kn_asprintf("%.*s", (int)req->body_len, req->body ? req->body : "");
    kn_testsrv_reply(c, s->status, "Content-Type: application/json\r\n", s->body,
                     strlen(s->body), s->delay_ms);
}

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct script script;
    struct kn_http_client *http;
    char *dir;
    char *token_file;
    struct kn_web_config wc;
    struct kn_metrics_provider_config cfg;
    char *keys[2];
    char *values[2];
    char *fkeys[1];
    char *fvalues[1];
};

static uv_loop_t *test_loop;

struct got {
    int calls;
    int ok;
    char error[1024];
    size_t nseries;
    double value;
};

static char cfg_name[] = "stats";
static char cfg_type[] = "web";

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, &f->script);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    f->dir = kn_test_tmpdir();
    kn_test_write(f->dir, "token", TOKEN "\n");
    f->token_file = kn_asprintf("%s/token", f->dir);
    f->keys[0] = kn_strdup("X-Tenant");
    f->values[0] = kn_strdup("blue");
    f->fkeys[0] = kn_strdup("Authorization");
    f->fvalues[0] = kn_strdup(f->token_file);
    f->wc.headers = (struct kn_strmap){.keys = f->keys, .values = f->values, .count = 1};
    f->wc.headers_from_files =
        (struct kn_strmap){.keys = f->fkeys, .values = f->fvalues, .count = 1};
    f->wc.timeout_ms = 5000;
    f->cfg.name = cfg_name;
    f->cfg.type = cfg_type;
    f->cfg.options = &f->wc;
    f->script.status = 200;
    f->script.body = doc;
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
    free(f->script.method);
    free(f->script.target);
    free(f->script.authorization);
    free(f->script.tenant);
    free(f->script.content_type);
    free(f->script.body_seen);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f->token_file);
    free(f->keys[0]);
    free(f->values[0]);
    free(f->fkeys[0]);
    free(f->fvalues[0]);
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
    g->value = r->nseries && r->series[0].count ? r->series[0].values[0] : NAN;
    snprintf(g->error, sizeof(g->error), "%s", r->error);
}

static void run_query(struct fx *f, struct kn_metrics *m, const char *tail, long timeout_ms,
                      struct got *g)
{
    char *query = kn_asprintf("http://127.0.0.1:%d%s", f->srv.port, tail);
    struct kn_metrics_query q = {
        .query = query,
        .start_ms = 1700000000000LL,
        .end_ms = 1700000060000LL,
        .timeout_ms = timeout_ms,
    };
    uint64_t until;

    memset(g, 0, sizeof(*g));
    assert_int_equal(kn_metrics_query(m, &q, on_result, g), 0);
    assert_int_equal(g->calls, 0);
    until = uv_now(&f->loop) + 20000;
    while (g->calls < 1 && uv_now(&f->loop) < until) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(g->calls, 1);
    free(query);
}

static void test_query_value(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;

    kn_error_clear(&err);
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, "/api/errors?app=web&variant=canary $.data.hosts[1].p99", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_int_equal(g.nseries, 1);
    assert_true(g.value == 250.5);
    assert_string_equal(f->script.method, "GET");
    assert_string_equal(f->script.target, "/api/errors?app=web&variant=canary");
    assert_string_equal(f->script.tenant, "blue");
    assert_string_equal(f->script.authorization, TOKEN);
    assert_string_equal(f->script.body_seen, "");
    /* the header file is read at each query */
    kn_test_write(f->dir, "token", "Bearer rotated\n");
    run_query(f, m, "/x {$.data.ok}", 0, &g);
    assert_true(g.ok && g.value == 1.0);
    assert_string_equal(f->script.authorization, "Bearer rotated");

    /* path missing, non-numeric, no path at all */
    run_query(f, m, "/x $.data.missing", 0, &g);
    assert_int_equal(g.ok, 0);
    assert_string_equal(g.error, "web: no member 'missing' in the object at $.data");
    run_query(f, m, "/x $.data.name", 0, &g);
    assert_string_equal(g.error, "web: the value at $.data.name is not a number: \"web\"");
    run_query(f, m, "/x", 0, &g);
    assert_int_equal(g.ok, 0);
    assert_non_null(strstr(g.error, "web: no JSONPath"));
    /* an error status */
    f->script.status = 500;
    f->script.body = "{\"error\": \"boom\"}";
    run_query(f, m, "/x $.a", 0, &g);
    assert_string_equal(g.error, "web: http status 500: {\"error\": \"boom\"}");
    /* the query's timeout */
    f->script.status = 200;
    f->script.body = doc;
    f->script.delay_ms = 2000;
    run_query(f, m, "/x $.data.ok", 200, &g);
    assert_string_equal(g.error, "web: timed out after 200 ms");
    kn_metrics_free(m);
}

static char post[] = "{\"query\": \"errors\"}";
static char path_default[] = "$.data.successPercent";

static void test_query_post_and_default_path(void **state)
{
    struct fx *f = *state;
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;

    f->wc.method = KN_WEB_POST;
    f->wc.body = post;
    f->wc.json_path = path_default;
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    run_query(f, m, "/q", 0, &g);
    assert_int_equal(g.ok, 1);
    assert_true(g.value == 0.9);
    assert_string_equal(f->script.method, "POST");
    assert_string_equal(f->script.body_seen, post);
    assert_string_equal(f->script.content_type, "application/json");
    kn_metrics_free(m);
}

static void on_never(const struct kn_metrics_result *r, void *data)
{
    (void)r;
    (void)data;
    fail_msg("callback of a refused query");
}

static void test_secret_never_shown(void **state)
{
    struct fx *f = *state;
    struct kn_metrics_query q = {.query = "http://127.0.0.1:9/x $.a", .start_ms = 1,
                                 .end_ms = 1};
    struct kn_metrics *m;
    struct kn_error err;
    struct got g;
    char *log = kn_asprintf("%s/stderr", f->dir);
    char buf[65536];
    int saved = dup(2), fd;
    ssize_t n;

    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    close(fd);
    kn_log_setup(KN_LOG_DEBUG, KN_LOG_LOGFMT);

    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    f->script.status = 401;
    f->script.body = "{\"error\": \"unauthorized\"}";
    run_query(f, m, "/x $.a", 0, &g);
    assert_null(strstr(g.error, "9f8e7d6c"));
    /* a file of two lines would inject a header: refused, the file named, not shown */
    kn_test_write(f->dir, "token", TOKEN "\nX-Evil: " TOKEN "\n");
    assert_int_equal(kn_metrics_query(m, &q, on_never, NULL), KN_EINVAL);
    kn_metrics_free(m);
    kn_error_clear(&err);
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "metrics provider 'stats': headersFromFiles.Authorization: "
                                    "secret file '"));
    assert_null(strstr(err.msg, "9f8e7d6c"));
    /* a query that is not a url is refused */
    kn_test_write(f->dir, "token", TOKEN "\n");
    assert_int_equal(kn_metrics_new(&m, &f->cfg, f->http, &err), 0);
    q.query = "ftp://x";
    assert_int_equal(kn_metrics_query(m, &q, on_never, NULL), KN_EINVAL);
    kn_metrics_free(m);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fd = open(log, O_RDONLY);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "/token"));
    assert_null(strstr(buf, "9f8e7d6c"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_check_query),
        cmocka_unit_test_setup_teardown(test_query_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_post_and_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_never_shown, setup, teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
