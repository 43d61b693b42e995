/* Unit tests for manifests/diff.c: sets of manifests given as JSON text. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/manifest.h"

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);

    if (!j) {
        fail_msg("bad test JSON at %d:%d: %s", jerr.line, jerr.column, jerr.text);
    }
    return j;
}

/* Diff two sets given as JSON text ("" for NULL) and return the human text (caller frees). */
static char *diff_text(const char *old_text, const char *new_text)
{
    json_t *a = old_text[0] ? load(old_text) : NULL;
    json_t *b = new_text[0] ? load(new_text) : NULL;
    struct kn_diff d;
    char *s = NULL;

    assert_int_equal(kn_diff_manifests(&d, a, b), 0);
    s = kn_diff_format(&d);
    kn_diff_release(&d);
    json_decref(a);
    json_decref(b);
    return s;
}

static void assert_diff_text(const char *old_text, const char *new_text, const char *want)
{
    char *got = diff_text(old_text, new_text);
    int same = strcmp(got, want) == 0;

    if (!same) {
        print_error("got:\n%s\nwant:\n%s\n", got, want);
    }
    free(got);
    assert_true(same);
}

static const char *const hello_old =
    "[{\"kind\": \"LocalService\", \"metadata\": {\"name\": \"hello\"},"
    "  \"spec\": {\"command\": [\"hello\", \"hello-1.4.1\"], \"port\": 8080}},"
    " {\"kind\": \"LocalService\", \"metadata\": {\"name\": \"gone\"}, \"spec\": {}},"
    " {\"kind\": \"Application\", \"metadata\": {\"name\": \"web\"}, \"spec\": {\"a\": 1}}]";

static const char *const hello_new =
    "[{\"kind\": \"LocalService\", \"metadata\": {\"name\": \"extra\"}, \"spec\": {}},"
    " {\"kind\": \"Application\", \"metadata\": {\"name\": \"web\"}, \"spec\": {\"a\": 1}},"
    " {\"kind\": \"LocalService\", \"metadata\": {\"name\": \"hello\"},"
    "  \"spec\": {\"port\": 8080, \"command\": [\"hello\", \"hello-1.4.2\"]}}]";

static void test_added_removed_changed(void **state)
{
    (void)state;
    json_t *a = load(hello_old);
    json_t *b = load(hello_new);
    struct kn_diff d;

    assert_int_equal(kn_diff_manifests(&d, a, b), 0);
    assert_int_equal(d.count, 3);
    /* sorted by (kind, name); Application/web is unchanged and absent */
    assert_int_equal(d.items[0].op, KN_CHANGE_ADDED);
    assert_string_equal(d.items[0].kind, "LocalService");
    assert_string_equal(d.items[0].name, "extra");
    assert_int_equal(d.items[0].nfields, 0);
    assert_int_equal(d.items[1].op, KN_CHANGE_REMOVED);
    assert_string_equal(d.items[1].name, "gone");
    assert_int_equal(d.items[2].op, KN_CHANGE_CHANGED);
    assert_string_equal(d.items[2].kind, "LocalService");
    assert_string_equal(d.items[2].name, "hello");
    assert_int_equal(d.items[2].nfields, 1);
    assert_string_equal(d.items[2].fields[0].path, "spec.command[1]");
    assert_string_equal(d.items[2].fields[0].old_value, "\"hello-1.4.1\"");
    assert_string_equal(d.items[2].fields[0].new_value, "\"hello-1.4.2\"");
    kn_diff_release(&d);
    json_decref(a);
    json_decref(b);
}

static void test_format_text(void **state)
{
    (void)state;
    assert_diff_text(hello_old, hello_new,
                     "+ LocalService/extra\n"
                     "- LocalService/gone\n"
                     "~ LocalService/hello\n"
                     "    spec.command[1]: \"hello-1.4.1\" -> \"hello-1.4.2\"\n");
}

static void test_identical_sets(void **state)
{
    (void)state;
    /* same manifests, other order, other key order, other whitespace */
    json_t *a = load(hello_old);
    json_t *b =
        load("[{\"metadata\":{\"name\":\"web\"},\"spec\":{\"a\":1},\"kind\":\"Application\"},"
             "{\"kind\":\"LocalService\",\"metadata\":{\"name\":\"gone\"},\"spec\":{}},"
             "{\"spec\":{\"port\":8080,\"command\":[\"hello\",\"hello-1.4.1\"]},"
             "\"kind\":\"LocalService\",\"metadata\":{\"name\":\"hello\"}}]");
    struct kn_diff d;
    char *text = NULL;

    assert_int_equal(kn_diff_manifests(&d, a, b), 0);
    assert_int_equal(d.count, 0);
    text = kn_diff_format(&d);
    assert_string_equal(text, "");
    free(text);
    kn_diff_release(&d);
    json_decref(a);
    json_decref(b);
}

static void test_null_sets(void **state)
{
    (void)state;
    struct kn_diff d;
    json_t *j = NULL;
    json_t *set = load("[{\"kind\":\"B\",\"metadata\":{\"name\":\"y\"}},"
                       "{\"kind\":\"A\",\"metadata\":{\"name\":\"z\"}},"
                       "{\"kind\":\"B\",\"metadata\":{\"name\":\"x\"}}]");
    json_t *empty = load("[]");
    char *text = NULL;

    assert_int_equal(kn_diff_manifests(&d, NULL, NULL), 0);
    assert_int_equal(d.count, 0);
    assert_null(d.items);
    j = kn_diff_to_json(&d);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    kn_diff_release(&d);

    assert_int_equal(kn_diff_manifests(&d, empty, NULL), 0);
    assert_int_equal(d.count, 0);
    kn_diff_release(&d);

    assert_int_equal(kn_diff_manifests(&d, NULL, set), 0);
    text = kn_diff_format(&d);
    assert_string_equal(text, "+ A/z\n+ B/x\n+ B/y\n");
    free(text);
    kn_diff_release(&d);

    assert_int_equal(kn_diff_manifests(&d, set, empty), 0);
    text = kn_diff_format(&d);
    assert_string_equal(text, "- A/z\n- B/x\n- B/y\n");
    free(text);
    kn_diff_release(&d);

    json_decref(set);
    json_decref(empty);
}

static void test_not_arrays(void **state)
{
    (void)state;
    struct kn_diff d;
    json_t *obj = load("{\"kind\":\"A\"}");
    json_t *arr = load("[]");

    assert_int_equal(kn_diff_manifests(&d, obj, arr), KN_EINVAL);
    assert_int_equal(d.count, 0);
    assert_null(d.items);
    assert_int_equal(kn_diff_manifests(&d, arr, obj), KN_EINVAL);
    assert_int_equal(d.count, 0);
    kn_diff_release(&d);
    kn_diff_release(NULL);
    json_decref(obj);
    json_decref(arr);
}

static void test_nested_paths(void **state)
{
    (void)state;
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},"
                     "  \"spec\":{\"a\":{\"b\":{\"c\":1,\"d\":true}},\"gone\":{\"x\":1},"
                     "           \"same\":[1,{\"q\":2}]}}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},"
                     "  \"spec\":{\"a\":{\"b\":{\"c\":2,\"d\":true,\"e\":null}},\"new\":[1],"
                     "           \"same\":[1,{\"q\":3}]}}]",
                     "~ K/n\n"
                     "    spec.a.b.c: 1 -> 2\n"
                     "    spec.a.b.e: (absent) -> null\n"
                     "    spec.gone: {\"x\":1} -> (absent)\n"
                     "    spec.new: (absent) -> [1]\n"
                     "    spec.same[1].q: 2 -> 3\n");
}

static void test_array_length_change(void **state)
{
    (void)state;
    /* grows: the changed index and the new ones */
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},"
                     "  \"spec\":{\"command\":[\"run\",\"a\"]}}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},"
                     "  \"spec\":{\"command\":[\"run\",\"b\",\"c\",\"d\"]}}]",
                     "~ K/n\n"
                     "    spec.command[1]: \"a\" -> \"b\"\n"
                     "    spec.command[2]: (absent) -> \"c\"\n"
                     "    spec.command[3]: (absent) -> \"d\"\n");
    /* shrinks */
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"spec\":{\"l\":[1,2,3]}}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"spec\":{\"l\":[1]}}]",
                     "~ K/n\n"
                     "    spec.l[1]: 2 -> (absent)\n"
                     "    spec.l[2]: 3 -> (absent)\n");
    /* indexes in number order, not text order */
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},"
                     "  \"l\":[0,1,2,3,4,5,6,7,8,9,10]}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},"
                     "  \"l\":[0,1,-2,3,4,5,6,7,8,9,-10]}]",
                     "~ K/n\n"
                     "    l[2]: 2 -> -2\n"
                     "    l[10]: 10 -> -10\n");
}

static void test_quoted_key_paths(void **state)
{
    (void)state;
    assert_diff_text(
        "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\","
        "  \"labels\":{\"app.kubernetes.io/x\":\"a\",\"tier-1\":\"a\",\"_x9\":\"a\","
        "             \"9lives\":\"a\",\"\":\"a\",\"sp ace\":\"a\",\"q\\\"uote\":\"a\"}}}]",
        "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\","
        "  \"labels\":{\"app.kubernetes.io/x\":\"b\",\"tier-1\":\"b\",\"_x9\":\"b\","
        "             \"9lives\":\"b\",\"\":\"b\",\"sp ace\":\"b\",\"q\\\"uote\":\"b\"}}}]",
        "~ K/n\n"
        "    metadata.labels[\"\"]: \"a\" -> \"b\"\n"
        "    metadata.labels[\"9lives\"]: \"a\" -> \"b\"\n"
        "    metadata.labels._x9: \"a\" -> \"b\"\n"
        "    metadata.labels[\"app.kubernetes.io/x\"]: \"a\" -> \"b\"\n"
        "    metadata.labels[\"q\\\"uote\"]: \"a\" -> \"b\"\n"
        "    metadata.labels[\"sp ace\"]: \"a\" -> \"b\"\n"
        "    metadata.labels.tier-1: \"a\" -> \"b\"\n");
    /* at the top level too */
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"a.b\":1}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"a.b\":2}]",
                     "~ K/n\n    [\"a.b\"]: 1 -> 2\n");
}

static void test_type_changes(void **state)
{
    (void)state;
    /* "1" and 1 differ; a map replaced by a scalar is one change with both whole values */
    assert_diff_text(
        "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"s\":\"1\",\"m\":{\"b\":2,\"a\":[1]},"
        "  \"f\":1,\"u\":\"caf\\u00E9\"}]",
        "[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"s\":1,\"m\":\"flat\",\"f\":1.0,"
        "  \"u\":\"cafe\"}]",
        "~ K/n\n"
        "    f: 1 -> 1.0\n"
        "    m: {\"a\":[1],\"b\":2} -> \"flat\"\n"
        "    s: \"1\" -> 1\n"
        "    u: \"caf\\u00E9\" -> \"cafe\"\n");
}

static void test_renamed_is_removed_and_added(void **state)
{
    (void)state;
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"old\"},\"spec\":{}}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"new\"},\"spec\":{}},"
                     " {\"kind\":\"J\",\"metadata\":{\"name\":\"old\"},\"spec\":{}}]",
                     "+ J/old\n+ K/new\n- K/old\n");
}

static void test_positional(void **state)
{
    (void)state;
    /* no kind or no name: keyed by position as "#<index>"; a root that is not an object is "." */
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"#1\"}},"
                     " {\"metadata\":{\"name\":\"n\"},\"v\":1}, 5]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"#1\"}},"
                     " {\"metadata\":{\"name\":\"n\"},\"v\":1}, 6, true]",
                     "~ #2\n"
                     "    .: 5 -> 6\n"
                     "+ #3\n");
    /* a positional manifest never matches a named one, even one called "#0" */
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"#0\"}}]",
                     "[{\"kind\":\"K\",\"metadata\":{}}]", "- K/#0\n+ K/#0\n");
}

static void test_positional_kind_kept(void **state)
{
    (void)state;
    assert_diff_text("[{\"kind\":\"K\",\"spec\":1}]", "[{\"kind\":\"K\",\"spec\":2}]",
                     "~ K/#0\n    spec: 1 -> 2\n");
}

static void test_duplicates_paired_in_order(void **state)
{
    (void)state;
    assert_diff_text("[{\"kind\":\"K\",\"metadata\":{\"name\":\"d\"},\"v\":1},"
                     " {\"kind\":\"K\",\"metadata\":{\"name\":\"d\"},\"v\":2}]",
                     "[{\"kind\":\"K\",\"metadata\":{\"name\":\"d\"},\"v\":1},"
                     " {\"kind\":\"K\",\"metadata\":{\"name\":\"d\"},\"v\":3},"
                     " {\"kind\":\"K\",\"metadata\":{\"name\":\"d\"},\"v\":4}]",
                     "~ K/d\n    v: 2 -> 3\n+ K/d\n");
}

static void test_unprintable_names_quoted(void **state)
{
    (void)state;
    assert_diff_text("[]",
                     "[{\"kind\":\"K\\u001b[2J\",\"metadata\":{\"name\":\"a\\nb\"}},"
                     " {\"kind\":\"K\",\"metadata\":{\"name\":\"\\u00E9t\\u00E9\"}}]",
                     "+ K/\"\\u00E9t\\u00E9\"\n"
                     "+ \"K\\u001B[2J\"/\"a\\nb\"\n");
}

static void test_to_json_shape(void **state)
{
    (void)state;
    json_t *a = load("[{\"kind\":\"K\",\"metadata\":{\"name\":\"c\"},"
                     "  \"spec\":{\"x\":\"1\",\"gone\":[1,2],\"obj\":{\"k\":1}}},"
                     " {\"kind\":\"K\",\"metadata\":{\"name\":\"r\"}}]");
    json_t *b = load("[{\"kind\":\"K\",\"metadata\":{\"name\":\"c\"},"
                     "  \"spec\":{\"x\":1,\"new\":{\"k\":[true]},\"obj\":{\"k\":1.5}}},"
                     " {\"kind\":\"K\",\"metadata\":{\"name\":\"a\"}}]");
    json_t *want = load("[{\"op\":\"added\",\"kind\":\"K\",\"name\":\"a\"},"
                        " {\"op\":\"changed\",\"kind\":\"K\",\"name\":\"c\",\"fields\":["
                        "   {\"path\":\"spec.gone\",\"old\":[1,2]},"
                        "   {\"path\":\"spec.new\",\"new\":{\"k\":[true]}},"
                        "   {\"path\":\"spec.obj.k\",\"old\":1,\"new\":1.5},"
                        "   {\"path\":\"spec.x\",\"old\":\"1\",\"new\":1}]},"
                        " {\"op\":\"removed\",\"kind\":\"K\",\"name\":\"r\"}]");
    struct kn_diff d;
    json_t *got = NULL;

    assert_int_equal(kn_diff_manifests(&d, a, b), 0);
    got = kn_diff_to_json(&d);
    if (!json_equal(got, want)) {
        char *s = json_dumps(got, JSON_SORT_KEYS);
        fail_msg("unexpected JSON: %s", s);
    }
    json_decref(got);
    kn_diff_release(&d);
    json_decref(a);
    json_decref(b);
    json_decref(want);
}

static void test_field_values_null_when_absent(void **state)
{
    (void)state;
    json_t *a = load("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"x\":null}]");
    json_t *b = load("[{\"kind\":\"K\",\"metadata\":{\"name\":\"n\"},\"y\":null}]");
    struct kn_diff d;

    assert_int_equal(kn_diff_manifests(&d, a, b), 0);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.items[0].nfields, 2);
    /* a null value is present ("null"); an absent one is NULL */
    assert_string_equal(d.items[0].fields[0].path, "x");
    assert_string_equal(d.items[0].fields[0].old_value, "null");
    assert_null(d.items[0].fields[0].new_value);
    assert_string_equal(d.items[0].fields[1].path, "y");
    assert_null(d.items[0].fields[1].old_value);
    assert_string_equal(d.items[0].fields[1].new_value, "null");
    kn_diff_release(&d);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_removed_changed),
        cmocka_unit_test(test_format_text),
        cmocka_unit_test(test_identical_sets),
        cmocka_unit_test(test_null_sets),
        cmocka_unit_test(test_not_arrays),
        cmocka_unit_test(test_nested_paths),
        cmocka_unit_test(test_array_length_change),
        cmocka_unit_test(test_quoted_key_paths),
        cmocka_unit_test(test_type_changes),
        cmocka_unit_test(test_renamed_is_removed_and_added),
        cmocka_unit_test(test_positional),
        cmocka_unit_test(test_positional_kind_kept),
        cmocka_unit_test(test_duplicates_paired_in_order),
        cmocka_unit_test(test_unprintable_names_quoted),
        cmocka_unit_test(test_to_json_shape),
        cmocka_unit_test(test_field_values_null_when_absent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
