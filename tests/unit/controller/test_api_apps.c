/* Unit tests for controller/api/apps.c: the status word of an app, the first that applies of
 * DEPLOYING, INVALID, ORPHANED, OUT_OF_SYNC, ROLLED_BACK, SYNCED, NEW. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_app_status_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
