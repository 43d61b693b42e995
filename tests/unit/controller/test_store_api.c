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

struct whole {
    char *query;
    char *values;
    int count;
};

static int keep_analysis(const struct kn_analysis_record *r, void *data)
{
    struct whole *w = data;

    w->query = kn_strdup(r->query);
    w->values = kn_strdup(r->values_json);
    w->count++;
    return 0;
}

/* The values of "canary" and "primary", n samples each, as the analysis stage writes them. */
static char *samples_json(int n)
{
    struct kn_buf b;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_addf(&b, "{\"canary\": [");
    for (int i = 0; i < n; i++) {
        kn_buf_addf(&b, "%s%d.%03d", i ? ", " : "", i, i % 997);
    }
    kn_buf_addf(&b, "], \"primary\": [");
    for (int i = 0; i < n; i++) {
        kn_buf_addf(&b, "%s%d.%03d", i ? ", " : "", n - i, i % 991);
    }
    kn_buf_addf(&b, "]}");
    kn_buf_addch(&b, '\0');
    return kn_buf_detach(&b, NULL);
}

/* An analysis of 1000 samples per variant, and a query of 5000 bytes, come back whole (they were
 * cut at 4096 and 2048 bytes: about 80 samples per variant). */
static void test_analysis_thousand_samples(void **state)
{
    struct fixture *f = *state;
    char *values = samples_json(1000);
    char *query = kn_calloc(1, 5001);
    struct whole w = {0};

    memset(query, 'q', 5000);
    assert_true(strlen(values) > 10000);
    assert_int_equal(kn_store_analysis_add(f->st, f->d1, 2, "error-rate", query, values, "< 0.05",
                                           "PASS", 10),
                     0);
    assert_int_equal(kn_store_analysis_list(f->st, f->d1, keep_analysis, &w), 0);
    assert_int_equal(w.count, 1);
    assert_string_equal(w.values, values);
    assert_string_equal(w.query, query);
    free(w.query);
    free(w.values);
    free(query);
    free(values);
}

static int keep_event(const struct kn_event *e, void *data)
{
    struct kn_event *out = data;

    kn_event_release(out);
    kn_event_copy(out, e);
    return 0;
}

/* A deployment's message and reason and an event's message of 5000 bytes come back whole. */
static void test_long_texts(void **state)
{
    struct fixture *f = *state;
    char *text = kn_calloc(1, 5001);
    struct kn_deployment d = {0}, copy;
    struct kn_event e = {0};
    struct kn_deployment_new nd = {.repo = "demo",
                                   .app = "long",
                                   .commit = C1,
                                   .author = "dev",
                                   .message = text,
                                   .strategy = "QUICK_SYNC",
                                   .summary = "s"};
    long long id = 0;

    memset(text, 'm', 5000);
    assert_int_equal(kn_store_deployment_add(f->st, &nd, T_NOW_MS, &id), 0);
    text[0] = 'r';
    assert_int_equal(
        kn_store_deployment_set_status(f->st, id, KN_DEPLOY_RUNNING, text, T_NOW_MS + 1), 0);
    assert_int_equal(kn_store_deployment_get(f->st, id, &d), 0);
    assert_int_equal(strlen(d.message), 5000);
    assert_string_equal(d.reason, text);
    kn_deployment_copy(&copy, &d);
    kn_deployment_release(&d);
    kn_deployment_release(&d); /* twice is safe */
    assert_null(d.message);
    assert_string_equal(copy.reason, text);
    kn_deployment_release(&copy);
    text[0] = 'e';
    assert_int_equal(kn_store_event_add(f->st, "NOTE", "demo", "long", id, "kanaria", text,
                                        T_NOW_MS + 2),
                     0);
    assert_int_equal(kn_store_events(f->st, 0, 0, keep_event, &e), 0);
    assert_string_equal(e.message, text);
    kn_event_release(&e);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployment_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_thousand_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_texts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
