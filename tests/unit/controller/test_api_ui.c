/* Unit tests for controller/api/ui.c: which Accept-Encoding values take gzip, which If-None-Match
 * values match an ETag, and the embedded table: the three files the router serves, each with a
 * charset, a gzip body and a quoted ETag (that the gzip body decodes to the body, and that the
 * body is the build's, tests/integration/ui_assets.sh checks on the wire). */
#include "testutil.h"

#include <string.h>

#include "api/ui.h"

#define TAKES(s)      kn_ui_takes_gzip((s), strlen(s))
#define MATCHES(s, e) kn_ui_etag_matches((s), strlen(s), (e))

static void test_takes_gzip(void **state)
{
    (void)state;
    assert_false(kn_ui_takes_gzip(NULL, 0));
    assert_false(TAKES(""));
    assert_true(TAKES("gzip"));
    assert_true(TAKES("GZIP"));
    assert_true(TAKES("x-gzip"));
    assert_true(TAKES("gzip, deflate, br"));
    assert_true(TAKES("br,gzip"));
    assert_true(TAKES("deflate, gzip;q=1.0, *;q=0.5"));
    assert_true(TAKES(" gzip ; q=0.001"));
    assert_true(TAKES("*"));
    assert_false(TAKES("identity"));
    assert_false(TAKES("deflate, br"));
    assert_false(TAKES("gzip;q=0"));
    assert_false(TAKES("gzip; q=0.000"));
    assert_false(TAKES("*, gzip;q=0")); /* an explicit refusal wins over * */
    assert_false(TAKES("*;q=0"));
    assert_false(TAKES("gzipped"));
    assert_false(TAKES("xgzip"));
    assert_false(TAKES(",,,"));
    /* the value is not NUL-terminated: nothing past len is read */
    assert_false(kn_ui_takes_gzip("br, gzip", 3));
}

static void test_etag_matches(void **state)
{
    static const char etag[] = "\"0123abcd\"";

    (void)state;
    assert_false(kn_ui_etag_matches(NULL, 0, etag));
    assert_false(MATCHES("", etag));
    assert_true(MATCHES("\"0123abcd\"", etag));
    assert_true(MATCHES("W/\"0123abcd\"", etag));
    assert_true(MATCHES("*", etag));
    assert_true(MATCHES("\"other\", \"0123abcd\"", etag));
    assert_true(MATCHES(" \"x\" ,W/\"0123abcd\" ", etag));
    assert_false(MATCHES("\"0123abc\"", etag));
    assert_false(MATCHES("\"0123abcd-gzip\"", etag));
    assert_false(MATCHES("0123abcd", etag));
    assert_false(MATCHES("\"other\"", etag));
    assert_false(MATCHES("W/", etag));
    assert_false(kn_ui_etag_matches("\"0123abcd\"", 9, etag));
}

static void test_embedded_table(void **state)
{
    static const char *const paths[] = {"/", "/app.js", "/app.css"};

    (void)state;
    assert_int_equal(kn_ui_nassets, 3);
    for (size_t i = 0; i < 3; i++) {
        const struct kn_ui_asset *a = kn_ui_asset_find(paths[i], strlen(paths[i]));
        assert_non_null(a);
        assert_string_equal(a->path, paths[i]);
        assert_non_null(strstr(a->content_type, "; charset=utf-8"));
        assert_true(a->len > 0 && a->gzip_len > 0);
        /* gzip's magic bytes */
        assert_int_equal(a->gzip[0], 0x1f);
        assert_int_equal(a->gzip[1], 0x8b);
        assert_int_equal(strlen(a->etag), 34);
        assert_true(a->etag[0] == '"' && a->etag[33] == '"');
        assert_int_equal(strncmp(a->etag_gzip, a->etag, 33), 0);
        assert_string_equal(a->etag_gzip + 33, "-gzip\"");
    }
    assert_null(kn_ui_asset_find("/index.html", 11));
    assert_null(kn_ui_asset_find("/app.js", 6));
    assert_null(kn_ui_asset_find("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takes_gzip),
        cmocka_unit_test(test_etag_matches),
        cmocka_unit_test(test_embedded_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
