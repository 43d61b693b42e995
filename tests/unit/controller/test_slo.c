/*
 * SLOs (controller/slo.c, and spec.slos / errorBudgetPolicy of manifests/app.c): the numbers,
 * the error-budget gate's verdicts, and the config with its shared file. No clock, no loop.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_metrics.h"
#include "gate.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "slo.h"

/* ---- the numbers -------------------------------------------------------------------------- */

static void test_math(void **state)
{
    (void)state;
    assert_true(fabs(kn_slo_sli(999, 1000) - 0.999) < 1e-12);
    assert_true(kn_slo_sli(0, 0) == 1.0);      /* no events: nothing failed */
    assert_true(kn_slo_sli(11, 10) == 1.0);    /* clamped */
    /* exactly on the objective: the whole budget spent, burning at 1 */
    assert_true(fabs(kn_slo_budget_remaining(0.999, 99.9)) < 1e-9);
    assert_true(fabs(kn_slo_burn_rate(0.999, 99.9) - 1.0) < 1e-9);
    /* 99.95% against 99.9%: half the budget left */
    assert_true(fabs(kn_slo_budget_remaining(0.9995, 99.9) - 0.5) < 1e-9);
    /* 99% against 99.9%: ten times over, -900% left */
    assert_true(fabs(kn_slo_burn_rate(0.99, 99.9) - 10.0) < 1e-9);
    assert_true(fabs(kn_slo_budget_remaining(0.99, 99.9) + 9.0) < 1e-9);
    assert_true(kn_slo_budget_remaining(1.0, 99.9) == 1.0);
}

static void test_window_and_fill(void **state)
{
    char buf[32];
    char *q;

    (void)state;
    assert_string_equal(kn_slo_window_format(30LL * 86400000, buf, sizeof(buf)), "30d");
    assert_string_equal(kn_slo_window_format(3600000, buf, sizeof(buf)), "1h");
    assert_string_equal(kn_slo_window_format(6 * 3600000, buf, sizeof(buf)), "6h");
    assert_string_equal(kn_slo_window_format(3 * 86400000LL, buf, sizeof(buf)), "3d");
    assert_string_equal(kn_slo_window_format(90 * 60000, buf, sizeof(buf)), "90m");
    assert_string_equal(kn_slo_window_format(45000, buf, sizeof(buf)), "45s");
    q = kn_slo_query_fill("sum(increase(ok{app=\"{{app}}\",repo=\"{{ repository }}\"}[{{window}}]))",
                          "6h", "web", "main");
    assert_string_equal(q, "sum(increase(ok{app=\"web\",repo=\"main\"}[6h]))");
    free(q);
}

/* ---- the verdicts ------------------------------------------------------------------------- */

static struct kn_slo_reading reading(const char *slo, double sli)
{
    struct kn_slo_reading r;

    memset(&r, 0, sizeof(r));
    snprintf(r.app, sizeof(r.app), "web");
    snprintf(r.slo, sizeof(r.slo), "%s", slo);
    r.objective = 99.9;
    r.window_ms = 30LL * 86400000;
    r.known = 1;
    r.at_ms = 1000;
    r.sli = sli;
    r.remaining = kn_slo_budget_remaining(sli, 99.9);
    return r;
}

static void test_decide_budget(void **state)
{
    struct kn_error_budget_policy p = {.given = 1};
    struct kn_slo_reading r[2] = {reading("latency", 0.9999), reading("availability", 0.9985)};
    struct kn_gate_verdict v;

    (void)state;
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_string_equal(v.reason,
                        "error budget of SLO 'availability' spent: SLI 99.850% over 30d against "
                        "an objective of 99.9%, -50.000% of the budget left (minRemaining 0%); "
                        "waits until it recovers");
    /* recovered */
    r[1] = reading("availability", 0.9995);
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_string_equal(v.reason, "");
    /* but not by minRemaining 60%: half of it left is too little */
    p.min_remaining = 60;
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_non_null(strstr(v.reason, "50.000% of the budget left (minRemaining 60%)"));
}

static void test_decide_approve(void **state)
{
    struct kn_error_budget_policy p = {.given = 1, .action = KN_BUDGET_APPROVE};
    struct kn_slo_reading r = reading("availability", 0.99);
    struct kn_gate_verdict v;

    (void)state;
    kn_slo_decide(&p, &r, 1, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_non_null(strstr(v.reason, "waits until it recovers or `kanaria approve web`"));
    kn_slo_decide(&p, &r, 1, "alice", 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_non_null(strstr(v.reason, "SLO 'availability' spent"));
    assert_non_null(strstr(v.reason, "approved by alice"));
    /* an approval means nothing under action block */
    p.action = KN_BUDGET_BLOCK;
    kn_slo_decide(&p, &r, 1, "alice", 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
}

static void test_decide_waiting_and_errors(void **state)
{
    struct kn_error_budget_policy p = {.given = 1};
    struct kn_slo_reading r[2] = {reading("availability", 0.9999), reading("latency", 0.9999)};
    struct kn_gate_verdict v;

    (void)state;
    r[1].known = 0;
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_PLANNED);
    assert_string_equal(v.reason, "waiting for the first reading of SLO 'latency'");
    /* a spent budget is said even while another SLO has no reading yet */
    r[0] = reading("availability", 0.99);
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    /* a reading that failed: never a silent pass */
    r[0] = reading("availability", 0.9999);
    r[1] = reading("latency", 0.9999);
    snprintf(r[1].error, sizeof(r[1].error), "metrics provider 'prom': connection refused");
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_string_equal(v.reason, "SLO 'latency' cannot be read (onError: block): metrics "
                                  "provider 'prom': connection refused; waits for a reading");
    p.on_error = KN_BUDGET_ERROR_ALLOW;
    kn_slo_decide(&p, r, 2, NULL, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_non_null(strstr(v.reason, "connection refused"));
    assert_non_null(strstr(v.reason, "onError: allow"));
}

/* ---- the gate on a loaded app ------------------------------------------------------------- */

static const char *const APP_BUDGET =
    "apiVersion: kanaria.dev/v1\n"
    "kind: Application\n"
    "metadata: {name: web}\n"
    "spec:\n"
    "  manifests: [m.yaml]\n"
    "  slos:\n"
    "    - name: availability\n"
    "      objective: 99.9\n"
    "      good: sum(ok[{{window}}])\n"
    "      total: sum(all[{{window}}])\n"
    "  errorBudgetPolicy: {minRemaining: 10%, action: approve}\n";

static struct kn_app *load(const char *dir, const char *config)
{
    struct kn_source *src = NULL;
    struct kn_app *app = NULL;
    struct kn_error err;

    kn_test_write(dir, "web/app.kanaria.yaml", config);
    kn_test_write(dir, "web/m.yaml", "kind: X\nmetadata: {name: x}\n");
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_app_load(&app, src, "web/app.kanaria.yaml", NULL), 0);
    kn_source_free(src);
    return app;
}

static char *diags_text(const struct kn_app *app)
{
    struct kn_buf b;
    char line[1024];

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < app->diags.count; i++) {
        kn_buf_addf(&b, "%s\n", kn_diag_format(&app->diags.items[i], line, sizeof(line)));
    }
    return kn_buf_detach(&b, NULL);
}

static void test_config(void **state)
{
    char *dir = kn_test_tmpdir();
    struct kn_app *app = load(dir, APP_BUDGET);
    const struct kn_slo_config *c;

    (void)state;
    assert_int_equal(app->diags.count, 0);
    c = kn_app_slo(app, "availability");
    assert_non_null(c);
    assert_true(c->objective == 99.9);
    assert_true(c->window_ms == 30LL * 86400000);
    assert_null(c->provider);
    assert_true(app->cfg.spec.budget.given);
    assert_true(app->cfg.spec.budget.min_remaining == 10);
    assert_int_equal(app->cfg.spec.budget.action, KN_BUDGET_APPROVE);
    assert_int_equal(app->cfg.spec.budget.on_error, KN_BUDGET_ERROR_BLOCK);
    kn_app_free(app);
    kn_test_rmtree(dir);
    free(dir);
}

static void test_config_errors(void **state)
{
    char *dir = kn_test_tmpdir();
    struct kn_app *app;
    char *text;

    (void)state;
    app = load(dir, "apiVersion: kanaria.dev/v1\n"
                    "kind: Application\n"
                    "metadata: {name: web}\n"
                    "spec:\n"
                    "  manifests: [m.yaml]\n"
                    "  slos:\n"
                    "    - {name: a, objective: 100, good: g, total: t}\n"
                    "    - {name: a, objective: 99, good: g, total: t}\n"
                    "    - {name: b, objective: 99, good: 'x[{{windw}}]'}\n"
                    "    - {name: c}\n"
                    "  errorBudgetPolicy: {action: later}\n");
    text = diags_text(app);
    assert_non_null(strstr(text, "web/app.kanaria.yaml:7:"));
    assert_non_null(strstr(text, "'spec.slos[0].objective' must be a percentage above 0 and "
                                 "below 100, got 100"));
    assert_non_null(strstr(text, "web/app.kanaria.yaml:8:7: 'spec.slos[1]': SLO 'a' is declared "
                                 "twice"));
    assert_non_null(strstr(text, "SLO 'b' needs both 'good' and 'total' queries"));
    assert_non_null(strstr(text, "SLO 'b': 'good' uses unknown placeholder '{{windw}}'"));
    assert_non_null(strstr(text, "SLO 'c' has no queries and .kanaria/slo.yaml does not exist"));
    assert_non_null(strstr(text, "errorBudgetPolicy.action"));
    free(text);
    kn_app_free(app);
    kn_test_rmtree(dir);
    free(dir);
}

static void test_shared(void **state)
{
    char *dir = kn_test_tmpdir();
    struct kn_app *app;
    const struct kn_slo_config *c;
    char *text;

    (void)state;
    kn_test_write(dir, ".kanaria/slo.yaml",
                  "slos:\n"
                  "  - {name: availability, objective: 99.5, window: 7d, good: g, total: t,\n"
                  "     provider: prom}\n");
    app = load(dir, "apiVersion: kanaria.dev/v1\n"
                    "kind: Application\n"
                    "metadata: {name: web}\n"
                    "spec:\n"
                    "  manifests: [m.yaml]\n"
                    "  slos:\n"
                    "    - {name: availability, objective: 99.9}\n"
                    "    - {name: nope}\n");
    text = diags_text(app);
    assert_string_equal(text, "web/app.kanaria.yaml:8:7: 'spec.slos[1]': SLO 'nope' has no "
                              "queries and .kanaria/slo.yaml declares no SLO of that name\n");
    c = kn_app_slo(app, "availability");
    assert_non_null(c);
    assert_true(c->objective == 99.9); /* the app's own wins */
    assert_true(c->window_ms == 7LL * 86400000);
    assert_string_equal(c->good, "g");
    assert_string_equal(c->total, "t");
    assert_string_equal(c->provider, "prom");
    free(text);
    kn_app_free(app);
    kn_test_rmtree(dir);
    free(dir);
}

/* The gate on a loaded app: only PIPELINE deployments of apps with a policy; with no monitor, an
 * error (onError says); and the dispatcher lets a hotfix and a rollback through, recorded. */
static void test_gate(void **state)
{
    char *dir = kn_test_tmpdir();
    struct kn_app *app = load(dir, APP_BUDGET);
    struct kn_deployment d;
    struct kn_gate_verdict v;
    struct kn_gates gates = {0};
    char plain[] = "change the greeting", hotfix[] = "fix the outage [kanaria hotfix]";

    (void)state;
    memset(&d, 0, sizeof(d));
    snprintf(d.repo, sizeof(d.repo), "main");
    snprintf(d.app, sizeof(d.app), "web");
    snprintf(d.strategy, sizeof(d.strategy), "QUICK_SYNC");
    snprintf(d.trigger, sizeof(d.trigger), "commit");
    d.message = plain;
    kn_slo_gate(NULL, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    snprintf(d.strategy, sizeof(d.strategy), "PIPELINE");
    kn_slo_gate(NULL, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_string_equal(v.reason, "SLO 'availability' cannot be read (onError: block): no SLO "
                                  "monitor runs; waits for a reading");
    kn_gates_check(&gates, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    d.message = hotfix;
    kn_gates_check(&gates, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_non_null(strstr(v.reason, "passed the gates as a hotfix"));
    assert_non_null(strstr(v.reason, "SLO 'availability' cannot be read"));
    d.message = plain;
    snprintf(d.trigger, sizeof(d.trigger), "rollback by alice");
    kn_gates_check(&gates, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_non_null(strstr(v.reason, "passed the gates as a rollback"));
    /* an app without a policy is never held */
    app->cfg.spec.budget.given = 0;
    snprintf(d.trigger, sizeof(d.trigger), "commit");
    kn_slo_gate(NULL, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    kn_app_free(app);
    kn_test_rmtree(dir);
    free(dir);
}

/* ---- the monitor, on the fake provider ----------------------------------------------------- */

struct monitor_test {
    uv_loop_t loop;
    int kicks;
};

static struct kn_metrics *monitor_metrics(void *data, const char *name)
{
    struct monitor_test *t = data;

    return name && strcmp(name, "prom") != 0 ? NULL : kn_fake_metrics(&t->loop, "prom");
}

static void monitor_kick(void *data)
{
    struct monitor_test *t = data;

    t->kicks++;
    uv_stop(&t->loop);
}

static void copy_reading(const struct kn_slo_reading *r, void *data)
{
    *(struct kn_slo_reading *)data = *r;
}

/* good from the fake's "canary" values, total from its "primary" ones: a reading in numbers,
 * then one that failed, and the gate on each. */
static void test_monitor(void **state)
{
    char *dir = kn_test_tmpdir();
    struct kn_app *app = load(dir, "apiVersion: kanaria.dev/v1\n"
                                   "kind: Application\n"
                                   "metadata: {name: web}\n"
                                   "spec:\n"
                                   "  manifests: [m.yaml]\n"
                                   "  slos:\n"
                                   "    - {name: availability, objective: 99.9,\n"
                                   "       good: 'canary_ok[{{window}}]', total: 'all[{{window}}]'}\n"
                                   "  errorBudgetPolicy: {}\n");
    struct monitor_test t = {.kicks = 0};
    struct kn_slo_monitor_deps deps = {.loop = &t.loop, .interval_ms = 3600000,
                                       .metrics = monitor_metrics, .kick = monitor_kick,
                                       .data = &t};
    struct kn_slo_monitor *m = NULL;
    struct kn_slo_reading r;
    struct kn_deployment d;
    struct kn_gate_verdict v;
    double good = 990, total = 1000;

    (void)state;
    assert_int_equal(app->diags.count, 0);
    uv_loop_init(&t.loop);
    assert_int_equal(kn_slo_monitor_new(&m, &deps), 0);
    memset(&d, 0, sizeof(d));
    snprintf(d.repo, sizeof(d.repo), "main");
    snprintf(d.app, sizeof(d.app), "web");
    snprintf(d.strategy, sizeof(d.strategy), "PIPELINE");
    snprintf(d.trigger, sizeof(d.trigger), "commit");
    kn_fake_metrics_set(&good, 1, &total, 1, NULL);
    /* the gate's call makes the SLO known: no reading yet */
    kn_slo_gate(m, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_PLANNED);
    assert_string_equal(v.reason, "waiting for the first reading of SLO 'availability'");
    uv_run(&t.loop, UV_RUN_DEFAULT); /* until the reading's kick */
    assert_int_equal(t.kicks, 1);
    memset(&r, 0, sizeof(r));
    kn_slo_monitor_each(m, "main", "web", copy_reading, &r);
    assert_true(r.known);
    assert_string_equal(r.error, "");
    assert_true(fabs(r.sli - 0.99) < 1e-9);
    assert_true(fabs(r.remaining + 9) < 1e-6);
    assert_true(fabs(r.burn[0] - 10) < 1e-6 && fabs(r.burn[2] - 10) < 1e-6);
    assert_non_null(strstr(kn_fake_metrics_state.last_query, "[")); /* {{window}} filled */
    assert_null(strstr(kn_fake_metrics_state.last_query, "{{"));
    kn_slo_gate(m, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_non_null(strstr(v.reason, "SLI 99.000% over 30d"));
    /* the provider fails: an error reading, and the gate blocks naming it */
    kn_fake_metrics_set(NULL, 0, NULL, 0, "connection refused");
    kn_slo_monitor_refresh(m);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(t.kicks, 2);
    kn_slo_monitor_each(m, NULL, NULL, copy_reading, &r);
    assert_non_null(strstr(r.error, "metrics provider 'prom': query "));
    assert_non_null(strstr(r.error, "connection refused"));
    kn_slo_gate(m, &d, app, 0, &v);
    assert_int_equal(v.status, KN_DEPLOY_BLOCKED);
    assert_non_null(strstr(v.reason, "cannot be read (onError: block)"));
    kn_slo_monitor_stop(m);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    kn_slo_monitor_free(m);
    uv_loop_close(&t.loop);
    kn_app_free(app);
    kn_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_math),
        cmocka_unit_test(test_window_and_fill),
        cmocka_unit_test(test_decide_budget),
        cmocka_unit_test(test_decide_approve),
        cmocka_unit_test(test_decide_waiting_and_errors),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_monitor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
