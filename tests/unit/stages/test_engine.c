/*
 * Component tests of the pipeline engine (stages/engine.c and the stage kinds it runs), in
 * process: a real store in a temporary folder, apps loaded from YAML written per commit, a fake
 * platform that records every operation and completes it on a timer (or fails it, or never
 * completes it, as a test asks), and a fake clock the test can move forward.
 *
 * Every run of the loop is bounded (RUN_BOUND_MS): a bound that fails the test when the expected
 * end state never arrives, not a speed assertion.
 */
#include "testutil.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/engine.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/config.h"
#include "kanaria/selfmetrics.h"
#include "kanaria/store.h"
#include "kanaria/validate.h"
#include "fake_metrics.h"
#include "fake_platform.h"
#include "gate.h"

/* 2026-11-25T19:40:01.123Z */
#define T_EPOCH_MS 1795635601123LL
#define RUN_BOUND_MS 20000
#define REPO "deploy"

#define C1 "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2 "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

#define NO_SERVER "haproxy: No such server."

#define CANARY_PIPELINE                                                                            \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "      with: {replicas: 1}\n"                                                                  \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

/* The five operations of CANARY_PIPELINE for C2 (v2) over C1. */
#define OP_CANARY "apply canary 2222222 v2"
#define OP_TEN "weights 90/10/0"
#define OP_PRIMARY "apply primary 2222222 v2"
#define OP_ALL "weights 100/0/0"
#define OP_CLEAN "remove canary"

struct fixture;

/* ---- the fake platform (tests/fakes/fake_platform.c) behind the real front end ------------- */

#define OP_APPLY KN_FAKE_APPLY
#define OP_REMOVE KN_FAKE_REMOVE
#define OP_WEIGHTS KN_FAKE_WEIGHTS
#define fake_rule kn_fake_rule

struct oprec {
    char app[64];
    char line[128];
};

struct fixture {
    const void *param;
    char *dir;
    uv_loop_t loop;
    struct kn_store *store;
    struct kn_platform *platform;  /* the front end, over the fake */
    struct kn_fake_platform *plat; /* the fake provider */
    const struct kn_platform_type *type; /* NULL: the fake type as registered */
    int stop_after; /* > 0: kn_engine_stop after this many successful completions */
    uv_timer_t stopper;
    struct kn_engine *engine;
    uint64_t hr0;
    long long offset; /* added to the fake clock */
    struct oprec ops[256];
    size_t nops;
    uv_timer_t deadline;
    uv_timer_t ticker;
    int timed_out;
    void (*tick)(struct fixture *f); /* called every few ms while the loop runs */
    /* scratch for the cases' ticks */
    long long ids[4];
    int step;
    uint64_t t0;
    int flag;
    size_t max_active;
    /* the apps' spec.platform, which names the fake: "local" (the local type's placeholders
     * are checked) unless a case sets "fake" (the fake type's) */
    const char *platform_name;
    /* the start gates (controller/gate.c) over this kanaria.yaml; NULL: no gates */
    struct kn_config *gate_cfg;
    int gate_calls;
};

static long long fake_now(void *data)
{
    struct fixture *f = data;

    return T_EPOCH_MS + (long long)((uv_hrtime() - f->hr0) / 1000000) + f->offset;
}

static void record_call(void *data, const struct kn_app_id *id, const char *line)
{
    struct fixture *f = data;

    if (f->nops < sizeof(f->ops) / sizeof(f->ops[0])) {
        snprintf(f->ops[f->nops].app, sizeof(f->ops[f->nops].app), "%s", id->app);
        snprintf(f->ops[f->nops].line, sizeof(f->ops[f->nops].line), "%s", line);
        f->nops++;
    }
}

static void stop_now(uv_timer_t *t)
{
    struct fixture *f = t->data;

    if (f->engine) {
        kn_engine_stop(f->engine); /* a crash right after the completion was recorded */
    }
}

static void record_done(void *data, const struct kn_app_id *id, const char *line, int status)
{
    struct fixture *f = data;

    (void)id;
    (void)line;
    if (status == 0 && f->stop_after > 0 && f->plat->completed == f->stop_after && f->engine) {
        /* after the front end hands the completion to the engine (its zero timer runs first) */
        uv_timer_start(&f->stopper, stop_now, 0, 0);
    }
}

static void platform_open(struct fixture *f);

static struct kn_platform *fake_platform_find(void *data, const char *name)
{
    struct fixture *f = data;

    return strcmp(name, f->platform_name ? f->platform_name : "local") == 0 ? f->platform : NULL;
}

/* ---- the fake loader: apps from YAML written per commit ---------------------------------- */

/* Write the app `app` at `commit` into dir/src/<commit>/<app>/: its version shows in the
 * command; `spec_extra` are more lines under spec:, `pipeline` the entries under pipeline:. */
static void add_commit(struct fixture *f, const char *app, const char *commit,
                       const char *version, const char *spec_extra, const char *pipeline)
{
    char *path = kn_asprintf("src/%s/%s/app.kanaria.yaml", commit, app);
    char *text = kn_asprintf("apiVersion: kanaria.dev/v1\n"
                             "kind: Application\n"
                             "metadata: {name: %s}\n"
                             "spec:\n"
                             "  platform: %s\n"
                             "  manifests: [service.yaml]\n"
                             "%s%s%s",
                             app, f->platform_name ? f->platform_name : "local", spec_extra ? spec_extra : "",
                             pipeline ? "  pipeline:\n" : "", pipeline ? pipeline : "");

    kn_test_write(f->dir, path, text);
    free(path);
    free(text);
    path = kn_asprintf("src/%s/%s/service.yaml", commit, app);
    text = kn_asprintf("apiVersion: kanaria.dev/v1\n"
                       "kind: LocalService\n"
                       "metadata: {name: %s}\n"
                       "spec:\n"
                       "  command: [\"/opt/%s/%s/run\", \"--port\", \"{{port}}\"]\n"
                       "  replicas: 2\n"
                       "  healthCheck: {path: /healthz, interval: 1s, timeout: 1s}\n"
                       "  frontend: {bind: 127.0.0.1:%d}\n",
                       app, app, version, 18000 + (int)strlen(app));
    kn_test_write(f->dir, path, text);
    free(path);
    free(text);
}

/* deps.load, on the thread pool: reads only what the test wrote before the loop ran. */
static void fake_load(void *data, const struct kn_deployment *d, const char *path,
                      const char *last_good, struct kn_engine_load *out)
{
    const struct fixture *f = data;

    kn_fake_load(f->dir, d, path, last_good, out);
}

/* ---- fixture --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    struct kn_error err;
    char *db;

    f->param = *state;
    f->dir = kn_test_tmpdir();
    db = kn_asprintf("%s/kanaria.db", f->dir);
    kn_error_clear(&err);
    if (kn_store_open(&f->store, db, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    free(db);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->deadline);
    uv_timer_init(&f->loop, &f->ticker);
    f->deadline.data = f;
    f->ticker.data = f;
    uv_unref((uv_handle_t *)&f->deadline);
    uv_unref((uv_handle_t *)&f->ticker);
    f->hr0 = uv_hrtime();
    uv_timer_init(&f->loop, &f->stopper);
    f->stopper.data = f;
    platform_open(f);
    *state = f;
    return 0;
}

static void print_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "left open: %s handle %p (active %d)\n", uv_handle_type_name(h->type),
            (void *)h, uv_is_active(h));
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc;

    if (f->engine) {
        kn_engine_stop(f->engine);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        kn_engine_free(f->engine);
    }
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_close((uv_handle_t *)&f->ticker, NULL);
    uv_close((uv_handle_t *)&f->stopper, NULL);
    kn_platform_free(f->platform);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&f->loop);
    if (rc != 0) {
        uv_walk(&f->loop, print_handle, NULL); /* report only: a leak is a bug to fix */
    }
    kn_store_close(f->store);
    kn_config_free(f->gate_cfg);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* ---- running ------------------------------------------------------------------------------- */

static void deadline_hit(uv_timer_t *t)
{
    struct fixture *f = t->data;

    f->timed_out = 1;
    if (f->engine) {
        kn_engine_stop(f->engine);
    }
    uv_stop(t->loop);
}

static void ticked(uv_timer_t *t)
{
    struct fixture *f = t->data;

    if (f->tick) {
        f->tick(f);
    }
}

static struct kn_metrics *fake_metrics_find(void *data, const char *name);

/* deps.gate: the controller's gates over f->gate_cfg, on the fake clock. */
static void fixture_gate(void *data, const struct kn_deployment *d, const struct kn_app *app,
                         long long now_ms, struct kn_gate_verdict *out)
{
    struct fixture *f = data;
    struct kn_gates gates = {.cfg = f->gate_cfg};

    f->gate_calls++;
    kn_gates_check(&gates, d, app, now_ms, out);
}

static void engine_start(struct fixture *f)
{
    struct kn_engine_deps deps = {
        .loop = &f->loop,
        .store = f->store,
        .platform = fake_platform_find,
        .metrics = fake_metrics_find,
        .load = fake_load,
        .gate = f->gate_cfg ? fixture_gate : NULL,
        .now_ms = fake_now,
        .data = f,
    };

    assert_null(f->engine);
    assert_int_equal(kn_engine_new(&f->engine, &deps), 0);
    kn_engine_kick(f->engine);
}

/* Run the loop until the engine has nothing left to do (the deadline and the ticker do not keep
 * the loop alive). */
static void run_loop(struct fixture *f)
{
    uv_timer_start(&f->deadline, deadline_hit, RUN_BOUND_MS, 0);
    uv_timer_start(&f->ticker, ticked, 5, 5);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->deadline);
    uv_timer_stop(&f->ticker);
    if (f->timed_out) {
        fail_msg("the engine did not reach its end state within %d ms", RUN_BOUND_MS);
    }
    assert_int_equal(kn_engine_active(f->engine), 0);
}

/* After the engine was stopped (and the loop ran out of its work): free it. */
static void platform_open(struct fixture *f)
{
    /* the fake type is registered like any other in test builds */
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "local",
        .ptype = f->type ? f->type : kn_platform_type_find("fake"),
    };
    struct kn_platform_deps deps = {.loop = &f->loop, .data_dir = f->dir};
    struct kn_error err;

    kn_error_clear(&err);
    assert_non_null(pc.ptype);
    if (kn_platform_new(&f->platform, &deps, &pc, &err) != 0) {
        fail_msg("platform: %s", err.msg);
    }
    f->plat = kn_fake_platform_last;
    f->plat->on_call = record_call;
    f->plat->on_done = record_done;
    f->plat->data = f;
}

/* kanaria restarts with the engine: a new platform front end over a new fake (which keeps the
 * rules and counts of the old one, as a platform keeps what runs). What the old one still ran
 * ends with it. */
static void platform_restart(struct fixture *f)
{
    struct kn_fake_platform keep = *f->plat;

    kn_platform_free(f->platform);
    platform_open(f);
    memcpy(f->plat->rule, keep.rule, sizeof(keep.rule));
    memcpy(f->plat->calls, keep.calls, sizeof(keep.calls));
    f->plat->failures = keep.failures;
    f->plat->completed = keep.completed;
    f->plat->cancels = keep.cancels;
    memcpy(f->plat->cancelled, keep.cancelled, sizeof(keep.cancelled));
    f->plat->apply_ready_timeout_ms = keep.apply_ready_timeout_ms;
}

static void engine_free(struct fixture *f)
{
    assert_int_equal(kn_engine_active(f->engine), 0);
    kn_engine_free(f->engine);
    f->engine = NULL;
    platform_restart(f);
}

/* A clean shutdown: stop, let the loop run out of the engine's work, free. */
static void engine_shutdown(struct fixture *f)
{
    kn_engine_stop(f->engine);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    engine_free(f);
}

/* ---- the store ---------------------------------------------------------------------------- */

static long long plan(struct fixture *f, const char *app, const char *commit,
                      const char *strategy, const char *message)
{
    struct kn_deployment_new d = {
        .repo = REPO,
        .app = app,
        .commit = commit,
        .author = "Dev <dev@example.com>",
        .message = message ? message : "change the service",
        .strategy = strategy,
        .summary = "test plan",
    };
    char *path = kn_asprintf("%s/app.kanaria.yaml", app);
    long long id = 0;

    assert_int_equal(kn_store_app_seen(f->store, REPO, app, path, commit, ""), 0);
    assert_int_equal(kn_store_deployment_add(f->store, &d, fake_now(f), &id), 0);
    free(path);
    return id;
}

/* Make `commit` the app's last good one, as if a deployment of it had succeeded. */
static void seed_good(struct fixture *f, const char *app, const char *commit)
{
    long long id = plan(f, app, commit, "QUICK_SYNC", "first");

    assert_int_equal(kn_store_deployment_set_status(f->store, id, KN_DEPLOY_RUNNING, NULL,
                                                    fake_now(f)),
                     0);
    assert_int_equal(kn_store_deployment_set_status(f->store, id, KN_DEPLOY_SUCCESS, NULL,
                                                    fake_now(f)),
                     0);
}

/* The deployment; its texts point into static buffers, valid until the next call. */
static struct kn_deployment get_deploy(struct fixture *f, long long id)
{
    static char message[4096], reason[4096];
    struct kn_deployment d;

    assert_int_equal(kn_store_deployment_get(f->store, id, &d), 0);
    snprintf(message, sizeof(message), "%s", d.message);
    snprintf(reason, sizeof(reason), "%s", d.reason);
    kn_deployment_release(&d);
    d.message = message;
    d.reason = reason;
    return d;
}

static const char *status_of(struct fixture *f, long long id)
{
    struct kn_deployment d;

    if (kn_store_deployment_get(f->store, id, &d) != 0) {
        return "?";
    }
    kn_deployment_release(&d);
    return kn_deploy_status_name(d.status);
}

static int stage_is(struct fixture *f, long long id, int index, const char *status)
{
    char s[32];

    return kn_store_stage_get(f->store, id, index, s, sizeof(s), NULL) == 0 &&
           strcmp(s, status) == 0;
}

/* The stages table as "SUCCESS,SKIPPED,-" for indexes 0..n-1 ("-": never recorded). */
static void assert_stages(struct fixture *f, long long id, const char *expected)
{
    char got[512] = "", s[32];
    int n = 1;

    for (const char *p = expected; *p; p++) {
        n += *p == ',';
    }
    for (int i = 0; i < n; i++) {
        if (kn_store_stage_get(f->store, id, i, s, sizeof(s), NULL) != 0) {
            snprintf(s, sizeof(s), "-");
        }
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "," : "", s);
    }
    assert_string_equal(got, expected);
}

static void assert_app(struct fixture *f, const char *app, const char *last_good,
                       const char *rolled_back_from)
{
    struct kn_app_state as;

    assert_int_equal(kn_store_app_get(f->store, REPO, app, &as), 0);
    assert_string_equal(as.last_good, last_good);
    assert_string_equal(as.rolled_back_from, rolled_back_from);
    assert_int_equal(as.current_deployment, 0);
    kn_app_state_release(&as);
}

struct event_scan {
    long long deployment;
    char types[2048];
    const char *needle; /* count STAGE_LOG lines containing it */
    int found;
    char last_match[2048];
};

static int scan_event(const struct kn_event *e, void *data)
{
    struct event_scan *s = data;

    if (e->deployment != s->deployment) {
        return 0;
    }
    if (strcmp(e->type, "STAGE_LOG") == 0) {
        if (s->needle && strstr(e->message, s->needle)) {
            s->found++;
            snprintf(s->last_match, sizeof(s->last_match), "%s", e->message);
        }
        return 0;
    }
    snprintf(s->types + strlen(s->types), sizeof(s->types) - strlen(s->types), "%s%s",
             s->types[0] ? "," : "", e->type);
    return 0;
}

/* The deployment's events, STAGE_LOG lines left out, as "PLANNED,RUNNING,...". */
static void assert_events(struct fixture *f, long long id, const char *expected)
{
    struct event_scan s = {.deployment = id};

    assert_int_equal(kn_store_events(f->store, 0, 0, scan_event, &s), 0);
    assert_string_equal(s.types, expected);
}

/* How many of the deployment's stage log lines contain `needle`. */
static int count_logs(struct fixture *f, long long id, const char *needle, char *last,
                      size_t size)
{
    struct event_scan s = {.deployment = id, .needle = needle};

    assert_int_equal(kn_store_events(f->store, 0, 0, scan_event, &s), 0);
    if (last) {
        snprintf(last, size, "%s", s.last_match);
    }
    return s.found;
}

/* The op log (of one app, or all when app is NULL) against a NULL-terminated list. */
static void assert_ops(struct fixture *f, const char *app, const char *const *expected)
{
    struct kn_buf got, want;

    kn_buf_init(&got, 1 << 16);
    kn_buf_init(&want, 1 << 16);
    for (size_t i = 0; i < f->nops; i++) {
        if (!app || strcmp(f->ops[i].app, app) == 0) {
            kn_buf_addf(&got, "%s\n", f->ops[i].line);
        }
    }
    for (size_t i = 0; expected[i]; i++) {
        kn_buf_addf(&want, "%s\n", expected[i]);
    }
    assert_string_equal(got.data ? got.data : "", want.data ? want.data : "");
    kn_buf_release(&got);
    kn_buf_release(&want);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* C1 (v1) is the last good commit of "hello"; C2 (v2) is planned as a pipeline. */
static long long canary_setup(struct fixture *f, const char *spec_extra, const char *pipeline,
                              const char *message)
{
    add_commit(f, "hello", C1, "v1", spec_extra, pipeline);
    add_commit(f, "hello", C2, "v2", spec_extra, pipeline);
    seed_good(f, "hello", C1);
    return plan(f, "hello", C2, "PIPELINE", message);
}

/* ---- 1, 2: the happy paths ----------------------------------------------------------------- */

static void test_quick_sync(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {"apply primary 1111111 v1", "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    long long id;

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    id = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_string_equal(get_deploy(f, id).reason, "");
    assert_true(get_deploy(f, id).started_at > 0);
    assert_true(get_deploy(f, id).finished_at >= get_deploy(f, id).started_at);
    assert_stages(f, id, "SUCCESS,-");
    assert_app(f, "hello", C1, "");
    assert_events(f, id, "PLANNED,RUNNING,STAGE_STARTED,STAGE_FINISHED,SUCCESS");
    assert_int_equal(count_logs(f, id, "applying 1111111 as the primary", NULL, 0), 1);
}

static void test_canary_pipeline(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
    assert_events(f, id,
                  "PLANNED,RUNNING,"
                  "STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,"
                  "STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,"
                  "STAGE_STARTED,STAGE_FINISHED,SUCCESS");
}

/* An instance that waits for the lead (kn_engine_hold) starts nothing, even when kicked. */
static void test_hold_starts_nothing_until_released(void **state)
{
    struct fixture *f = *state;
    static const char *const none[] = {NULL};
    static const char *const ops[] = {"apply primary 1111111 v1", "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    struct kn_engine_deps deps = {
        .loop = &f->loop,
        .store = f->store,
        .platform = fake_platform_find,
        .metrics = fake_metrics_find,
        .load = fake_load,
        .now_ms = fake_now,
        .data = f,
    };
    long long id;

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    id = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    assert_int_equal(kn_engine_new(&f->engine, &deps), 0);
    kn_engine_hold(f->engine, 1);
    kn_engine_kick(f->engine);
    run_loop(f);
    assert_ops(f, NULL, none);
    assert_string_equal(status_of(f, id), "PLANNED");

    kn_engine_hold(f->engine, 0);
    run_loop(f);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
}

/* ---- 3-7: failures and rollback ---------------------------------------------------------- */

/* SYNC replaced the primary: the rollback re-applies the last good commit. */
static void test_quick_sync_fails_reapplies_last_good(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {"apply primary 2222222 v2", "weights 100/0/0",
                                      "apply primary 1111111 v1", "remove canary",
                                      "remove baseline", NULL};
    long long id;

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    add_commit(f, "hello", C2, "v2", NULL, NULL);
    seed_good(f, "hello", C1);
    id = plan(f, "hello", C2, "QUICK_SYNC", NULL);
    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "f", .message = NO_SERVER};
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason, "stage SYNC failed: applying 2222222 as the "
                                                  "primary: " NO_SERVER " (rolled back)");
    assert_stages(f, id, "FAILURE,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

/* A platform that has neither canaries nor traffic splitting: SYNC and ROLLBACK both skip the
 * same steps through the front end (all traffic to the primary, removing a canary or a
 * baseline), each with a line in the stage's log, and the platform is only asked to apply. */
static void test_skips_alike_for_sync_and_rollback(void **state)
{
    struct fixture *f = *state;
    static struct kn_platform_type plain;
    static const char *const ops[] = {"apply primary 1111111 v1", "apply primary 2222222 v2",
                                      "apply primary 1111111 v1", NULL};
    static const char *const skips[] = {
        "skipped: platform 'local' (fake) sends all traffic to the primary (no traffic splitting)",
        "skipped: platform 'local' (fake) has no canary to remove (canary variants)",
        "skipped: platform 'local' (fake) has no baseline to remove (baseline variants)",
    };
    long long sync, failed;

    plain = kn_platform_fake;
    plain.caps = KN_PLATFORM_APPLY | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL;
    kn_platform_free(f->platform);
    f->type = &plain;
    platform_open(f);
    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "of", .message = NO_SERVER};
    add_commit(f, "hello", C1, "v1", NULL, NULL);
    add_commit(f, "hello", C2, "v2", NULL, NULL);
    sync = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, sync), "SUCCESS");

    failed = plan(f, "hello", C2, "QUICK_SYNC", NULL);
    kn_engine_kick(f->engine);
    run_loop(f);
    assert_string_equal(status_of(f, failed), "FAILURE");
    assert_stages(f, failed, "FAILURE,SUCCESS");

    assert_ops(f, NULL, ops);
    for (size_t i = 0; i < sizeof(skips) / sizeof(skips[0]); i++) {
        assert_int_equal(count_logs(f, sync, skips[i], NULL, 0), 1);    /* SYNC */
        assert_int_equal(count_logs(f, failed, skips[i], NULL, 0), 1);  /* ROLLBACK */
    }
}

static void test_canary_fails_rolls_back(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);
    struct kn_deployment d;

    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "f", .message = NO_SERVER};
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops); /* the primary was not touched: no re-apply */
    d = get_deploy(f, id);
    assert_string_equal(kn_deploy_status_name(d.status), "FAILURE");
    assert_true(starts_with(d.reason, "stage CANARY_ROLLOUT failed:"));
    assert_non_null(strstr(d.reason, NO_SERVER));
    assert_true(ends_with(d.reason, "(rolled back)"));
    assert_string_equal(d.reason, "stage CANARY_ROLLOUT failed: starting 2222222 as the canary: "
                                  NO_SERVER " (rolled back)");
    assert_stages(f, id, "FAILURE,-,-,-,-,SUCCESS,-");
    assert_app(f, "hello", C1, C2);
    assert_events(f, id,
                  "PLANNED,RUNNING,STAGE_STARTED,STAGE_FINISHED,ROLLING_BACK,"
                  "STAGE_STARTED,STAGE_FINISHED,FAILURE");
}

static void test_failure_after_primary_reapplies_last_good(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {
        OP_CANARY,          OP_TEN,          OP_PRIMARY,
        OP_ALL,             /* fails */
        "weights 100/0/0",  "apply primary 1111111 v1",
        "remove canary",    "remove baseline",
        NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);
    struct kn_deployment d;

    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.script = "of", .message = NO_SERVER};
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    d = get_deploy(f, id);
    assert_string_equal(kn_deploy_status_name(d.status), "FAILURE");
    assert_true(starts_with(d.reason, "stage TRAFFIC_ROUTING failed:"));
    assert_non_null(strstr(d.reason, NO_SERVER));
    assert_true(ends_with(d.reason, "(rolled back)"));
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,FAILURE,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

static void test_stage_timeout(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, /* hangs */
                                      "weights 100/0/0", "remove canary", "remove baseline",
                                      NULL};
    long long id = canary_setup(f, NULL,
                                "    - name: CANARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      timeout: 1s\n"
                                "      with: {canary: 10}\n"
                                "    - name: PRIMARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      with: {primary: 100}\n"
                                "    - name: CANARY_CLEAN\n",
                                NULL);

    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.script = "h"};
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage TRAFFIC_ROUTING timed out after 1s (rolled back)");
    assert_stages(f, id, "SUCCESS,FAILURE,-,-,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

/* A stage that times out stops its platform operation (the rollback does not wait for it), and
 * the apply was given the time the stage had left. */
static void test_stage_timeout_stops_apply(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, /* hangs: the canary never gets healthy */
                                      "weights 100/0/0", "remove canary", "remove baseline",
                                      NULL};
    long long id = canary_setup(f, NULL,
                                "    - name: CANARY_ROLLOUT\n"
                                "      timeout: 1s\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      with: {canary: 10}\n"
                                "    - name: PRIMARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      with: {primary: 100}\n"
                                "    - name: CANARY_CLEAN\n",
                                NULL);

    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "h"};
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_int_equal(f->plat->cancels, 1);
    assert_string_equal(f->plat->cancelled, OP_CANARY);
    assert_true(f->plat->apply_ready_timeout_ms > 0 && f->plat->apply_ready_timeout_ms <= 1000);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage CANARY_ROLLOUT timed out after 1s (rolled back)");
    assert_stages(f, id, "FAILURE,-,-,-,-,SUCCESS");
}

static void test_rollback_step_retried(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY,         "weights 100/0/0", "weights 100/0/0",
                                      "weights 100/0/0", "remove canary",   "remove baseline",
                                      NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "f", .message = NO_SERVER};
    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.script = "ff", .message = "haproxy: busy"};
    engine_start(f);
    run_loop(f); /* backoff 1 s, then 2 s */

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_true(ends_with(get_deploy(f, id).reason, NO_SERVER " (rolled back)"));
    assert_stages(f, id, "FAILURE,-,-,-,-,SUCCESS");
    assert_int_equal(count_logs(f, id, "rollback step 0 failed (attempt 1)", NULL, 0), 1);
    assert_int_equal(count_logs(f, id, "rollback step 0 failed (attempt 2)", NULL, 0), 1);
    assert_int_equal(count_logs(f, id, "haproxy: busy", NULL, 0), 2);
    assert_app(f, "hello", C1, C2);
}

static void stop_after_rollback_failed(struct fixture *f)
{
    /* the canary apply and the first rollback step have failed */
    if (f->plat->failures >= 2) {
        kn_engine_stop(f->engine);
        f->tick = NULL;
    }
}

/* The rollback's own timeout (10 min) is not configurable: instead of waiting for it, stop the
 * engine while the rollback keeps failing, move the clock 10 min on and restart, so that the
 * resumed rollback has no time left. */
static void test_rollback_never_succeeds(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, "weights 100/0/0",
                                      "weights 100/0/0", /* the resumed rollback */
                                      NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);
    struct kn_deployment d;

    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "f", .message = NO_SERVER};
    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.then = 'f', .message = "haproxy: busy"};
    f->tick = stop_after_rollback_failed;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "ROLLING_BACK");
    assert_stages(f, id, "FAILURE,-,-,-,-,RUNNING");

    f->offset += 10 * 60 * 1000;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    d = get_deploy(f, id);
    assert_string_equal(kn_deploy_status_name(d.status), "FAILURE");
    assert_true(starts_with(d.reason, "stage CANARY_ROLLOUT failed:"));
    assert_non_null(strstr(d.reason, NO_SERVER));
    assert_true(ends_with(d.reason, "; rollback failed: stage ROLLBACK timed out after 10m"));
    assert_stages(f, id, "FAILURE,-,-,-,-,FAILURE");
    assert_string_equal(d.reason, "stage CANARY_ROLLOUT failed: starting 2222222 as the canary: "
                                  NO_SERVER "; rollback failed: stage ROLLBACK timed out after "
                                  "10m");
}

static void test_no_auto_rollback(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, NULL};
    long long id = canary_setup(f, "  autoRollback: false\n", CANARY_PIPELINE, NULL);

    f->plat->rule[OP_APPLY] = (struct fake_rule){.script = "f", .message = NO_SERVER};
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage CANARY_ROLLOUT failed: starting 2222222 as the canary: " NO_SERVER);
    assert_stages(f, id, "FAILURE,-,-,-,-,-");
    assert_app(f, "hello", C1, "");
    assert_events(f, id, "PLANNED,RUNNING,STAGE_STARTED,STAGE_FINISHED,FAILURE");
}

/* ---- 8: skipOn --------------------------------------------------------------------------- */

static void test_skip_on_commit_message(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL,
                                "    - name: CANARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      skipOn: {commitMessagePrefixes: [\"hotfix:\", \"[fast]\"]}\n"
                                "      with: {canary: 10}\n"
                                "    - name: PRIMARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      with: {primary: 100}\n"
                                "    - name: CANARY_CLEAN\n",
                                "[fast] raise the limit");

    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SKIPPED,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
}

/* ---- 9, 10: restarts -------------------------------------------------------------------- */

#define WAIT_PIPELINE                                                                              \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: WAIT\n"                                                                           \
    "      with: {duration: 3s}\n"                                                                 \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

static void stop_during_wait(struct fixture *f)
{
    if (stage_is(f, f->ids[0], 2, "RUNNING")) {
        kn_engine_stop(f->engine);
        f->tick = NULL;
    }
}

static void test_wait_resumes_remaining_time(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, WAIT_PIPELINE, NULL);
    char last[2048];
    long long left = -1;

    f->ids[0] = id;
    f->tick = stop_during_wait;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "RUNNING");
    assert_stages(f, id, "SUCCESS,SUCCESS,RUNNING,-");

    f->offset += 2500;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops); /* nothing finished before the restart ran again */
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
    assert_int_equal(count_logs(f, id, "waiting 3s", NULL, 0), 1);
    /* the second start waited for what was left: under 0.5 s ("480ms", or "0s" when over) */
    assert_int_equal(count_logs(f, id, "waiting ", last, sizeof(last)), 2);
    if (strcmp(last, "waiting 0s") != 0) {
        assert_int_equal(sscanf(last, "waiting %lldms", &left), 1);
        assert_true(left > 0 && left <= 500);
    }
}

/* The deployment's own timeout (6h by default) counts across a restart: stopped during WAIT and
 * restarted 6 h later, it fails at once and rolls back. */
static void test_deployment_timeout_after_restart(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    long long id = canary_setup(f, NULL, WAIT_PIPELINE, NULL);

    f->ids[0] = id;
    f->tick = stop_during_wait;
    engine_start(f);
    run_loop(f);
    engine_free(f);

    f->offset += 6 * 3600 * 1000LL;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "the deployment timed out after 6h (rolled back)");
    assert_stages(f, id, "SUCCESS,SUCCESS,FAILURE,-,-,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

static void test_resume_at_each_boundary(void **state)
{
    struct fixture *f = *state;
    const int k = *(const int *)f->param;
    static const char *const all[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN};
    const char *expected[16];
    size_t n = 0;
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    f->stop_after = k;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    f->stop_after = 0;
    if (k < 5) {
        assert_string_equal(status_of(f, id), "RUNNING");
        for (int i = 0; i < k; i++) {
            assert_true(stage_is(f, id, i, "SUCCESS"));
        }
        assert_true(stage_is(f, id, k, "RUNNING"));
    }

    engine_start(f);
    run_loop(f);

    /* what ran before the crash: the k finished stages' operations and the next one's, which
     * was in flight; after: the interrupted stage again and the rest */
    for (int i = 0; i <= k && i < 5; i++) {
        expected[n++] = all[i];
    }
    for (int i = k; i < 5; i++) {
        expected[n++] = all[i];
    }
    expected[n] = NULL;
    assert_ops(f, NULL, expected);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
}

/* A crash between recording a stage's FAILURE and acting on it leaves the stage FAILURE and the
 * deployment RUNNING: the restart fails the deployment without running the stage again, and
 * rolls back. */
static void test_resume_stored_failure(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {"weights 100/0/0", "remove canary", "remove baseline",
                                      NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    assert_int_equal(kn_store_deployment_set_status(f->store, id, KN_DEPLOY_RUNNING, NULL,
                                                    fake_now(f)),
                     0);
    assert_int_equal(kn_store_stage_set(f->store, id, 0, "CANARY_ROLLOUT", "FAILURE",
                                        fake_now(f)),
                     0);
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops); /* no apply: the failed stage did not run again */
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage CANARY_ROLLOUT failed (before kanaria restarted) (rolled back)");
    assert_stages(f, id, "FAILURE,-,-,-,-,SUCCESS,-");
    assert_app(f, "hello", C1, C2);
    assert_events(f, id, "PLANNED,RUNNING,ROLLING_BACK,STAGE_STARTED,STAGE_FINISHED,FAILURE");
}

/* ---- 11: approval ----------------------------------------------------------------------- */

#define APPROVAL_PIPELINE(with)                                                                    \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: WAIT_APPROVAL\n" with "    - name: PRIMARY_ROLLOUT\n"                            \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

static void approve_in_steps(struct fixture *f)
{
    long long id = f->ids[0];
    uint64_t now = uv_now(&f->loop);

    if (f->step == 0 && stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "alice", "APPROVE", fake_now(f)),
                         0);
        kn_store_approval_add(f->store, id, 2, "alice", "APPROVE", fake_now(f));
        f->t0 = now;
        f->step = 1;
    } else if (f->step == 1 && now - f->t0 >= 1200) {
        /* the stage polled twice since: one person twice is not two approvers */
        f->flag = stage_is(f, id, 2, "RUNNING") && strcmp(status_of(f, id), "RUNNING") == 0;
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "bob", "APPROVE", fake_now(f)),
                         0);
        f->step = 2;
        f->tick = NULL;
    }
}

static void test_approval_distinct_people(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL,
                                APPROVAL_PIPELINE("      with: {approvers: [alice, bob, carol], "
                                                  "minApprovers: 2}\n"),
                                NULL);

    f->ids[0] = id;
    f->tick = approve_in_steps;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->step, 2);
    assert_true(f->flag);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
    assert_int_equal(count_logs(f, id, "approved by 2 people", NULL, 0), 1);
}

static void approval_times_out(struct fixture *f, const char *stage_yaml)
{
    static const char *const ops[] = {OP_CANARY, OP_TEN, "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    long long id = canary_setup(f, NULL, stage_yaml, NULL);

    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage WAIT_APPROVAL timed out after 1s (rolled back)");
    assert_stages(f, id, "SUCCESS,SUCCESS,FAILURE,-,-,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

static void test_approval_stage_timeout(void **state)
{
    approval_times_out(*state, APPROVAL_PIPELINE("      timeout: 1s\n"
                                                 "      with: {minApprovers: 2}\n"));
}

/* `with: {timeout: ...}` of WAIT_APPROVAL is "the same as the stage's timeout". */
static void test_approval_with_timeout(void **state)
{
    approval_times_out(*state, APPROVAL_PIPELINE("      with: {minApprovers: 2, timeout: 1s}\n"));
}

/* An approval from someone not in `approvers` does not count: the stage keeps polling (four
 * times in 2 s) until a listed person approves. */
static void approve_unlisted_then_listed(struct fixture *f)
{
    long long id = f->ids[0];
    uint64_t now = uv_now(&f->loop);

    if (f->step == 0 && stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(
            kn_store_approval_add(f->store, id, 2, "mallory", "APPROVE", fake_now(f)), 0);
        f->t0 = now;
        f->step = 1;
    } else if (f->step == 1 && now - f->t0 >= 2000) {
        f->flag = stage_is(f, id, 2, "RUNNING") && strcmp(status_of(f, id), "RUNNING") == 0 &&
                  count_logs(f, id, "approved by", NULL, 0) == 0;
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "alice", "APPROVE", fake_now(f)),
                         0);
        f->step = 2;
        f->tick = NULL;
    }
}

static void test_approval_unlisted_does_not_count(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL,
                                APPROVAL_PIPELINE("      with: {approvers: [alice, bob], "
                                                  "minApprovers: 1}\n"),
                                NULL);

    f->ids[0] = id;
    f->tick = approve_unlisted_then_listed;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->step, 2);
    assert_true(f->flag);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_string_equal(get_deploy(f, id).reason, "");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
    assert_events(f, id,
                  "PLANNED,RUNNING,"
                  "STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,"
                  "STAGE_STARTED,WAITING_APPROVAL,STAGE_FINISHED,"
                  "STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,"
                  "STAGE_STARTED,STAGE_FINISHED,SUCCESS");
    assert_int_equal(count_logs(f, id, "approved by 1 person", NULL, 0), 1);
    assert_int_equal(count_logs(f, id, "approved by", NULL, 0), 1);
}

/* A rejection from someone not listed is ignored; one from a listed approver fails the stage at
 * its next poll, and the deployment rolls back. */
static void reject_unlisted_then_listed(struct fixture *f)
{
    long long id = f->ids[0];
    uint64_t now = uv_now(&f->loop);

    if (f->step == 0 && stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(
            kn_store_approval_add(f->store, id, 2, "mallory", "REJECT", fake_now(f)), 0);
        f->t0 = now;
        f->step = 1;
    } else if (f->step == 1 && now - f->t0 >= 1200) {
        f->flag = stage_is(f, id, 2, "RUNNING") && strcmp(status_of(f, id), "RUNNING") == 0;
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "bob", "REJECT", fake_now(f)), 0);
        f->step = 2;
        f->tick = NULL;
    }
}

static void test_approval_rejected_by_listed(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    long long id = canary_setup(f, NULL,
                                APPROVAL_PIPELINE("      with: {approvers: [alice, bob], "
                                                  "minApprovers: 2}\n"),
                                NULL);

    f->ids[0] = id;
    f->tick = reject_unlisted_then_listed;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->step, 2);
    assert_true(f->flag);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage WAIT_APPROVAL failed: rejected by bob (rolled back)");
    assert_stages(f, id, "SUCCESS,SUCCESS,FAILURE,-,-,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
    assert_events(f, id,
                  "PLANNED,RUNNING,"
                  "STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,"
                  "STAGE_STARTED,WAITING_APPROVAL,STAGE_FINISHED,ROLLING_BACK,"
                  "STAGE_STARTED,STAGE_FINISHED,FAILURE");
    assert_int_equal(count_logs(f, id, "approved by", NULL, 0), 0);
}

/* With no `approvers` list anyone counts, but still as distinct people: carol twice is one. */
static void approve_anyone(struct fixture *f)
{
    long long id = f->ids[0];
    uint64_t now = uv_now(&f->loop);

    if (f->step == 0 && stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "carol", "APPROVE", fake_now(f)),
                         0);
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "carol", "APPROVE", fake_now(f)),
                         0);
        f->t0 = now;
        f->step = 1;
    } else if (f->step == 1 && now - f->t0 >= 1200) {
        f->flag = stage_is(f, id, 2, "RUNNING") && strcmp(status_of(f, id), "RUNNING") == 0;
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "dave", "APPROVE", fake_now(f)),
                         0);
        f->step = 2;
        f->tick = NULL;
    }
}

static void test_approval_empty_list_anyone(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, APPROVAL_PIPELINE("      with: {minApprovers: 2}\n"),
                                NULL);

    f->ids[0] = id;
    f->tick = approve_anyone;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->step, 2);
    assert_true(f->flag);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_string_equal(get_deploy(f, id).reason, "");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
    assert_int_equal(count_logs(f, id, "approved by 2 people", NULL, 0), 1);
    assert_int_equal(count_logs(f, id, "approved by", NULL, 0), 1);
}

/* ---- 12: concurrency ------------------------------------------------------------------- */

static void watch_concurrency(struct fixture *f)
{
    size_t active = kn_engine_active(f->engine);

    if (active > f->max_active) {
        f->max_active = active;
    }
    if (!f->ids[2] && strcmp(status_of(f, f->ids[0]), "RUNNING") == 0) {
        f->ids[2] = plan(f, "hello", C2, "QUICK_SYNC", NULL);
        kn_engine_kick(f->engine);
    }
    if (f->ids[2] && !kn_deploy_status_is_final(get_deploy(f, f->ids[0]).status) &&
        strcmp(status_of(f, f->ids[2]), "PLANNED") != 0) {
        f->flag = 1; /* the second deployment of hello started while the first ran */
    }
}

static void test_concurrent_apps(void **state)
{
    struct fixture *f = *state;
    /* a quick sync is apply, weights, remove canary, remove baseline */
    static const char *const hello[] = {
        "apply primary 1111111 v1", "weights 100/0/0", "remove canary", "remove baseline",
        "apply primary 2222222 v2", "weights 100/0/0", "remove canary", "remove baseline", NULL};
    static const char *const world[] = {"apply primary 1111111 v1", "weights 100/0/0",
                                        "remove canary", "remove baseline", NULL};

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    add_commit(f, "hello", C2, "v2", NULL, NULL);
    add_commit(f, "world", C1, "v1", NULL, NULL);
    f->plat->rule[OP_APPLY].delay_ms = 300;
    f->ids[0] = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    f->ids[1] = plan(f, "world", C1, "QUICK_SYNC", NULL);
    f->tick = watch_concurrency;
    engine_start(f);
    run_loop(f);

    assert_int_not_equal(f->ids[2], 0);
    assert_int_equal(f->max_active, 2);
    assert_false(f->flag);
    assert_ops(f, "hello", hello);
    assert_ops(f, "world", world);
    assert_int_equal(f->nops, 12);
    assert_string_equal(status_of(f, f->ids[0]), "SUCCESS");
    assert_string_equal(status_of(f, f->ids[1]), "SUCCESS");
    assert_string_equal(status_of(f, f->ids[2]), "SUCCESS");
    assert_app(f, "hello", C2, "");
    assert_app(f, "world", C1, "");
}

/* The engine's queue depth as GET /metrics shows it (kanaria_engine_queue_depth), -1: none. */
static double engine_queue_depth(void)
{
    static const char gauge[] = "\nkanaria_engine_queue_depth ";
    struct kn_buf out;
    const char *p;
    double depth = -1;

    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_render(NULL, &out);
    if (out.data && (p = strstr(out.data, gauge))) {
        depth = strtod(p + strlen(gauge), NULL);
    }
    kn_buf_release(&out);
    return depth;
}

/* Once hello's and world's first deployments run, plan a second one of each: both wait in the
 * queue (f->step: its depth right after the kick that saw them), and neither may start while its
 * app's first one runs (f->flag). */
static void watch_queue(struct fixture *f)
{
    if (!f->ids[2] && strcmp(status_of(f, f->ids[0]), "RUNNING") == 0 &&
        strcmp(status_of(f, f->ids[1]), "RUNNING") == 0) {
        f->ids[2] = plan(f, "hello", C2, "QUICK_SYNC", NULL);
        f->ids[3] = plan(f, "world", C2, "QUICK_SYNC", NULL);
        kn_engine_kick(f->engine);
        f->step = (int)engine_queue_depth();
    }
    for (int i = 0; i < 2 && f->ids[2]; i++) {
        if (!kn_deploy_status_is_final(get_deploy(f, f->ids[i]).status) &&
            strcmp(status_of(f, f->ids[2 + i]), "PLANNED") != 0) {
            f->flag = 1;
        }
    }
}

/* More deployments are ready than may run: the queue holds one per app behind its running one
 * (depth 2), runs each after its app's first in the order planned, and is empty at the end. */
static void test_queue_waits_behind_running(void **state)
{
    struct fixture *f = *state;
    static const char *const hello[] = {
        "apply primary 1111111 v1", "weights 100/0/0", "remove canary", "remove baseline",
        "apply primary 2222222 v2", "weights 100/0/0", "remove canary", "remove baseline", NULL};

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    add_commit(f, "hello", C2, "v2", NULL, NULL);
    add_commit(f, "world", C1, "v1", NULL, NULL);
    add_commit(f, "world", C2, "v2", NULL, NULL);
    f->plat->rule[OP_APPLY].delay_ms = 200;
    f->ids[0] = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    f->ids[1] = plan(f, "world", C1, "QUICK_SYNC", NULL);
    f->tick = watch_queue;
    engine_start(f);
    run_loop(f);

    assert_int_not_equal(f->ids[3], 0);
    assert_int_equal(f->step, 2);
    assert_false(f->flag);
    assert_true(engine_queue_depth() == 0);
    assert_ops(f, "hello", hello);
    assert_int_equal(f->nops, 16);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(status_of(f, f->ids[i]), "SUCCESS");
    }
    assert_true(get_deploy(f, f->ids[2]).started_at >= get_deploy(f, f->ids[0]).finished_at);
    assert_true(get_deploy(f, f->ids[3]).started_at >= get_deploy(f, f->ids[1]).finished_at);
    assert_app(f, "hello", C2, "");
    assert_app(f, "world", C2, "");
}

/* ---- stop while loading ------------------------------------------------------------------- */

static void test_stop_while_loading(void **state)
{
    struct fixture *f = *state;
    static const char *const none[] = {NULL};
    long long id;

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    id = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    engine_start(f);
    engine_shutdown(f); /* the load is on the thread pool */
    assert_ops(f, NULL, none);
    assert_string_equal(status_of(f, id), "PLANNED");

    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, id), "SUCCESS");
}

/* ---- ANALYSIS with a fake metrics provider ------------------------------------------------ */

#define fake_metrics_state kn_fake_metrics_state
#define fake_metrics_set kn_fake_metrics_set

/* The fake provider (tests/fakes/fake_metrics.c), named "prom" as the pipelines ask. */
static struct kn_metrics *fake_metrics_find(void *data, const char *name)
{
    struct fixture *f = data;

    (void)name;
    return kn_fake_metrics(&f->loop, "prom");
}

#define ANALYSIS_PIPELINE(duration, metric)                                                        \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: ANALYSIS\n"                                                                       \
    "      with:\n"                                                                                \
    "        duration: " duration "\n"                                                             \
    "        metrics:\n"                                                                           \
    "          - {name: err, provider: prom, query: 'err{v=\"{{variant}}\"}[{{window}}]', "        \
    "interval: 1s, " metric "}\n"                                                                  \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

static int count_records(struct fixture *f, long long id, const char *verdict)
{
    char sql[256];
    sqlite3 *db;
    sqlite3_stmt *st;
    int n = -1;
    char *path = kn_asprintf("%s/kanaria.db", f->dir);

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM analysis_records WHERE deployment = %lld AND verdict = '%s'",
             id, verdict);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
    return n;
}

static void test_analysis_passes(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01, 0.02, 0.0};
    long long id;

    fake_metrics_set(good, 3, good, 3, NULL);
    id = canary_setup(f, NULL, ANALYSIS_PIPELINE("2s", "expected: {max: 0.05}"), NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_int_equal(count_records(f, id, "PASS"), 2);
    assert_string_equal(fake_metrics_state.last_query, "err{v=\"canary\"}[1s]");
    assert_int_equal(count_logs(f, id, "analysis passed: 'err' 2 passed, 0 failed, 0 inconclusive",
                                NULL, 0),
                     1);
}

/* A failed check ends the stage at its first evaluation, not at the end of `duration`. */
static void test_analysis_fails_fast(void **state)
{
    struct fixture *f = *state;
    static const double bad[] = {0.01, 0.3};
    uint64_t t0 = uv_hrtime();
    long long id;

    fake_metrics_set(bad, 2, bad, 2, NULL);
    id = canary_setup(f, NULL, ANALYSIS_PIPELINE("1m", "expected: {max: 0.05}"), NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage ANALYSIS failed: analysis 'err' failed: canary 0.3 > max 0.05 (1 of "
                        "1 evaluations failed, 0 allowed) (rolled back)");
    assert_true(uv_hrtime() - t0 < 30ull * 1000 * 1000 * 1000);
    assert_int_equal(count_records(f, id, "FAIL"), 1);
}

static void test_analysis_compares_with_primary(void **state)
{
    struct fixture *f = *state;
    static const double canary[] = {10, 11, 12, 13, 14}, primary[] = {1, 2, 3, 4, 5};
    long long id;

    fake_metrics_set(canary, 5, primary, 5, NULL);
    id = canary_setup(f, NULL,
                      ANALYSIS_PIPELINE("10s", "strategy: canary-primary, deviation: high"), NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "FAILURE");
    /* the exact one-sided p of 5 against 5, fully separated: 1 / C(10, 5) = 1/252 */
    assert_string_equal(get_deploy(f, id).reason,
                        "stage ANALYSIS failed: analysis 'err' failed: canary (median 12) is higher "
                        "than primary (median 3): p 0.003968 < alpha 0.05 (1 of 1 evaluations "
                        "failed, 0 allowed) (rolled back)");
}

static void test_analysis_inconclusive_limit(void **state)
{
    struct fixture *f = *state;
    long long id;

    fake_metrics_set(NULL, 0, NULL, 0, "prometheus: connection refused");
    id = canary_setup(f, NULL, ANALYSIS_PIPELINE("10s", "expected: {max: 0.05}"), NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage ANALYSIS failed: analysis 'err' failed: 2 inconclusive evaluations, "
                        "1 allowed (last: prometheus: connection refused) (rolled back)");
    assert_int_equal(count_records(f, id, "INCONCLUSIVE"), 2);
}

/* The query and the probe URL are filled in from the deployment's platform for the variant
 * evaluated ({{fakeVar}} is the fake type's: fake-APP-VARIANT), with the common placeholders. */
static void test_analysis_platform_placeholders(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01};
    long long id;

    f->platform_name = "fake";
    fake_metrics_set(good, 1, good, 1, NULL);
    id = canary_setup(f, NULL,
                      "    - name: CANARY_ROLLOUT\n"
                      "    - name: TRAFFIC_ROUTING\n"
                      "      with: {canary: 10}\n"
                      "    - name: ANALYSIS\n"
                      "      with:\n"
                      "        duration: 1s\n"
                      "        metrics:\n"
                      "          - {name: err, provider: prom, interval: 1s, "
                      "expected: {max: 0.05}, query: 'err{t=\"{{fakeVar}}\",v=\"{{variant}}\","
                      "r=\"{{repository}}\",a=\"{{ app }}\"}[{{window}}]'}\n"
                      "        http:\n"
                      "          - {name: probe, interval: 1s, "
                      "url: 'http://127.0.0.1:9/{{fakeVar}}?c={{commit}}'}\n"
                      "    - name: PRIMARY_ROLLOUT\n"
                      "    - name: TRAFFIC_ROUTING\n"
                      "      with: {primary: 100}\n"
                      "    - name: CANARY_CLEAN\n",
                      NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(fake_metrics_state.last_query,
                        "err{t=\"fake-hello-canary\",v=\"canary\",r=\"" REPO "\",a=\"hello\"}[1s]");
    /* the test has no HTTP client: the probe fails, naming the URL as it was filled in */
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_non_null(strstr(get_deploy(f, id).reason,
                           "GET http://127.0.0.1:9/fake-hello-canary?c=" C2 ": "));
}

static void stop_after_first_evaluation(struct fixture *f)
{
    if (count_records(f, f->ids[0], "FAIL") == 1) {
        kn_engine_stop(f->engine);
        f->tick = NULL;
    }
}

/* The counts survive a restart: one failure allowed, one before and one after. */
static void test_analysis_resumes_counts(void **state)
{
    struct fixture *f = *state;
    static const double bad[] = {0.3};
    long long id;

    fake_metrics_set(bad, 1, bad, 1, NULL);
    id = canary_setup(f, NULL, ANALYSIS_PIPELINE("30s", "expected: {max: 0.05}, failureLimit: 1"),
                      NULL);
    f->ids[0] = id;
    f->tick = stop_after_first_evaluation;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "RUNNING");

    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage ANALYSIS failed: analysis 'err' failed: canary 0.3 > max 0.05 (2 of "
                        "2 evaluations failed, 1 allowed) (rolled back)");
}

/* ---- operator actions: cancel and skip ------------------------------------------------------- */

#define WAITING_PIPELINE APPROVAL_PIPELINE("      with: {minApprovers: 1}\n")

/* Cancel f->ids[0] (rollback: f->flag) once it waits at WAIT_APPROVAL; f->step 2 also stops the
 * engine right after, as a crash would. */
static void cancel_at_approval(struct fixture *f)
{
    long long id = f->ids[0];

    if (stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(
            kn_engine_cancel(f->engine, id, f->flag, "alice", f->flag ? NULL : "enough"), 0);
        if (f->step == 2) {
            kn_engine_stop(f->engine);
        }
        f->tick = NULL;
    }
}

static void test_cancel_with_rollback(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY,         OP_TEN, "weights 100/0/0", "remove canary",
                                      "remove baseline", NULL};
    long long id = canary_setup(f, NULL, WAITING_PIPELINE, NULL);

    f->ids[0] = id;
    f->flag = 1;
    f->tick = cancel_at_approval;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "CANCELLED");
    assert_string_equal(get_deploy(f, id).reason, "cancelled by alice");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
    assert_events(f, id,
                  "PLANNED,RUNNING,STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,"
                  "STAGE_STARTED,WAITING_APPROVAL,STAGE_FINISHED,ROLLING_BACK,STAGE_STARTED,"
                  "STAGE_FINISHED,CANCELLED");
    assert_int_equal(kn_engine_cancel(f->engine, id, 1, "alice", NULL), KN_EINVAL);
    assert_int_equal(kn_engine_cancel(f->engine, 999, 1, "alice", NULL), KN_ENOTFOUND);
}

static void test_cancel_without_rollback(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, NULL};
    long long id = canary_setup(f, NULL, WAITING_PIPELINE, NULL);

    f->ids[0] = id;
    f->flag = 0;
    f->tick = cancel_at_approval;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops); /* nothing after the cancel: the canary keeps its traffic */
    assert_string_equal(status_of(f, id), "CANCELLED");
    assert_string_equal(get_deploy(f, id).reason, "cancelled by alice: enough");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,-");
    assert_app(f, "hello", C1, "");
}

/* Cancelled while the engine loads it (PLANNED, nothing ran): CANCELLED, no operation. */
static void test_cancel_planned(void **state)
{
    struct fixture *f = *state;
    static const char *const none[] = {NULL};
    long long id;

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    id = plan(f, "hello", C1, "QUICK_SYNC", NULL);
    engine_start(f);
    assert_int_equal(kn_engine_cancel(f->engine, id, 1, "bob", NULL), 0);
    run_loop(f);

    assert_ops(f, NULL, none);
    assert_string_equal(status_of(f, id), "CANCELLED");
    assert_string_equal(get_deploy(f, id).reason, "cancelled by bob");
    assert_stages(f, id, "-");
    assert_int_equal(get_deploy(f, id).started_at, 0);
}

/* Stopped (a crash) while the cancel's rollback hangs: the restart runs the rollback only, never
 * the rest of the pipeline, and ends CANCELLED. */
static void test_cancel_survives_restart(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {
        OP_CANARY,         OP_TEN, "weights 100/0/0", "weights 100/0/0", "remove canary",
        "remove baseline", NULL};
    long long id = canary_setup(f, NULL, WAITING_PIPELINE, NULL);

    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.script = "oh"};
    f->ids[0] = id;
    f->flag = 1;
    f->step = 2;
    f->tick = cancel_at_approval;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "ROLLING_BACK");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,RUNNING");

    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "CANCELLED");
    assert_string_equal(get_deploy(f, id).reason, "cancelled by alice");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

static void skip_at_approval(struct fixture *f)
{
    long long id = f->ids[0];

    if (stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(kn_engine_skip(f->engine, id, 1, "alice", NULL), KN_EEXISTS);
        assert_int_equal(kn_engine_skip(f->engine, id, 6, "alice", NULL), KN_EINVAL);
        assert_int_equal(kn_engine_skip(f->engine, 999, 2, "alice", NULL), KN_ENOTFOUND);
        /* an approval passes only with its approvals, or by break-glass */
        assert_int_equal(kn_engine_skip(f->engine, id, 2, "alice", NULL), KN_EUNSUPPORTED);
        assert_int_equal(kn_engine_skip(f->engine, id, 2, "alice", ""), KN_EUNSUPPORTED);
        assert_true(stage_is(f, id, 2, "RUNNING"));
        assert_int_equal(kn_engine_skip(f->engine, id, 2, "alice", "pager at 3am"), 0);
        f->tick = NULL;
    }
}

/* The last event of `type` of a deployment whose message holds needle (message "" when none). */
struct event_find {
    long long deployment;
    const char *type;
    const char *needle;
    char message[2048];
};

static int find_event(const struct kn_event *e, void *data)
{
    struct event_find *x = data;

    if (e->deployment == x->deployment && strcmp(e->type, x->type) == 0 &&
        strstr(e->message, x->needle)) {
        snprintf(x->message, sizeof(x->message), "%s", e->message);
    }
    return 0;
}

/* A break-glass skip of stage 2 WAIT_APPROVAL by alice shows in the stage, its event and the
 * deployment's reason. */
static void assert_break_glass(struct fixture *f, long long id)
{
    struct event_find x = {.deployment = id, .type = "STAGE_FINISHED", .needle = "SKIPPED"};
    char *why = kn_store_stage_meta_get(f->store, id, 2, "reason");

    assert_non_null(why);
    assert_string_equal(why, "skipped by alice (break-glass): pager at 3am");
    free(why);
    assert_int_equal(kn_store_events(f->store, 0, 0, find_event, &x), 0);
    assert_string_equal(x.message, "stage 2 WAIT_APPROVAL: SKIPPED (skipped by alice "
                                   "(break-glass): pager at 3am)");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage 2 WAIT_APPROVAL skipped by alice (break-glass): pager at 3am");
}

static void test_skip_running_stage(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, WAITING_PIPELINE, NULL);

    f->ids[0] = id;
    f->tick = skip_at_approval;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SKIPPED,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
    assert_break_glass(f, id);
}

/* PRIMARY_ROLLOUT is skipped while it applies: the primary is replaced all the same, so a
 * failure after it re-applies the last good commit. */
static void skip_primary_rollout(struct fixture *f)
{
    if (stage_is(f, f->ids[0], 2, "RUNNING")) {
        assert_int_equal(kn_engine_skip(f->engine, f->ids[0], 2, "alice", NULL), 0);
        f->tick = NULL;
    }
}

static void test_skip_running_primary_still_rolled_back(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY,         OP_TEN,
                                      OP_PRIMARY,        OP_ALL, /* fails */
                                      "weights 100/0/0", "apply primary 1111111 v1",
                                      "remove canary",   "remove baseline",
                                      NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    f->plat->rule[OP_APPLY] = (struct fake_rule){.delay_ms = 300};
    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.script = "of", .message = NO_SERVER};
    f->ids[0] = id;
    f->tick = skip_primary_rollout;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_int_equal(f->plat->cancels, 0); /* a skip leaves the apply to finish */
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_stages(f, id, "SUCCESS,SUCCESS,SKIPPED,FAILURE,-,SUCCESS");
    assert_app(f, "hello", C1, C2);
}

/* While the canary starts (slowly), WAIT_APPROVAL is skipped ahead of time. */
static void skip_ahead(struct fixture *f)
{
    long long id = f->ids[0];

    if (stage_is(f, id, 0, "RUNNING")) {
        assert_int_equal(kn_engine_skip(f->engine, id, 2, "alice", NULL), KN_EUNSUPPORTED);
        assert_int_equal(kn_engine_skip(f->engine, id, 2, "alice", "pager at 3am"), 0);
        assert_int_equal(kn_engine_skip(f->engine, id, 2, "alice", "again"), KN_EEXISTS);
        f->tick = NULL;
    }
}

static void test_skip_later_stage(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, WAITING_PIPELINE, NULL);

    f->plat->rule[OP_APPLY] = (struct fake_rule){.delay_ms = 300};
    f->ids[0] = id;
    f->tick = skip_ahead;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SKIPPED,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
    assert_break_glass(f, id);
}

/* ---- operator actions: promote --full ----------------------------------------------------- */

#define PROMOTE_PIPELINE                                                                           \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: WAIT\n"                                                                           \
    "      with: {duration: 1h}\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 50}\n"                                                                   \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

/* During the hour's WAIT, alice promotes: the WAIT and the 50% step are skipped. */
static void promote_at_wait(struct fixture *f)
{
    long long id = f->ids[0];
    char why[256];

    if (stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(kn_engine_promote(f->engine, 999, "alice", why, sizeof(why)),
                         KN_ENOTFOUND);
        assert_int_equal(kn_engine_promote(f->engine, id, "alice", why, sizeof(why)), 0);
        assert_string_equal(why, "");
        f->tick = NULL;
    }
}

static void test_promote_full(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    struct event_find x = {.type = "STAGE_FINISHED", .needle = "stage 3"};
    long long id = canary_setup(f, NULL, PROMOTE_PIPELINE, NULL);
    char *why;

    f->ids[0] = id;
    f->tick = promote_at_wait;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops); /* no "weights 50/50/0" */
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SKIPPED,SKIPPED,SUCCESS,SUCCESS,SUCCESS,-");
    assert_app(f, "hello", C2, "");
    why = kn_store_stage_meta_get(f->store, id, 2, "reason");
    assert_non_null(why);
    assert_string_equal(why, "promoted by alice (full)");
    free(why);
    x.deployment = id;
    assert_int_equal(kn_store_events(f->store, 0, 0, find_event, &x), 0);
    assert_string_equal(x.message,
                        "stage 3 TRAFFIC_ROUTING: SKIPPED (promoted by alice (full))");
}

/* While the canary starts and while the approval waits, a promotion is refused; once carol
 * approved, the pipeline goes on; during the promotion and after it, there is nothing to
 * promote to. */
static void promote_refused(struct fixture *f)
{
    long long id = f->ids[0];
    char why[256];

    if (f->step == 0 && stage_is(f, id, 0, "RUNNING")) {
        assert_int_equal(kn_engine_promote(f->engine, id, "alice", why, sizeof(why)), KN_EEXISTS);
        assert_string_equal(why, "stage 2 WAIT_APPROVAL of deployment 2 lacks its approvals: "
                                 "approve it before promoting");
        f->step = 1;
    } else if (f->step == 1 && stage_is(f, id, 2, "RUNNING")) {
        assert_int_equal(kn_engine_promote(f->engine, id, "alice", why, sizeof(why)), KN_EEXISTS);
        assert_true(stage_is(f, id, 2, "RUNNING"));
        assert_int_equal(kn_store_approval_add(f->store, id, 2, "carol", "APPROVE", fake_now(f)),
                         0);
        f->step = 2;
    } else if (f->step == 2 && stage_is(f, id, 3, "RUNNING")) {
        assert_int_equal(kn_engine_promote(f->engine, id, "alice", why, sizeof(why)), KN_EEXISTS);
        assert_string_equal(why, "deployment 2 is promoting already (stage 3 PRIMARY_ROLLOUT "
                                 "runs)");
        f->step = 3;
    } else if (f->step == 3 && stage_is(f, id, 4, "RUNNING")) {
        assert_int_equal(kn_engine_promote(f->engine, id, "alice", why, sizeof(why)), KN_EINVAL);
        assert_string_equal(why, "deployment 2 has no PRIMARY_ROLLOUT ahead to promote to");
        f->step = 4;
        f->tick = NULL;
    }
}

static void test_promote_refused_until_approved(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, WAITING_PIPELINE, NULL);

    f->plat->rule[OP_APPLY] = (struct fake_rule){.delay_ms = 300};
    f->plat->rule[OP_WEIGHTS] = (struct fake_rule){.delay_ms = 300};
    f->ids[0] = id;
    f->tick = promote_refused;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->step, 4);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-");
}

/* After a failed evaluation (one failure allowed), the canary is not promoted. */
static void promote_after_failed_evaluation(struct fixture *f)
{
    char why[256];

    if (count_records(f, f->ids[0], "FAIL") == 1) {
        assert_int_equal(kn_engine_promote(f->engine, f->ids[0], "alice", why, sizeof(why)),
                         KN_EEXISTS);
        assert_string_equal(why, "analysis 'err' of deployment 2 failed at its last "
                                 "evaluation: the canary is not healthy");
        f->flag = 1;
        f->tick = NULL;
    }
}

static void test_promote_refused_while_analysis_fails(void **state)
{
    struct fixture *f = *state;
    static const double bad[] = {0.3};
    long long id;

    fake_metrics_set(bad, 1, bad, 1, NULL);
    id = canary_setup(f, NULL, ANALYSIS_PIPELINE("30s", "expected: {max: 0.05}, failureLimit: 1"),
                      NULL);
    f->ids[0] = id;
    f->tick = promote_after_failed_evaluation;
    engine_start(f);
    run_loop(f);

    assert_true(f->flag);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_false(stage_is(f, id, 3, "SKIPPED"));
}

/* ---- CANARY_STEPS ------------------------------------------------------------------------- */

#define STEPS_PIPELINE(with)                                                                       \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: CANARY_STEPS\n"                                                                   \
    "      with:\n"                                                                                \
    "        interval: 1s\n"                                                                       \
    "        analysis:\n"                                                                          \
    "          metrics:\n"                                                                         \
    "            - {name: err, provider: prom, query: 'err{v=\"{{variant}}\"}[{{window}}]', "      \
    "interval: 1s, expected: {max: 0.05}}\n"                                                       \
    with "    - name: PRIMARY_ROLLOUT\n"                                                           \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

/* The weights move one step per interval, in order, each step analysed. */
static void test_steps_weights_in_order(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01, 0.02};
    static const char *const ops[] = {OP_CANARY,  "weights 90/10/0", "weights 80/20/0",
                                      "weights 50/50/0", OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id;
    char *step;

    fake_metrics_set(good, 2, good, 2, NULL);
    id = canary_setup(f, NULL, STEPS_PIPELINE("        steps: [10, 20, 50]\n"), NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_ops(f, NULL, ops);
    assert_int_equal(count_records(f, id, "PASS"), 3); /* one per step of 1s */
    assert_int_equal(count_logs(f, id, "step 2 of 3: routing traffic: primary 80%, canary 20%",
                                NULL, 0),
                     1);
    step = kn_store_stage_meta_get(f->store, id, 1, "step");
    assert_string_equal(step, "3");
    free(step);
}

/* Flagger's form: stepWeight 20 up to maxWeight 50 is 20, 40, 50; no checks is a wait. */
static void test_steps_step_weight(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY,  "weights 80/20/0", "weights 60/40/0",
                                      "weights 50/50/0", OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id;

    id = canary_setup(f, NULL,
                      "    - name: CANARY_ROLLOUT\n"
                      "    - name: CANARY_STEPS\n"
                      "      with: {stepWeight: 20, maxWeight: 50, interval: 1s}\n"
                      "    - name: PRIMARY_ROLLOUT\n"
                      "    - name: TRAFFIC_ROUTING\n"
                      "      with: {primary: 100}\n"
                      "    - name: CANARY_CLEAN\n",
                      NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_ops(f, NULL, ops);
}

/* The checks turn bad once step 3's weights are set. */
static void bad_from_step_3(struct fixture *f)
{
    static const double bad[] = {0.3};

    for (size_t i = 0; i < f->nops; i++) {
        if (strcmp(f->ops[i].line, "weights 70/30/0") == 0) {
            fake_metrics_set(bad, 1, bad, 1, NULL);
            f->tick = NULL;
        }
    }
}

/* The first failed check fails the stage at its step, and the deployment rolls back. */
static void test_steps_failure_at_step_3_rolls_back(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01};
    static const char *const ops[] = {OP_CANARY,         "weights 90/10/0", "weights 80/20/0",
                                      "weights 70/30/0", "weights 100/0/0", "remove canary",
                                      "remove baseline",  NULL};
    long long id;

    fake_metrics_set(good, 1, good, 1, NULL);
    id = canary_setup(f, NULL, STEPS_PIPELINE("        steps: [10, 20, 30, 50]\n"), NULL);
    f->tick = bad_from_step_3;
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "stage CANARY_STEPS failed: step 3 (30%): analysis 'err' failed: canary 0.3 "
                        "> max 0.05 (1 of 1 evaluations failed, 0 allowed) (rolled back)");
    assert_ops(f, NULL, ops);
    assert_app(f, "hello", C1, C2);
}

/* Stopped at step 2 (its weights just set), kanaria resumes there: step 1 is not run again. */
static void test_steps_resume_at_step(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01};
    static const char *const ops[] = {OP_CANARY,         "weights 90/10/0", "weights 80/20/0",
                                      "weights 80/20/0", "weights 50/50/0", OP_PRIMARY,
                                      OP_ALL,             OP_CLEAN,          NULL};
    long long id;

    fake_metrics_set(good, 1, good, 1, NULL);
    id = canary_setup(f, NULL, STEPS_PIPELINE("        steps: [10, 20, 50]\n"), NULL);
    f->stop_after = 3; /* the canary, step 1's weights, step 2's weights */
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "RUNNING");
    assert_true(stage_is(f, id, 1, "RUNNING"));

    f->stop_after = 0;
    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_ops(f, NULL, ops);
    assert_int_equal(count_logs(f, id, "resuming at step 2 of 3", NULL, 0), 1);
    assert_int_equal(count_records(f, id, "PASS"), 3);
}

/* A pause holds the step's weight after its interval, for its duration. */
static void test_steps_pause(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01};
    static const char *const ops[] = {OP_CANARY, "weights 90/10/0", "weights 80/20/0", OP_PRIMARY,
                                      OP_ALL,    OP_CLEAN,          NULL};
    long long id, t0;
    struct kn_deployment d;

    fake_metrics_set(good, 1, good, 1, NULL);
    id = canary_setup(f, NULL,
                      STEPS_PIPELINE("        steps: [10, 20]\n"
                                     "        pause: [{step: 1, duration: 2s}]\n"),
                      NULL);
    t0 = fake_now(f);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_ops(f, NULL, ops);
    assert_int_equal(count_logs(f, id, "step 1 of 2: pausing at canary 10% for 2s", NULL, 0), 1);
    d = get_deploy(f, id);
    /* two intervals of 1s and the pause of 2s: a lower bound (timers never fire early) */
    assert_true(d.finished_at - t0 >= 4000);
}

/* ---- background analysis (spec.analysis) --------------------------------------------------- */

#define BG_ANALYSIS(metric)                                                                        \
    "  analysis:\n"                                                                                \
    "    startingStage: traffic-10\n"                                                              \
    "    metrics:\n"                                                                               \
    "      - {name: err, provider: prom, query: 'err{v=\"{{variant}}\"}[{{window}}]', "            \
    "interval: 1s, " metric "}\n"

/* Six stages: the ROLLBACK is stage 6, the background analysis stage 7. */
#define BG_PIPELINE(wait)                                                                          \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "      with: {replicas: 1}\n"                                                                  \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      id: traffic-10\n"                                                                       \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: WAIT\n"                                                                           \
    "      with: {duration: " wait "}\n"                                                           \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

/* Analysis records of deployment `id` at stage `index` with `verdict`. */
static int count_records_at(struct fixture *f, long long id, int index, const char *verdict)
{
    char sql[256];
    sqlite3 *db;
    sqlite3_stmt *st;
    int n = -1;
    char *path = kn_asprintf("%s/kanaria.db", f->dir);

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM analysis_records WHERE deployment = %lld AND stage = %d AND "
             "verdict = '%s'",
             id, index, verdict);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
    return n;
}

struct event_lines {
    long long deployment;
    char text[8192];
};

static int collect_event(const struct kn_event *e, void *data)
{
    struct event_lines *l = data;

    if (e->deployment == l->deployment && strcmp(e->type, "STAGE_LOG") != 0) {
        snprintf(l->text + strlen(l->text), sizeof(l->text) - strlen(l->text), "%s\n",
                 e->message);
    }
    return 0;
}

/* Where `needle` is in the deployment's event messages (not its log lines); -1: absent. */
static long event_at(struct fixture *f, long long id, const char *needle)
{
    static struct event_lines l;
    const char *p;

    memset(&l, 0, sizeof(l));
    l.deployment = id;
    assert_int_equal(kn_store_events(f->store, 0, 0, collect_event, &l), 0);
    p = strstr(l.text, needle);
    return p ? (long)(p - l.text) : -1;
}

/* A failed background check during a WAIT cancels the WAIT and rolls the deployment back, long
 * before the WAIT would end; its records are the background analysis's (stage 7). */
static void test_background_fails_during_wait(void **state)
{
    struct fixture *f = *state;
    static const double bad[] = {0.3};
    long long id;

    fake_metrics_set(bad, 1, bad, 1, NULL);
    id = canary_setup(f, BG_ANALYSIS("expected: {max: 0.05}"), BG_PIPELINE("1m"), NULL);
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "background analysis failed: analysis 'err' failed: canary 0.3 > max 0.05 "
                        "(1 of 1 evaluations failed, 0 allowed) (rolled back)");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,SUCCESS,FAILURE");
    assert_int_equal(count_records_at(f, id, 7, "FAIL"), 1);
    assert_int_equal(count_records(f, id, "FAIL"), 1);
    /* it starts as its starting stage does (just before), not before */
    assert_true(event_at(f, id, "stage 0 CANARY_ROLLOUT: SUCCESS") <
                event_at(f, id, "stage 7 ANALYSIS (background): RUNNING"));
    assert_true(event_at(f, id, "stage 7 ANALYSIS (background): RUNNING") <
                event_at(f, id, "stage 1 TRAFFIC_ROUTING (traffic-10): RUNNING"));
    assert_true(event_at(f, id, "stage 7 ANALYSIS (background): FAILURE") >= 0);
    assert_app(f, "hello", C1, C2);
}

/* Once the promotion (the first PRIMARY_ROLLOUT) starts, the background analysis is over: what
 * the metrics say after that does not fail the deployment. */
static void bad_after_promotion(struct fixture *f)
{
    static const double bad[] = {0.3};

    if (stage_is(f, f->ids[0], 3, "RUNNING") || stage_is(f, f->ids[0], 3, "SUCCESS")) {
        fake_metrics_set(bad, 1, bad, 1, NULL);
        f->tick = NULL;
    }
}

static void test_background_passes_until_promotion(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01};
    long long id;

    fake_metrics_set(good, 1, good, 1, NULL);
    /* a WAIT after the promotion gives a background analysis that kept running the time to
     * fail */
    id = canary_setup(f, BG_ANALYSIS("expected: {max: 0.05}"),
                      "    - name: CANARY_ROLLOUT\n"
                      "      with: {replicas: 1}\n"
                      "    - name: TRAFFIC_ROUTING\n"
                      "      id: traffic-10\n"
                      "      with: {canary: 10}\n"
                      "    - name: WAIT\n"
                      "      with: {duration: 3s}\n"
                      "    - name: PRIMARY_ROLLOUT\n"
                      "    - name: WAIT\n"
                      "      id: settle\n"
                      "      with: {duration: 3s}\n"
                      "    - name: TRAFFIC_ROUTING\n"
                      "      with: {primary: 100}\n"
                      "    - name: CANARY_CLEAN\n",
                      NULL);
    f->ids[0] = id;
    f->tick = bad_after_promotion;
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,SUCCESS,-,SUCCESS");
    assert_true(count_records_at(f, id, 8, "PASS") >= 1);
    assert_int_equal(count_records(f, id, "FAIL"), 0);
    /* stopped as the promotion started */
    assert_true(event_at(f, id, "stage 8 ANALYSIS (background): SUCCESS") >= 0);
    assert_true(event_at(f, id, "stage 8 ANALYSIS (background): SUCCESS") <
                event_at(f, id, "stage 3 PRIMARY_ROLLOUT: RUNNING"));
    assert_app(f, "hello", C2, "");
}

static void stop_after_first_background_failure(struct fixture *f)
{
    if (count_records_at(f, f->ids[0], 7, "FAIL") == 1) {
        kn_engine_stop(f->engine);
        f->tick = NULL;
    }
}

/* After a restart (kill -9 alike: the engine stops with nothing recorded) the background
 * analysis runs on with its counts: one failure allowed, one before the restart and one
 * after. */
static void test_background_resumes_after_restart(void **state)
{
    struct fixture *f = *state;
    static const double bad[] = {0.3};
    long long id;

    fake_metrics_set(bad, 1, bad, 1, NULL);
    id = canary_setup(f, BG_ANALYSIS("expected: {max: 0.05}, failureLimit: 1"),
                      BG_PIPELINE("1m"), NULL);
    f->ids[0] = id;
    f->tick = stop_after_first_background_failure;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "RUNNING");
    assert_stages(f, id, "SUCCESS,SUCCESS,RUNNING,-,-,-,-,RUNNING");

    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, id), "FAILURE");
    assert_string_equal(get_deploy(f, id).reason,
                        "background analysis failed: analysis 'err' failed: canary 0.3 > max 0.05 "
                        "(2 of 2 evaluations failed, 1 allowed) (rolled back)");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,SUCCESS,FAILURE");
    assert_int_equal(count_records_at(f, id, 7, "FAIL"), 2);
}

/* A cancel stops it too, recorded CANCELLED. */
static void cancel_in_wait(struct fixture *f)
{
    if (stage_is(f, f->ids[0], 2, "RUNNING") && count_records_at(f, f->ids[0], 7, "PASS") >= 1) {
        assert_int_equal(kn_engine_cancel(f->engine, f->ids[0], 1, "alice", NULL), 0);
        f->tick = NULL;
    }
}

static void test_background_cancelled(void **state)
{
    struct fixture *f = *state;
    static const double good[] = {0.01};
    long long id;

    fake_metrics_set(good, 1, good, 1, NULL);
    id = canary_setup(f, BG_ANALYSIS("expected: {max: 0.05}"), BG_PIPELINE("1m"), NULL);
    f->ids[0] = id;
    f->tick = cancel_in_wait;
    engine_start(f);
    run_loop(f);

    assert_string_equal(status_of(f, id), "CANCELLED");
    assert_stages(f, id, "SUCCESS,SUCCESS,CANCELLED,-,-,-,SUCCESS,CANCELLED");
}

/* ---- promote --full during CANARY_STEPS ---------------------------------------------------- */

/* At the first step (an hour each), alice promotes: the steps stop at 10%. */
static void promote_at_first_step(struct fixture *f)
{
    char why[256];

    if (stage_is(f, f->ids[0], 1, "RUNNING") && f->nops >= 2) {
        assert_int_equal(kn_engine_promote(f->engine, f->ids[0], "alice", why, sizeof(why)), 0);
        f->tick = NULL;
    }
}

static void test_promote_during_steps(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, "weights 90/10/0", OP_PRIMARY, OP_ALL, OP_CLEAN,
                                      NULL};
    long long id = canary_setup(f, NULL,
                                "    - name: CANARY_ROLLOUT\n"
                                "    - name: CANARY_STEPS\n"
                                "      with: {steps: [10, 20, 50], interval: 1h}\n"
                                "    - name: PRIMARY_ROLLOUT\n"
                                "    - name: TRAFFIC_ROUTING\n"
                                "      with: {primary: 100}\n"
                                "    - name: CANARY_CLEAN\n",
                                NULL);
    char *step;

    f->ids[0] = id;
    f->tick = promote_at_first_step;
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_stages(f, id, "SUCCESS,SKIPPED,SUCCESS,SUCCESS,SUCCESS,-");
    step = kn_store_stage_meta_get(f->store, id, 1, "step");
    assert_string_equal(step, "1");
    free(step);
}

/* ---- strategy previous -------------------------------------------------------------------- */

#define C3 "3333333ccccccccccccccccccccccccccccccccc"

#define PREVIOUS_PIPELINE                                                                          \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: ANALYSIS\n"                                                                       \
    "      with:\n"                                                                                \
    "        duration: 2s\n"                                                                       \
    "        metrics:\n"                                                                           \
    "          - {name: lat, provider: prom, query: 'lat{v=\"{{variant}}\"}[{{window}}]', "        \
    "interval: 1s, strategy: previous, minSamples: 3, inconclusiveLimit: 2}\n"                      \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

/* The second deployment has nothing to compare with (INCONCLUSIVE, within its limit, so it
 * succeeds); the third compares with the second's samples, whatever their verdict, and passes. */
static void test_previous_passes_on_third_deployment(void **state)
{
    struct fixture *f = *state;
    static const double lat[] = {10, 11, 12, 13, 14};
    long long second, third;

    fake_metrics_set(lat, 5, lat, 5, NULL);
    second = canary_setup(f, NULL, PREVIOUS_PIPELINE, NULL);
    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, second), "SUCCESS");
    assert_int_equal(count_records(f, second, "INCONCLUSIVE"), 2);
    engine_shutdown(f);

    add_commit(f, "hello", C3, "v3", NULL, PREVIOUS_PIPELINE);
    third = plan(f, "hello", C3, "PIPELINE", NULL);
    engine_start(f);
    run_loop(f);
    assert_string_equal(status_of(f, third), "SUCCESS");
    assert_int_equal(count_records(f, third, "INCONCLUSIVE"), 0);
    assert_int_equal(count_records(f, third, "PASS"), 2);
    assert_int_equal(count_logs(f, third, "vs previous 2222222 (median 12)", NULL, 0), 2);
}

/* ---- start gates: freeze windows on the fake clock ----------------------------------------- */

#define C3 "3333333ccccccccccccccccccccccccccccccccc"

/* A window open from before T_EPOCH_MS (2026-11-25T19:40:01Z) to an hour after it: moving the
 * fake clock by an hour closes it. */
#define FREEZE_FROM "2026-11-25T19:00:00Z"
#define FREEZE_TO "2026-11-25T20:40:00Z"
#define FREEZE_REASON                                                                              \
    "freeze window 'release' is open until 2026-11-25 21:40 Europe/Berlin (2026-11-25T20:40:00Z)"
#define HOUR_MS 3600000LL

/* kanaria.yaml with the window `release` over every app, as the gates' config. */
static void freeze_config(struct fixture *f)
{
    char *path = kn_asprintf("%s/kanaria.yaml", f->dir);
    struct kn_diags diags;

    kn_test_write(f->dir, "kanaria.yaml",
                  "dataDir: /var/lib/kanaria\n"
                  "freezeWindows:\n"
                  "  - name: release\n"
                  "    from: " FREEZE_FROM "\n"
                  "    to: " FREEZE_TO "\n"
                  "    timeZone: Europe/Berlin\n");
    kn_diags_init(&diags, 0);
    assert_int_equal(kn_config_load(&f->gate_cfg, path, &diags), 0);
    kn_diags_release(&diags);
    free(path);
}

static long long plan_trigger(struct fixture *f, const char *app, const char *commit,
                              const char *strategy, const char *trigger)
{
    struct kn_deployment_new d = {
        .repo = REPO,
        .app = app,
        .commit = commit,
        .author = "Dev <dev@example.com>",
        .message = "change the service",
        .strategy = strategy,
        .summary = "test plan",
        .trigger = trigger,
    };
    long long id = 0;

    assert_int_equal(kn_store_deployment_add(f->store, &d, fake_now(f), &id), 0);
    return id;
}

/* Held FROZEN by the gate of this engine (asked since f->step was set): nothing ran. */
static int held_by_gate(struct fixture *f, long long id)
{
    return strcmp(status_of(f, id), "FROZEN") == 0 && f->gate_calls > f->step;
}

/* ids[0] held: check it is, then let the window pass (the clock moves an hour) and kick. */
static void thaw_when_frozen(struct fixture *f)
{
    if (f->flag || !held_by_gate(f, f->ids[0])) {
        return;
    }
    f->flag = 1;
    assert_int_equal(f->nops, 0);
    assert_string_equal(get_deploy(f, f->ids[0]).reason, FREEZE_REASON);
    f->offset += HOUR_MS;
    kn_engine_kick(f->engine);
}

static void test_freeze_holds_then_starts(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    freeze_config(f);
    f->ids[0] = id;
    f->tick = thaw_when_frozen;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->flag, 1); /* it was held */
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_events(f, id, "PLANNED,FROZEN,RUNNING,STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,"
                         "STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,"
                         "STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,SUCCESS");
    /* the deployment's time runs from its start, not from its plan */
    assert_true(get_deploy(f, id).started_at >= T_EPOCH_MS + HOUR_MS);
}

/* A rollback passes the open window, recorded with why. */
static void test_freeze_rollback_passes(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {"apply primary 1111111 v1", "weights 100/0/0",
                                      "remove canary", "remove baseline", NULL};
    struct event_find x = {.type = KN_GATE_PASSED_EVENT, .needle = ""};
    long long id;

    add_commit(f, "hello", C1, "v1", NULL, NULL);
    add_commit(f, "hello", C2, "v2", NULL, NULL);
    seed_good(f, "hello", C2);
    freeze_config(f);
    id = plan_trigger(f, "hello", C1, "QUICK_SYNC", "rollback by alice");
    engine_start(f);
    run_loop(f);

    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_events(f, id, "PLANNED,GATE_PASSED,RUNNING,STAGE_STARTED,STAGE_FINISHED,SUCCESS");
    x.deployment = id;
    assert_int_equal(kn_store_events(f->store, 0, 0, find_event, &x), 0);
    assert_string_equal(x.message, "passed the gates as a rollback; without that: " FREEZE_REASON);
}

static void cancel_when_frozen(struct fixture *f)
{
    if (f->flag || !held_by_gate(f, f->ids[0])) {
        return;
    }
    f->flag = 1;
    assert_int_equal(kn_engine_cancel(f->engine, f->ids[0], 1, "bob", "not now"), 0);
}

/* Cancelled while held (by the app's own window): CANCELLED, nothing ran, the engine is done. */
static void test_freeze_cancel_while_held(void **state)
{
    struct fixture *f = *state;
    static const char *const none[] = {NULL};
    long long id = canary_setup(f,
                                "  freezeWindows:\n"
                                "    - {name: release, from: " FREEZE_FROM ", to: " FREEZE_TO
                                ", timeZone: Europe/Berlin}\n",
                                CANARY_PIPELINE, NULL);

    f->gate_cfg = kn_calloc(1, sizeof(*f->gate_cfg)); /* gates on, kanaria.yaml has no windows */
    f->ids[0] = id;
    f->tick = cancel_when_frozen;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->flag, 1);
    assert_ops(f, NULL, none);
    assert_string_equal(status_of(f, id), "CANCELLED");
    assert_string_equal(get_deploy(f, id).reason, "cancelled by bob: not now");
    assert_int_equal(get_deploy(f, id).started_at, 0);
    assert_stages(f, id, "-");
}

/* C2 held; C3 arrives and supersedes it; C3 is held in turn, then starts when the window ends. */
static void supersede_when_frozen(struct fixture *f)
{
    if (f->flag == 0 && held_by_gate(f, f->ids[0])) {
        f->flag = 1;
        f->ids[1] = plan(f, "hello", C3, "PIPELINE", "newer");
        f->step = f->gate_calls;
        kn_engine_kick(f->engine);
    } else if (f->flag == 1 && held_by_gate(f, f->ids[1])) {
        f->flag = 2;
        assert_int_equal(f->nops, 0);
        assert_string_equal(status_of(f, f->ids[0]), "SUPERSEDED");
        f->offset += HOUR_MS;
        kn_engine_kick(f->engine);
    }
}

static void test_freeze_superseded_while_held(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {"apply canary 3333333 v3", OP_TEN, "apply primary 3333333 v3",
                                      OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    add_commit(f, "hello", C3, "v3", NULL, CANARY_PIPELINE);
    freeze_config(f);
    f->ids[0] = id;
    f->tick = supersede_when_frozen;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->flag, 2);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUPERSEDED");
    assert_int_equal(get_deploy(f, id).started_at, 0);
    assert_string_equal(status_of(f, f->ids[1]), "SUCCESS");
    assert_app(f, "hello", C3, "");
}

static void stop_when_frozen(struct fixture *f)
{
    if (!f->flag && held_by_gate(f, f->ids[0])) {
        f->flag = 1;
        kn_engine_stop(f->engine); /* kanaria stops while the deployment waits */
    }
}

/* A restart while FROZEN: the new engine asks the gate again and keeps it held, then runs it. */
static void test_freeze_held_across_restart(void **state)
{
    struct fixture *f = *state;
    static const char *const ops[] = {OP_CANARY, OP_TEN, OP_PRIMARY, OP_ALL, OP_CLEAN, NULL};
    long long id = canary_setup(f, NULL, CANARY_PIPELINE, NULL);

    freeze_config(f);
    f->ids[0] = id;
    f->tick = stop_when_frozen;
    engine_start(f);
    run_loop(f);
    engine_free(f);
    assert_string_equal(status_of(f, id), "FROZEN");
    assert_string_equal(get_deploy(f, id).reason, FREEZE_REASON);

    f->flag = 0;
    f->step = f->gate_calls; /* held again by the new engine's gate, not by the old record */
    f->tick = thaw_when_frozen;
    engine_start(f);
    run_loop(f);

    assert_int_equal(f->flag, 1);
    assert_ops(f, NULL, ops);
    assert_string_equal(status_of(f, id), "SUCCESS");
    assert_events(f, id, "PLANNED,FROZEN,RUNNING,STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,"
                         "STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,STAGE_STARTED,"
                         "STAGE_FINISHED,STAGE_STARTED,STAGE_FINISHED,SUCCESS");
}

int main(void)
{
    static int k[] = {1, 2, 3, 4, 5};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_quick_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_during_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_refused_until_approved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_refused_while_analysis_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hold_starts_nothing_until_released, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skip_running_primary_still_rolled_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_analysis_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_compares_with_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_inconclusive_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_resumes_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary_fails_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_after_primary_reapplies_last_good, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skips_alike_for_sync_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quick_sync_fails_reapplies_last_good, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stage_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_timeout_stops_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_step_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_never_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_auto_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_on_commit_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_resumes_remaining_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployment_timeout_after_restart, setup, teardown),
        cmocka_unit_test_prestate_setup_teardown(test_resume_at_each_boundary, setup, teardown,
                                                 &k[0]),
        cmocka_unit_test_prestate_setup_teardown(test_resume_at_each_boundary, setup, teardown,
                                                 &k[1]),
        cmocka_unit_test_prestate_setup_teardown(test_resume_at_each_boundary, setup, teardown,
                                                 &k[2]),
        cmocka_unit_test_prestate_setup_teardown(test_resume_at_each_boundary, setup, teardown,
                                                 &k[3]),
        cmocka_unit_test_prestate_setup_teardown(test_resume_at_each_boundary, setup, teardown,
                                                 &k[4]),
        cmocka_unit_test_setup_teardown(test_resume_stored_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_distinct_people, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_stage_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_with_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_unlisted_does_not_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_rejected_by_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_empty_list_anyone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_apps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_waits_behind_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_loading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_platform_placeholders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_with_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_without_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_planned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_running_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_later_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_weights_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_step_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_failure_at_step_3_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_resume_at_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_fails_during_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_passes_until_promotion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_resumes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previous_passes_on_third_deployment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_freeze_holds_then_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze_rollback_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze_cancel_while_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze_superseded_while_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze_held_across_restart, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
