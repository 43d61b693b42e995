/* Unit tests for controller/api/webhook.c: GitHub, GitLab and generic signatures, secret files. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/server.h"
#include "api/webhook.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/secret.h"

/* GitHub's documented example: secret and payload, and the X-Hub-Signature-256 they give */
#define SECRET "It's a Secret to Everybody"
#define BODY   "Hello, World!"
#define SIG    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static int hmac_ok(const char *sig, const char *body, const char *secret)
{
    return kn_webhook_hmac_ok(sig, strlen(sig), body, strlen(body), secret, strlen(secret));
}

static void test_hmac(void **state)
{
    char upper[] = SIG;

    (void)state;
    assert_true(hmac_ok(SIG, BODY, SECRET));
    for (char *p = upper + 7; *p; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    assert_true(hmac_ok(upper, BODY, SECRET));
    assert_false(hmac_ok(SIG, "Hello, World?", SECRET));
    assert_false(hmac_ok(SIG, BODY, "It's a secret to everybody"));
    assert_false(hmac_ok(SIG + 7, BODY, SECRET));                     /* no prefix */
    assert_false(hmac_ok("sha1=757107ea0eb2509fc211", BODY, SECRET)); /* another algorithm */
    assert_false(hmac_ok("sha256=757107ea", BODY, SECRET));           /* too short */
    assert_false(hmac_ok(SIG "00", BODY, SECRET));                    /* too long */
    assert_false(hmac_ok("sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                         BODY, SECRET));
    assert_false(hmac_ok(SIG, BODY, "")); /* an empty secret verifies nothing */
    assert_false(kn_webhook_hmac_ok(NULL, 0, BODY, strlen(BODY), SECRET, strlen(SECRET)));
}

static void test_token(void **state)
{
    (void)state;
    assert_true(kn_webhook_token_ok("s3cret", 6, "s3cret", 6));
    assert_false(kn_webhook_token_ok("s3cre", 5, "s3cret", 6));
    assert_false(kn_webhook_token_ok("s3creT", 6, "s3cret", 6));
    assert_false(kn_webhook_token_ok("", 0, "", 0));
    assert_false(kn_webhook_token_ok(NULL, 0, "s3cret", 6));
}

static void test_verify_kinds(void **state)
{
    (void)state;
    assert_true(kn_webhook_verify(KN_WEBHOOK_GITHUB, SIG, strlen(SIG), BODY, strlen(BODY), SECRET,
                                  strlen(SECRET)));
    assert_true(kn_webhook_verify(KN_WEBHOOK_GENERIC, SIG, strlen(SIG), BODY, strlen(BODY), SECRET,
                                  strlen(SECRET)));
    /* GitLab sends the secret itself, never a signature */
    assert_false(kn_webhook_verify(KN_WEBHOOK_GITLAB, SIG, strlen(SIG), BODY, strlen(BODY), SECRET,
                                   strlen(SECRET)));
    assert_true(kn_webhook_verify(KN_WEBHOOK_GITLAB, SECRET, strlen(SECRET), BODY, strlen(BODY),
                                  SECRET, strlen(SECRET)));
    assert_false(kn_webhook_verify(KN_WEBHOOK_NONE, SECRET, strlen(SECRET), BODY, strlen(BODY),
                                   SECRET, strlen(SECRET)));
}

/* kn_test_write takes a C string: this writes bytes that may hold a NUL. */
static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A webhook secret is read as kanaria/secret.h reads any (test_secret.c), as one line: what the
 * endpoint verifies with. */
static void test_read_secret(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/secret", dir);
    struct kn_secret s = {0};

    (void)state;
    kn_test_write(dir, "secret", "topsecret\n");
    assert_int_equal(kn_secret_read(&s, path, KN_SECRET_LINE, NULL), 0);
    assert_string_equal(s.data, "topsecret");
    assert_int_equal(s.len, 9);
    assert_true(kn_webhook_verify(KN_WEBHOOK_GITLAB, "topsecret", 9, "", 0, s.data, s.len));
    kn_secret_release(&s);
    /* a second line is refused rather than silently dropped */
    kn_test_write(dir, "secret", "crlf\r\nsecond line\n");
    assert_int_equal(kn_secret_read(&s, path, KN_SECRET_LINE, NULL), KN_EINVAL);
    kn_test_write(dir, "secret", "\n");
    assert_int_equal(kn_secret_read(&s, path, KN_SECRET_LINE, NULL), KN_EINVAL);
    /* A NUL in the line would leave only what comes before it as the secret (found by fuzzing) */
    write_bytes(path, "top\0secret\n", 11);
    assert_int_equal(kn_secret_read(&s, path, KN_SECRET_LINE, NULL), KN_EINVAL);
    assert_null(s.data);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
}

static size_t body_max(const char *path)
{
    return kn_api_body_max(path, strlen(path));
}

/* A push of many commits is larger than the other routes' bodies: GitHub caps it at 25 MB. */
static void test_body_max(void **state)
{
    (void)state;
    assert_int_equal(body_max("/api/v1/webhooks/git"), 25 * 1024 * 1024);
    assert_int_equal(body_max("/api/v1/webhooks/git/"), 25 * 1024 * 1024);
    assert_int_equal(body_max("/api/v1/webhooks/git/x"), 64 * 1024);
    assert_int_equal(body_max("/api/v1/webhooks"), 64 * 1024);
    assert_int_equal(body_max("/api/v1/apps/hello/approve"), 64 * 1024);
    assert_int_equal(body_max("/api/v2/webhooks/git"), 64 * 1024);
    assert_int_equal(body_max(""), 64 * 1024);
}

/* The route label of the refusals in /metrics: a few fixed values, whatever the path. */
static void test_route_names(void **state)
{
    static const struct {
        const char *path;
        enum kn_api_route_id id;
    } cases[] = {
        {"/healthz", KN_API_ROUTE_HEALTHZ},
        {"/metrics", KN_API_ROUTE_METRICS},
        {"/api/v1/apps", KN_API_ROUTE_APPS},
        {"/api/v1/apps/", KN_API_ROUTE_APPS},
        {"/api/v1/apps/hello", KN_API_ROUTE_APP},
        {"/api/v1/apps/hello/history", KN_API_ROUTE_HISTORY},
        {"/api/v1/apps/hello/approve", KN_API_ROUTE_APPROVE},
        {"/api/v1/apps/hello/skip", KN_API_ROUTE_SKIP},
        {"/api/v1/apps/hello/nope", KN_API_ROUTE_OTHER},
        {"/api/v1/apps/a/b/c/d/e", KN_API_ROUTE_OTHER},
        {"/api/v1/deployments/42", KN_API_ROUTE_DEPLOYMENT},
        {"/api/v1/events", KN_API_ROUTE_EVENTS},
        {"/api/v1/webhooks/git", KN_API_ROUTE_WEBHOOK},
        {"/api/v1", KN_API_ROUTE_OTHER},
        {"/tok-secret", KN_API_ROUTE_OTHER},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(kn_api_route_of(cases[i].path, strlen(cases[i].path)), cases[i].id);
    }
    for (size_t i = 0; i < KN_API_NROUTES; i++) {
        assert_non_null(kn_api_route_names[i]);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(kn_api_route_names[i], kn_api_route_names[j]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_body_max),
        cmocka_unit_test(test_route_names),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_verify_kinds),
        cmocka_unit_test(test_read_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
