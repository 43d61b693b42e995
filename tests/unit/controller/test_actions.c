/*
 * Component tests of controller/actions.c for retry and promote: a real store in a temporary
 * folder, no engine for retry (it only records a deployment) and for promote's refusals before
 * the engine is asked (the engine's own refusals are in tests/unit/stages/test_engine.c).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/store.h"

#define REPO "deploy"
#define C1 "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2 "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define NOW 1795635601123LL

struct fixture {
    char *dir;
    uv_loop_t loop;
    struct kn_store *st;
    struct kn_actions *actions;
    long long now;
};

static const struct kn_actor alice = {.name = "alice", .role = KN_ROLE_OPERATOR,
                                      .from = "127.0.0.1:5555"};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    struct kn_actions_deps deps = {0};
    struct kn_error err;
    char *db;

    f->dir = kn_test_tmpdir();
    db = kn_asprintf("%s/kanaria.db", f->dir);
    kn_error_clear(&err);
    if (kn_store_open(&f->st, db, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    free(db);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    deps.loop = &f->loop;
    deps.store = f->st;
    deps.data_dir = f->dir;
    assert_int_equal(kn_actions_new(&f->actions, &deps), 0);
    f->now = NOW;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_actions_free(f->actions);
    kn_store_close(f->st);
    uv_loop_close(&f->loop);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* A deployment of `commit` taken to `status` (through RUNNING unless PLANNED). */
static long long deploy(struct fixture *f, const char *commit, const char *strategy,
                        enum kn_deploy_status status)
{
    struct kn_deployment_new d = {
        .repo = REPO,
        .app = "hello",
        .commit = commit,
        .author = "Dev <dev@example.com>",
        .message = "change the service",
        .strategy = strategy,
        .summary = "test plan",
        .plan_json = "{\"diff\": \"+v2\"}",
        .trigger = "sync by bob", /* deployed again whatever came before */
    };
    long long id = 0;

    assert_int_equal(kn_store_app_seen(f->st, REPO, "hello", "hello/app.kanaria.yaml", commit, ""),
                     0);
    assert_int_equal(kn_store_deployment_add(f->st, &d, ++f->now, &id), 0);
    if (status != KN_DEPLOY_PLANNED) {
        assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_RUNNING, NULL,
                                                        ++f->now),
                         0);
    }
    if (status != KN_DEPLOY_PLANNED && status != KN_DEPLOY_RUNNING) {
        assert_int_equal(kn_store_deployment_set_status(f->st, id, status, "stage x failed",
                                                        ++f->now),
                         0);
    }
    return id;
}

struct event_find {
    const char *type;
    char message[1024];
    char actor[128];
    long long deployment;
};

static int find_event(const struct kn_event *e, void *data)
{
    struct event_find *x = data;

    if (strcmp(e->type, x->type) == 0) {
        snprintf(x->message, sizeof(x->message), "%s", e->message);
        snprintf(x->actor, sizeof(x->actor), "%s", e->actor);
        x->deployment = e->deployment;
    }
    return 0;
}

static void test_retry_refusals(void **state)
{
    struct fixture *f = *state;
    struct kn_action_result res;
    struct kn_error err;
    long long id;

    kn_error_clear(&err);
    assert_int_equal(kn_actions_retry(f->actions, REPO, "nope", &alice, &res, &err),
                     KN_ENOTFOUND);
    assert_string_equal(err.msg, "no app 'nope' in repository 'deploy'");

    /* the last deployment succeeded: nothing to retry */
    deploy(f, C1, "QUICK_SYNC", KN_DEPLOY_FAILURE);
    id = deploy(f, C2, "PIPELINE", KN_DEPLOY_SUCCESS);
    kn_error_clear(&err);
    assert_int_equal(kn_actions_retry(f->actions, REPO, "hello", &alice, &res, &err), KN_EEXISTS);
    assert_string_equal(err.msg, "the last deployment of 'hello' (2, 2222222) is SUCCESS: retry "
                                 "runs again only a deployment that failed or was rolled back");

    /* a deployment in progress */
    assert_int_equal(id, 2);
    deploy(f, C1, "PIPELINE", KN_DEPLOY_RUNNING);
    kn_error_clear(&err);
    assert_int_equal(kn_actions_retry(f->actions, REPO, "hello", &alice, &res, &err), KN_EEXISTS);
    assert_string_equal(err.msg, "deployment 3 of 'hello' (1111111) is RUNNING: wait for it or "
                                 "cancel it first");
}

static void test_retry_plans_the_failed_revision(void **state)
{
    struct fixture *f = *state;
    struct kn_action_result res;
    struct kn_deployment d = {0};
    struct kn_error err;
    struct event_find x = {.type = "RETRY_REQUESTED"};
    char *plan;
    long long failed;

    deploy(f, C1, "QUICK_SYNC", KN_DEPLOY_SUCCESS);
    failed = deploy(f, C2, "PIPELINE", KN_DEPLOY_FAILURE);
    kn_error_clear(&err);
    assert_int_equal(kn_actions_retry(f->actions, REPO, "hello", &alice, &res, &err), 0);
    assert_true(res.deployment > failed);
    assert_string_equal(res.commit, C2);

    assert_int_equal(kn_store_deployment_get(f->st, res.deployment, &d), 0);
    assert_string_equal(d.commit, C2);
    assert_string_equal(d.strategy, "PIPELINE");
    assert_string_equal(d.trigger, "retry by alice");
    assert_int_equal(d.status, KN_DEPLOY_PLANNED);
    assert_string_equal(d.summary, "pipeline: retry of deployment 2 (2222222) by alice");
    kn_deployment_release(&d);
    plan = kn_store_deployment_plan(f->st, res.deployment);
    assert_non_null(plan);
    assert_non_null(strstr(plan, "+v2"));
    free(plan);

    assert_int_equal(kn_store_events(f->st, 0, 0, find_event, &x), 0);
    assert_string_equal(x.actor, "alice");
    assert_int_equal(x.deployment, res.deployment);
    assert_string_equal(x.message, "retry 2222222 of deployment 2 (deployment 3) from "
                                   "127.0.0.1:5555");

    /* and not twice: the retry is the last deployment now, and it has not failed */
    kn_error_clear(&err);
    assert_int_equal(kn_actions_retry(f->actions, REPO, "hello", &alice, &res, &err), KN_EEXISTS);
}

static void test_promote_refusals(void **state)
{
    struct fixture *f = *state;
    struct kn_action_result res;
    struct kn_error err;
    long long id;

    kn_error_clear(&err);
    assert_int_equal(kn_actions_promote(f->actions, 42, &alice, &res, &err), KN_ENOTFOUND);
    assert_string_equal(err.msg, "no deployment 42");

    id = deploy(f, C1, "PIPELINE", KN_DEPLOY_FAILURE);
    kn_error_clear(&err);
    assert_int_equal(kn_actions_promote(f->actions, id, &alice, &res, &err), KN_EEXISTS);
    assert_string_equal(err.msg, "deployment 1 of 'hello' is FAILURE: only a running pipeline "
                                 "is promoted");

    id = deploy(f, C2, "PIPELINE", KN_DEPLOY_RUNNING);
    kn_error_clear(&err);
    assert_int_equal(kn_actions_promote(f->actions, id, &alice, &res, &err), KN_ELIMIT);
    assert_string_equal(err.msg, "promoting is not available");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_plans_the_failed_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_refusals, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
