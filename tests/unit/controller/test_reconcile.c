/*
 * The reconcile loop's timing rules: capped exponential backoff and poll jitter.
 */
#include "reconcile.h"
#include "testutil.h"

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(kn_reconcile_backoff_ms(1), 1000);
    assert_int_equal(kn_reconcile_backoff_ms(2), 2000);
    assert_int_equal(kn_reconcile_backoff_ms(3), 4000);
    assert_int_equal(kn_reconcile_backoff_ms(9), 256000);
    assert_int_equal(kn_reconcile_backoff_ms(10), 300000);
    assert_int_equal(kn_reconcile_backoff_ms(1000), 300000);
}

static void test_jitter(void **state)
{
    (void)state;
    assert_int_equal(kn_reconcile_jitter_ms(30000, 0.5), 30000);
    assert_int_equal(kn_reconcile_jitter_ms(30000, 0.0), 27000);
    assert_true(kn_reconcile_jitter_ms(30000, 0.999999) <= 33000);
    assert_true(kn_reconcile_jitter_ms(30000, 0.999999) > 32990);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
