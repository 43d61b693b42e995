/* Unit tests for controller/drift.c: how live state is told apart from the last good commit. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "drift.h"
#include "kanaria/alloc.h"

#define GOOD "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OTHER "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct kn_live_state in_sync(void)
{
    struct kn_live_state l;

    memset(&l, 0, sizeof(l));
    l.variant[KN_VARIANT_PRIMARY].instances = 2;
    l.variant[KN_VARIANT_PRIMARY].healthy = 2;
    l.variant[KN_VARIANT_PRIMARY].weight = 100;
    strcpy(l.variant[KN_VARIANT_PRIMARY].commit, GOOD);
    return l;
}

static void test_in_sync(void **state)
{
    struct kn_live_state l = in_sync();
    char out[512];

    (void)state;
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 0);
    assert_string_equal(out, "");
    /* a commit the platform does not know is not a difference */
    l.variant[KN_VARIANT_PRIMARY].commit[0] = '\0';
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 0);
}

static void test_weights(void **state)
{
    struct kn_live_state l = in_sync();
    char out[512];

    (void)state;
    l.variant[KN_VARIANT_PRIMARY].weight = 80;
    l.variant[KN_VARIANT_CANARY].weight = 20;
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "traffic is primary 80%, canary 20%, baseline 0% (expected all on "
                             "the primary)");
}

static void test_variants_health_commit(void **state)
{
    struct kn_live_state l = in_sync();
    char out[512];

    (void)state;
    l.variant[KN_VARIANT_PRIMARY].healthy = 1;
    strcpy(l.variant[KN_VARIANT_PRIMARY].commit, OTHER);
    l.variant[KN_VARIANT_CANARY].instances = 1;
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "1 of 2 primary instances unhealthy; the primary runs 2222222, not "
                             "the last good 1111111; a canary runs (1 instances)");
}

static void test_nothing_runs_or_unknown(void **state)
{
    struct kn_live_state l;
    char out[512];

    (void)state;
    memset(&l, 0, sizeof(l));
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "no primary instance runs");

    l = in_sync();
    l.error = (char *)(uintptr_t) "haproxy is not reachable at /run/haproxy.sock";
    l.variant[KN_VARIANT_PRIMARY].weight = 0;
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "live state unknown: haproxy is not reachable at /run/haproxy.sock");
}

static void test_long_text_is_cut(void **state)
{
    struct kn_live_state l = in_sync();
    char out[24];

    (void)state;
    l.variant[KN_VARIANT_PRIMARY].healthy = 0;
    l.variant[KN_VARIANT_CANARY].instances = 3;
    l.variant[KN_VARIANT_BASELINE].instances = 3;
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_int_equal(strlen(out), sizeof(out) - 1);
}

/* One primary server out of four in maintenance: the shares stay all on the primary; the
 * platform's drift line of each resource says what differs (the local platform's wording is
 * tested in test_haproxy). */
static void test_resources(void **state)
{
    struct kn_live_state l = in_sync();
    char out[512];

    (void)state;
    kn_live_state_add(&l, "server", "primary-1", "ready, weight 64", NULL);
    kn_live_state_add(&l, "server", "primary-2", "ready, weight 0",
                      "primary-2 weight 0 (expected 64)");
    kn_live_state_add(&l, "server", "primary-3", "maint, weight 64",
                      "primary-3 is in maintenance (expected ready)");
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "primary-2 weight 0 (expected 64); primary-3 is in maintenance "
                             "(expected ready)");
    /* resources read while the platform could not be read are not compared */
    l.error = kn_strdup("haproxy is not reachable at /run/haproxy.sock");
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "live state unknown: haproxy is not reachable at /run/haproxy.sock");
    kn_live_state_release(&l);
}

/* A copy owns its own strings. */
static void test_live_copy(void **state)
{
    struct kn_live_state a = in_sync(), b;

    (void)state;
    a.error = kn_strdup("x");
    kn_live_state_add(&a, "server", "primary-1", "ready", "d");
    kn_live_state_copy(&b, &a);
    kn_live_state_release(&a);
    assert_string_equal(b.error, "x");
    assert_int_equal(b.nresources, 1);
    assert_string_equal(b.resources[0].drift, "d");
    assert_null(a.resources);
    kn_live_state_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_sync),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_variants_health_commit),
        cmocka_unit_test(test_nothing_runs_or_unknown),
        cmocka_unit_test(test_long_text_is_cut),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_live_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
