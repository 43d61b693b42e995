/*
 * The schema engine on a small table of its own: types, defaults, bounds, enums, nested
 * objects and lists, unknown keys, required keys, and the value parsers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/schema.h"
#include "testutil.h"

struct inner {
    uint64_t set;
    long long port;
};

struct outer {
    uint64_t set;
    char *name;
    int on;
    long long count;
    double ratio;
    long long wait_ms;
    double pct;
    struct kn_scale scale;
    int color;
    struct kn_strlist tags;
    struct kn_strmap env;
    struct inner inner;
    struct kn_list items;
};

static const char *const colors[] = {"red", "green", NULL};

static const struct kn_field inner_fields[] = {
    {.key = "port", .type = KN_TYPE_INT, .offset = offsetof(struct inner, port),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX, .def = "80", .min = 1, .max = 65535},
};

static const struct kn_schema inner_schema = {
    .name = "inner", KN_SCHEMA_FIELDS(inner_fields), .size = sizeof(struct inner),
    .set_offset = offsetof(struct inner, set),
};

static const struct kn_field outer_fields[] = {
    {.key = "name", .type = KN_TYPE_STRING, .offset = offsetof(struct outer, name),
     .flags = KN_FIELD_REQUIRED},
    {.key = "on", .type = KN_TYPE_BOOL, .offset = offsetof(struct outer, on), .def = "true"},
    {.key = "count", .type = KN_TYPE_INT, .offset = offsetof(struct outer, count),
     .flags = KN_FIELD_MIN, .min = 0, .def = "3"},
    {.key = "ratio", .type = KN_TYPE_DOUBLE, .offset = offsetof(struct outer, ratio)},
    {.key = "wait", .type = KN_TYPE_DURATION, .offset = offsetof(struct outer, wait_ms),
     .def = "30s"},
    {.key = "pct", .type = KN_TYPE_PERCENT, .offset = offsetof(struct outer, pct),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX, .min = 0, .max = 100},
    {.key = "scale", .type = KN_TYPE_SCALE, .offset = offsetof(struct outer, scale)},
    {.key = "color", .type = KN_TYPE_ENUM, .offset = offsetof(struct outer, color),
     .enums = colors, .def = "green"},
    {.key = "tags", .type = KN_TYPE_STRING_LIST, .offset = offsetof(struct outer, tags)},
    {.key = "env", .type = KN_TYPE_STRING_MAP, .offset = offsetof(struct outer, env)},
    {.key = "inner", .type = KN_TYPE_OBJECT, .offset = offsetof(struct outer, inner),
     .sub = &inner_schema},
    {.key = "items", .type = KN_TYPE_LIST, .offset = offsetof(struct outer, items),
     .sub = &inner_schema},
};

static const struct kn_schema outer_schema = {
    .name = "outer", KN_SCHEMA_FIELDS(outer_fields), .size = sizeof(struct outer),
    .set_offset = offsetof(struct outer, set),
};

/* Parse text; returns the diagnostics joined by newlines (caller frees). */
static char *parse(const char *text, struct outer *o)
{
    struct kn_yaml *y = NULL;
    struct kn_error err;
    struct kn_diags d;
    struct kn_schema_ctx ctx;
    struct kn_buf out;
    char line[1024];

    memset(o, 0, sizeof(*o));
    assert_int_equal(kn_yaml_parse(&y, "t.yaml", text, strlen(text), NULL, &err), 0);
    kn_diags_init(&d, 0);
    memset(&ctx, 0, sizeof(ctx));
    ctx.diags = &d;
    kn_schema_parse(&outer_schema, y->ndocs ? y->docs[0] : NULL, NULL, o, &ctx);
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < d.count; i++) {
        kn_buf_addf(&out, "%s%s", i ? "\n" : "", kn_diag_format(&d.items[i], line, sizeof(line)));
    }
    kn_diags_release(&d);
    kn_yaml_free(y);
    return kn_buf_detach(&out, NULL);
}

static void test_values_and_defaults(void **state)
{
    struct outer o;
    char *msgs = parse("name: x\nratio: 0.5\npct: \"20%\"\nscale: \"25%\"\ntags: [a, b]\n"
                       "env: {A: '1'}\ninner: {}\nitems: [{port: 8080}, {}]\n",
                       &o);
    (void)state;
    assert_string_equal(msgs, "");
    assert_string_equal(o.name, "x");
    assert_int_equal(o.on, 1);
    assert_int_equal(o.count, 3);
    assert_true(o.ratio == 0.5);
    assert_int_equal(o.wait_ms, 30000);
    assert_true(o.pct == 20);
    assert_true(o.scale.percent && o.scale.value == 25);
    assert_int_equal(o.color, 1);
    assert_int_equal(o.tags.count, 2);
    assert_string_equal(o.env.values[0], "1");
    assert_int_equal(o.inner.port, 80);
    assert_int_equal(o.items.count, 2);
    assert_int_equal(((struct inner *)o.items.items)[0].port, 8080);
    assert_int_equal(((struct inner *)o.items.items)[1].port, 80);
    assert_true(kn_schema_isset(&outer_schema, &o, "pct"));
    assert_false(kn_schema_isset(&outer_schema, &o, "count"));
    free(msgs);
    kn_schema_release(&outer_schema, &o);
}

static void test_every_error_is_reported(void **state)
{
    struct outer o;
    char *msgs = parse("nmae: x\non: yes\ncount: -1\nwait: soon\npct: 150\ncolor: blue\n"
                       "tags: a\ninner: {port: 0}\nitems: [{port: x}]\n",
                       &o);
    (void)state;
    assert_string_equal(
        msgs,
        "t.yaml:1:1: unknown key 'nmae', did you mean 'name'? (allowed: name, on, count, ratio, "
        "wait, pct, scale, color, tags, env, inner, items)\n"
        "t.yaml:1:1: 'name' is required\n"
        "t.yaml:2:5: 'on' must be true or false, got a string 'yes'\n"
        "t.yaml:3:8: 'count' must be at least 0, got -1\n"
        "t.yaml:4:7: 'wait' must be a duration like 30s, 5m or 1h, got 'soon'\n"
        "t.yaml:5:6: 'pct' must be between 0 and 100, got 150\n"
        "t.yaml:6:8: 'color' must be one of red, green, got 'blue'\n"
        "t.yaml:7:7: 'tags' must be a list, got a string\n"
        "t.yaml:8:15: 'inner.port' must be between 1 and 65535, got 0\n"
        "t.yaml:9:16: 'items[0].port' must be an integer, got a string 'x'");
    free(msgs);
    kn_schema_release(&outer_schema, &o);
}

static void test_not_a_map(void **state)
{
    struct outer o;
    char *msgs = parse("- a\n", &o);
    (void)state;
    assert_string_equal(msgs, "t.yaml:1:1: 'document' must be a map, got a list");
    free(msgs);
    kn_schema_release(&outer_schema, &o);
}

static void test_durations(void **state)
{
    static const struct {
        const char *in;
        long long ms;
    } ok[] = {{"0", 0}, {"30", 30000}, {"500ms", 500}, {"30s", 30000}, {"2m", 120000},
              {"1h30m", 5400000}, {"1d", 86400000}, {"1.5s", 1500}, {"1m30s", 90000}};
    static const char *const bad[] = {"", "s", "10x", "-5s", "1h-", "abc", "1 m", "10mss",
                                      "0x10s", "1e3s", "1.s", ".5s", "+5s"};
    char buf[32];
    long long ms;
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(kn_duration_parse(ok[i].in, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kn_duration_parse(bad[i], &ms), KN_EINVAL);
    }
    assert_string_equal(kn_duration_format(5400000, buf, sizeof(buf)), "1h30m");
    assert_string_equal(kn_duration_format(500, buf, sizeof(buf)), "500ms");
    assert_string_equal(kn_duration_format(0, buf, sizeof(buf)), "0s");
}

static void test_percents_and_hostports(void **state)
{
    double v;
    char host[64];
    int port;
    (void)state;

    assert_int_equal(kn_percent_parse("20", &v), 0);
    assert_true(v == 20);
    assert_int_equal(kn_percent_parse("12.5%", &v), 0);
    assert_true(v == 12.5);
    assert_int_equal(kn_percent_parse("%", &v), KN_EINVAL);
    assert_int_equal(kn_percent_parse("20%%", &v), KN_EINVAL);
    assert_int_equal(kn_percent_parse("ten", &v), KN_EINVAL);

    assert_int_equal(kn_hostport_parse("127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(kn_hostport_parse("[::1]:7070", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(kn_hostport_parse(":80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(kn_hostport_parse("localhost", host, sizeof(host), &port), KN_EINVAL);
    assert_int_equal(kn_hostport_parse("h:0", host, sizeof(host), &port), KN_EINVAL);
    assert_int_equal(kn_hostport_parse("h:70000", host, sizeof(host), &port), KN_EINVAL);
    assert_int_equal(kn_hostport_parse("::1:80", host, sizeof(host), &port), KN_EINVAL);
    assert_int_equal(kn_hostport_parse("h: 80", host, sizeof(host), &port), KN_EINVAL);
    assert_int_equal(kn_hostport_parse("h:+80", host, sizeof(host), &port), KN_EINVAL);
    assert_int_equal(kn_hostport_parse("[]:80", host, sizeof(host), &port), KN_EINVAL);
}

/* ---- a map whose other keys are chosen by one of its fields ---------------------------------- */

struct circle {
    uint64_t set;
    long long radius;
};

struct square {
    uint64_t set;
    long long side;
};

struct shape {
    uint64_t set;
    char *name;
    char *kind;
    void *opts; /* struct circle or struct square */
};

struct drawing {
    uint64_t set;
    struct kn_list shapes;
};

static const struct kn_field circle_fields[] = {
    {.key = "radius", .type = KN_TYPE_INT, .offset = offsetof(struct circle, radius),
     .def = "1", .help = "r"},
};

static const struct kn_schema circle_schema = {
    .name = "circle", KN_SCHEMA_FIELDS(circle_fields), .size = sizeof(struct circle),
    .set_offset = offsetof(struct circle, set),
};

static const struct kn_field square_fields[] = {
    {.key = "side", .type = KN_TYPE_INT, .offset = offsetof(struct square, side),
     .flags = KN_FIELD_REQUIRED, .help = "s"},
};

static const struct kn_schema square_schema = {
    .name = "square", KN_SCHEMA_FIELDS(square_fields), .size = sizeof(struct square),
    .set_offset = offsetof(struct square, set),
};

static const struct kn_schema *shape_variant(const void *obj, const struct kn_node *node,
                                             struct kn_schema_ctx *ctx)
{
    const struct shape *s = obj;

    if (!s->kind) {
        return NULL;
    }
    if (strcmp(s->kind, "circle") == 0) {
        return &circle_schema;
    }
    if (strcmp(s->kind, "square") == 0) {
        return &square_schema;
    }
    if (ctx) {
        kn_schema_error(ctx, kn_node_get(node, "kind"),
                        "'kind' must be one of circle, square, got '%s'", s->kind);
    }
    return NULL;
}

static const struct kn_field shape_fields[] = {
    {.key = "name", .type = KN_TYPE_STRING, .offset = offsetof(struct shape, name)},
    {.key = "kind", .type = KN_TYPE_STRING, .offset = offsetof(struct shape, kind),
     .flags = KN_FIELD_REQUIRED},
};

static const struct kn_schema shape_schema = {
    .name = "shape", KN_SCHEMA_FIELDS(shape_fields), .size = sizeof(struct shape),
    .set_offset = offsetof(struct shape, set), .variant = shape_variant,
    .variant_offset = offsetof(struct shape, opts), .variant_help = "the keys of its kind",
};

static const struct kn_field drawing_fields[] = {
    {.key = "shapes", .type = KN_TYPE_LIST, .offset = offsetof(struct drawing, shapes),
     .sub = &shape_schema},
};

static const struct kn_schema drawing_schema = {
    .name = "drawing", KN_SCHEMA_FIELDS(drawing_fields), .size = sizeof(struct drawing),
    .set_offset = offsetof(struct drawing, set),
};

/* Parse text with `schema` into obj; returns the diagnostics joined by newlines (caller
 * frees). */
static char *parse_with(const struct kn_schema *schema, const char *text, void *obj)
{
    struct kn_yaml *y = NULL;
    struct kn_error err;
    struct kn_diags d;
    struct kn_schema_ctx ctx;
    struct kn_buf out;
    char line[1024];

    memset(obj, 0, schema->size);
    assert_int_equal(kn_yaml_parse(&y, "t.yaml", text, strlen(text), NULL, &err), 0);
    kn_diags_init(&d, 0);
    memset(&ctx, 0, sizeof(ctx));
    ctx.diags = &d;
    kn_schema_parse(schema, y->ndocs ? y->docs[0] : NULL, NULL, obj, &ctx);
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < d.count; i++) {
        kn_buf_addf(&out, "%s%s", i ? "\n" : "", kn_diag_format(&d.items[i], line, sizeof(line)));
    }
    kn_diags_release(&d);
    kn_yaml_free(y);
    return kn_buf_detach(&out, NULL);
}

static void expect_shape(const char *text, const char *want)
{
    struct shape s;
    char *msgs = parse_with(&shape_schema, text, &s);

    assert_string_equal(msgs, want);
    free(msgs);
    kn_schema_release(&shape_schema, &s);
    assert_null(s.opts);
}

static void test_variant_dispatch(void **state)
{
    struct shape s;
    char *msgs;

    (void)state;
    msgs = parse_with(&shape_schema, "name: a\nkind: square\nside: 4\n", &s);
    assert_string_equal(msgs, "");
    assert_string_equal(s.kind, "square");
    assert_non_null(s.opts);
    assert_int_equal(((struct square *)s.opts)->side, 4);
    free(msgs);
    kn_schema_release(&shape_schema, &s);

    /* the variant's defaults apply when none of its keys is given */
    msgs = parse_with(&shape_schema, "kind: circle\n", &s);
    assert_string_equal(msgs, "");
    assert_int_equal(((struct circle *)s.opts)->radius, 1);
    assert_true(kn_schema_isset(&shape_schema, &s, "kind"));
    assert_false(kn_schema_isset(&circle_schema, s.opts, "radius"));
    free(msgs);
    kn_schema_release(&shape_schema, &s);
}

static void test_variant_errors(void **state)
{
    (void)state;
    /* a key of another variant: located, listing the keys of both schemas */
    expect_shape("name: a\nkind: circle\nside: 2\n",
                 "t.yaml:3:1: unknown key 'side' (allowed: name, kind, radius)");
    expect_shape("kind: circle\nradis: 2\n",
                 "t.yaml:2:1: unknown key 'radis', did you mean 'radius'? (allowed: name, kind, "
                 "radius)");
    /* the variant's own errors, with the path of the map */
    expect_shape("kind: square\n", "t.yaml:1:1: 'side' is required");
    expect_shape("kind: circle\nradius: big\n",
                 "t.yaml:2:9: 'radius' must be an integer, got a string 'big'");
    /* an unknown selector: the hook's error alone, its keys cannot be judged */
    expect_shape("kind: hexagon\nsides: 6\n",
                 "t.yaml:1:7: 'kind' must be one of circle, square, got 'hexagon'");
    /* no selector: the required error alone */
    expect_shape("name: a\nradius: 2\n", "t.yaml:1:1: 'kind' is required");
}

static void test_variant_in_list(void **state)
{
    struct drawing a, b;
    char *msgs;
    char key[64];
    struct kn_buf doc;

    (void)state;
    msgs = parse_with(&drawing_schema,
                      "shapes:\n  - {kind: circle, radius: 2}\n  - {kind: square, side: 3}\n", &a);
    assert_string_equal(msgs, "");
    free(msgs);
    msgs = parse_with(&drawing_schema,
                      "shapes:\n  - {kind: circle, radius: 2}\n  - {kind: square, sid: 3}\n", &b);
    assert_string_equal(msgs, "t.yaml:3:20: unknown key 'sid' in 'shapes[1]', did you mean "
                              "'side'? (allowed: name, kind, side)\n"
                              "t.yaml:3:5: 'shapes[1].side' is required");
    free(msgs);
    kn_schema_release(&drawing_schema, &b);

    /* compared key by key, variants included */
    msgs = parse_with(&drawing_schema,
                      "shapes:\n  - {radius: 2, kind: circle}\n  - {kind: square, side: 3}\n", &b);
    free(msgs);
    assert_int_equal(kn_schema_compare(&drawing_schema, &a, &b, key, sizeof(key)), 0);
    assert_string_equal(key, "");
    kn_schema_release(&drawing_schema, &b);
    msgs = parse_with(&drawing_schema,
                      "shapes:\n  - {kind: circle, radius: 2}\n  - {kind: square, side: 5}\n", &b);
    free(msgs);
    assert_int_equal(kn_schema_compare(&drawing_schema, &a, &b, key, sizeof(key)), 1);
    assert_string_equal(key, "shapes[1].side");
    kn_schema_release(&drawing_schema, &b);
    msgs = parse_with(&drawing_schema,
                      "shapes:\n  - {kind: square, side: 2}\n  - {kind: square, side: 3}\n", &b);
    free(msgs);
    assert_int_equal(kn_schema_compare(&drawing_schema, &a, &b, key, sizeof(key)), 1);
    assert_string_equal(key, "shapes[0].kind");
    kn_schema_release(&drawing_schema, &b);
    msgs = parse_with(&drawing_schema, "shapes:\n  - {kind: circle, radius: 2}\n", &b);
    free(msgs);
    assert_int_equal(kn_schema_compare(&drawing_schema, &a, &b, key, sizeof(key)), 1);
    assert_string_equal(key, "shapes");
    kn_schema_release(&drawing_schema, &b);

    /* the reference names where the other keys are described */
    kn_buf_init(&doc, KN_BUF_UNBOUNDED);
    kn_schema_describe(&drawing_schema, NULL, &doc);
    assert_non_null(strstr(doc.data, "| `shapes[].kind` | string | required |"));
    assert_non_null(strstr(doc.data, "| `shapes[].*` | any |  | the keys of its kind |"));
    kn_buf_release(&doc);
    kn_schema_release(&drawing_schema, &a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_and_defaults),
        cmocka_unit_test(test_every_error_is_reported),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_percents_and_hostports),
        cmocka_unit_test(test_variant_dispatch),
        cmocka_unit_test(test_variant_errors),
        cmocka_unit_test(test_variant_in_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
