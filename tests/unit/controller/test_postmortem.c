/* Unit tests for controller/postmortem.c: drafts built from a store the test fills the way the
 * engine does (a canary failed by its analysis, then rolled back), and the refusals. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/store.h"
#include "postmortem.h"

/* 2026-11-25T19:40:01.000Z */
#define T0 1795635601000LL
#define C1 "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2 "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

struct fixture {
    char *dir;
    struct kn_store *st;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    struct kn_error err;
    char *path;

    f->dir = kn_test_tmpdir();
    path = kn_asprintf("%s/kanaria.db", f->dir);
    kn_error_clear(&err);
    if (kn_store_open(&f->st, path, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    free(path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_store_close(f->st);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static long long add(struct kn_store *st, const char *commit, long long at)
{
    struct kn_deployment_new n = {.repo = "deploy", .app = "hello", .commit = commit,
                                  .author = "Dev Eloper <dev@example.com>",
                                  .message = "hello v3 (30% errors)", .strategy = "PIPELINE",
                                  .summary = "env changes", .commit_time = at - 5000};
    long long id = 0;

    assert_int_equal(kn_store_deployment_add(st, &n, at, &id), 0);
    return id;
}

/* A pipeline deployment whose ANALYSIS fails at T0+20s and that rolls back in 3 steps. */
static long long failed_canary(struct kn_store *st)
{
    long long id = add(st, C1, T0);

    assert_int_equal(kn_store_stage_meta_set(
                         st, id, KN_STORE_DEPLOYMENT_META, KN_ENGINE_PIPELINE_META,
                         "[{\"index\": 0, \"kind\": \"CANARY_ROLLOUT\", \"id\": \"\"},"
                         " {\"index\": 1, \"kind\": \"TRAFFIC_ROUTING\", \"id\": \"traffic\","
                         "  \"weights\": {\"primary\": 70, \"canary\": 30, \"baseline\": 0}},"
                         " {\"index\": 2, \"kind\": \"ANALYSIS\", \"id\": \"\"},"
                         " {\"index\": 3, \"kind\": \"PRIMARY_ROLLOUT\", \"id\": \"\"}]"),
                     0);
    assert_int_equal(kn_store_deployment_set_status(st, id, KN_DEPLOY_RUNNING, NULL, T0 + 1000), 0);
    assert_int_equal(kn_store_stage_set(st, id, 0, "CANARY_ROLLOUT", "RUNNING", T0 + 1000), 0);
    assert_int_equal(kn_store_stage_set(st, id, 0, "CANARY_ROLLOUT", "SUCCESS", T0 + 3000), 0);
    assert_int_equal(kn_store_stage_set(st, id, 1, "TRAFFIC_ROUTING", "RUNNING", T0 + 3000), 0);
    assert_int_equal(kn_store_stage_set(st, id, 1, "TRAFFIC_ROUTING", "SUCCESS", T0 + 4000), 0);
    assert_int_equal(kn_store_stage_set(st, id, 2, "ANALYSIS", "RUNNING", T0 + 4000), 0);
    assert_int_equal(kn_store_analysis_add(st, id, 2, "error-rate", "sum(rate(x[4s]))",
                                           "{\"values\": {\"canary\": [0.01]}}", "max 0.05",
                                           "PASS", T0 + 8000),
                     0);
    /* another check fails first, within its limit */
    assert_int_equal(kn_store_analysis_add(st, id, 2, "errors-vs-primary", "q2",
                                           "{\"values\": {\"canary\": [1], \"primary\": [0]}}",
                                           "alpha 0.05", "FAIL", T0 + 10000),
                     0);
    assert_int_equal(kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", id, "kanaria",
                                        "check 'errors-vs-primary': FAIL: canary is higher "
                                        "(0 passed, 1 failed, 0 inconclusive)",
                                        T0 + 10000),
                     0);
    assert_int_equal(kn_store_analysis_add(st, id, 2, "error-rate", "sum(rate(x[4s]))",
                                           "{\"values\": {\"canary\": [0.31]},"
                                           " \"threshold\": {\"max\": 0.05, \"min\": null}}",
                                           "max 0.05", "FAIL", T0 + 12000),
                     0);
    assert_int_equal(kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", id, "kanaria",
                                        "check 'error-rate': FAIL: canary 0.31 above max 0.05 "
                                        "(1 passed, 1 failed, 0 inconclusive)",
                                        T0 + 12000),
                     0);
    assert_int_equal(kn_store_analysis_add(st, id, 2, "error-rate", "sum(rate(x[4s]))",
                                           "{\"values\": {\"canary\": [0.29]},"
                                           " \"threshold\": {\"max\": 0.05, \"min\": null}}",
                                           "max 0.05", "FAIL", T0 + 16000),
                     0);
    assert_int_equal(kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", id, "kanaria",
                                        "check 'error-rate': FAIL: canary 0.29 above max 0.05 "
                                        "(1 passed, 2 failed, 0 inconclusive)",
                                        T0 + 16000),
                     0);
    assert_int_equal(kn_store_stage_set(st, id, 2, "ANALYSIS", "FAILURE", T0 + 16000), 0);
    assert_int_equal(kn_store_deployment_set_status(st, id, KN_DEPLOY_ROLLING_BACK,
                                                    "analysis 'error-rate' failed", T0 + 16000),
                     0);
    assert_int_equal(kn_store_stage_set(st, id, 4, "ROLLBACK", "RUNNING", T0 + 16000), 0);
    assert_int_equal(kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", id, "kanaria",
                                        "traffic back to the primary", T0 + 16000),
                     0);
    assert_int_equal(kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", id, "kanaria",
                                        "removing the canary", T0 + 16500),
                     0);
    assert_int_equal(kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", id, "kanaria",
                                        "removing the baseline", T0 + 18000),
                     0);
    assert_int_equal(kn_store_stage_set(st, id, 4, "ROLLBACK", "SUCCESS", T0 + 18200), 0);
    assert_int_equal(kn_store_deployment_set_status(
                         st, id, KN_DEPLOY_FAILURE,
                         "analysis 'error-rate' failed: canary 0.31 (rolled back)", T0 + 18200),
                     0);
    return id;
}

/* The index in the timeline of the first entry whose text holds `what`, or -1. */
static int entry(const json_t *timeline, const char *what)
{
    size_t i;
    json_t *e;

    json_array_foreach(timeline, i, e)
    {
        if (strstr(json_string_value(json_object_get(e, "what")), what)) {
            return (int)i;
        }
    }
    return -1;
}

static void test_failed_canary(void **state)
{
    struct fixture *f = *state;
    long long id = failed_canary(f->st);
    json_t *pm = NULL, *tl, *det, *impact, *res, *steps, *e;
    struct kn_error err;
    long long prev = 0;
    size_t i;

    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, id, &pm, &err), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(pm, "summary"),
                                                          "outcome")),
                        "FAILURE");
    assert_true(json_is_true(json_object_get(json_object_get(pm, "summary"), "rolled_back")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(pm, "summary"),
                                                        "commit_time")),
                     T0 - 5000);

    /* the timeline: oldest first, from the commit to the rollback's end */
    tl = json_object_get(pm, "timeline");
    json_array_foreach(tl, i, e)
    {
        long long at = json_integer_value(json_object_get(e, "at"));
        assert_true(at >= prev);
        prev = at;
    }
    assert_int_equal(entry(tl, "commit 1111111 by Dev Eloper"), 0);
    assert_int_equal(entry(tl, "planned (PIPELINE"), 1);
    assert_true(entry(tl, "stage 1 TRAFFIC_ROUTING 'traffic' started") >
                entry(tl, "stage 0 CANARY_ROLLOUT finished: SUCCESS"));
    assert_true(entry(tl, "first failing evaluation: check 'errors-vs-primary' (stage 2 "
                          "ANALYSIS): canary is higher") >
                entry(tl, "stage 2 ANALYSIS started"));
    assert_true(entry(tl, "stage 2 ANALYSIS finished: FAILURE") >
                entry(tl, "first failing evaluation"));
    assert_true(entry(tl, "rollback started") > entry(tl, "stage 2 ANALYSIS finished"));
    assert_true(entry(tl, "rollback finished: SUCCESS") > entry(tl, "rollback started"));
    /* the same millisecond keeps the order of the course: stage failed, rolling back, rollback
     * started; rollback finished, FAILURE */
    assert_true(entry(tl, "ROLLING_BACK: ") > entry(tl, "stage 2 ANALYSIS finished"));
    assert_true(entry(tl, "ROLLING_BACK: ") < entry(tl, "rollback started"));
    assert_true(entry(tl, "FAILURE: analysis") > entry(tl, "rollback finished"));
    assert_int_equal(entry(tl, "FAILURE: analysis"), (int)json_array_size(tl) - 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 0), "time")),
                        "2026-11-25T19:39:56.000Z");

    /* detection: the check the reason names, its FAIL that decided, with its numbers */
    det = json_object_get(pm, "detection");
    assert_string_equal(json_string_value(json_object_get(det, "check")), "error-rate");
    assert_int_equal(json_integer_value(json_object_get(det, "at")), T0 + 16000);
    assert_int_equal(json_integer_value(json_object_get(det, "first_failed_at")), T0 + 12000);
    assert_int_equal(json_integer_value(json_object_get(det, "failed_evaluations")), 2);
    assert_string_equal(json_string_value(json_object_get(det, "bound")), "max 0.05");
    assert_string_equal(json_string_value(json_object_get(det, "why")),
                        "canary 0.29 above max 0.05 (1 passed, 2 failed, 0 inconclusive)");
    assert_true(json_real_value(json_array_get(
                    json_object_get(json_object_get(det, "values"), "canary"), 0)) == 0.29);
    assert_true(json_real_value(json_object_get(json_object_get(det, "threshold"), "max")) ==
                0.05);

    /* impact: the canary had 30% from the TRAFFIC_ROUTING's start (T0+3s) until the traffic
     * went back (the rollback's first step ended at T0+16.5s) */
    impact = json_object_get(pm, "impact");
    assert_true(json_number_value(json_object_get(impact, "canary_share_percent")) == 30);
    assert_int_equal(json_integer_value(json_object_get(impact, "canary_served_ms")), 13500);
    assert_true(json_is_null(json_object_get(impact, "requests")));
    assert_true(json_is_null(json_object_get(impact, "error_budget_spent")));

    /* resolution: the steps and how long each took */
    res = json_object_get(pm, "resolution");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "rollback"),
                                                        "duration_ms")),
                     2200);
    steps = json_object_get(res, "steps");
    assert_int_equal(json_array_size(steps), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(steps, 0), "what")),
                        "traffic back to the primary");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(steps, 0), "duration_ms")),
                     500);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(steps, 2), "duration_ms")),
                     200);
    assert_string_equal(json_string_value(json_object_get(pm, "root_cause")), "");
    assert_int_equal(json_array_size(json_object_get(pm, "follow_ups")), 0);
    json_decref(pm);
}

static void test_markdown(void **state)
{
    struct fixture *f = *state;
    long long id = failed_canary(f->st);
    json_t *pm = NULL;
    struct kn_error err;
    char *md;

    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, id, &pm, &err), 0);
    md = kn_postmortem_markdown(pm);
    assert_non_null(strstr(md, "# Postmortem: hello deployment 1 (1111111) rolled back\n"));
    assert_non_null(strstr(md, "- **Outcome:** FAILURE, rolled back\n"));
    assert_non_null(strstr(md, "- **Author:** Dev Eloper \\<dev@example.com\\>\n"));
    assert_non_null(strstr(md, "## Timeline\n\n| Time | What |\n|---|---|\n"
                               "| 2026-11-25T19:39:56.000Z | commit 1111111 by Dev Eloper"));
    assert_non_null(strstr(md, "Z | stage 1 TRAFFIC_ROUTING 'traffic' started |\n"));
    assert_non_null(strstr(md, "- **Check:** error-rate\n"));
    assert_non_null(strstr(md, "- **Numbers:** canary 0.29 above max 0.05"));
    assert_non_null(strstr(md, "- **Its first failing evaluation:** 2026-11-25T19:40:13.000Z\n"
                               "- **Failed evaluations:** 2; the one that decided, at "
                               "2026-11-25T19:40:17.000Z:\n"));
    assert_non_null(strstr(md, "the canary served up to 30% of the traffic for 13.5s"));
    assert_non_null(strstr(md, "error budget spent: not known"));
    assert_non_null(strstr(md, "| traffic back to the primary | 2026-11-25T19:40:17.000Z | 500ms |"));
    assert_non_null(strstr(md, "## Root cause\n\n_To be written._\n"));
    assert_non_null(strstr(md, "## Follow-ups\n"));
    /* sections in order */
    assert_true(strstr(md, "## Summary") < strstr(md, "## Timeline"));
    assert_true(strstr(md, "## Timeline") < strstr(md, "## Detection"));
    assert_true(strstr(md, "## Detection") < strstr(md, "## Impact"));
    assert_true(strstr(md, "## Impact") < strstr(md, "## Resolution"));
    assert_true(strstr(md, "## Resolution") < strstr(md, "## Root cause"));
    free(md);
    json_decref(pm);
}

static void test_refused(void **state)
{
    struct fixture *f = *state;
    long long ok = add(f->st, C1, T0), cancelled = add(f->st, C2, T0 + 1);
    json_t *pm = NULL;
    struct kn_error err;

    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, 99, &pm, &err), KN_ENOTFOUND);
    assert_null(pm);
    assert_string_equal(err.msg, "no deployment '99'");

    /* C2 superseded C1 before it started */
    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, ok, &pm, &err), KN_EINVAL);
    assert_string_equal(err.msg, "deployment 1 ended SUPERSEDED: it neither failed nor rolled "
                                 "back, so it has no postmortem");
    /* running, then a success */
    assert_int_equal(kn_store_deployment_set_status(f->st, cancelled, KN_DEPLOY_RUNNING, NULL, T0),
                     0);
    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, cancelled, &pm, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "deployment 2 is RUNNING: "));
    assert_int_equal(
        kn_store_deployment_set_status(f->st, cancelled, KN_DEPLOY_CANCELLED, "by ada", T0 + 5),
        0);
    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, cancelled, &pm, &err), KN_EINVAL);
    assert_string_equal(err.msg, "deployment 2 was CANCELLED without a rollback: it neither "
                                 "failed nor rolled back, so it has no postmortem");
    assert_null(pm);
}

/* A cancel that rolled back has a postmortem; with no failing check, detection says so. */
static void test_cancel_rolled_back(void **state)
{
    struct fixture *f = *state;
    long long id = add(f->st, C1, T0);
    json_t *pm = NULL;
    struct kn_error err;

    assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_RUNNING, NULL, T0), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 0, "CANARY_ROLLOUT", "RUNNING", T0), 0);
    assert_int_equal(kn_store_event_add(f->st, "CANCEL_REQUESTED", "deploy", "hello", id, "ada",
                                        "cancel deployment 1 (1111111) with the rollback",
                                        T0 + 10),
                     0);
    assert_int_equal(kn_store_stage_set(f->st, id, 0, "CANARY_ROLLOUT", "CANCELLED", T0 + 10), 0);
    assert_int_equal(
        kn_store_deployment_set_status(f->st, id, KN_DEPLOY_ROLLING_BACK, "cancelled", T0 + 10),
        0);
    assert_int_equal(kn_store_stage_set(f->st, id, 1, "ROLLBACK", "RUNNING", T0 + 10), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 1, "ROLLBACK", "SUCCESS", T0 + 20), 0);
    assert_int_equal(
        kn_store_deployment_set_status(f->st, id, KN_DEPLOY_CANCELLED, "cancelled", T0 + 20), 0);
    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, id, &pm, &err), 0);
    assert_true(json_is_null(json_object_get(pm, "detection")));
    /* what the operator asked, and by whom, before the stage it stopped */
    assert_true(entry(json_object_get(pm, "timeline"),
                      "CANCEL_REQUESTED (by ada): cancel deployment 1") >= 0);
    assert_true(entry(json_object_get(pm, "timeline"), "CANCEL_REQUESTED") <
                entry(json_object_get(pm, "timeline"), "CANARY_ROLLOUT finished: CANCELLED"));
    assert_non_null(strstr(json_string_value(json_object_get(pm, "detected_by")), "a cancel"));
    assert_non_null(strstr(
        json_string_value(json_array_get(json_object_get(json_object_get(pm, "impact"), "notes"),
                                         0)),
        "the canary got no share of the traffic"));
    json_decref(pm);
}

/* A failure with no rollback (autoRollback off): the canary kept its share, so how long it
 * served is not known. */
static void test_failure_without_rollback(void **state)
{
    struct fixture *f = *state;
    long long id = add(f->st, C1, T0);
    json_t *pm = NULL, *impact;
    struct kn_error err;

    assert_int_equal(kn_store_stage_meta_set(
                         f->st, id, KN_STORE_DEPLOYMENT_META, KN_ENGINE_PIPELINE_META,
                         "[{\"index\": 0, \"kind\": \"TRAFFIC_ROUTING\", \"id\": \"\","
                         "  \"weights\": {\"primary\": 80, \"canary\": 20, \"baseline\": 0}},"
                         " {\"index\": 1, \"kind\": \"WAIT\", \"id\": \"\"}]"),
                     0);
    assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_RUNNING, NULL, T0), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 0, "TRAFFIC_ROUTING", "RUNNING", T0), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 0, "TRAFFIC_ROUTING", "SUCCESS", T0 + 10), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 1, "WAIT", "RUNNING", T0 + 10), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 1, "WAIT", "FAILURE", T0 + 5000), 0);
    assert_int_equal(
        kn_store_deployment_set_status(f->st, id, KN_DEPLOY_FAILURE, "stage WAIT timed out",
                                       T0 + 5000),
        0);
    kn_error_clear(&err);
    assert_int_equal(kn_postmortem_build(f->st, id, &pm, &err), 0);
    assert_false(json_is_true(json_object_get(json_object_get(pm, "summary"), "rolled_back")));
    assert_non_null(strstr(json_string_value(json_object_get(pm, "title")), "failed"));
    impact = json_object_get(pm, "impact");
    assert_true(json_number_value(json_object_get(impact, "canary_share_percent")) == 20);
    assert_true(json_is_null(json_object_get(impact, "canary_served_ms")));
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(impact, "notes"), 0)),
                           "no rollback ran, so it kept that share"));
    assert_true(json_is_null(json_object_get(json_object_get(pm, "resolution"), "rollback")));
    json_decref(pm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_canary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_markdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_without_rollback, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
