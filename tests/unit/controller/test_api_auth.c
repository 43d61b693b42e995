/* Unit tests for controller/api/auth.c: token hashes, bearer headers, users and roles. */
#include "testutil.h"

#include <string.h>

#include "api/auth.h"
#include "kanaria/config.h"

/* printf %s kn-example-alice-7f3a9c | sha256sum (examples/kanaria.yaml) */
#define ALICE_HASH "e9fce188e6a192fe5caca5df41e2a52052023d363df7fb11dd47aceb407e3d03"
#define BOB_HASH   "780e60bd49b7f643106ebd13dabbb8759338b6810c9473944e839c1810cd096c"

static void test_token_sha256(void **state)
{
    char hex[65];

    (void)state;
    kn_auth_token_sha256("kn-example-alice-7f3a9c", strlen("kn-example-alice-7f3a9c"), hex);
    assert_string_equal(hex, ALICE_HASH);
    kn_auth_token_sha256("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_bearer(void **state)
{
    const char *tok;
    size_t len;

    (void)state;
    assert_int_equal(kn_auth_bearer("Bearer abc", 10, &tok, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(tok, "abc", 3);
    assert_int_equal(kn_auth_bearer("bearer   abc  ", 14, &tok, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(tok, "abc", 3);
    assert_int_equal(kn_auth_bearer("Basic abc", 9, &tok, &len), KN_EINVAL);
    assert_int_equal(kn_auth_bearer("Bearer", 6, &tok, &len), KN_EINVAL);
    assert_int_equal(kn_auth_bearer("Bearer    ", 10, &tok, &len), KN_EINVAL);
    assert_int_equal(kn_auth_bearer("Bearerabc", 9, &tok, &len), KN_EINVAL);
    assert_int_equal(kn_auth_bearer("Bearer a b", 10, &tok, &len), KN_EINVAL);
    assert_int_equal(kn_auth_bearer(NULL, 0, &tok, &len), KN_EINVAL);
}

static void test_user_lookup(void **state)
{
    char alice_hash[] = ALICE_HASH, bob_hash[] = BOB_HASH, bad_hash[] = "zz";
    char alice[] = "alice", bob[] = "bob", carol[] = "carol";
    struct kn_user_config users[3] = {
        {.name = carol, .role = KN_ROLE_ADMIN, .token_sha256 = bad_hash},
        {.name = alice, .role = KN_ROLE_APPROVER, .token_sha256 = alice_hash},
        {.name = bob, .role = KN_ROLE_OPERATOR, .token_sha256 = bob_hash},
    };
    struct kn_config cfg;
    const struct kn_user_config *u;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.users.items = users;
    cfg.users.count = 3;
    u = kn_auth_user(&cfg, "kn-example-alice-7f3a9c", strlen("kn-example-alice-7f3a9c"));
    assert_non_null(u);
    assert_string_equal(u->name, "alice");
    u = kn_auth_user(&cfg, "kn-example-bob-2d81e4", strlen("kn-example-bob-2d81e4"));
    assert_non_null(u);
    assert_string_equal(u->name, "bob");
    assert_int_equal(u->role, KN_ROLE_OPERATOR);
    /* a prefix, a longer token, another case, nothing */
    assert_null(kn_auth_user(&cfg, "kn-example-alice-7f3a9", strlen("kn-example-alice-7f3a9")));
    assert_null(kn_auth_user(&cfg, "kn-example-alice-7f3a9cX", 24));
    assert_null(kn_auth_user(&cfg, "KN-EXAMPLE-ALICE-7F3A9C", 23));
    assert_null(kn_auth_user(&cfg, "", 0));
    /* an upper-case hash in the config still matches */
    for (char *p = alice_hash; *p; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    u = kn_auth_user(&cfg, "kn-example-alice-7f3a9c", strlen("kn-example-alice-7f3a9c"));
    assert_non_null(u);
    cfg.users.count = 0;
    assert_null(kn_auth_user(&cfg, "kn-example-alice-7f3a9c", 23));
}

static void test_roles(void **state)
{
    (void)state;
    assert_string_equal(kn_auth_role_name(KN_ROLE_VIEWER), "viewer");
    assert_string_equal(kn_auth_role_name(KN_ROLE_APPROVER), "approver");
    assert_string_equal(kn_auth_role_name(KN_ROLE_OPERATOR), "operator");
    assert_string_equal(kn_auth_role_name(KN_ROLE_ADMIN), "admin");
    assert_string_equal(kn_auth_role_name(7), "?");
    assert_true(KN_ROLE_VIEWER < KN_ROLE_APPROVER && KN_ROLE_APPROVER < KN_ROLE_OPERATOR &&
                KN_ROLE_OPERATOR < KN_ROLE_ADMIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_sha256),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_user_lookup),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
