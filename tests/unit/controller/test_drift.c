/* Unit tests for controller/drift.c: how live state is told apart from the last good commit. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "drift.h"

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
    strcpy(l.error, "haproxy is not reachable at /run/haproxy.sock");
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

static void server(struct kn_live_state *l, const char *name, const char *st, int weight,
                   int expected)
{
    struct kn_live_server *s = &l->servers[l->nservers++];

    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->state, sizeof(s->state), "%s", st);
    s->weight = weight;
    s->expected_weight = expected;
}

/* One primary server out of four in maintenance, another at weight 0: the shares stay all on
 * the primary, each server says what differs. */
static void test_servers(void **state)
{
    struct kn_live_state l = in_sync();
    char out[512];

    (void)state;
    server(&l, "primary-1", "ready", 64, 64);
    server(&l, "primary-2", "ready", 64, 64);
    server(&l, "primary-3", "ready", 64, 64);
    server(&l, "primary-4", "ready", 64, 64);
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 0);
    strcpy(l.servers[2].state, "maint");
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "primary-3 is in maintenance (expected ready)");
    strcpy(l.servers[2].state, "ready");
    l.servers[1].weight = 0;
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "primary-2 weight 0 (expected 64)");
    strcpy(l.servers[0].state, "drain");
    strcpy(l.servers[3].state, "missing");
    server(&l, "intruder", "ready", 10, -1);
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "primary-1 is in state drain (expected ready); primary-2 weight 0 "
                             "(expected 64); primary-4 is missing from haproxy (expected ready); "
                             "intruder is not a server kanaria registered");
    /* servers read while the platform could not be read are not compared */
    strcpy(l.error, "haproxy is not reachable at /run/haproxy.sock");
    assert_int_equal(kn_drift_describe(out, sizeof(out), &l, GOOD), 1);
    assert_string_equal(out, "live state unknown: haproxy is not reachable at /run/haproxy.sock");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_sync),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_variants_health_commit),
        cmocka_unit_test(test_nothing_runs_or_unknown),
        cmocka_unit_test(test_long_text_is_cut),
        cmocka_unit_test(test_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
