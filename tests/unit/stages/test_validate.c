/*
 * Validation above the model (stages/validate.c): the pipeline against the platform's
 * capabilities and weight step, and each platform type's checks across apps, with platform
 * types that exist only in this test, declared by a hand-made controller config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/validate.h"
#include "testutil.h"

static const struct kn_manifest_kind any_kind[] = {
    {.kind = NULL, .role = KN_KIND_OPEN},
};

static size_t checked_apps;
static size_t checked_calls;

static void count_apps(struct kn_app *const *apps, size_t n)
{
    (void)apps;
    checked_apps += n;
    checked_calls++;
}

/* No traffic splitting. */
static const struct kn_platform_type type_nosplit = {
    .name = "nosplit",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY,
    .kinds = any_kind,
    .nkinds = 1,
    .check_apps = count_apps,
};

/* What check_app was handed, as the lines of the stages (0: none). */
static unsigned seen_runs[KN_VARIANT_COUNT], seen_routes[KN_VARIANT_COUNT];
static size_t seen_calls;

static void record_uses(const struct kn_app *app, const struct kn_pipeline_uses *uses,
                        struct kn_schema_ctx *ctx)
{
    (void)ctx;
    assert_non_null(app->cfg.spec.pipeline.items); /* the app is loaded */
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        seen_runs[v] = uses->runs[v] ? uses->runs[v]->loc.line : 0;
        seen_routes[v] = uses->routes[v] ? uses->routes[v]->loc.line : 0;
    }
    seen_calls++;
}

/* Traffic in steps of 5%. */
static const struct kn_platform_type type_stepped = {
    .name = "stepped",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_TRAFFIC_SPLIT,
    .kinds = any_kind,
    .nkinds = 1,
    .weight_step = 5,
    .check_app = record_uses,
};

static char edge_name[] = "edge", fine_name[] = "fine";

static struct kn_platform_config platforms[] = {
    {.name = edge_name, .ptype = &type_nosplit},
    {.name = fine_name, .ptype = &type_stepped},
};

static const struct kn_config controller = {
    .platforms = {.items = platforms, .count = 2},
};

#define APP(platform, canary)                                                                     \
    "apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: web}\n"                      \
    "spec:\n  platform: " platform "\n  manifests: [m.yaml]\n"                                    \
    "  pipeline:\n"                                                                               \
    "    - name: CANARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n      with: {canary: " canary "}\n"                            \
    "    - name: PRIMARY_ROLLOUT\n"                                                               \
    "    - name: TRAFFIC_ROUTING\n      with: {primary: 100}\n"                                   \
    "    - name: CANARY_CLEAN\n"

/* Every diagnostic of the app at config (beside a manifest of an open kind), one a line. */
static char *validate(const char *config)
{
    char *dir = kn_test_tmpdir();
    struct kn_source *src = NULL;
    struct kn_error err;
    struct kn_app *app = NULL;
    struct kn_buf b;
    char line[1024];
    char *out;

    kn_test_write(dir, "app.kanaria.yaml", config);
    kn_test_write(dir, "m.yaml", "apiVersion: v1\nkind: Thing\nmetadata: {name: web}\n");
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_validate_app_load(&app, src, "app.kanaria.yaml", &controller), 0);
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < app->diags.count; i++) {
        kn_buf_addf(&b, "%s\n", kn_diag_format(&app->diags.items[i], line, sizeof(line)));
    }
    out = b.data ? kn_buf_detach(&b, NULL) : kn_strdup("");
    kn_buf_release(&b);
    kn_app_free(app);
    kn_source_free(src);
    kn_test_rmtree(dir);
    free(dir);
    return out;
}

static void test_capability_located(void **state)
{
    char *got = validate(APP("edge", "10"));

    (void)state;
    assert_string_equal(got, "app.kanaria.yaml:9:7: stage 'TRAFFIC_ROUTING' needs traffic "
                             "splitting, which platform 'edge' (type nosplit) cannot do\n"
                             "app.kanaria.yaml:12:7: stage 'TRAFFIC_ROUTING' needs traffic "
                             "splitting, which platform 'edge' (type nosplit) cannot do\n");
    free(got);
}

static void test_weight_step(void **state)
{
    char *got = validate(APP("fine", "10"));

    (void)state;
    assert_string_equal(got, "");
    free(got);
    got = validate(APP("fine", "12.5"));
    assert_string_equal(got, "app.kanaria.yaml:9:7: stage 'TRAFFIC_ROUTING': 87.5% to the "
                             "primary is not a multiple of 5%, the smallest traffic step of "
                             "platform 'fine'\n"
                             "app.kanaria.yaml:9:7: stage 'TRAFFIC_ROUTING': 12.5% to the canary "
                             "is not a multiple of 5%, the smallest traffic step of platform "
                             "'fine'\n");
    free(got);
}

/* check_app is called once the app is loaded, with the stages that first run the canary and
 * first send it traffic; nothing for the baseline, which the pipeline never runs. */
static void test_check_app_uses(void **state)
{
    char *got;

    (void)state;
    seen_calls = 0;
    got = validate(APP("fine", "10"));
    assert_string_equal(got, "");
    free(got);
    assert_int_equal(seen_calls, 1);
    assert_int_equal(seen_runs[KN_VARIANT_CANARY], 8);    /* CANARY_ROLLOUT */
    assert_int_equal(seen_routes[KN_VARIANT_CANARY], 9);  /* TRAFFIC_ROUTING {canary: 10} */
    assert_int_equal(seen_runs[KN_VARIANT_PRIMARY], 0);
    assert_int_equal(seen_runs[KN_VARIANT_BASELINE], 0);
    assert_int_equal(seen_routes[KN_VARIANT_BASELINE], 0);
    /* a platform type without check_app: not called */
    got = validate(APP("edge", "10"));
    free(got);
    assert_int_equal(seen_calls, 1);
}

static void test_check_apps_per_platform(void **state)
{
    struct kn_app apps[3];
    struct kn_app *list[3] = {&apps[0], &apps[1], &apps[2]};
    (void)state;
    memset(apps, 0, sizeof(apps));
    apps[0].cfg.spec.platform = edge_name;
    apps[1].cfg.spec.platform = fine_name;
    apps[2].cfg.spec.platform = edge_name;
    checked_apps = checked_calls = 0;
    kn_validate_check_apps(list, 3, &controller);
    /* the two apps of edge, in one call; fine's type has no check */
    assert_int_equal(checked_calls, 1);
    assert_int_equal(checked_apps, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capability_located),
        cmocka_unit_test(test_weight_step),
        cmocka_unit_test(test_check_app_uses),
        cmocka_unit_test(test_check_apps_per_platform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
