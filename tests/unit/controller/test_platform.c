/*
 * Unit tests of the platform front end (controller/platforms/platform.c) over the fake provider
 * (tests/fakes/fake_platform.c): per-app order, apps side by side, capability skips, deadlines,
 * cancels, progress lines and the memo. Every loop run is bounded (RUN_BOUND_MS): a bound that
 * fails the test when the expected state never comes, not a speed assertion.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fake_platform.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/store.h"

#define RUN_BOUND_MS 10000

/* What a caller saw of one call. */
struct seen {
    int ran;        /* callbacks (must end at 1) */
    int status;
    char message[256];
    char lines[8][128];
    int nlines;
    int inside;     /* a callback ran while the caller was inside its own call */
};

struct fixture {
    char *dir;
    uv_loop_t loop;
    struct kn_store *store;
    struct kn_platform *p;
    struct kn_fake_platform *fake;
    char log[1024]; /* "start APP LINE; end APP LINE; ..." in the provider's order */
    int asking;     /* the test is inside a kn_platform_* call */
};

static struct fixture *current;

static void on_call(void *data, const struct kn_app_id *id, const char *line)
{
    struct fixture *f = data;
    size_t len = strlen(f->log);

    snprintf(f->log + len, sizeof(f->log) - len, "start %s/%s %s; ", id->repository, id->app,
             line);
}

static void on_done(void *data, const struct kn_app_id *id, const char *line, int status)
{
    struct fixture *f = data;
    size_t len = strlen(f->log);

    snprintf(f->log + len, sizeof(f->log) - len, "end %s/%s %s %d; ", id->repository, id->app,
             line, status);
}

static void done_cb(int status, const char *message, void *data)
{
    struct seen *s = data;

    s->ran++;
    s->status = status;
    s->inside |= current->asking;
    snprintf(s->message, sizeof(s->message), "%s", message ? message : "");
}

static void progress_cb(const char *line, void *data)
{
    struct seen *s = data;

    s->inside |= current->asking;
    if (s->nlines < 8) {
        snprintf(s->lines[s->nlines++], sizeof(s->lines[0]), "%s", line);
    }
}

static void open_platform(struct fixture *f, const struct kn_platform_type *type)
{
    struct kn_platform_config pc = {.name = (char *)(uintptr_t) "plat", .ptype = type};
    struct kn_platform_deps deps = {.loop = &f->loop, .data_dir = f->dir, .store = f->store};
    struct kn_error err;

    kn_error_clear(&err);
    if (kn_platform_new(&f->p, &deps, &pc, &err) != 0) {
        fail_msg("platform: %s", err.msg);
    }
    f->fake = kn_fake_platform_last;
    f->fake->on_call = on_call;
    f->fake->on_done = on_done;
    f->fake->data = f;
}

static void close_platform(struct fixture *f)
{
    kn_platform_free(f->p);
    f->p = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    f->dir = kn_test_tmpdir();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_platform(f, &kn_platform_fake);
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->p) {
        close_platform(f);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    kn_store_close(f->store);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void bound_hit(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag is at least want, or RUN_BOUND_MS (then fail). */
static void run_until(struct fixture *f, const int *flag, int want)
{
    uv_timer_t bound;

    uv_timer_init(&f->loop, &bound);
    uv_timer_start(&bound, bound_hit, RUN_BOUND_MS, 0);
    while (*flag < want && uv_is_active((uv_handle_t *)&bound)) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&bound, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (*flag < want) {
        fail_msg("not there within %d ms (log: %s)", RUN_BOUND_MS, f->log);
    }
}

static json_t *manifests(void)
{
    return json_pack("[{s:s, s:{s:[s]}}]", "kind", "LocalService", "spec", "command",
                     "/opt/web/v1/run");
}

static struct kn_platform_req req_for(const char *repo, const char *app, struct seen *s)
{
    struct kn_platform_req r = {
        .id = {.repository = repo, .app = app},
        .deployment_id = 42,
        .stage_index = 3,
        .stage_name = "CANARY_ROLLOUT",
        .done = done_cb,
        .progress = progress_cb,
        .data = s,
    };
    return r;
}

static int apply(struct fixture *f, const char *repo, const char *app, enum kn_variant v,
                 long long timeout_ms, struct seen *s, struct kn_platform_op **op)
{
    json_t *m = manifests();
    struct kn_platform_req r = req_for(repo, app, s);
    struct kn_variant_spec spec = {.variant = v, .commit = "1111111aaaa", .manifests = m};
    int rc;

    r.timeout_ms = timeout_ms;
    f->asking = 1;
    rc = kn_platform_apply(f->p, &r, &spec, op);
    f->asking = 0;
    json_decref(m);
    return rc;
}

/* One app's calls reach the provider one at a time, in the order asked; callbacks never run
 * inside the asking call; the token names deployment, stage and operation. */
static void test_one_app_in_order(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0}, b = {0};

    f->fake->rule[KN_FAKE_APPLY].delay_ms = 50;
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_CANARY, 0, &a, NULL), 0);
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &b, NULL), 0);
    assert_int_equal(a.ran + b.ran, 0);
    run_until(f, &b.ran, 1);
    assert_int_equal(a.ran, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(a.inside + b.inside, 0);
    assert_string_equal(f->log, "start deploy/web apply canary 1111111 v1; "
                                "end deploy/web apply canary 1111111 v1 0; "
                                "start deploy/web apply primary 1111111 v1; "
                                "end deploy/web apply primary 1111111 v1 0; ");
    assert_int_equal(f->fake->max_active, 1);
    assert_string_equal(f->fake->last_token, "d42-s3-apply-primary");
}

/* Two apps side by side: A's apply that does not end does not hold B's back, nor does the same
 * app name in another repository (another app). */
static void test_apps_side_by_side(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0}, b = {0}, c = {0};
    struct kn_platform_op *op = NULL;

    f->fake->rule[KN_FAKE_APPLY] = (struct kn_fake_rule){.script = "h"};
    assert_int_equal(apply(f, "deploy", "a", KN_VARIANT_PRIMARY, 0, &a, &op), 0);
    assert_int_equal(apply(f, "deploy", "b", KN_VARIANT_PRIMARY, 0, &b, NULL), 0);
    assert_int_equal(apply(f, "other", "a", KN_VARIANT_PRIMARY, 0, &c, NULL), 0);
    run_until(f, &c.ran, 1);
    run_until(f, &b.ran, 1);
    assert_int_equal(b.status, 0);
    assert_int_equal(c.status, 0);
    assert_int_equal(a.ran, 0); /* still under way */
    assert_int_equal(f->fake->max_active, 3);
    kn_platform_cancel(op);
    run_until(f, &a.ran, 1);
    assert_int_equal(a.status, KN_ECANCELLED);
    assert_int_equal(f->fake->cancels, 1);
}

/* A type without canaries or traffic splitting: SYNC's and ROLLBACK's "remove any canary" and
 * "all traffic to the primary" succeed at once with a line saying so, for any caller; a split it
 * cannot make is refused. */
static const struct kn_platform_type plain_type = {
    .name = "fake",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_LIVE,
    .create = NULL, /* set from kn_platform_fake in the test */
};

static void test_capability_skips(void **state)
{
    struct fixture *f = *state;
    struct kn_platform_type plain = plain_type;
    struct seen rm = {0}, w = {0};
    struct kn_platform_req r;
    static const double all_primary[KN_VARIANT_COUNT] = {100, 0, 0};
    static const double split[KN_VARIANT_COUNT] = {90, 10, 0};

    close_platform(f);
    plain.create = kn_platform_fake.create;
    plain.ops = kn_platform_fake.ops;
    open_platform(f, &plain);
    r = req_for("deploy", "web", &rm);
    f->asking = 1;
    assert_int_equal(kn_platform_remove(f->p, &r, KN_VARIANT_CANARY, NULL), 0);
    r = req_for("deploy", "web", &w);
    assert_int_equal(kn_platform_set_weights(f->p, &r, all_primary, NULL), 0);
    assert_int_equal(kn_platform_set_weights(f->p, &r, split, NULL), KN_EUNSUPPORTED);
    f->asking = 0;
    run_until(f, &w.ran, 1);
    run_until(f, &rm.ran, 1);
    assert_int_equal(rm.status, 0);
    assert_int_equal(w.status, 0);
    assert_int_equal(rm.nlines, 1);
    assert_string_equal(rm.lines[0], "skipped: platform 'plat' (fake) has no canary to remove "
                                     "(canary variants)");
    assert_int_equal(w.nlines, 1);
    assert_string_equal(w.lines[0], "skipped: platform 'plat' (fake) sends all traffic to the "
                                    "primary (no traffic splitting)");
    assert_int_equal(rm.inside + w.inside, 0);
    assert_string_equal(f->log, ""); /* the provider was never asked */
}

/* Routes: refused on a type without the capability; copied for the provider; and a split that
 * puts everything on the primary reaches the provider as set_routes with none (so promotion and
 * rollback take the routes away), while another split stays set_weights. */
static char routes_seen[256];

static int record_routes(void *self, struct kn_platform_call *call,
                         const double percent[KN_VARIANT_COUNT], const struct kn_routes *routes)
{
    size_t len = strlen(routes_seen);

    (void)self;
    snprintf(routes_seen + len, sizeof(routes_seen) - len, "%g/%g:%zu", percent[0], percent[1],
             routes->nmatches);
    for (size_t i = 0; i < routes->nmatches; i++) {
        len = strlen(routes_seen);
        snprintf(routes_seen + len, sizeof(routes_seen) - len, " %s %s%s%s",
                 routes->matches[i].field == KN_ROUTE_COOKIE ? "cookie" : "header",
                 routes->matches[i].name, routes->matches[i].regex ? "~" : "=",
                 routes->matches[i].value);
    }
    len = strlen(routes_seen);
    snprintf(routes_seen + len, sizeof(routes_seen) - len, "; ");
    kn_platform_call_done(call, 0, NULL);
    return 0;
}

static void test_routes(void **state)
{
    struct fixture *f = *state;
    struct kn_platform_type routed = kn_platform_fake;
    struct kn_platform_provider_ops ops = *kn_platform_fake.ops;
    struct seen a = {0}, b = {0}, c = {0};
    struct kn_platform_req r = req_for("deploy", "web", &a);
    char name[16] = "X-Canary", value[16] = "always";
    struct kn_route_match m = {KN_ROUTE_HEADER, name, value, 0};
    struct kn_routes routes = {.matches = &m, .nmatches = 1};
    struct kn_routes mirror = {.mirror = 10};
    static const double split[KN_VARIANT_COUNT] = {90, 10, 0};
    static const double all_primary[KN_VARIANT_COUNT] = {100, 0, 0};

    /* the fake type declares neither capability */
    assert_int_equal(kn_platform_set_routes(f->p, &r, split, &routes, NULL), KN_EUNSUPPORTED);
    assert_int_equal(kn_platform_set_routes(f->p, &r, split, &mirror, NULL), KN_EUNSUPPORTED);
    close_platform(f);
    routed.caps |= KN_PLATFORM_HEADER_ROUTING;
    ops.set_routes = record_routes;
    routed.ops = &ops;
    open_platform(f, &routed);
    routes_seen[0] = '\0';
    assert_int_equal(kn_platform_set_routes(f->p, &r, split, &mirror, NULL), KN_EUNSUPPORTED);
    m.name = "";
    assert_int_equal(kn_platform_set_routes(f->p, &r, split, &routes, NULL), KN_EINVAL);
    m.name = name;
    assert_int_equal(kn_platform_set_routes(f->p, &r, split, &routes, NULL), 0);
    strcpy(name, "gone"); /* the front end keeps its own copy */
    r = req_for("deploy", "web", &b);
    assert_int_equal(kn_platform_set_weights(f->p, &r, split, NULL), 0);
    r = req_for("deploy", "web", &c);
    assert_int_equal(kn_platform_set_weights(f->p, &r, all_primary, NULL), 0);
    run_until(f, &c.ran, 1);
    assert_int_equal(a.status + b.status + c.status, 0);
    assert_string_equal(routes_seen, "90/10:1 header X-Canary=always; 100/0:0; ");
    assert_string_equal(f->log, "start deploy/web weights 90/10/0; end deploy/web weights "
                                "90/10/0 0; ");
}

/* Percents off the type's weight step are refused before anything is asked. */
static void test_weight_step(void **state)
{
    struct fixture *f = *state;
    struct kn_platform_type stepped = kn_platform_fake;
    struct seen w = {0};
    struct kn_platform_req r = req_for("deploy", "web", &w);
    static const double odd[KN_VARIANT_COUNT] = {87.5, 12.5, 0};
    static const double even[KN_VARIANT_COUNT] = {85, 15, 0};

    close_platform(f);
    stepped.weight_step = 5;
    open_platform(f, &stepped);
    assert_int_equal(kn_platform_set_weights(f->p, &r, odd, NULL), KN_EINVAL);
    assert_int_equal(kn_platform_set_weights(f->p, &r, even, NULL), 0);
    run_until(f, &w.ran, 1);
    assert_int_equal(w.status, 0);
    assert_string_equal(f->log, "start deploy/web weights 85/15/0; end deploy/web weights "
                                "85/15/0 0; ");
}

/* A call past its deadline: the provider's cancel is called, the caller gets KN_ETIMEDOUT once,
 * and the app's next call runs after the provider ended the old one. */
static void test_deadline(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0}, b = {0};

    f->fake->rule[KN_FAKE_APPLY] = (struct kn_fake_rule){.script = "h"};
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_CANARY, 50, &a, NULL), 0);
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &b, NULL), 0);
    run_until(f, &b.ran, 1);
    assert_int_equal(a.ran, 1);
    assert_int_equal(a.status, KN_ETIMEDOUT);
    assert_string_equal(a.message, "apply did not end within its deadline");
    assert_int_equal(f->fake->cancels, 1);
    assert_string_equal(f->fake->cancelled, "apply canary 1111111 v1");
    assert_int_equal(b.status, 0);
    assert_non_null(strstr(f->log, "end deploy/web apply canary 1111111 v1 -"));
    assert_true(strstr(f->log, "end deploy/web apply canary") <
                strstr(f->log, "start deploy/web apply primary"));
}

/* A call that waits behind another is cancelled at once and never reaches the provider. */
static void test_cancel_waiting(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0}, b = {0};
    struct kn_platform_op *op_a = NULL, *op_b = NULL;

    f->fake->rule[KN_FAKE_APPLY] = (struct kn_fake_rule){.script = "h"};
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_CANARY, 0, &a, &op_a), 0);
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &b, &op_b), 0);
    f->asking = 1;
    kn_platform_cancel(op_b);
    f->asking = 0;
    run_until(f, &b.ran, 1);
    assert_int_equal(b.status, KN_ECANCELLED);
    assert_int_equal(b.inside, 0);
    assert_int_equal(f->fake->calls[KN_FAKE_APPLY], 1);
    assert_int_equal(f->fake->cancels, 0);
    kn_platform_cancel(op_a);
    run_until(f, &a.ran, 1);
    assert_int_equal(a.status, KN_ECANCELLED);
    assert_int_equal(f->fake->calls[KN_FAKE_APPLY], 1);
}

/* Repeated progress lines are folded; they reach the caller after its call returned. */
static void test_progress_folded(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0};

    f->fake->say = "1/2 pods ready";
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &a, NULL), 0);
    run_until(f, &a.ran, 1);
    assert_int_equal(a.nlines, 1);
    assert_string_equal(a.lines[0], "1/2 pods ready");
    assert_int_equal(a.inside, 0);
}

/* The memo is kept in the store: a new front end (kanaria restarted) reads what the old one's
 * provider wrote; it is the app's, not another repository's. */
static void test_memo_across_restart(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0}, b = {0}, c = {0};
    char *db = kn_asprintf("%s/kanaria.db", f->dir);
    struct kn_error err;

    close_platform(f);
    assert_int_equal(kn_store_open(&f->store, db, &err), 0);
    free(db);
    open_platform(f, &kn_platform_fake);
    f->fake->memo_key = "weights";
    f->fake->memo_value = "primary=90";
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &a, NULL), 0);
    run_until(f, &a.ran, 1);
    assert_null(f->fake->memo_read);
    close_platform(f);

    open_platform(f, &kn_platform_fake);
    f->fake->memo_key = "weights";
    f->fake->memo_value = "primary=100";
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &b, NULL), 0);
    run_until(f, &b.ran, 1);
    assert_non_null(f->fake->memo_read);
    assert_string_equal(f->fake->memo_read, "primary=90");
    assert_int_equal(apply(f, "other", "web", KN_VARIANT_PRIMARY, 0, &c, NULL), 0);
    run_until(f, &c.ran, 1);
    assert_null(f->fake->memo_read);
}

/* kanaria stops: every caller hears KN_ECANCELLED once, waiting or running. */
static void test_free_ends_calls(void **state)
{
    struct fixture *f = *state;
    struct seen a = {0}, b = {0};

    f->fake->rule[KN_FAKE_APPLY] = (struct kn_fake_rule){.script = "h"};
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_CANARY, 0, &a, NULL), 0);
    assert_int_equal(apply(f, "deploy", "web", KN_VARIANT_PRIMARY, 0, &b, NULL), 0);
    close_platform(f);
    assert_int_equal(a.ran, 1);
    assert_int_equal(b.ran, 1);
    assert_int_equal(a.status, KN_ECANCELLED);
    assert_int_equal(b.status, KN_ECANCELLED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_app_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apps_side_by_side, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capability_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_folded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memo_across_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_ends_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
