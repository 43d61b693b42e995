/* Unit tests for controller/api/apps.c and deployments.c: the status word of an app, the first
 * that applies of DEPLOYING, INVALID, ORPHANED, OUT_OF_SYNC, ROLLED_BACK, SYNCED, NEW; a
 * deployment's stages merged with its pipeline. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "api/router.h"

static void test_app_status_order(void **state)
{
    struct kn_app_state a;
    char none[] = "", err[] = "app.kanaria.yaml:3:1: unknown key 'nope'";

    (void)state;
    memset(&a, 0, sizeof(a));
    a.error = none;
    assert_string_equal(kn_api_app_status(&a), "NEW");
    snprintf(a.last_good, sizeof(a.last_good), "%040d", 1);
    assert_string_equal(kn_api_app_status(&a), "SYNCED");
    snprintf(a.rolled_back_from, sizeof(a.rolled_back_from), "%040d", 2);
    assert_string_equal(kn_api_app_status(&a), "ROLLED_BACK");
    snprintf(a.drift, sizeof(a.drift), "primary: weight 0, kanaria set 100");
    assert_string_equal(kn_api_app_status(&a), "OUT_OF_SYNC");
    a.orphaned_at = 1000;
    assert_string_equal(kn_api_app_status(&a), "ORPHANED");
    a.error = err;
    assert_string_equal(kn_api_app_status(&a), "INVALID");
    a.current_deployment = 7;
    assert_string_equal(kn_api_app_status(&a), "DEPLOYING");

    /* each alone */
    memset(&a, 0, sizeof(a));
    a.current_deployment = 3; /* a first deployment, error NULL before the store fills it */
    assert_string_equal(kn_api_app_status(&a), "DEPLOYING");
    a.current_deployment = 0;
    a.error = err;
    assert_string_equal(kn_api_app_status(&a), "INVALID");
    a.error = none;
    a.orphaned_at = 5;
    assert_string_equal(kn_api_app_status(&a), "ORPHANED");
}

static void test_stages_merge(void **state)
{
    json_t *pipeline = json_loads("[{\"index\": 0, \"kind\": \"CANARY_ROLLOUT\"},"
                                  " {\"index\": 1, \"kind\": \"WAIT_APPROVAL\"},"
                                  " {\"index\": 2, \"kind\": \"PRIMARY_ROLLOUT\"}]",
                                  0, NULL);
    /* as the store has them: stage 0 done, an approval record of stage 1 without its row (name
     * ""), the rollback at index 3 */
    json_t *stages = json_loads("[{\"index\": 0, \"name\": \"CANARY_ROLLOUT\", \"status\": "
                                "\"SUCCESS\"}, {\"index\": 1, \"name\": \"\", \"status\": "
                                "\"NOT_STARTED\", \"approvals\": [{\"who\": \"alice\"}]},"
                                " {\"index\": 3, \"name\": \"ROLLBACK\", \"status\": "
                                "\"RUNNING\"}]",
                                0, NULL);
    json_t *all, *s;

    (void)state;
    assert_non_null(pipeline);
    assert_non_null(stages);
    all = kn_api_stages_merge(pipeline, stages);
    assert_int_equal(json_array_size(all), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "index")),
                         (json_int_t)i);
    }
    s = json_array_get(all, 1);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "WAIT_APPROVAL");
    assert_int_equal(json_array_size(json_object_get(s, "approvals")), 1);
    s = json_array_get(all, 2);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "PRIMARY_ROLLOUT");
    assert_string_equal(json_string_value(json_object_get(s, "status")), "NOT_STARTED");
    assert_int_equal(json_integer_value(json_object_get(s, "started_at")), 0);
    assert_int_equal(json_array_size(json_object_get(s, "approvals")), 0);
    assert_int_equal(json_array_size(json_object_get(s, "analysis")), 0);
    s = json_array_get(all, 3);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "ROLLBACK");
    json_decref(all);

    /* an empty pipeline keeps every recorded stage */
    json_decref(pipeline);
    pipeline = json_array();
    all = kn_api_stages_merge(pipeline, stages);
    assert_int_equal(json_array_size(all), 3);
    json_decref(all);
    json_decref(pipeline);
    json_decref(stages);
}

/* A background analysis (spec.analysis) is recorded after the rollback (index n + 1) and listed
 * in the pipeline: the rollback stays, each once, in the order of their indexes. */
static void test_stages_merge_background(void **state)
{
    json_t *pipeline = json_loads("[{\"index\": 0, \"kind\": \"CANARY_ROLLOUT\"},"
                                  " {\"index\": 1, \"kind\": \"WAIT\"},"
                                  " {\"index\": 2, \"kind\": \"PRIMARY_ROLLOUT\"},"
                                  " {\"index\": 4, \"kind\": \"ANALYSIS\", \"id\": "
                                  "\"background\", \"background\": true}]",
                                  0, NULL);
    json_t *stages = json_loads("[{\"index\": 0, \"name\": \"CANARY_ROLLOUT\", \"status\": "
                                "\"SUCCESS\"}, {\"index\": 1, \"name\": \"WAIT\", \"status\": "
                                "\"CANCELLED\"}, {\"index\": 3, \"name\": \"ROLLBACK\", "
                                "\"status\": \"SUCCESS\"}, {\"index\": 4, \"name\": "
                                "\"ANALYSIS\", \"status\": \"FAILURE\", \"analysis\": "
                                "[{\"check\": \"err\"}]}]",
                                0, NULL);
    json_t *all, *s;

    (void)state;
    assert_non_null(pipeline);
    assert_non_null(stages);
    all = kn_api_stages_merge(pipeline, stages);
    assert_int_equal(json_array_size(all), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "index")),
                         (json_int_t)i);
    }
    s = json_array_get(all, 3);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "ROLLBACK");
    assert_null(json_object_get(s, "background"));
    s = json_array_get(all, 4);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "ANALYSIS");
    assert_string_equal(json_string_value(json_object_get(s, "id")), "background");
    assert_string_equal(json_string_value(json_object_get(s, "status")), "FAILURE");
    assert_true(json_is_true(json_object_get(s, "background")));
    assert_int_equal(json_array_size(json_object_get(s, "analysis")), 1);
    json_decref(all);
    json_decref(pipeline);
    json_decref(stages);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_app_status_order),
        cmocka_unit_test(test_stages_merge),
        cmocka_unit_test(test_stages_merge_background),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
