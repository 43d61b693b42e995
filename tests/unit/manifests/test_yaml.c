/* Unit tests for manifests/yaml.c: the located node tree over libyaml. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/manifest.h"

static struct kn_yaml *parse_ok(const char *text)
{
    struct kn_yaml *y = NULL;
    struct kn_error err;
    char buf[600];
    kn_error_clear(&err);
    int rc = kn_yaml_parse(&y, "t.yaml", text, strlen(text), NULL, &err);
    if (rc != 0) {
        fail_msg("parse failed: %s", kn_error_format(&err, buf, sizeof(buf)));
    }
    assert_non_null(y);
    return y;
}

/* Parse text that must fail with `code`; returns the formatted error in a static buffer. */
static const char *parse_fail(const char *text, const struct kn_yaml_limits *limits, int code,
                              struct kn_error *err)
{
    static char buf[600];
    static struct kn_yaml sentinel;
    struct kn_yaml *y = &sentinel; /* a failing parse must set *out to NULL */
    kn_error_clear(err);
    int rc = kn_yaml_parse(&y, "t.yaml", text, strlen(text), limits, err);
    assert_int_equal(rc, code);
    assert_null(y);
    assert_int_equal(err->code, code);
    return kn_error_format(err, buf, sizeof(buf));
}

static const struct kn_node *path(const struct kn_node *n, const char *key)
{
    const struct kn_node *v = kn_node_get(n, key);
    if (!v) {
        fail_msg("no key '%s'", key);
    }
    return v;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- tree and locations ------------------------------------------------------------------ */

static void test_locations(void **state)
{
    (void)state;
    struct kn_yaml *y = parse_ok("apiVersion: v1\n"
                                 "kind: LocalService\n"
                                 "metadata:\n"
                                 "  name: hello\n"
                                 "  labels: {app: web, tier: \"front\"}\n"
                                 "spec:\n"
                                 "  command:\n"
                                 "    - ./hello\n"
                                 "    - --port=8080\n");
    assert_string_equal(y->file, "t.yaml");
    assert_int_equal(y->ndocs, 1);
    const struct kn_node *root = y->docs[0];
    assert_int_equal(root->type, KN_NODE_MAP);
    assert_int_equal(root->len, 4);
    assert_int_equal(root->loc.line, 1);
    assert_int_equal(root->loc.col, 1);
    assert_ptr_equal(root->loc.file, y->file);

    const struct kn_node *meta = path(root, "metadata");
    assert_int_equal(meta->type, KN_NODE_MAP);
    assert_int_equal(meta->loc.line, 4);
    assert_int_equal(meta->loc.col, 3);

    const struct kn_node *name = path(meta, "name");
    assert_string_equal(name->scalar, "hello");
    assert_int_equal(name->len, 5);
    assert_int_equal(name->loc.line, 4);
    assert_int_equal(name->loc.col, 9);
    assert_ptr_equal(name->loc.file, y->file);

    const struct kn_pair *pair = kn_node_get_pair(meta, "name");
    assert_non_null(pair);
    assert_int_equal(pair->key->loc.line, 4);
    assert_int_equal(pair->key->loc.col, 3);
    assert_ptr_equal(pair->value, name);

    const struct kn_node *labels = path(meta, "labels");
    assert_int_equal(labels->loc.line, 5);
    assert_int_equal(labels->loc.col, 11);
    const struct kn_node *tier = path(labels, "tier");
    assert_int_equal(tier->loc.col, 28);
    assert_true(tier->quoted);
    assert_false(path(labels, "app")->quoted);

    const struct kn_node *cmd = path(path(root, "spec"), "command");
    assert_int_equal(cmd->type, KN_NODE_SEQ);
    assert_int_equal(cmd->len, 2);
    assert_string_equal(cmd->items[1]->scalar, "--port=8080");
    assert_int_equal(cmd->items[1]->loc.line, 9);
    assert_int_equal(cmd->items[1]->loc.col, 7);

    /* File order is kept. */
    assert_string_equal(root->pairs[0].key->scalar, "apiVersion");
    assert_string_equal(root->pairs[3].key->scalar, "spec");

    /* Lookups that find nothing. */
    assert_null(kn_node_get(root, "nope"));
    assert_null(kn_node_get(cmd, "x"));
    assert_null(kn_node_get(NULL, "x"));
    assert_null(kn_node_get_pair(name, "x"));
    kn_yaml_free(y);
    kn_yaml_free(NULL);
}

static void test_multi_doc(void **state)
{
    (void)state;
    struct kn_yaml *y = parse_ok("a: 1\n"
                                 "---\n"
                                 "# second\n"
                                 "b: 2\n"
                                 "...\n"
                                 "---\n"
                                 "- x\n");
    assert_int_equal(y->ndocs, 3);
    assert_string_equal(path(y->docs[0], "a")->scalar, "1");
    const struct kn_pair *b = kn_node_get_pair(y->docs[1], "b");
    assert_non_null(b);
    assert_int_equal(b->key->loc.line, 4);
    assert_int_equal(y->docs[2]->type, KN_NODE_SEQ);
    assert_int_equal(y->docs[2]->loc.line, 7);
    kn_yaml_free(y);
}

static void test_empty_and_bare_docs(void **state)
{
    (void)state;
    struct kn_yaml *y = parse_ok("");
    assert_int_equal(y->ndocs, 0);
    kn_yaml_free(y);

    y = parse_ok("# only a comment\n\n");
    assert_int_equal(y->ndocs, 0);
    kn_yaml_free(y);

    struct kn_yaml *z = NULL;
    assert_int_equal(kn_yaml_parse(&z, "null.yaml", NULL, 0, NULL, NULL), 0);
    assert_int_equal(z->ndocs, 0);
    kn_yaml_free(z);

    y = parse_ok("---\n");
    assert_int_equal(y->ndocs, 1);
    assert_int_equal(y->docs[0]->type, KN_NODE_SCALAR);
    assert_int_equal(kn_node_scalar_kind(y->docs[0]), KN_SCALAR_NULL);
    assert_string_equal(kn_node_describe(y->docs[0]), "null");
    kn_yaml_free(y);

    y = parse_ok("---\n---\nk: v\n");
    assert_int_equal(y->ndocs, 2);
    assert_int_equal(kn_node_scalar_kind(y->docs[0]), KN_SCALAR_NULL);
    assert_int_equal(y->docs[1]->type, KN_NODE_MAP);
    kn_yaml_free(y);

    y = parse_ok("empty: {}\nnone: []\nnull_value:\n");
    const struct kn_node *e = path(y->docs[0], "empty");
    assert_int_equal(e->type, KN_NODE_MAP);
    assert_int_equal(e->len, 0);
    assert_int_equal(path(y->docs[0], "none")->len, 0);
    assert_int_equal(kn_node_scalar_kind(path(y->docs[0], "null_value")), KN_SCALAR_NULL);
    kn_yaml_free(y);
}

/* ---- typing ------------------------------------------------------------------------------ */

static void test_quoted_vs_plain(void **state)
{
    (void)state;
    struct kn_yaml *y = parse_ok("a: true\n"
                                 "b: \"true\"\n"
                                 "c: '1'\n"
                                 "d: |\n"
                                 "  12\n"
                                 "e: >\n"
                                 "  null\n"
                                 "f: !!str 12\n"
                                 "g: ! 3\n"
                                 "h: !custom 3\n"
                                 "i: \"\"\n");
    const struct kn_node *r = y->docs[0];
    assert_int_equal(kn_node_scalar_kind(path(r, "a")), KN_SCALAR_BOOL);
    assert_int_equal(kn_node_scalar_kind(path(r, "b")), KN_SCALAR_STR);
    assert_true(path(r, "b")->quoted);
    assert_string_equal(path(r, "b")->scalar, "true");
    assert_int_equal(kn_node_scalar_kind(path(r, "c")), KN_SCALAR_STR);
    assert_int_equal(kn_node_scalar_kind(path(r, "d")), KN_SCALAR_STR);
    assert_string_equal(path(r, "d")->scalar, "12\n");
    assert_int_equal(kn_node_scalar_kind(path(r, "e")), KN_SCALAR_STR);
    assert_int_equal(kn_node_scalar_kind(path(r, "f")), KN_SCALAR_STR);
    assert_int_equal(kn_node_scalar_kind(path(r, "g")), KN_SCALAR_STR);
    assert_int_equal(kn_node_scalar_kind(path(r, "h")), KN_SCALAR_INT);
    assert_int_equal(kn_node_scalar_kind(path(r, "i")), KN_SCALAR_STR);
    assert_string_equal(kn_node_describe(path(r, "i")), "a string");
    kn_yaml_free(y);
}

static void test_scalar_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum kn_scalar_kind kind;
    } cases[] = {
        {"true", KN_SCALAR_BOOL},  {"True", KN_SCALAR_BOOL},   {"TRUE", KN_SCALAR_BOOL},
        {"false", KN_SCALAR_BOOL}, {"False", KN_SCALAR_BOOL},  {"FALSE", KN_SCALAR_BOOL},
        {"tRUE", KN_SCALAR_STR},   {"yes", KN_SCALAR_STR},     {"no", KN_SCALAR_STR},
        {"on", KN_SCALAR_STR},     {"y", KN_SCALAR_STR},       {"~", KN_SCALAR_NULL},
        {"null", KN_SCALAR_NULL},  {"Null", KN_SCALAR_NULL},   {"NULL", KN_SCALAR_NULL},
        {"nULL", KN_SCALAR_STR},   {"0", KN_SCALAR_INT},       {"42", KN_SCALAR_INT},
        {"-17", KN_SCALAR_INT},    {"+3", KN_SCALAR_INT},      {"017", KN_SCALAR_INT},
        {"0x1F", KN_SCALAR_INT},   {"0xff", KN_SCALAR_INT},    {"0o17", KN_SCALAR_INT},
        {"0o8", KN_SCALAR_STR},    {"0x", KN_SCALAR_STR},      {"0xG", KN_SCALAR_STR},
        {"-0x1F", KN_SCALAR_STR},  {"1_000", KN_SCALAR_STR},   {"1e3", KN_SCALAR_FLOAT},
        {"1E-3", KN_SCALAR_FLOAT}, {"1.5", KN_SCALAR_FLOAT},   {"-1.5e+10", KN_SCALAR_FLOAT},
        {"1.", KN_SCALAR_FLOAT},   {".5", KN_SCALAR_FLOAT},    {"+.5", KN_SCALAR_FLOAT},
        {".inf", KN_SCALAR_FLOAT}, {"-.Inf", KN_SCALAR_FLOAT}, {"+.INF", KN_SCALAR_FLOAT},
        {".nan", KN_SCALAR_FLOAT}, {".NaN", KN_SCALAR_FLOAT},  {".NAN", KN_SCALAR_FLOAT},
        {"-.nan", KN_SCALAR_STR},  {".iNf", KN_SCALAR_STR},    {"e3", KN_SCALAR_STR},
        {"1e", KN_SCALAR_STR},     {"1.2.3", KN_SCALAR_STR},   {"12:30", KN_SCALAR_STR},
        {".", KN_SCALAR_STR},      {"--", KN_SCALAR_STR},      {"1.4.2-rc1", KN_SCALAR_STR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = kn_asprintf("v: %s\n", cases[i].text);
        struct kn_yaml *y = parse_ok(text);
        const struct kn_node *v = path(y->docs[0], "v");
        assert_string_equal(v->scalar, cases[i].text);
        if (kn_node_scalar_kind(v) != cases[i].kind) {
            fail_msg("'%s': kind %d, want %d", cases[i].text, kn_node_scalar_kind(v),
                     cases[i].kind);
        }
        kn_yaml_free(y);
        free(text);
    }
}

static void test_describe(void **state)
{
    (void)state;
    struct kn_yaml *y = parse_ok("s: hi\nn: 3\nf: 1.5\nb: false\nz: ~\nm: {a: 1}\nl: [1]\n");
    const struct kn_node *r = y->docs[0];
    assert_string_equal(kn_node_describe(path(r, "s")), "a string");
    assert_string_equal(kn_node_describe(path(r, "n")), "a number");
    assert_string_equal(kn_node_describe(path(r, "f")), "a number");
    assert_string_equal(kn_node_describe(path(r, "b")), "a boolean");
    assert_string_equal(kn_node_describe(path(r, "z")), "null");
    assert_string_equal(kn_node_describe(path(r, "m")), "a map");
    assert_string_equal(kn_node_describe(path(r, "l")), "a list");
    assert_string_equal(kn_node_describe(NULL), "null");
    assert_int_equal(kn_node_scalar_kind(NULL), KN_SCALAR_NULL);
    kn_yaml_free(y);
}

/* ---- anchors ----------------------------------------------------------------------------- */

static void test_aliases_copy(void **state)
{
    (void)state;
    struct kn_yaml *y = parse_ok("base: &b\n"
                                 "  image: web\n"
                                 "  ports: [80, 443]\n"
                                 "name: &n hello\n"
                                 "copy: *b\n"
                                 "list:\n"
                                 "  - *n\n"
                                 "  - *b\n");
    const struct kn_node *r = y->docs[0];
    const struct kn_node *base = path(r, "base");
    const struct kn_node *copy = path(r, "copy");
    assert_int_equal(copy->type, KN_NODE_MAP);
    assert_true(copy != base);
    assert_int_equal(copy->len, 2);
    /* The copy's root is where the alias is; its insides point at where they were written. */
    assert_int_equal(copy->loc.line, 5);
    assert_int_equal(copy->loc.col, 7);
    const struct kn_node *ports = path(copy, "ports");
    assert_true(ports != path(base, "ports"));
    assert_int_equal(ports->len, 2);
    assert_string_equal(ports->items[1]->scalar, "443");
    assert_int_equal(ports->loc.line, 3);
    assert_true(ports->items[0] != path(base, "ports")->items[0]);

    const struct kn_node *list = path(r, "list");
    assert_int_equal(list->len, 2);
    assert_string_equal(list->items[0]->scalar, "hello");
    assert_int_equal(list->items[0]->loc.line, 7);
    assert_string_equal(path(list->items[1], "image")->scalar, "web");
    kn_yaml_free(y);

    /* An anchor may be redefined; an alias takes the latest. Many anchors grow the table. */
    struct kn_buf b;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "a: &x 1\nb: &x 2\nc: *x\n");
    for (int i = 0; i < 200; i++) {
        kn_buf_addf(&b, "k%d: &a%d v%d\n", i, i, i);
    }
    for (int i = 0; i < 200; i++) {
        kn_buf_addf(&b, "r%d: *a%d\n", i, i);
    }
    y = parse_ok(b.data);
    assert_string_equal(path(y->docs[0], "c")->scalar, "2");
    assert_string_equal(path(y->docs[0], "r137")->scalar, "v137");
    kn_yaml_free(y);
    kn_buf_release(&b);
}

static void test_alias_errors(void **state)
{
    (void)state;
    struct kn_error err;
    assert_string_equal(parse_fail("a: *nope\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:4: undefined alias '*nope'");
    /* Anchors do not cross documents. */
    assert_string_equal(parse_fail("a: &x 1\n---\nb: *x\n", NULL, KN_EPARSE, &err),
                        "t.yaml:3:4: undefined alias '*x'");
    assert_string_equal(parse_fail("&a [1, *a]\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:8: recursive alias '*a'");
}

static const char *const laughs =
    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

static void test_billion_laughs(void **state)
{
    (void)state;
    struct kn_error err;
    double t0 = now_seconds();
    const char *msg = parse_fail(laughs, NULL, KN_ELIMIT, &err);
    double took = now_seconds() - t0;
    assert_true(took < 2.0);
    /* e is 8 + 9*(1 + 9*(1 + 9*8)) + ... nodes: the first alias of `e` that does not fit fails. */
    assert_non_null(strstr(msg, "t.yaml:6:"));
    assert_non_null(strstr(msg, "expands past the limit of 100000 nodes"));
    assert_int_equal(err.line, 6);
    assert_true(err.col > 0);

    /* A tighter limit fails earlier. */
    struct kn_yaml_limits lim = {.max_nodes = 100};
    msg = parse_fail(laughs, &lim, KN_ELIMIT, &err);
    assert_string_equal(msg, "t.yaml:3:8: alias '*b' expands past the limit of 100 nodes");

    /* Plain node counting without aliases. */
    lim.max_nodes = 10;
    msg = parse_fail("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n", &lim, KN_ELIMIT, &err);
    assert_string_equal(msg, "t.yaml:1:29: more than 10 nodes");
    struct kn_yaml *y = NULL;
    assert_int_equal(kn_yaml_parse(&y, "t.yaml", "[1, 2, 3, 4, 5, 6, 7, 8, 9]", 27, &lim, NULL), 0);
    kn_yaml_free(y);
}

/* ---- limits ------------------------------------------------------------------------------ */

static char *nested(size_t depth)
{
    struct kn_buf b;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < depth; i++) {
        kn_buf_addch(&b, '[');
    }
    for (size_t i = 0; i < depth; i++) {
        kn_buf_addch(&b, ']');
    }
    kn_buf_addch(&b, '\n');
    return kn_buf_detach(&b, NULL);
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct kn_error err;
    char *ok = nested(KN_YAML_DEFAULT_MAX_DEPTH);
    struct kn_yaml *y = parse_ok(ok);
    kn_yaml_free(y);
    free(ok);

    char *deep = nested(KN_YAML_DEFAULT_MAX_DEPTH + 1);
    assert_string_equal(parse_fail(deep, NULL, KN_ELIMIT, &err),
                        "t.yaml:1:65: nesting deeper than 64 levels");
    free(deep);

    /* Far deeper input stops at the limit too. */
    char *very = nested(100000);
    struct kn_yaml_limits big = {.max_bytes = 1000000};
    parse_fail(very, &big, KN_ELIMIT, &err);
    free(very);

    struct kn_yaml_limits lim = {.max_depth = 3};
    y = NULL;
    const char *three = "a: {b: {c: 1}}\n";
    assert_int_equal(kn_yaml_parse(&y, "t.yaml", three, strlen(three), &lim, NULL), 0);
    kn_yaml_free(y);
    assert_string_equal(parse_fail("a: {b: {c: {d: 1}}}\n", &lim, KN_ELIMIT, &err),
                        "t.yaml:1:12: nesting deeper than 3 levels");
    /* An alias may not smuggle depth in: the anchored subtree is 2 deep, placed at depth 2. */
    assert_string_equal(parse_fail("x: &a {b: {c: 1}}\ny: {z: *a}\n", &lim, KN_ELIMIT, &err),
                        "t.yaml:2:8: alias '*a' nests deeper than 3 levels");
}

static void test_size_limit(void **state)
{
    (void)state;
    struct kn_error err;
    struct kn_yaml_limits lim = {.max_bytes = 10};
    assert_string_equal(parse_fail("a: 1234567\n", &lim, KN_ETOOBIG, &err),
                        "t.yaml: file is 11 bytes, more than the limit of 10");
    struct kn_yaml *y = NULL;
    assert_int_equal(kn_yaml_parse(&y, "t.yaml", "a: 123456\n", 10, &lim, NULL), 0);
    kn_yaml_free(y);

    char *dir = kn_test_tmpdir();
    kn_test_write(dir, "big.yaml", "a: 1234567\n");
    char *file = kn_asprintf("%s/big.yaml", dir);
    y = NULL;
    assert_int_equal(kn_yaml_load_file(&y, file, "big.yaml", &lim, &err), KN_ETOOBIG);
    assert_null(y);
    assert_string_equal(err.file_buf, "big.yaml");
    lim.max_bytes = 11;
    assert_int_equal(kn_yaml_load_file(&y, file, "big.yaml", &lim, &err), 0);
    assert_string_equal(path(y->docs[0], "a")->scalar, "1234567");
    kn_yaml_free(y);
    kn_test_rmtree(dir);
    free(file);
    free(dir);

    /* An endless stream: the read stops one byte past the limit. */
    lim.max_bytes = 1000;
    y = NULL;
    assert_int_equal(kn_yaml_load_file(&y, "/dev/zero", NULL, &lim, &err), KN_ETOOBIG);
    assert_string_equal(err.file_buf, "/dev/zero");
    assert_null(y);
}

/* ---- keys -------------------------------------------------------------------------------- */

static void test_duplicate_keys(void **state)
{
    (void)state;
    struct kn_error err;
    assert_string_equal(parse_fail("a: 1\nb: 2\na: 3\n", NULL, KN_EPARSE, &err),
                        "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    assert_string_equal(parse_fail("m:\n  x: 1\n  \"x\": 2\n", NULL, KN_EPARSE, &err),
                        "t.yaml:3:3: duplicate key 'x' (first at line 2)");
    assert_string_equal(parse_fail("{1: a, '1': b}\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:8: duplicate key '1' (first at line 1)");
    assert_string_equal(parse_fail("\"a\\nb\": 1\n\"a\\nb\": 2\n", NULL, KN_EPARSE, &err),
                        "t.yaml:2:1: duplicate key 'a?b' (first at line 1)");

    /* Large maps take the hashed path; the report is the same. */
    struct kn_buf b;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (int i = 0; i < 500; i++) {
        kn_buf_addf(&b, "key%d: %d\n", i, i);
    }
    struct kn_yaml *y = parse_ok(b.data);
    assert_int_equal(y->docs[0]->len, 500);
    assert_string_equal(path(y->docs[0], "key499")->scalar, "499");
    kn_yaml_free(y);
    kn_buf_adds(&b, "key42: again\nkey7: again\n");
    assert_string_equal(parse_fail(b.data, NULL, KN_EPARSE, &err),
                        "t.yaml:501:1: duplicate key 'key42' (first at line 43)");
    kn_buf_release(&b);
}

static void test_key_errors(void **state)
{
    (void)state;
    struct kn_error err;
    assert_string_equal(parse_fail("? [a, b]\n: c\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:3: map keys must be scalars, not a list");
    assert_string_equal(parse_fail("x:\n  {a: 1}: c\n", NULL, KN_EPARSE, &err),
                        "t.yaml:2:3: map keys must be scalars, not a map");
    assert_string_equal(parse_fail("l: &l [1]\nm: {*l : 2}\n", NULL, KN_EPARSE, &err),
                        "t.yaml:2:5: map keys must be scalars, not a list");
    assert_string_equal(parse_fail("base: &b {a: 1}\nx:\n  <<: *b\n", NULL, KN_EPARSE, &err),
                        "t.yaml:3:3: merge keys '<<' are not supported");
    /* A quoted "<<" is an ordinary key; an alias to a scalar is a fine key. */
    struct kn_yaml *y = parse_ok("\"<<\": 1\nk: &k name\n*k : 2\n");
    assert_string_equal(path(y->docs[0], "<<")->scalar, "1");
    assert_string_equal(path(y->docs[0], "name")->scalar, "2");
    kn_yaml_free(y);
}

/* Every consumer reads a scalar as a C string: a NUL, however it is escaped, would cut it short
 * without a word, so it is refused where it is written. */
static void test_nul_refused(void **state)
{
    (void)state;
    struct kn_error err;
    assert_string_equal(parse_fail("k: \"a\\0b\"\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:4: a string may not contain a NUL character (\"\\0\")");
    assert_string_equal(parse_fail("a: 1\nb:\n  - \"x\\x00\"\n", NULL, KN_EPARSE, &err),
                        "t.yaml:3:5: a string may not contain a NUL character (\"\\0\")");
    assert_string_equal(parse_fail("\"\\u0000\": v\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:1: a string may not contain a NUL character (\"\\0\")");
    assert_string_equal(parse_fail("k: \"\\0\"\n", NULL, KN_EPARSE, &err),
                        "t.yaml:1:4: a string may not contain a NUL character (\"\\0\")");
    /* The letters of an escape in a single-quoted or plain scalar are no NUL. */
    struct kn_yaml *y = parse_ok("a: '\\0'\nb: x\\0\n");
    assert_string_equal(path(y->docs[0], "a")->scalar, "\\0");
    assert_string_equal(path(y->docs[0], "b")->scalar, "x\\0");
    kn_yaml_free(y);
}

/* Empty collections, alone or as the first thing in their parent (found by fuzzing: `[ ]` was
 * undefined behaviour, which clang's UBSan reports). */
static void test_empty_collections(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum kn_node_type type;
    } alone[] = {
        {"[ ]", KN_NODE_SEQ},
        {"[]\n", KN_NODE_SEQ},
        {"{}", KN_NODE_MAP},
        {"{ }\n", KN_NODE_MAP},
    };
    for (size_t i = 0; i < sizeof(alone) / sizeof(alone[0]); i++) {
        struct kn_yaml *y = parse_ok(alone[i].text);
        assert_int_equal(y->ndocs, 1);
        assert_int_equal(y->docs[0]->type, alone[i].type);
        assert_int_equal(y->docs[0]->len, 0);
        assert_null(y->docs[0]->items);
        assert_null(y->docs[0]->pairs);
        kn_yaml_free(y);
    }

    struct kn_yaml *y = parse_ok("- []\n- {}\n");
    assert_int_equal(y->docs[0]->len, 2);
    assert_int_equal(y->docs[0]->items[0]->type, KN_NODE_SEQ);
    assert_int_equal(y->docs[0]->items[0]->len, 0);
    assert_int_equal(y->docs[0]->items[1]->type, KN_NODE_MAP);
    assert_int_equal(y->docs[0]->items[1]->len, 0);
    kn_yaml_free(y);

    y = parse_ok("[[[]]]\n--- {}\n--- &e []\n");
    assert_int_equal(y->ndocs, 3);
    assert_int_equal(y->docs[0]->items[0]->items[0]->len, 0);
    assert_int_equal(y->docs[1]->type, KN_NODE_MAP);
    assert_int_equal(y->docs[2]->type, KN_NODE_SEQ);
    kn_yaml_free(y);
}

/* ---- syntax and files -------------------------------------------------------------------- */

static void test_syntax_errors(void **state)
{
    (void)state;
    struct kn_error err;
    assert_string_equal(parse_fail("a: 1\nb:\n  c: d: e\n", NULL, KN_EPARSE, &err),
                        "t.yaml:3:7: mapping values are not allowed in this context");
    assert_int_equal(err.line, 3);
    assert_int_equal(err.col, 7);

    const char *msg = parse_fail("a:\n  - b\n c: d\n", NULL, KN_EPARSE, &err);
    assert_non_null(strstr(msg, "t.yaml:3:"));

    msg = parse_fail("a: [1, 2\nb: 3\n", NULL, KN_EPARSE, &err);
    assert_true(err.line >= 2);

    /* Encoding errors come located too. */
    msg = parse_fail("a: ok\nb: \xff\n", NULL, KN_EPARSE, &err);
    assert_string_equal(msg, "t.yaml:2:4: invalid leading UTF-8 octet 0xff");
}

static void test_load_file(void **state)
{
    (void)state;
    struct kn_error err;
    struct kn_yaml *y = NULL;
    char *dir = kn_test_tmpdir();
    char *missing = kn_asprintf("%s/missing.yaml", dir);

    kn_error_clear(&err);
    assert_int_equal(kn_yaml_load_file(&y, missing, "apps/missing.yaml", NULL, &err), KN_ENOENT);
    assert_null(y);
    assert_int_equal(err.code, KN_ENOENT);
    char buf[600];
    assert_string_equal(kn_error_format(&err, buf, sizeof(buf)),
                        "apps/missing.yaml: no such file or directory");

    kn_test_write(dir, "apps/web/app.kanaria.yaml", "name: web\nstages:\n  - kind: WAIT\n");
    char *file = kn_asprintf("%s/apps/web/app.kanaria.yaml", dir);
    assert_int_equal(kn_yaml_load_file(&y, file, "apps/web/app.kanaria.yaml", NULL, &err), 0);
    assert_string_equal(y->file, "apps/web/app.kanaria.yaml");
    const struct kn_node *stages = path(y->docs[0], "stages");
    assert_string_equal(stages->items[0]->pairs[0].key->loc.file, "apps/web/app.kanaria.yaml");
    assert_int_equal(stages->items[0]->loc.line, 3);
    kn_yaml_free(y);

    /* Without a display name the path names the file; syntax errors are located. */
    kn_test_write(dir, "bad.yaml", "a: b: c\n");
    char *bad = kn_asprintf("%s/bad.yaml", dir);
    y = NULL;
    assert_int_equal(kn_yaml_load_file(&y, bad, NULL, NULL, &err), KN_EPARSE);
    assert_string_equal(err.file_buf, bad);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.col, 5);

    /* A folder is not a file. */
    assert_int_equal(kn_yaml_load_file(&y, dir, NULL, NULL, &err), KN_EIO);
    assert_null(y);

    kn_test_rmtree(dir);
    free(bad);
    free(file);
    free(missing);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locations),           cmocka_unit_test(test_multi_doc),
        cmocka_unit_test(test_empty_and_bare_docs), cmocka_unit_test(test_quoted_vs_plain),
        cmocka_unit_test(test_scalar_kinds),        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_aliases_copy),        cmocka_unit_test(test_alias_errors),
        cmocka_unit_test(test_billion_laughs),      cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),          cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_key_errors),          cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_load_file),           cmocka_unit_test(test_nul_refused),
        cmocka_unit_test(test_empty_collections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
