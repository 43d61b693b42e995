/* Unit tests of what the API shows of stages: kn_stage_describe (stages/registry.c and each
 * kind's describe hook) and kn_analysis_values_read (stages/analysis_run.c), which reads analysis
 * records of both forms. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "stages.h"

/* The JSON of j compact with sorted keys, compared with want. */
static void assert_json(json_t *j, const char *want)
{
    char *got = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_describe_defaults_and_kinds(void **state)
{
    struct kn_stage_config st;
    struct kn_approval_options ap;
    struct kn_wait_options w;
    struct kn_traffic_options t;
    struct kn_analysis_options an;
    struct kn_analysis_metric m[2];
    struct kn_http_check h;
    char *who[] = {(char *)(uintptr_t) "alice", (char *)(uintptr_t) "bob"};
    json_t *j;

    (void)state;
    memset(&st, 0, sizeof(st));
    st.kind = &kn_stage_canary_rollout;
    j = kn_stage_describe(&st, 0, 600000);
    assert_json(j, "{\"approvers\":[],\"duration_ms\":0,\"id\":\"\",\"index\":0,\"kind\":"
                   "\"CANARY_ROLLOUT\",\"min_approvals\":0,\"timeout_ms\":600000}");
    json_decref(j);

    memset(&ap, 0, sizeof(ap));
    ap.approvers.items = who;
    ap.approvers.count = 2;
    ap.min_approvers = 2;
    st.kind = &kn_stage_wait_approval;
    st.id = (char *)(uintptr_t) "sign-off";
    st.with = &ap;
    j = kn_stage_describe(&st, 3, 1000);
    assert_json(j, "{\"approvers\":[\"alice\",\"bob\"],\"duration_ms\":0,\"id\":\"sign-off\","
                   "\"index\":3,\"kind\":\"WAIT_APPROVAL\",\"min_approvals\":2,\"timeout_ms\":1000}");
    json_decref(j);
    st.id = NULL;

    memset(&w, 0, sizeof(w));
    w.duration_ms = 30000;
    st.kind = &kn_stage_wait;
    st.with = &w;
    j = kn_stage_describe(&st, 1, 90000);
    assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")), 30000);
    json_decref(j);

    memset(&t, 0, sizeof(t));
    t.percent[KN_VARIANT_PRIMARY] = 80;
    t.percent[KN_VARIANT_CANARY] = 10;
    t.percent[KN_VARIANT_BASELINE] = 10;
    t.valid = 1;
    st.kind = &kn_stage_traffic_routing;
    st.with = &t;
    j = kn_stage_describe(&st, 2, 120000);
    assert_json(json_object_get(j, "weights"), "{\"baseline\":10.0,\"canary\":10.0,\"primary\":80.0}");
    json_decref(j);
    t.valid = 0; /* an invalid stage (never run) has no weights to show */
    j = kn_stage_describe(&st, 2, 120000);
    assert_null(json_object_get(j, "weights"));
    json_decref(j);

    memset(&an, 0, sizeof(an));
    memset(m, 0, sizeof(m));
    memset(&h, 0, sizeof(h));
    an.duration_ms = 60000;
    m[0].name = (char *)(uintptr_t) "error-rate";
    m[0].strategy = KN_STRATEGY_THRESHOLD;
    m[0].expected.set = 2u; /* max only */
    m[0].expected.max = 0.05;
    m[0].interval_ms = 10000;
    m[1].name = (char *)(uintptr_t) "latency";
    m[1].strategy = KN_STRATEGY_CANARY_PRIMARY;
    m[1].expected.set = 3u; /* not a bound of a comparison */
    m[1].interval_ms = 20000;
    h.name = (char *)(uintptr_t) "probe";
    h.interval_ms = 5000;
    an.metrics.items = m;
    an.metrics.count = 2;
    an.http.items = &h;
    an.http.count = 1;
    st.kind = &kn_stage_analysis;
    st.with = &an;
    j = kn_stage_describe(&st, 4, 360000);
    assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")), 60000);
    assert_json(json_object_get(j, "checks"),
                "[{\"interval_ms\":10000,\"max\":0.05,\"min\":null,\"name\":\"error-rate\","
                "\"strategy\":\"threshold\"},{\"interval_ms\":20000,\"max\":null,\"min\":null,"
                "\"name\":\"latency\",\"strategy\":\"canary-primary\"},{\"interval_ms\":5000,"
                "\"max\":null,\"min\":null,\"name\":\"probe\",\"strategy\":\"http\"}]");
    json_decref(j);
}

static void test_values_read_both_forms(void **state)
{
    json_t *j;

    (void)state;
    /* as recorded before times were kept: the samples alone */
    j = kn_analysis_values_read("{\"canary\":[0.1,0.2],\"primary\":[0.1]}");
    assert_json(j, "{\"values\":{\"canary\":[0.1,0.2],\"primary\":[0.1]}}");
    json_decref(j);
    j = kn_analysis_values_read("{\"values\":{\"canary\":[0.1]},\"times\":{\"canary\":[1700000000000]},"
                                "\"threshold\":{\"max\":0.05,\"min\":null}}");
    assert_json(j, "{\"threshold\":{\"max\":0.05,\"min\":null},\"times\":{\"canary\":"
                   "[1700000000000]},\"values\":{\"canary\":[0.1]}}");
    json_decref(j);
    /* an HTTP probe's */
    j = kn_analysis_values_read("{\"status\":200,\"latency_ms\":3.5}");
    assert_json(j, "{\"values\":{\"latency_ms\":3.5,\"status\":200}}");
    json_decref(j);
    assert_null(kn_analysis_values_read(""));
    assert_null(kn_analysis_values_read("[1,2]"));
    assert_null(kn_analysis_values_read(NULL));
}

/* CANARY_STEPS: its steps, interval, pauses and length (intervals and pauses), and the checks
 * of its analysis as ANALYSIS shows them. */
static void test_describe_steps(void **state)
{
    struct kn_stage_config st;
    struct kn_steps_options o;
    struct kn_steps_pause p = {.step = 2, .duration_ms = 30000};
    struct kn_http_check h;
    json_t *j;

    (void)state;
    memset(&st, 0, sizeof(st));
    memset(&o, 0, sizeof(o));
    memset(&h, 0, sizeof(h));
    o.weight[0] = 5;
    o.weight[1] = 12.5;
    o.weight[2] = 50;
    o.count = 3;
    o.valid = 1;
    o.interval_ms = 60000;
    o.pauses.items = &p;
    o.pauses.count = 1;
    h.name = (char *)(uintptr_t) "probe";
    h.interval_ms = 5000;
    o.analysis.http.items = &h;
    o.analysis.http.count = 1;
    o.as_analysis.kind = &kn_stage_analysis;
    o.as_analysis.with = &o.analysis;
    st.kind = &kn_stage_canary_steps;
    st.with = &o;
    j = kn_stage_describe(&st, 1, 600000);
    assert_json(j, "{\"approvers\":[],\"checks\":[{\"interval_ms\":5000,\"max\":null,\"min\":"
                   "null,\"name\":\"probe\",\"strategy\":\"http\"}],\"duration_ms\":210000,"
                   "\"id\":\"\",\"index\":1,\"interval_ms\":60000,\"kind\":\"CANARY_STEPS\","
                   "\"min_approvals\":0,\"pauses\":[{\"duration_ms\":30000,\"step\":2}],"
                   "\"steps\":[5.0,12.5,50.0],\"timeout_ms\":600000}");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_defaults_and_kinds),
        cmocka_unit_test(test_values_read_both_forms),
        cmocka_unit_test(test_describe_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
