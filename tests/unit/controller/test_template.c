/* Unit tests for controller/template.c: the Mustache subset of notification templates. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/error.h"
#include "template.h"

static char *render(const char *tmpl, const char *ctx_json, enum kn_template_escape esc)
{
    json_t *ctx = json_loads(ctx_json, 0, NULL);
    char why[200] = "";
    char *out = NULL;

    assert_non_null(ctx);
    if (kn_template_render(&out, tmpl, ctx, esc, why, sizeof(why)) != 0) {
        fail_msg("render '%s': %s", tmpl, why);
    }
    json_decref(ctx);
    return out;
}

static void expect(const char *tmpl, const char *ctx, enum kn_template_escape esc,
                   const char *want)
{
    char *got = render(tmpl, ctx, esc);

    assert_string_equal(got, want);
    free(got);
}

static void test_fields(void **state)
{
    const char *ctx = "{\"app\": \"hello\", \"deployment\": 7, \"ok\": true, \"no\": false,"
                      " \"none\": null, \"ratio\": 0.5}";

    (void)state;
    expect("plain text", ctx, KN_TEMPLATE_TEXT, "plain text");
    expect("", ctx, KN_TEMPLATE_TEXT, "");
    expect("{{app}} #{{deployment}}", ctx, KN_TEMPLATE_TEXT, "hello #7");
    expect("{{ app }}", ctx, KN_TEMPLATE_TEXT, "hello");
    expect("[{{ok}}][{{no}}][{{none}}][{{missing}}]", ctx, KN_TEMPLATE_TEXT, "[true][][][]");
    expect("{{ratio}}", ctx, KN_TEMPLATE_TEXT, "0.5");
    expect("a { b } c}} {", ctx, KN_TEMPLATE_TEXT, "a { b } c}} {");
}

static void test_sections(void **state)
{
    const char *ctx = "{\"url\": \"https://x/1\", \"empty\": \"\", \"zero\": 0, \"list\": [1],"
                      " \"app\": \"hello\"}";

    (void)state;
    expect("{{#url}}<{{url}}>{{/url}}", ctx, KN_TEMPLATE_TEXT, "<https://x/1>");
    expect("a{{#empty}}X{{/empty}}b{{#zero}}Y{{/zero}}c{{#missing}}Z{{/missing}}", ctx,
           KN_TEMPLATE_TEXT, "abc");
    expect("{{^empty}}none{{/empty}}{{^url}}no{{/url}}", ctx, KN_TEMPLATE_TEXT, "none");
    expect("{{#list}}L{{/list}}", ctx, KN_TEMPLATE_TEXT, "L");
    /* nested: an inner section of a hidden one stays hidden */
    expect("{{#url}}1{{#app}}2{{/app}}{{/url}}{{#empty}}3{{#app}}4{{/app}}{{/empty}}", ctx,
           KN_TEMPLATE_TEXT, "12");
}

static void test_json_escaping(void **state)
{
    const char *ctx = "{\"message\": \"say \\\"hi\\\"\\n\\\\ <b> \\u00e9\", \"n\": 3}";
    char *out;
    json_t *j;

    (void)state;
    out = render("{\"text\": \"{{message}}\", \"n\": {{n}}}", ctx, KN_TEMPLATE_JSON);
    assert_string_equal(out, "{\"text\": \"say \\\"hi\\\"\\n\\\\ <b> \xc3\xa9\", \"n\": 3}");
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "text")),
                        "say \"hi\"\n\\ <b> \xc3\xa9");
    json_decref(j);
    free(out);
    /* text output leaves the value as it is */
    expect("{{message}}", ctx, KN_TEMPLATE_TEXT, "say \"hi\"\n\\ <b> \xc3\xa9");
}

static void expect_bad(const char *tmpl, const char *why_part)
{
    char why[200] = "";
    char *out = (char *)1;
    json_t *ctx = json_object();

    assert_int_equal(kn_template_check(tmpl, why, sizeof(why)), KN_EINVAL);
    if (!strstr(why, why_part)) {
        fail_msg("'%s': want '%s' in '%s'", tmpl, why_part, why);
    }
    assert_int_equal(kn_template_render(&out, tmpl, ctx, KN_TEMPLATE_TEXT, why, sizeof(why)),
                     KN_EINVAL);
    assert_null(out);
    json_decref(ctx);
}

static void test_errors(void **state)
{
    char why[200];

    (void)state;
    expect_bad("hi {{app", "unclosed tag at offset 3");
    expect_bad("{{#app}}x", "unclosed section 'app' opened at offset 0");
    expect_bad("x{{/app}}", "closing tag 'app' at offset 1 closes no open section");
    expect_bad("{{#a}}{{/b}}", "closing tag 'b' at offset 6");
    expect_bad("{{a b}}", "bad field name in the tag at offset 0");
    expect_bad("{{}}", "bad field name");
    expect_bad("{{a.b}}", "bad field name");
    expect_bad("{{{a}}}", "bad field name");
    expect_bad("{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}"
               "{{#a}}{{#a}}{{#a}}{{#a}}",
               "nests too deep");
    assert_int_equal(kn_template_check("{{#a}}{{^b}}{{c}}{{/b}}{{/a}}", why, sizeof(why)), 0);
}

static void test_too_big(void **state)
{
    size_t n = KN_TEMPLATE_MAX / 4 + 1;
    char *big = malloc(n + 1);
    json_t *ctx;
    char why[200] = "";
    char *out = NULL;

    (void)state;
    memset(big, 'x', n);
    big[n] = '\0';
    ctx = json_pack("{s:s}", "v", big);
    assert_int_equal(kn_template_render(&out, "{{v}}{{v}}{{v}}{{v}}", ctx, KN_TEMPLATE_TEXT, why,
                                        sizeof(why)),
                     KN_ETOOBIG);
    assert_null(out);
    assert_non_null(strstr(why, "longer than the limit"));
    json_decref(ctx);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),     cmocka_unit_test(test_sections),
        cmocka_unit_test(test_json_escaping), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_too_big),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
