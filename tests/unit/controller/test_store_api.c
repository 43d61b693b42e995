/* Unit tests for the readers of controller/store.c that the API uses: stages, a deployment's
 * events, approval records and analysis records. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/store.h"

#define T_NOW_MS 1795635601123LL
#define C1       "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2       "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

struct fixture {
    char *dir;
    struct kn_store *st;
    long long d1, d2;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    char *path;
    struct kn_error err;
    struct kn_deployment_new d = {.repo = "demo",
                                  .app = "web",
                                  .commit = C1,
                                  .author = "dev",
                                  .message = "v1",
                                  .strategy = "PIPELINE",
                                  .summary = "v1"};

    f->dir = kn_test_tmpdir();
    path = kn_asprintf("%s/kanaria.db", f->dir);
    kn_error_clear(&err);
    if (kn_store_open(&f->st, path, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    free(path);
    kn_store_app_seen(f->st, "demo", "web", "web/app.kanaria.yaml", C1, "");
    assert_int_equal(kn_store_deployment_add(f->st, &d, T_NOW_MS, &f->d1), 0);
    d.commit = C2;
    d.app = "api";
    assert_int_equal(kn_store_deployment_add(f->st, &d, T_NOW_MS, &f->d2), 0);
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

struct seen {
    char text[4096];
    int count;
};

static int add_stage(const struct kn_stage_state *s, void *data)
{
    struct seen *x = data;
    size_t n = strlen(x->text);

    snprintf(x->text + n, sizeof(x->text) - n, "%d:%s:%s:%lld:%lld;", s->index, s->name, s->status,
             s->started_at, s->finished_at);
    x->count++;
    return 0;
}

static void test_stages(void **state)
{
    struct fixture *f = *state;
    struct seen x = {0};

    kn_store_stage_set(f->st, f->d1, 1, "WAIT_APPROVAL", "RUNNING", 200);
    kn_store_stage_set(f->st, f->d1, 0, "CANARY_ROLLOUT", "RUNNING", 100);
    kn_store_stage_set(f->st, f->d1, 0, "", "SUCCESS", 150);
    kn_store_stage_set(f->st, f->d2, 0, "SYNC", "RUNNING", 100);
    assert_int_equal(kn_store_stages(f->st, f->d1, add_stage, &x), 0);
    assert_string_equal(x.text, "0:CANARY_ROLLOUT:SUCCESS:100:150;1:WAIT_APPROVAL:RUNNING:200:0;");
    memset(&x, 0, sizeof(x));
    assert_int_equal(kn_store_stages(f->st, 999, add_stage, &x), 0);
    assert_int_equal(x.count, 0);
    assert_int_equal(kn_store_stages(f->st, f->d1, NULL, NULL), KN_EINVAL);
}

static int add_event(const struct kn_event *e, void *data)
{
    struct seen *x = data;
    size_t n = strlen(x->text);

    snprintf(x->text + n, sizeof(x->text) - n, "%s:%s:%s;", e->type, e->actor, e->message);
    x->count++;
    return 0;
}

static void test_deployment_events(void **state)
{
    struct fixture *f = *state;
    struct seen x = {0};

    kn_store_event_add(f->st, "STAGE_LOG", "demo", "web", f->d1, "kanaria", "one", T_NOW_MS);
    kn_store_event_add(f->st, "STAGE_LOG", "demo", "api", f->d2, "kanaria", "other", T_NOW_MS);
    kn_store_event_add(f->st, "APPROVED", "demo", "web", f->d1, "alice", "two", T_NOW_MS);
    kn_store_event_add(f->st, "STAGE_LOG", "demo", "web", f->d1, "kanaria", "three", T_NOW_MS);
    assert_int_equal(kn_store_deployment_events(f->st, f->d1, 0, add_event, &x), 0);
    /* the PLANNED event of kn_store_deployment_add comes first */
    assert_non_null(
        strstr(x.text, "STAGE_LOG:kanaria:one;APPROVED:alice:two;STAGE_LOG:kanaria:three;"));
    assert_null(strstr(x.text, "other"));
    /* a limit keeps the newest, still oldest first */
    memset(&x, 0, sizeof(x));
    assert_int_equal(kn_store_deployment_events(f->st, f->d1, 2, add_event, &x), 0);
    assert_string_equal(x.text, "APPROVED:alice:two;STAGE_LOG:kanaria:three;");
}

static int add_approval(const struct kn_approval_record *a, void *data)
{
    struct seen *x = data;
    size_t n = strlen(x->text);

    snprintf(x->text + n, sizeof(x->text) - n, "%d:%s:%s:%lld;", a->stage, a->who, a->decision,
             a->at);
    x->count++;
    return 0;
}

static void test_approval_list(void **state)
{
    struct fixture *f = *state;
    struct seen x = {0};

    kn_store_approval_add(f->st, f->d1, 3, "alice", "APPROVE", 10);
    kn_store_approval_add(f->st, f->d2, 3, "bob", "APPROVE", 11);
    kn_store_approval_add(f->st, f->d1, 5, "carol", "REJECT", 12);
    assert_int_equal(kn_store_approval_list(f->st, f->d1, add_approval, &x), 0);
    assert_string_equal(x.text, "3:alice:APPROVE:10;5:carol:REJECT:12;");
}

static int add_analysis(const struct kn_analysis_record *r, void *data)
{
    struct seen *x = data;
    size_t n = strlen(x->text);

    snprintf(x->text + n, sizeof(x->text) - n, "%d:%s:%s:%s:%s:%s;", r->stage, r->check, r->query,
             r->values_json, r->bound, r->verdict);
    x->count++;
    return 1; /* stop after the first */
}

static void test_analysis_list(void **state)
{
    struct fixture *f = *state;
    struct seen x = {0};

    kn_store_analysis_add(f->st, f->d1, 2, "error-rate", "sum(rate(x[1m]))", "[0.01]", "< 0.05",
                          "PASS", 10);
    kn_store_analysis_add(f->st, f->d1, 2, "latency", "q", "[0.3]", "< 0.2", "FAIL", 11);
    assert_int_equal(kn_store_analysis_list(f->st, f->d1, add_analysis, &x), 1);
    assert_string_equal(x.text, "2:error-rate:sum(rate(x[1m])):[0.01]:< 0.05:PASS;");
    assert_int_equal(x.count, 1);
    memset(&x, 0, sizeof(x));
    assert_int_equal(kn_store_analysis_list(f->st, f->d2, add_analysis, &x), 0);
    assert_int_equal(x.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployment_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
