/*
 * Loading an app against the tables a loader hands in (manifests/app.c): the manifest kinds of
 * the app's platform type and its `spec.<type>` options, with a platform type that exists only
 * in this test, so the model is shown to know no platform of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "testutil.h"

/* ---- a platform type of this test --------------------------------------------------------- */

struct test_options {
    uint64_t set;
    char *zone;
    long long spare;
};

static const struct kn_field option_fields[] = {
    {.key = "zone",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct test_options, zone),
     .flags = KN_FIELD_REQUIRED,
     .help = "where the app runs"},
    {.key = "spare",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct test_options, spare),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "0",
     .min = 0,
     .max = 3,
     .help = "spare instances"},
};

static const struct kn_schema option_schema = {
    .name = "spec.test",
    KN_SCHEMA_FIELDS(option_fields),
    .size = sizeof(struct test_options),
    .set_offset = offsetof(struct test_options, set),
};

struct test_service {
    uint64_t set;
    char *api_version;
    char *kind;
    struct kn_strmap metadata;
    long long port;
};

static const struct kn_field service_fields[] = {
    {.key = "apiVersion", .type = KN_TYPE_STRING,
     .offset = offsetof(struct test_service, api_version), .flags = KN_FIELD_REQUIRED},
    {.key = "kind", .type = KN_TYPE_STRING, .offset = offsetof(struct test_service, kind),
     .flags = KN_FIELD_REQUIRED},
    {.key = "metadata", .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct test_service, metadata), .flags = KN_FIELD_REQUIRED},
    {.key = "port", .type = KN_TYPE_INT, .offset = offsetof(struct test_service, port),
     .flags = KN_FIELD_REQUIRED},
};

static const struct kn_schema service_schema = {
    .name = "TestService",
    KN_SCHEMA_FIELDS(service_fields),
    .size = sizeof(struct test_service),
    .set_offset = offsetof(struct test_service, set),
};

static const struct kn_manifest_kind test_kinds[] = {
    {.kind = "TestService", .api_version = "test.dev/v1", .role = KN_KIND_WORKLOAD,
     .schema = &service_schema, .min = 1, .max = 1},
    {.kind = "TestRoute", .role = KN_KIND_ROUTE, .min = 0, .max = 1},
};

/* The platform "edge" is of type "test"; "vm" of type "local", which takes no options here. */
static void test_resolve(struct kn_app_platform *platform, struct kn_app *app,
                         struct kn_source *src, const struct kn_node *root,
                         struct kn_schema_ctx *ctx, void *data)
{
    (void)src;
    (void)root;
    (void)ctx;
    (*(int *)data)++;
    if (app->cfg.spec.platform && strcmp(app->cfg.spec.platform, "edge") == 0) {
        platform->type = "test";
        platform->app_schema = &option_schema;
        platform->kinds = test_kinds;
        platform->nkinds = sizeof(test_kinds) / sizeof(test_kinds[0]);
    } else if (app->cfg.spec.platform && strcmp(app->cfg.spec.platform, "vm") == 0) {
        platform->type = "local";
        platform->kinds = test_kinds;
        platform->nkinds = 1;
    }
}

/* Platform "files" (type "filed"): its manifests are files spec.filed names. */
struct filed_options {
    uint64_t set;
    char *thing_file;
    char *part_file;
};

static const struct kn_field filed_fields[] = {
    {.key = "thingFile", .type = KN_TYPE_STRING,
     .offset = offsetof(struct filed_options, thing_file)},
    {.key = "partFile", .type = KN_TYPE_STRING,
     .offset = offsetof(struct filed_options, part_file)},
};

static const struct kn_schema filed_schema = {
    .name = "spec.filed",
    KN_SCHEMA_FIELDS(filed_fields),
    .size = sizeof(struct filed_options),
    .set_offset = offsetof(struct filed_options, set),
};

static int thing_checks;

/* The Thing's own check: a `size` must not be negative. */
static void check_thing(const struct kn_node *doc, struct kn_schema_ctx *ctx)
{
    const struct kn_node *size = kn_node_get(doc, "size");

    thing_checks++;
    if (size && size->type == KN_NODE_SCALAR && size->scalar[0] == '-') {
        kn_schema_error(ctx, size, "size: must not be negative");
    }
}

static const struct kn_manifest_kind filed_kinds[] = {
    {.kind = "Thing", .role = KN_KIND_WORKLOAD, .min = 1, .max = 1, .file_key = "thingFile",
     .name_key = "family", .check = check_thing},
    {.kind = "Part", .role = KN_KIND_WORKLOAD, .min = 0, .max = 1, .file_key = "partFile"},
};

static void filed_resolve(struct kn_app_platform *platform, struct kn_app *app,
                          struct kn_source *src, const struct kn_node *root,
                          struct kn_schema_ctx *ctx, void *data)
{
    (void)app;
    (void)src;
    (void)root;
    (void)ctx;
    (void)data;
    platform->type = "filed";
    platform->app_schema = &filed_schema;
    platform->kinds = filed_kinds;
    platform->nkinds = sizeof(filed_kinds) / sizeof(filed_kinds[0]);
}

static const char *const test_types[] = {"local", "test", "filed", NULL};

/* ---- helpers ------------------------------------------------------------------------------- */

#define SERVICE "apiVersion: test.dev/v1\nkind: TestService\nmetadata: {name: web}\nport: 80\n"
#define ROUTE(name) "apiVersion: x/v1\nkind: TestRoute\nmetadata: {name: " name "}\n"

/* Load app.kanaria.yaml (with `spec` the lines under spec:) beside m.yaml; every diagnostic,
 * one a line, into *diags (caller frees). */
static struct kn_app *load(const char *spec, const char *manifests, char **diags)
{
    char *dir = kn_test_tmpdir();
    char *config = kn_asprintf("apiVersion: kanaria.dev/v1\nkind: Application\n"
                               "metadata: {name: web}\nspec:\n  manifests: [m.yaml]\n%s",
                               spec);
    int calls = 0;
    struct kn_app_loader loader = {.resolve = test_resolve, .types = test_types, .data = &calls};
    struct kn_source *src = NULL;
    struct kn_error err;
    struct kn_app *app = NULL;
    struct kn_buf b;
    char line[1024];

    kn_test_write(dir, "app.kanaria.yaml", config);
    kn_test_write(dir, "m.yaml", manifests);
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_app_load(&app, src, "app.kanaria.yaml", &loader), 0);
    assert_int_equal(calls, 1);
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < app->diags.count; i++) {
        kn_buf_addf(&b, "%s\n", kn_diag_format(&app->diags.items[i], line, sizeof(line)));
    }
    *diags = b.data ? kn_buf_detach(&b, NULL) : kn_strdup("");
    kn_buf_release(&b);
    kn_source_free(src);
    kn_test_rmtree(dir);
    free(dir);
    free(config);
    return app;
}

static void expect(const char *spec, const char *manifests, const char *want)
{
    char *got = NULL;
    struct kn_app *app = load(spec, manifests, &got);

    if (strcmp(got, want) != 0) {
        print_error("expected:\n%s--- got:\n%s", want, got);
    }
    assert_string_equal(got, want);
    free(got);
    kn_app_free(app);
}

/* ---- kinds --------------------------------------------------------------------------------- */

static void test_kinds_valid(void **state)
{
    char *diags = NULL;
    struct kn_app *app = load("  platform: edge\n", SERVICE "---\n" ROUTE("r"), &diags);

    (void)state;
    assert_string_equal(diags, "");
    assert_int_equal(app->ndocs, 2);
    for (size_t i = 0; i < app->ndocs; i++) {
        assert_ptr_equal(app->docs[i].def,
                         strcmp(app->docs[i].kind, "TestRoute") == 0 ? &test_kinds[1]
                                                                      : &test_kinds[0]);
    }
    free(diags);
    kn_app_free(app);
}

static void test_kind_unknown_lists_accepted(void **state)
{
    (void)state;
    expect("  platform: edge\n",
           SERVICE "---\napiVersion: v1\nkind: Deployment\nmetadata: {name: web}\n",
           "m.yaml:7:7: platform 'edge' (type test) takes no manifest of kind 'Deployment' "
           "(accepted: TestService, TestRoute)\n");
}

static void test_kind_closed_schema_located(void **state)
{
    (void)state;
    expect("  platform: edge\n",
           "apiVersion: test.dev/v2\nkind: TestService\nmetadata: {name: web}\nport: http\n"
           "extra: 1\n",
           "m.yaml:5:1: unknown key 'extra' (allowed: apiVersion, kind, metadata, port)\n"
           "m.yaml:4:7: 'port' must be an integer, got a string 'http'\n"
           "m.yaml:1:13: 'apiVersion' of a TestService must be test.dev/v1, got 'test.dev/v2'\n");
}

static void test_kind_counts(void **state)
{
    (void)state;
    /* max 1 */
    expect("  platform: edge\n", SERVICE "---\n" ROUTE("a") "---\n" ROUTE("b"),
           "app.kanaria.yaml:5:14: platform 'edge' takes at most 1 TestRoute manifest, found 2\n");
    /* min 1 max 1, twice */
    expect("  platform: edge\n", SERVICE "---\n" ROUTE("a") "---\n"
           "apiVersion: test.dev/v1\nkind: TestService\nmetadata: {name: api}\nport: 81\n",
           "app.kanaria.yaml:5:14: platform 'edge' needs exactly one TestService manifest, "
           "found 2\n");
    /* min 1, none */
    expect("  platform: edge\n", ROUTE("a"),
           "app.kanaria.yaml:5:14: platform 'edge' needs exactly one TestService manifest, "
           "found 0\n");
}

static void test_no_loader_keeps_every_kind(void **state)
{
    char *dir = kn_test_tmpdir();
    struct kn_source *src = NULL;
    struct kn_error err;
    struct kn_app *app = NULL;

    (void)state;
    kn_test_write(dir, "app.kanaria.yaml",
                  "apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: web}\n"
                  "spec:\n  manifests: [m.yaml]\n");
    kn_test_write(dir, "m.yaml", "apiVersion: v1\nkind: Anything\nmetadata: {name: x}\n");
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_app_load(&app, src, "app.kanaria.yaml", NULL), 0);
    assert_int_equal(app->diags.count, 0);
    assert_int_equal(app->ndocs, 1);
    assert_null(app->docs[0].def);
    kn_app_free(app);
    kn_source_free(src);
    kn_test_rmtree(dir);
    free(dir);
}

/* ---- spec.<type> --------------------------------------------------------------------------- */

static void test_options_parsed(void **state)
{
    char *diags = NULL;
    struct kn_app *app = load("  platform: edge\n  test: {zone: eu-1, spare: 2}\n", SERVICE,
                              &diags);
    const struct test_options *o = app->cfg.platform_options;

    (void)state;
    assert_string_equal(diags, "");
    assert_ptr_equal(app->cfg.platform_schema, &option_schema);
    assert_non_null(o);
    assert_string_equal(o->zone, "eu-1");
    assert_int_equal(o->spare, 2);
    free(diags);
    kn_app_free(app);
}

static void test_options_errors_located(void **state)
{
    (void)state;
    expect("  platform: edge\n  test: {spare: 9, zoen: a}\n", SERVICE,
           "app.kanaria.yaml:7:20: unknown key 'zoen' in 'spec.test', did you mean 'zone'? "
           "(allowed: zone, spare)\n"
           "app.kanaria.yaml:7:9: 'spec.test.zone' is required\n"
           "app.kanaria.yaml:7:17: 'spec.test.spare' must be between 0 and 3, got 9\n");
}

static void test_options_of_another_type(void **state)
{
    (void)state;
    expect("  platform: vm\n  test: {zone: a}\n", SERVICE,
           "app.kanaria.yaml:7:3: 'spec.test' holds options for platform type test, but "
           "platform 'vm' is of type local\n");
    expect("  platform: vm\n  local: {zone: a}\n", SERVICE,
           "app.kanaria.yaml:7:3: platform type local takes no app options ('spec.local')\n");
    /* a key that names no platform type is an unknown key, as before */
    expect("  platform: edge\n  kubernetes: {}\n", SERVICE,
           "app.kanaria.yaml:7:3: unknown key 'kubernetes' in 'spec' (allowed: platform, "
           "manifests, trigger, planner, autoRollback, timeout, prune, pipeline, analysis, slos, "
           "errorBudgetPolicy, freezeWindows)\n");
}

/* ---- kinds from files the options name ----------------------------------------------------- */

/* Load an app of platform "files" whose spec is `spec`, beside the files given as name, text
 * pairs (NULL-ended); every diagnostic into *diags. */
static struct kn_app *load_filed(const char *spec, char **diags, ...)
{
    char *dir = kn_test_tmpdir();
    char *config = kn_asprintf("apiVersion: kanaria.dev/v1\nkind: Application\n"
                               "metadata: {name: web}\nspec:\n  platform: files\n%s",
                               spec);
    struct kn_app_loader loader = {.resolve = filed_resolve, .types = test_types};
    struct kn_source *src = NULL;
    struct kn_error err;
    struct kn_app *app = NULL;
    struct kn_buf b;
    char line[1024];
    const char *name;
    va_list ap;

    kn_test_write(dir, "app.kanaria.yaml", config);
    va_start(ap, diags);
    while ((name = va_arg(ap, const char *))) {
        kn_test_write(dir, name, va_arg(ap, const char *));
    }
    va_end(ap);
    assert_int_equal(kn_source_dir_new(&src, dir, &err), 0);
    assert_int_equal(kn_app_load(&app, src, "app.kanaria.yaml", &loader), 0);
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < app->diags.count; i++) {
        kn_buf_addf(&b, "%s\n", kn_diag_format(&app->diags.items[i], line, sizeof(line)));
    }
    *diags = b.data ? kn_buf_detach(&b, NULL) : kn_strdup("");
    kn_buf_release(&b);
    kn_source_free(src);
    kn_test_rmtree(dir);
    free(dir);
    free(config);
    return app;
}

static void test_file_kinds_loaded(void **state)
{
    char *diags = NULL;
    struct kn_app *app;
    char *text;

    (void)state;
    thing_checks = 0;
    app = load_filed("  filed: {thingFile: thing.yaml, partFile: part.json}\n", &diags,
                     "thing.yaml", "family: web\nsize: 3\n", "part.json", "{\"a\": [1, 2]}\n",
                     NULL);
    assert_string_equal(diags, "");
    assert_int_equal(thing_checks, 1);
    assert_int_equal(app->ndocs, 2);
    /* sorted by kind: Part, Thing; Part is named after its key, Thing after its family */
    assert_string_equal(app->docs[0].kind, "Part");
    assert_string_equal(app->docs[0].name, "partFile");
    assert_string_equal(app->docs[0].file, "part.json");
    assert_string_equal(app->docs[1].name, "web");
    text = kn_json_canonical(app->docs[1].json);
    assert_string_equal(text, "{\"kind\":\"Thing\",\"metadata\":{\"name\":\"web\"},"
                              "\"spec\":{\"family\":\"web\",\"size\":3}}");
    free(text);
    assert_int_equal(json_array_size(app->manifests), 2);
    free(diags);
    kn_app_free(app);
}

static void expect_filed(const char *spec, const char *thing, const char *want)
{
    char *got = NULL;
    struct kn_app *app = load_filed(spec, &got, "thing.yaml", thing, NULL);

    if (strcmp(got, want) != 0) {
        print_error("expected:\n%s--- got:\n%s", want, got);
    }
    assert_string_equal(got, want);
    free(got);
    kn_app_free(app);
}

static void test_file_kinds_errors(void **state)
{
    (void)state;
    /* the kind's own check, located in the file */
    expect_filed("  filed: {thingFile: thing.yaml}\n", "family: web\nsize: -1\n",
                 "thing.yaml:2:7: size: must not be negative\n");
    /* the name comes from the document */
    expect_filed("  filed: {thingFile: thing.yaml}\n", "size: 1\n",
                 "thing.yaml:1:1: a Thing needs 'family'\n");
    expect_filed("  filed: {thingFile: thing.yaml}\n", "family: a\n---\nfamily: b\n",
                 "thing.yaml:1:1: a Thing file holds one map, found several documents\n");
    expect_filed("  filed: {thingFile: thing.yaml}\n", "[1, 2]\n",
                 "thing.yaml:1:1: a Thing file holds one map, found a list\n");
    /* a required kind whose key is missing; spec.manifests is not required here */
    expect_filed("  filed: {partFile: thing.yaml}\n", "family: web\n",
                 "app.kanaria.yaml:6:10: platform 'files' needs 'spec.filed.thingFile' (its "
                 "Thing)\n");
    /* a missing file is located at the key that names it */
    expect_filed("  filed: {thingFile: nope.yaml}\n", "family: web\n",
                 "app.kanaria.yaml:6:22: 'nope.yaml' does not exist\n");
    /* such a kind is never taken from spec.manifests */
    expect_filed("  manifests: [thing.yaml]\n  filed: {thingFile: x.yaml}\n",
                 "kind: Thing\nmetadata: {name: web}\n",
                 "thing.yaml:1:7: a Thing comes from 'spec.filed.thingFile', not from "
                 "spec.manifests\n"
                 "app.kanaria.yaml:7:22: 'x.yaml' does not exist\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_valid),
        cmocka_unit_test(test_kind_unknown_lists_accepted),
        cmocka_unit_test(test_kind_closed_schema_located),
        cmocka_unit_test(test_kind_counts),
        cmocka_unit_test(test_no_loader_keeps_every_kind),
        cmocka_unit_test(test_options_parsed),
        cmocka_unit_test(test_options_errors_located),
        cmocka_unit_test(test_options_of_another_type),
        cmocka_unit_test(test_file_kinds_loaded),
        cmocka_unit_test(test_file_kinds_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
