/* Unit tests for controller/api/metrics.c: the DORA arithmetic and the text that GET /metrics
 * renders from a state store. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"
#include "kanaria/alloc.h"

#define T0     1795635601000LL
#define DAY_MS (24LL * 3600 * 1000)

static struct kn_deployment outcome(enum kn_deploy_status status, long long created,
                                    long long finished)
{
    struct kn_deployment d;

    memset(&d, 0, sizeof(d));
    snprintf(d.app, sizeof(d.app), "hello");
    d.status = status;
    d.created_at = created;
    d.finished_at = finished;
    return d;
}

static void test_dora(void **state)
{
    struct kn_deployment d[] = {
        outcome(KN_DEPLOY_SUCCESS, T0 - 40 * DAY_MS, T0 - 40 * DAY_MS + 5000), /* old */
        outcome(KN_DEPLOY_FAILURE, T0 - 3 * DAY_MS, T0 - 3 * DAY_MS + 1000),
        outcome(KN_DEPLOY_FAILURE, T0 - 2 * DAY_MS, T0 - 2 * DAY_MS + 1000),
        outcome(KN_DEPLOY_SUCCESS, T0 - DAY_MS, T0 - DAY_MS + 20000),
        outcome(KN_DEPLOY_SUCCESS, T0 - 1000, T0),
    };
    struct kn_api_dora o;

    (void)state;
    kn_api_dora_compute(d, NULL, 5, T0, &o);
    assert_true(o.frequency_per_day > 2.0 / 7 - 1e-9 && o.frequency_per_day < 2.0 / 7 + 1e-9);
    /* leads: 5 s, 20 s, 1 s -> median 5 s */
    assert_true(o.lead_time_seconds == 5.0);
    /* in the last 30 days: 2 failures, 2 successes */
    assert_true(o.change_failure_rate == 0.5);
    /* restored 2 days after the first failure of the run, plus 19 s */
    assert_true(o.time_to_restore_seconds == 2 * 86400.0 + 19);

    kn_api_dora_compute(d, NULL, 1, T0, &o);
    assert_true(o.frequency_per_day == 0);
    assert_true(o.lead_time_seconds == 5.0);
    assert_true(o.change_failure_rate < 0);
    assert_true(o.time_to_restore_seconds < 0);

    kn_api_dora_compute(d, NULL, 0, T0, &o);
    assert_true(o.lead_time_seconds < 0);
}

static struct kn_deployment again(enum kn_deploy_status status, const char *trigger,
                                  long long created, long long finished)
{
    struct kn_deployment d = outcome(status, created, finished);

    snprintf(d.trigger, sizeof(d.trigger), "%s", trigger);
    return d;
}

/* Only deployments of new commits count: a quick-sync rollback, a self-heal, a sync and a retry
 * among them change nothing; lead time counts from the commit's time when it is known; a
 * failure's time to detect and its rollback's restore come from its failure times. */
static void test_dora_new_commits_only(void **state)
{
    struct kn_deployment d[] = {
        outcome(KN_DEPLOY_SUCCESS, T0 - 3 * DAY_MS, T0 - 3 * DAY_MS + 60000),
        outcome(KN_DEPLOY_FAILURE, T0 - 2 * DAY_MS, T0 - 2 * DAY_MS + 90000),
        again(KN_DEPLOY_SUCCESS, "rollback by ada", T0 - 2 * DAY_MS + 100000,
              T0 - 2 * DAY_MS + 100300),
        again(KN_DEPLOY_SUCCESS, "self-heal", T0 - DAY_MS, T0 - DAY_MS + 400),
        again(KN_DEPLOY_FAILURE, "sync by ada", T0 - DAY_MS + 1000, T0 - DAY_MS + 1300),
        again(KN_DEPLOY_SUCCESS, "retry by ada", T0 - DAY_MS + 2000, T0 - DAY_MS + 2500),
        outcome(KN_DEPLOY_SUCCESS, T0 - 100000, T0),
    };
    struct kn_store_failure_times f[7];
    struct kn_api_dora o;

    (void)state;
    memset(f, 0, sizeof(f));
    d[0].commit_time = T0 - 3 * DAY_MS - 240000; /* 4 min before kanaria saw it */
    d[1].started_at = T0 - 2 * DAY_MS + 1000;
    f[1].deployment = 2;
    f[1].first_fail_at = T0 - 2 * DAY_MS + 31000;       /* 30 s after the start */
    f[1].rollback_started_at = T0 - 2 * DAY_MS + 80000;
    f[1].rollback_finished_at = T0 - 2 * DAY_MS + 90000; /* 59 s after the detection */
    d[4].started_at = T0 - DAY_MS + 1000;
    f[4].deployment = 5;
    f[4].first_fail_at = T0 - DAY_MS + 1100;
    f[4].rollback_finished_at = T0 - DAY_MS + 1300;
    kn_api_dora_compute(d, f, 7, T0, &o);
    /* two successes of new commits in 7 days */
    assert_true(o.frequency_per_day > 2.0 / 7 - 1e-9 && o.frequency_per_day < 2.0 / 7 + 1e-9);
    /* leads: 300 s (from the commit), 100 s -> median 200 s; the 0.3 s rollback is not one */
    assert_true(o.lead_time_seconds == 200.0);
    /* 1 failure of 3 */
    assert_true(o.change_failure_rate > 1.0 / 3 - 1e-9 && o.change_failure_rate < 1.0 / 3 + 1e-9);
    /* restored by the next commit's success, not by the rollback nor the self-heal */
    assert_true(o.time_to_restore_seconds == (double)(2 * DAY_MS - 90000) / 1000.0);
    assert_true(o.time_to_detect_seconds == 30.0);
    assert_true(o.rollback_restore_seconds == 59.0);

    /* without failure times: no detect nor rollback series */
    kn_api_dora_compute(d, NULL, 7, T0, &o);
    assert_true(o.time_to_detect_seconds < 0);
    assert_true(o.rollback_restore_seconds < 0);
    assert_true(o.lead_time_seconds == 200.0);
}

static int live(void *data, const char *app, struct kn_live_state *out)
{
    (void)data;
    if (strcmp(app, "hello") != 0) {
        return KN_ENOTFOUND;
    }
    out->variant[KN_VARIANT_CANARY].weight = 25;
    out->variant[KN_VARIANT_PRIMARY].weight = 75;
    return 0;
}

static long long deploy(struct kn_store *st, const char *app, const char *commit, long long created,
                        enum kn_deploy_status status, long long finished)
{
    struct kn_deployment_new d = {.repo = "deploy",
                                  .app = app,
                                  .commit = commit,
                                  .author = "dev",
                                  .message = "m",
                                  .strategy = "PIPELINE",
                                  .summary = "s"};
    long long id = 0;

    kn_store_app_seen(st, "deploy", app, "x/app.kanaria.yaml", commit, "");
    assert_int_equal(kn_store_deployment_add(st, &d, created, &id), 0);
    assert_int_equal(kn_store_deployment_set_status(st, id, KN_DEPLOY_RUNNING, NULL, created + 1),
                     0);
    if (status != KN_DEPLOY_RUNNING) {
        assert_int_equal(kn_store_deployment_set_status(st, id, status, "r", finished), 0);
    }
    return id;
}

static void expect_line(const char *text, const char *line)
{
    char *want = kn_asprintf("\n%s\n", line);

    if (!strstr(text, want)) {
        fail_msg("missing line [%s] in:\n%s", line, text);
    }
    free(want);
}

static void test_render(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/kanaria.db", dir);
    struct kn_store *st = NULL;
    struct kn_error err;
    struct kn_buf out;
    long long d1, d2, d3;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, path, &err), 0);
    d1 = deploy(st, "hello", "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", T0, KN_DEPLOY_SUCCESS,
                T0 + 10000);
    d2 = deploy(st, "hello", "2222222aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", T0 + 20000,
                KN_DEPLOY_FAILURE, T0 + 30000);
    d3 = deploy(st, "hello", "3333333aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", T0 + 40000,
                KN_DEPLOY_SUCCESS, T0 + 100000);
    deploy(st, "we\"ird", "4444444aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", T0, KN_DEPLOY_RUNNING, 0);
    kn_store_stage_set(st, d1, 0, "SYNC", "RUNNING", T0 + 1000);
    kn_store_stage_set(st, d1, 0, "SYNC", "SUCCESS", T0 + 3000);
    kn_store_stage_set(st, d3, 0, "SYNC", "RUNNING", T0 + 41000);
    kn_store_stage_set(st, d3, 0, "SYNC", "SUCCESS", T0 + 45500);
    kn_store_stage_set(st, d3, 1, "ANALYSIS", "RUNNING", T0 + 46000); /* not finished */
    kn_store_analysis_add(st, d3, 1, "errors", "q", "[0.1]", "< 1", "PASS", T0 + 47000);
    kn_store_analysis_add(st, d3, 1, "errors", "q", "[0.2]", "< 1", "PASS", T0 + 48000);
    kn_store_analysis_add(st, d3, 1, "errors", "q", "[2]", "< 1", "FAIL", T0 + 49000);
    /* d2 started at T0+20.001s, failed its analysis at +25s, rolled back from +26s to +29s */
    kn_store_analysis_add(st, d2, 1, "latency", "q", "[0.1]", "< 1", "PASS", T0 + 23000);
    kn_store_analysis_add(st, d2, 1, "latency", "q", "[3]", "< 1", "FAIL", T0 + 25000);
    kn_store_analysis_add(st, d2, 1, "latency", "q", "[4]", "< 1", "FAIL", T0 + 26000);
    kn_store_stage_set(st, d2, 2, "ROLLBACK", "RUNNING", T0 + 26000);
    kn_store_stage_set(st, d2, 2, "ROLLBACK", "SUCCESS", T0 + 29000);

    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_buf_addch(&out, '\n');
    assert_int_equal(kn_api_metrics_render(&out, st, T0 + 101000, live, NULL), 0);
    expect_line(out.data, "# TYPE kanaria_deployments_total counter");
    expect_line(out.data, "kanaria_deployments_total{app=\"hello\",result=\"SUCCESS\"} 2");
    expect_line(out.data, "kanaria_deployments_total{app=\"hello\",result=\"FAILURE\"} 1");
    expect_line(out.data, "kanaria_deployments_total{app=\"we\\\"ird\",result=\"RUNNING\"} 1");
    expect_line(out.data, "# TYPE kanaria_stage_duration_seconds summary");
    expect_line(out.data, "kanaria_stage_duration_seconds_sum{app=\"hello\",stage=\"SYNC\"} 6.5");
    expect_line(out.data, "kanaria_stage_duration_seconds_count{app=\"hello\",stage=\"SYNC\"} 2");
    assert_null(strstr(out.data, "stage=\"ANALYSIS\""));
    expect_line(out.data, "kanaria_analysis_evaluations_total{app=\"hello\",check=\"errors\","
                          "verdict=\"PASS\"} 2");
    expect_line(out.data, "kanaria_analysis_evaluations_total{app=\"hello\",check=\"errors\","
                          "verdict=\"FAIL\"} 1");
    expect_line(out.data, "kanaria_canary_weight_percent{app=\"hello\"} 25");
    assert_null(strstr(out.data, "kanaria_canary_weight_percent{app=\"we"));
    expect_line(out.data, "kanaria_dora_deployment_frequency{app=\"hello\"} 0.285714285714286");
    expect_line(out.data, "kanaria_dora_lead_time_seconds{app=\"hello\"} 35");
    expect_line(out.data, "kanaria_dora_change_failure_rate{app=\"hello\"} 0.333333333333333");
    expect_line(out.data, "kanaria_dora_time_to_restore_seconds{app=\"hello\"} 70");
    expect_line(out.data, "kanaria_dora_time_to_detect_seconds{app=\"hello\"} 4.999");
    expect_line(out.data, "kanaria_dora_rollback_restore_seconds{app=\"hello\"} 4");
    assert_null(strstr(out.data, "kanaria_dora_lead_time_seconds{app=\"we"));
    /* every line is a comment or a sample */
    for (char *l = out.data + 1; *l;) {
        char *nl = strchr(l, '\n');
        assert_non_null(nl);
        assert_true(l[0] == '#' || strncmp(l, "kanaria_", 8) == 0);
        l = nl + 1;
    }
    kn_buf_release(&out);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dora),
        cmocka_unit_test(test_dora_new_commits_only),
        cmocka_unit_test(test_render),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
