/* Unit tests for controller/api/router.c: every route of the table is matched by its method and
 * path, reachable with its role and refused below it (401, 403), 405 with Allow for a known path
 * with another method, 404 for an unknown one. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "api/auth.h"
#include "api/router.h"
#include "kanaria/config.h"

/* A concrete path of a pattern: {app} web, {id} 42, {repo} deploy. */
static void concrete(const char *pattern, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = pattern; *p && n + 16 < size;) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            const char *v = strncmp(p, "{app}", 5) == 0   ? "web"
                            : strncmp(p, "{id}", 4) == 0  ? "42"
                            : strncmp(p, "{repo}", 6) == 0 ? "deploy"
                                                           : "x";
            n += (size_t)snprintf(out + n, size - n, "%s", v);
            p = end + 1;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

static void test_every_route_matches(void **state)
{
    h2o_mem_pool_t pool;
    struct kn_api_call call;
    char path[256], allow[64];

    (void)state;
    assert_true(kn_api_nroutes > 10);
    h2o_mem_init_pool(&pool);
    for (size_t i = 0; i < kn_api_nroutes; i++) {
        const struct kn_api_route *r = &kn_api_routes[i];
        assert_non_null(r->handler);
        /* the label of refusals in /metrics is the route's pattern */
        assert_string_equal(kn_api_route_names[r->id], r->pattern);
        concrete(r->pattern, path, sizeof(path));
        assert_int_equal(kn_api_route_match(r->method, strlen(r->method), path, strlen(path),
                                            &pool, &call, allow, sizeof(allow)),
                         0);
        assert_ptr_equal(call.route, r);
        assert_int_equal(kn_api_route_of(path, strlen(path)), r->id);
        if (strstr(r->pattern, "{app}")) {
            assert_string_equal(kn_api_param(&call, "app"), "web");
        }
        if (strstr(r->pattern, "{id}")) {
            assert_string_equal(kn_api_param(&call, "id"), "42");
        }
        if (strstr(r->pattern, "{repo}")) {
            assert_string_equal(kn_api_param(&call, "repo"), "deploy");
        }
        assert_null(kn_api_param(&call, "nothing"));
        /* the same path with another method: 405, and Allow names the route's method */
        assert_int_equal(kn_api_route_match("DELETE", 6, path, strlen(path), &pool, &call, allow,
                                            sizeof(allow)),
                         405);
        assert_non_null(strstr(allow, r->method));
        assert_int_equal(kn_api_body_max(path, strlen(path)), r->body_max);
    }
    h2o_mem_clear_pool(&pool);
}

static void test_unknown_paths(void **state)
{
    static const char *const paths[] = {
        "/index.html", /* the web UI is at / only: its router lives in the URL's fragment */
        "/app.js/x",
        "/ui/app.css",
        "/api/v1/nothing",
        "/api/v1/apps/web/history/more",
        "/api/v1/apps/web/promote",
        "/api/v1/deployments",
        "/api/v1/webhooks/gitlab",
        "/api/v2/apps",
        "/healthz/x",
        "/a/b/c/d/e/f/g/h/i/j",
    };
    struct kn_api_call call;
    char allow[64];

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(kn_api_route_match("GET", 3, paths[i], strlen(paths[i]), NULL, &call,
                                            allow, sizeof(allow)),
                         404);
        assert_int_equal(kn_api_route_match("POST", 4, paths[i], strlen(paths[i]), NULL, &call,
                                            allow, sizeof(allow)),
                         404);
        assert_int_equal(kn_api_route_of(paths[i], strlen(paths[i])), KN_API_ROUTE_OTHER);
    }
    /* a known path with a method it does not take */
    assert_int_equal(kn_api_route_match("POST", 4, "/api/v1/apps", 12, NULL, &call, allow,
                                        sizeof(allow)),
                     405);
    assert_string_equal(allow, "GET");
    assert_int_equal(kn_api_route_match("GET", 3, "/api/v1/apps/web/approve", 24, NULL, &call,
                                        allow, sizeof(allow)),
                     405);
    assert_string_equal(allow, "POST");
    /* empty segments are skipped, as before */
    assert_int_equal(kn_api_route_match("GET", 3, "/api/v1//apps/", 14, NULL, &call, allow,
                                        sizeof(allow)),
                     0);
    assert_int_equal(call.route->id, KN_API_ROUTE_APPS);
}

#define NROLES 4

static void test_roles_per_route(void **state)
{
    static char names[NROLES][8] = {"vic", "amy", "olga", "ada"};
    static const char *const tokens[NROLES] = {"tok-vic", "tok-amy", "tok-olga", "tok-ada"};
    char hashes[NROLES][65], header[64], msg[512];
    struct kn_user_config users[NROLES];
    struct kn_api_caller c;
    struct kn_config cfg;
    int checked = 0;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    memset(users, 0, sizeof(users));
    for (int i = 0; i < NROLES; i++) {
        kn_auth_token_sha256(tokens[i], strlen(tokens[i]), hashes[i]);
        users[i].name = names[i];
        users[i].role = KN_ROLE_VIEWER + i;
        users[i].token_sha256 = hashes[i];
    }
    cfg.users.items = users;
    cfg.users.count = NROLES;
    for (size_t i = 0; i < kn_api_nroutes; i++) {
        const struct kn_api_route *r = &kn_api_routes[i];
        if (r->role == KN_API_PUBLIC) {
            continue;
        }
        for (int u = 0; u < NROLES; u++) {
            int want = users[u].role >= r->role ? 0 : 403;
            snprintf(header, sizeof(header), "Bearer %s", tokens[u]);
            assert_int_equal(kn_api_auth_check(&cfg, 1, header, strlen(header), r->role,
                                               r->action, &c, msg, sizeof(msg)),
                             want);
            assert_string_equal(c.name, names[u]);
            if (want == 403) {
                assert_non_null(strstr(msg, r->action));
                assert_non_null(strstr(msg, kn_auth_role_name(r->role)));
            }
            checked++;
        }
        /* no token, not a bearer token, an unknown token: 401 */
        assert_int_equal(kn_api_auth_check(&cfg, 1, NULL, 0, r->role, r->action, &c, msg,
                                           sizeof(msg)),
                         401);
        assert_int_equal(kn_api_auth_check(&cfg, 1, "Basic dm", 8, r->role, r->action, &c, msg,
                                           sizeof(msg)),
                         401);
        assert_int_equal(kn_api_auth_check(&cfg, 1, "Bearer tok-eve", 14, r->role, r->action, &c,
                                           msg, sizeof(msg)),
                         401);
        /* no users: reads are anonymous on loopback only, anything else is refused */
        cfg.users.count = 0;
        assert_int_equal(kn_api_auth_check(&cfg, 1, NULL, 0, r->role, r->action, &c, msg,
                                           sizeof(msg)),
                         r->role == KN_ROLE_VIEWER ? 0 : 403);
        assert_int_equal(kn_api_auth_check(&cfg, 0, NULL, 0, r->role, r->action, &c, msg,
                                           sizeof(msg)),
                         r->role == KN_ROLE_VIEWER ? 401 : 403);
        cfg.users.count = NROLES;
    }
    assert_true(checked >= 4 * 14);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_matches),
        cmocka_unit_test(test_unknown_paths),
        cmocka_unit_test(test_roles_per_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
