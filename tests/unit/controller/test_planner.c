/*
 * The planner's decisions (design.md §3.2) and trigger matching, on apps loaded from files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/validate.h"
#include "planner.h"
#include "testutil.h"

/* An app with a canary pipeline; `extra` goes into its spec. */
#define PIPELINE_APP(extra)                                                                        \
    "apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: hello}\n"                    \
    "spec:\n  manifests: [service.yaml]\n" extra "  trigger: {ignore: [\"docs/**\"]}\n"            \
    "  pipeline:\n"                                                                               \
    "    - name: CANARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n      with: {canary: 10}\n"                                     \
    "    - name: PRIMARY_ROLLOUT\n"                                                               \
    "    - name: TRAFFIC_ROUTING\n      with: {primary: 100}\n"                                   \
    "    - name: CANARY_CLEAN\n"

static const char *const sync_app =
    "apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: hello}\n"
    "spec:\n  manifests: [service.yaml]\n";

static char *service(const char *version, int replicas)
{
    return kn_asprintf("apiVersion: kanaria.dev/v1\nkind: LocalService\nmetadata: {name: hello}\n"
                       "spec:\n  command: [/opt/hello-%s, \"{{port}}\"]\n  replicas: %d\n"
                       "  frontend: {bind: \"127.0.0.1:9000\"}\n",
                       version, replicas);
}

/* Load apps/hello from a fresh folder with the given config and service. */
static struct kn_app *load(const char *config, const char *version, int replicas)
{
    char *dir = kn_test_tmpdir();
    char *svc = service(version, replicas);
    struct kn_source *src = NULL;
    struct kn_error err;
    struct kn_app *app = NULL;

    kn_test_write(dir, "apps/hello/app.kanaria.yaml", config);
    kn_test_write(dir, "apps/hello/service.yaml", svc);
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_validate_app_load(&app, src, "apps/hello/app.kanaria.yaml", NULL), 0);
    if (app->diags.count) {
        char line[1024];
        fail_msg("%s", kn_diag_format(&app->diags.items[0], line, sizeof(line)));
    }
    kn_source_free(src);
    kn_test_rmtree(dir);
    free(dir);
    free(svc);
    return app;
}

/* Plan `to` against what `from` deployed (NULL: first deployment). */
static void expect_plan(const struct kn_app *from, const struct kn_app *to, const char *message,
                        enum kn_plan_strategy strategy, const char *summary)
{
    struct kn_plan plan;
    struct kn_plan_input in = {.app = to, .deployed = from ? from->manifests : NULL,
                               .commit_message = message};

    assert_int_equal(kn_plan_app(&plan, &in), 0);
    assert_string_equal(kn_plan_strategy_name(plan.strategy), kn_plan_strategy_name(strategy));
    assert_string_equal(plan.summary, summary);
    kn_plan_release(&plan);
}

static void test_decisions(void **state)
{
    char *cfg = kn_strdup(PIPELINE_APP(""));
    char *always = kn_strdup(PIPELINE_APP("  planner: {alwaysUsePipeline: true}\n"));
    struct kn_app *v1 = load(cfg, "1.4.1", 2);
    struct kn_app *v2 = load(cfg, "1.4.2", 2);
    struct kn_app *v1x3 = load(cfg, "1.4.1", 3);
    struct kn_app *plain_v2 = load(sync_app, "1.4.2", 2);
    struct kn_app *always_v1x3 = load(always, "1.4.1", 3);
    (void)state;

    expect_plan(NULL, v1, "first", KN_PLAN_QUICK_SYNC, "quick sync: first deployment");
    expect_plan(v1, v2, "bump", KN_PLAN_PIPELINE,
                "pipeline: command changed /opt/hello-1.4.1 \u2192 /opt/hello-1.4.2");
    expect_plan(v1, v1x3, "scale", KN_PLAN_QUICK_SYNC, "quick sync: replicas 2 \u2192 3");
    expect_plan(v1, v1, "docs", KN_PLAN_NONE, "nothing to do: the manifests did not change");
    expect_plan(v1, v2, "bump [skip deploy]", KN_PLAN_NONE,
                "skipped: the commit message says [skip deploy]");
    expect_plan(v1, v2, "hotfix [kanaria quick-sync]", KN_PLAN_QUICK_SYNC,
                "quick sync: the commit message asks for it");
    expect_plan(v1, v1x3, "[kanaria pipeline] scale carefully", KN_PLAN_PIPELINE,
                "pipeline: the commit message asks for it");
    expect_plan(v1, plain_v2, "bump", KN_PLAN_QUICK_SYNC, "quick sync: the app has no pipeline");
    expect_plan(v1, always_v1x3, "scale", KN_PLAN_PIPELINE,
                "pipeline: planner.alwaysUsePipeline (scaling only)");

    kn_app_free(v1);
    kn_app_free(v2);
    kn_app_free(v1x3);
    kn_app_free(plain_v2);
    kn_app_free(always_v1x3);
    free(cfg);
    free(always);
}

static void test_plan_carries_diff(void **state)
{
    char *cfg = kn_strdup(PIPELINE_APP(""));
    struct kn_app *v1 = load(cfg, "1.4.1", 2);
    struct kn_app *v2 = load(cfg, "1.4.2", 2);
    struct kn_plan plan;
    struct kn_plan_input in = {.app = v2, .deployed = v1->manifests, .commit_message = "x"};
    (void)state;

    assert_int_equal(kn_plan_app(&plan, &in), 0);
    assert_int_equal(plan.diff.count, 1);
    assert_int_equal(plan.diff.items[0].op, KN_CHANGE_CHANGED);
    assert_string_equal(plan.diff.items[0].fields[0].path, "spec.command[0]");
    kn_plan_release(&plan);
    kn_app_free(v1);
    kn_app_free(v2);
    free(cfg);
}

static void test_touched(void **state)
{
    char *cfg = kn_strdup(PIPELINE_APP(""));
    struct kn_app *app = load(cfg, "1.4.1", 2);
    struct kn_strlist changed = {0};
    char inside0[] = "apps/hello/service.yaml";
    char code0[] = "apps/hello/src/main.c";
    char docs0[] = "apps/hello/docs/readme.md";
    char other0[] = "apps/other/service.yaml", other1[] = "README.md", other2[] = "apps/hello-two/x";
    char *inside[] = {inside0};
    char *code[] = {code0};
    char *docs[] = {docs0};
    char *elsewhere[] = {other0, other1, other2};
    (void)state;

    assert_true(kn_app_touched(app, NULL));
    changed.items = inside, changed.count = 1;
    assert_true(kn_app_touched(app, &changed));
    changed.items = code, changed.count = 1;
    assert_true(kn_app_touched(app, &changed));
    changed.items = docs, changed.count = 1;
    assert_false(kn_app_touched(app, &changed));
    changed.items = elsewhere, changed.count = 3;
    assert_false(kn_app_touched(app, &changed));
    changed.count = 0;
    assert_false(kn_app_touched(app, &changed));
    kn_app_free(app);
    free(cfg);
}

/* ---- runtime_paths of a platform type's kinds ---------------------------------------------- */

static const char *const image_only[] = {"spec.image", NULL};

static const struct kn_manifest_kind image_kinds[] = {
    {.kind = "Box", .role = KN_KIND_WORKLOAD, .min = 1, .max = 1, .runtime_paths = image_only},
    {.kind = "Note", .role = KN_KIND_OPEN}, /* runtime_paths NULL: every path */
};

static void image_resolve(struct kn_app_platform *platform, struct kn_app *app,
                          struct kn_source *src, const struct kn_node *root,
                          struct kn_schema_ctx *ctx, void *data)
{
    (void)app;
    (void)src;
    (void)root;
    (void)ctx;
    (void)data;
    platform->type = "boxes";
    platform->kinds = image_kinds;
    platform->nkinds = 2;
}

/* An app with a pipeline whose Box has `image` and `note`, and a Note of `replicas`. */
static struct kn_app *load_box(const char *image, const char *note, int note_replicas)
{
    char *dir = kn_test_tmpdir();
    char *m = kn_asprintf("kind: Box\nmetadata: {name: b}\nspec: {image: %s, note: %s}\n---\n"
                          "kind: Note\nmetadata: {name: n}\nspec: {replicas: %d}\n",
                          image, note, note_replicas);
    struct kn_app_loader loader = {.resolve = image_resolve};
    struct kn_source *src = NULL;
    struct kn_error err;
    struct kn_app *app = NULL;

    kn_test_write(dir, "apps/hello/app.kanaria.yaml", PIPELINE_APP(""));
    kn_test_write(dir, "apps/hello/service.yaml", m);
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_app_load(&app, src, "apps/hello/app.kanaria.yaml", &loader), 0);
    if (app->diags.count) {
        char line[1024];
        fail_msg("%s", kn_diag_format(&app->diags.items[0], line, sizeof(line)));
    }
    kn_source_free(src);
    kn_test_rmtree(dir);
    free(dir);
    free(m);
    return app;
}

static void test_runtime_paths(void **state)
{
    struct kn_app *v1 = load_box("img:1", "a", 1);
    struct kn_app *image = load_box("img:2", "a", 1);
    struct kn_app *note = load_box("img:1", "b", 1);
    struct kn_app *scaled = load_box("img:1", "a", 2);
    (void)state;

    expect_plan(v1, image, "x", KN_PLAN_PIPELINE, "pipeline: image changed img:1 \u2192 img:2");
    /* outside the kind's runtime_paths: not a rollout */
    expect_plan(v1, note, "x", KN_PLAN_QUICK_SYNC, "quick sync: spec.note changed");
    /* a kind without runtime_paths: every path changes what runs, spec.replicas too */
    expect_plan(v1, scaled, "x", KN_PLAN_PIPELINE, "pipeline: replicas changed 1 \u2192 2");
    kn_app_free(v1);
    kn_app_free(image);
    kn_app_free(note);
    kn_app_free(scaled);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_plan_carries_diff),
        cmocka_unit_test(test_touched),
        cmocka_unit_test(test_runtime_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
