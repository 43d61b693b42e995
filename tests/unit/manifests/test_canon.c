/* Unit tests for manifests/canon.c: YAML text through kn_yaml_parse to canonical JSON and hash. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/manifest.h"

/* The first document of `text` as JSON (new reference). */
static json_t *yaml_json(const char *text)
{
    struct kn_yaml *y = NULL;
    struct kn_error err;
    json_t *j = NULL;
    char buf[1024];

    kn_error_clear(&err);
    if (kn_yaml_parse(&y, "test.yaml", text, strlen(text), NULL, &err) < 0) {
        fail_msg("parse failed: %s\n--- in:\n%s", kn_error_format(&err, buf, sizeof(buf)), text);
    }
    assert_true(y->ndocs >= 1);
    j = kn_node_to_json(y->docs[0]);
    kn_yaml_free(y);
    assert_non_null(j);
    return j;
}

static char *yaml_canon(const char *text)
{
    json_t *j = yaml_json(text);
    char *s = kn_json_canonical(j);

    json_decref(j);
    return s;
}

static void yaml_hash(const char *text, char out[65])
{
    json_t *j = yaml_json(text);

    kn_json_hash(j, out);
    json_decref(j);
}

static void assert_canon(const char *text, const char *want)
{
    char *got = yaml_canon(text);
    int same = strcmp(got, want) == 0;

    if (!same) {
        print_error("yaml:\n%s\ngot:  %s\nwant: %s\n", text, got, want);
    }
    free(got);
    assert_true(same);
}

/* ---- canonical text ------------------------------------------------------------------------ */

static void test_canonical_text(void **state)
{
    (void)state;
    assert_canon("# a service\n"
                 "kind: LocalService\n"
                 "metadata:\n"
                 "  name: hello\n"
                 "  labels: {tier: web, app.kubernetes.io/name: hello}\n"
                 "spec:\n"
                 "  port: 8080\n"
                 "  ratio: 0.5\n"
                 "  enabled: true\n"
                 "  note: ~\n"
                 "  command: [hello, \"--port\", '8080']\n"
                 "  script: |\n"
                 "    echo \"hi\"\n",
                 "{\"kind\":\"LocalService\","
                 "\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"hello\",\"tier\":\"web\"},"
                 "\"name\":\"hello\"},"
                 "\"spec\":{\"command\":[\"hello\",\"--port\",\"8080\"],\"enabled\":true,"
                 "\"note\":null,\"port\":8080,\"ratio\":0.5,\"script\":\"echo \\\"hi\\\"\\n\"}}");
}

static void test_canonical_null_and_empty(void **state)
{
    (void)state;
    json_t *j = kn_node_to_json(NULL);
    char *s = kn_json_canonical(j);

    assert_true(json_is_null(j));
    assert_string_equal(s, "null");
    free(s);
    json_decref(j);
    assert_null(kn_json_canonical(NULL));
    assert_canon("{}", "{}");
    assert_canon("[]", "[]");
    assert_canon("a: {}\nb: []\n", "{\"a\":{},\"b\":[]}");
}

/* Non-ASCII and control characters come out as \u escapes (JSON_ENSURE_ASCII). */
static void test_canonical_is_ascii(void **state)
{
    (void)state;
    assert_canon("v: \"caf\xc3\xa9 \\u2028 \\e[0m\"\n",
                 "{\"v\":\"caf\\u00E9 \\u2028 \\u001B[0m\"}");
    assert_canon("v: \xf0\x9f\x90\xa4\n", "{\"v\":\"\\uD83D\\uDC24\"}");
    assert_canon("k\xc3\xa9y: 1\n", "{\"k\\u00E9y\":1}");
}

static void test_keys_are_text(void **state)
{
    (void)state;
    assert_canon("1: a\ntrue: b\nnull: c\n\"2\": d\n0x10: e\n",
                 "{\"0x10\":\"e\",\"1\":\"a\",\"2\":\"d\",\"null\":\"c\",\"true\":\"b\"}");
}

static void test_aliases_expand(void **state)
{
    (void)state;
    assert_canon("a: &x {k: [1, 2]}\nb: *x\n", "{\"a\":{\"k\":[1,2]},\"b\":{\"k\":[1,2]}}");
}

/* ---- typing of scalars: YAML 1.2 core schema ---------------------------------------------- */

struct typing_case {
    const char *yaml; /* the value after `v: ` */
    const char *json; /* its canonical text */
};

static const struct typing_case typing_cases[] = {
    /* null */
    {"~", "null"},
    {"null", "null"},
    {"Null", "null"},
    {"NULL", "null"},
    {"", "null"},
    {"nUll", "\"nUll\""},
    /* bool: the three casings, nothing from YAML 1.1 */
    {"true", "true"},
    {"True", "true"},
    {"TRUE", "true"},
    {"false", "false"},
    {"False", "false"},
    {"FALSE", "false"},
    {"tRUE", "\"tRUE\""},
    {"yes", "\"yes\""},
    {"no", "\"no\""},
    {"on", "\"on\""},
    {"off", "\"off\""},
    {"y", "\"y\""},
    /* int */
    {"0", "0"},
    {"42", "42"},
    {"-17", "-17"},
    {"+17", "17"},
    {"007", "7"},
    {"0x1A", "26"},
    {"0xff", "255"},
    {"0o17", "15"},
    {"9223372036854775807", "9223372036854775807"},
    {"-9223372036854775808", "-9223372036854775808"},
    /* too big for json_int_t: a real */
    {"9223372036854775808", "9.2233720368547758e18"},
    {"-9223372036854775809", "-9.2233720368547758e18"},
    {"0x10000000000000000", "1.8446744073709552e19"},
    {"0o2000000000000000000000", "1.8446744073709552e19"},
    /* not ints under 1.2 */
    {"1_000", "\"1_000\""},
    {"0b101", "\"0b101\""},
    {"12:30", "\"12:30\""},
    {"0o8", "\"0o8\""},
    {"0x", "\"0x\""},
    {"1 2", "\"1 2\""},
    /* float */
    {"1.5", "1.5"},
    {"-0.25", "-0.25"},
    {"+0.5", "0.5"},
    {".5", "0.5"},
    {"1.", "1.0"},
    {"1.0", "1.0"},
    {"1e3", "1000.0"},
    {"1E-2", "0.01"},
    {"6.02e+23", "6.02e23"},
    {"0.1", "0.10000000000000001"},
    /* no infinity or NaN in JSON: strings */
    {".inf", "\"inf\""},
    {".Inf", "\"inf\""},
    {"+.INF", "\"inf\""},
    {"-.inf", "\"-inf\""},
    {".nan", "\"nan\""},
    {".NaN", "\"nan\""},
    {".NAN", "\"nan\""},
    {"1e999", "\"inf\""},
    {"-1e999", "\"-inf\""},
    /* not floats */
    {"1.2.3", "\"1.2.3\""},
    {"1e", "\"1e\""},
    {".", "\".\""},
    {"inf", "\"inf\""},
    {"nan", "\"nan\""},
    {"0x1p3", "\"0x1p3\""},
    /* quoted, literal and folded scalars are always strings */
    {"\"1\"", "\"1\""},
    {"'1'", "\"1\""},
    {"\"true\"", "\"true\""},
    {"'null'", "\"null\""},
    {"\"~\"", "\"~\""},
    {"\"\"", "\"\""},
    {"''", "\"\""},
    {"\"1.5\"", "\"1.5\""},
    {"\".inf\"", "\".inf\""},
    {"|-\n  42", "\"42\""},
    {">-\n  true", "\"true\""},
    /* plain strings */
    {"hello", "\"hello\""},
    {"hello world", "\"hello world\""},
    {"--port", "\"--port\""},
    {"0.1.2-beta", "\"0.1.2-beta\""},
};

static void test_typing_table(void **state)
{
    (void)state;
    int failed = 0;

    for (size_t i = 0; i < sizeof(typing_cases) / sizeof(typing_cases[0]); i++) {
        const struct typing_case *c = &typing_cases[i];
        char *yaml = NULL;
        json_t *doc = NULL;
        char *got = NULL;

        yaml = malloc(strlen(c->yaml) + 8);
        assert_non_null(yaml);
        strcpy(yaml, "v: ");
        strcat(yaml, c->yaml);
        strcat(yaml, "\n");
        doc = yaml_json(yaml);
        got = kn_json_canonical(json_object_get(doc, "v"));
        if (!got || strcmp(got, c->json) != 0) {
            print_error("v: %s  ->  got %s, want %s\n", c->yaml, got ? got : "(absent)", c->json);
            failed++;
        }
        free(got);
        json_decref(doc);
        free(yaml);
    }
    assert_int_equal(failed, 0);
}

/* A node built by hand (not from libyaml) still gives valid JSON. */
static void test_hand_built_nodes(void **state)
{
    (void)state;
    char bad[] = {'a', '\xff', 'b', '\xc3', '\0'};
    char nul[] = {'a', '\0', 'b', '\0'};
    char num[] = "123";
    char badkey[] = "k\xe9";
    struct kn_node s_bad = {.type = KN_NODE_SCALAR, .quoted = 1, .scalar = bad, .len = 4};
    struct kn_node s_nul = {.type = KN_NODE_SCALAR, .quoted = 1, .scalar = nul, .len = 3};
    struct kn_node s_num = {.type = KN_NODE_SCALAR, .quoted = 1, .scalar = num, .len = 3};
    struct kn_node k_bad = {.type = KN_NODE_SCALAR, .quoted = 0, .scalar = badkey, .len = 2};
    struct kn_node *items[] = {&s_bad, &s_nul, &s_num};
    struct kn_node seq = {.type = KN_NODE_SEQ, .items = items, .len = 3};
    struct kn_pair pairs[] = {{.key = &k_bad, .value = &seq}};
    struct kn_node map = {.type = KN_NODE_MAP, .pairs = pairs, .len = 1};
    json_t *j = kn_node_to_json(&map);
    char *s = kn_json_canonical(j);

    /* invalid UTF-8 becomes U+FFFD; NULs are kept; quoted digits are a string */
    assert_string_equal(s, "{\"k\\uFFFD\":[\"a\\uFFFDb\\uFFFD\",\"a\\u0000b\",\"123\"]}");
    free(s);
    json_decref(j);
}

/* ---- the hash ------------------------------------------------------------------------------ */

static void test_hash_format(void **state)
{
    (void)state;
    char h[65];
    json_t *j = json_pack("{s:i}", "a", 1);

    /* sha256('{"a":1}') */
    kn_json_hash(j, h);
    assert_string_equal(h, "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
    json_decref(j);
    j = json_object();
    kn_json_hash(j, h);
    assert_string_equal(h, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    json_decref(j);
    /* NULL hashes like JSON null */
    kn_json_hash(NULL, h);
    assert_string_equal(h, "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b");
}

/* The same manifest written many ways. */
static const char *const same_manifest[] = {
    "kind: LocalService\n"
    "metadata:\n"
    "  name: hello\n"
    "  labels:\n"
    "    tier: web\n"
    "spec:\n"
    "  port: 8080\n"
    "  command:\n"
    "    - hello\n"
    "    - --port=8080\n"
    "  env:\n"
    "    A: \"1\"\n",

    /* key order */
    "spec:\n"
    "  env:\n"
    "    A: \"1\"\n"
    "  command:\n"
    "    - hello\n"
    "    - --port=8080\n"
    "  port: 8080\n"
    "metadata:\n"
    "  labels:\n"
    "    tier: web\n"
    "  name: hello\n"
    "kind: LocalService\n",

    /* comments, blank lines, indentation, document markers */
    "%YAML 1.2\n"
    "---\n"
    "# the service\n"
    "kind:     LocalService   # trailing\n"
    "\n"
    "metadata:\n"
    "      name: hello\n"
    "      labels:\n"
    "          tier: web\n"
    "spec:\n"
    "    port: 8080\n"
    "    command:\n"
    "    - hello\n"
    "    # between items\n"
    "    - --port=8080\n"
    "    env:\n"
    "        A: \"1\"\n"
    "...\n",

    /* quoting style of strings */
    "\"kind\": 'LocalService'\n"
    "metadata:\n"
    "  'name': \"hello\"\n"
    "  labels:\n"
    "    tier: \"web\"\n"
    "spec:\n"
    "  port: 8080\n"
    "  command:\n"
    "    - 'hello'\n"
    "    - \"--port=8080\"\n"
    "  env:\n"
    "    \"A\": '1'\n",

    /* escapes and block scalars that spell the same strings */
    "kind: \"Local\\x53ervice\"\n"
    "metadata:\n"
    "  name: \"\\u0068ello\"\n"
    "  labels:\n"
    "    tier: |-\n"
    "      web\n"
    "spec:\n"
    "  port: 8080\n"
    "  command:\n"
    "    - >-\n"
    "      hello\n"
    "    - --port=8080\n"
    "  env:\n"
    "    A: |-\n"
    "      1\n",

    /* flow style */
    "{kind: LocalService, metadata: {name: hello, labels: {tier: web}},\n"
    " spec: {port: 8080, command: [hello, --port=8080], env: {A: '1'}}}\n",

    /* the same number written another way */
    "kind: LocalService\n"
    "metadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 0x1F90, command: [hello, --port=8080], env: {A: \"1\"}}\n",

    /* anchors and aliases */
    "kind: LocalService\n"
    "metadata: {name: &n hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [*n, --port=8080], env: {A: \"1\"}}\n",
};

/* The same manifest with one thing changed. */
static const char *const other_manifests[] = {
    /* a value */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8081, command: [hello, --port=8080], env: {A: \"1\"}}\n",
    /* "1" became 1 */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {A: 1}}\n",
    /* 8080 became "8080" */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: \"8080\", command: [hello, --port=8080], env: {A: \"1\"}}\n",
    /* 8080 became 8080.0 */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080.0, command: [hello, --port=8080], env: {A: \"1\"}}\n",
    /* list order */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [--port=8080, hello], env: {A: \"1\"}}\n",
    /* a key renamed */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {B: \"1\"}}\n",
    /* a key added */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {A: \"1\", B: \"2\"}}\n",
    /* a key removed */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080]}\n",
    /* an empty value instead of an empty string */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {A: \"1\"}, x: }\n",
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {A: \"1\"}, x: \"\"}\n",
    /* a trailing space inside a quoted string */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [\"hello \", --port=8080], env: {A: \"1\"}}\n",
    /* a literal block keeps its newline */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec:\n  port: 8080\n  command: [hello, --port=8080]\n  env:\n    A: |\n      1\n",
    /* true and "true" */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {A: \"1\"}, t: true}\n",
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: {A: \"1\"}, t: \"true\"}\n",
    /* a map and a list of one pair */
    "kind: LocalService\nmetadata: {name: hello, labels: {tier: web}}\n"
    "spec: {port: 8080, command: [hello, --port=8080], env: [{A: \"1\"}]}\n",
};

#define NSAME  (sizeof(same_manifest) / sizeof(same_manifest[0]))
#define NOTHER (sizeof(other_manifests) / sizeof(other_manifests[0]))

static void test_hash_ignores_style(void **state)
{
    (void)state;
    char want[65];
    char got[65];
    char *want_text = yaml_canon(same_manifest[0]);

    yaml_hash(same_manifest[0], want);
    for (size_t i = 1; i < NSAME; i++) {
        yaml_hash(same_manifest[i], got);
        if (strcmp(got, want) != 0) {
            char *text = yaml_canon(same_manifest[i]);
            print_error("variant %zu:\n  got  %s\n  want %s\n", i, text, want_text);
            free(text);
        }
        assert_string_equal(got, want);
    }
    free(want_text);
}

static void test_hash_sees_values(void **state)
{
    (void)state;
    char hashes[NOTHER + 1][65];

    yaml_hash(same_manifest[0], hashes[0]);
    for (size_t i = 0; i < NOTHER; i++) {
        yaml_hash(other_manifests[i], hashes[i + 1]);
    }
    /* each differs from the original and from every other */
    for (size_t i = 0; i <= NOTHER; i++) {
        for (size_t k = i + 1; k <= NOTHER; k++) {
            if (strcmp(hashes[i], hashes[k]) == 0) {
                fail_msg("same hash for variants %zu and %zu", i, k);
            }
        }
    }
}

static void test_string_and_int_differ(void **state)
{
    (void)state;
    char a[65];
    char b[65];
    char c[65];

    yaml_hash("replicas: \"1\"\n", a);
    yaml_hash("replicas: 1\n", b);
    yaml_hash("replicas: '1'\n", c);
    assert_string_not_equal(a, b);
    assert_string_equal(a, c);
    assert_canon("replicas: \"1\"\n", "{\"replicas\":\"1\"}");
    assert_canon("replicas: 1\n", "{\"replicas\":1}");
}

static void test_hash_is_stable(void **state)
{
    (void)state;
    char h1[65];
    char h2[65];

    yaml_hash(same_manifest[0], h1);
    yaml_hash(same_manifest[0], h2);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    assert_int_equal(strspn(h1, "0123456789abcdef"), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_text),
        cmocka_unit_test(test_canonical_null_and_empty),
        cmocka_unit_test(test_canonical_is_ascii),
        cmocka_unit_test(test_keys_are_text),
        cmocka_unit_test(test_aliases_expand),
        cmocka_unit_test(test_typing_table),
        cmocka_unit_test(test_hand_built_nodes),
        cmocka_unit_test(test_hash_format),
        cmocka_unit_test(test_hash_ignores_style),
        cmocka_unit_test(test_hash_sees_values),
        cmocka_unit_test(test_string_and_int_differ),
        cmocka_unit_test(test_hash_is_stable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
