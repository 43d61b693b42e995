/* Unit tests for controller/drift.c: how live state is told apart from the last good commit. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "drift.h"
#include "fake_platform.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/store.h"

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

/* ---- the loop: an answer that predates a deployment's end ---------------------------------- */

struct race {
    uv_loop_t loop;
    struct kn_store *store;
    struct kn_platform *platform;
    struct kn_drift *drift;
    long long running;  /* the deployment a rollback is finishing */
    int planned;        /* self-heal deployments recorded */
    int observed;
};

static struct kn_platform *race_platform_at(void *data, size_t i)
{
    struct race *r = data;
    return i == 0 ? r->platform : NULL;
}

static void race_planned(void *data)
{
    ((struct race *)data)->planned++;
}

/* The rollback ends while the platform is being read: the answer (a canary still running) was
 * true when it was asked, not when it comes back. */
static void race_on_observe(void *data, const struct kn_app_id *id)
{
    struct race *r = data;

    (void)id;
    r->observed++;
    if (r->running) {
        assert_int_equal(kn_store_deployment_set_status(r->store, r->running,
                                                        KN_DEPLOY_FAILURE, "rolled back", 2000),
                         0);
        r->running = 0;
    }
}

static long long race_deploy(struct kn_store *st, const char *commit, enum kn_deploy_status end)
{
    struct kn_deployment_new d = {.repo = "demo", .app = "web", .commit = commit,
                                  .author = "a", .message = "m", .strategy = "PIPELINE",
                                  .summary = "s"};
    long long id = 0;

    assert_int_equal(kn_store_deployment_add(st, &d, 1000, &id), 0);
    assert_int_equal(kn_store_deployment_set_status(st, id, KN_DEPLOY_RUNNING, NULL, 1000), 0);
    if (end != KN_DEPLOY_RUNNING) {
        assert_int_equal(kn_store_deployment_set_status(st, id, end, NULL, 1000), 0);
    }
    return id;
}

static void test_answer_from_before_a_rollback_ended(void **state)
{
    char *dir = kn_test_tmpdir();
    char *db = kn_asprintf("%s/kanaria.db", dir);
    struct race r;
    struct kn_platform_config pc = {.name = (char *)(uintptr_t) "plat",
                                    .ptype = &kn_platform_fake};
    struct kn_platform_deps pdeps;
    struct kn_drift_deps ddeps;
    struct kn_app_state a = {0};
    struct kn_error err;

    (void)state;
    memset(&r, 0, sizeof(r));
    uv_loop_init(&r.loop);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&r.store, db, &err), 0);
    assert_int_equal(kn_store_app_seen(r.store, "demo", "web", "web", GOOD, NULL), 0);
    race_deploy(r.store, GOOD, KN_DEPLOY_SUCCESS);
    assert_int_equal(kn_store_app_set_self_heal(r.store, "demo", "web", 1), 0);
    r.running = race_deploy(r.store, OTHER, KN_DEPLOY_RUNNING);

    pdeps = (struct kn_platform_deps){.loop = &r.loop, .data_dir = dir, .store = r.store};
    assert_int_equal(kn_platform_new(&r.platform, &pdeps, &pc, &err), 0);
    kn_fake_platform_last->live = in_sync();
    kn_fake_platform_last->live.variant[KN_VARIANT_CANARY].instances = 1; /* not removed yet */
    kn_fake_platform_last->on_observe = race_on_observe;
    kn_fake_platform_last->data = &r;

    ddeps = (struct kn_drift_deps){.loop = &r.loop, .store = r.store, .interval_ms = 3600000,
                                   .platform_at = race_platform_at, .planned = race_planned,
                                   .data = &r};
    assert_int_equal(kn_drift_new(&r.drift, &ddeps), 0);
    kn_drift_check(r.drift);
    /* until the answer is judged (kn_drift_live then has it), 10 s at most */
    for (int i = 0; i < 1000; i++) {
        struct kn_live_state live;
        if (kn_drift_live(r.drift, "demo", "web", &live) == 0) {
            kn_live_state_release(&live);
            break;
        }
        uv_run(&r.loop, UV_RUN_NOWAIT);
        uv_sleep(10);
    }
    kn_drift_stop(r.drift);
    uv_run(&r.loop, UV_RUN_DEFAULT);

    assert_int_equal(r.observed, 1);
    assert_int_equal(r.running, 0); /* the rollback ended while the platform was read */
    /* the stale answer is kept for the API but neither recorded as drift nor healed */
    assert_int_equal(r.planned, 0);
    assert_int_equal(kn_store_app_get(r.store, "demo", "web", &a), 0);
    assert_string_equal(a.drift, "");
    assert_int_equal(a.current_deployment, 0);
    kn_app_state_release(&a);

    kn_drift_free(r.drift);
    kn_platform_free(r.platform);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    kn_store_close(r.store);
    kn_test_rmtree(dir);
    free(db);
    free(dir);
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
        cmocka_unit_test(test_answer_from_before_a_rollback_ended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
