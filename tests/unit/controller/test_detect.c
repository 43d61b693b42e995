/*
 * Unit tests for controller/detect.c over real repositories made with the git CLI at test time:
 * two folders that declare one app name are both invalid (as `kanaria validate` says) and
 * neither is planned; a known app whose folder is gone is reported once, with whether its last
 * good config asks to be pruned.
 */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "git/git.h"
#include "kanaria/alloc.h"

#define APP_YAML                                                                                   \
    "apiVersion: kanaria.dev/v1\n"                                                                 \
    "kind: Application\n"                                                                          \
    "metadata: {name: %s}\n"                                                                       \
    "spec:\n"                                                                                      \
    "  manifests: [service.yaml]\n"                                                                \
    "%s"

#define SERVICE_YAML                                                                               \
    "apiVersion: kanaria.dev/v1\n"                                                                 \
    "kind: LocalService\n"                                                                         \
    "metadata: {name: %s}\n"                                                                       \
    "spec:\n"                                                                                      \
    "  command: [/bin/true, \"{{port}}\"]\n"                                                       \
    "  frontend: {bind: \"127.0.0.1:%d\"}\n"

/* The known apps' strings are borrowed: kn_detect_known is writable only for its owner. */
static char *S(const char *s)
{
    return (char *)(uintptr_t)s;
}

struct fixture {
    char *dir;
    git_repository *repo;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    git_libgit2_init();
    f->dir = kn_test_tmpdir();
    kn_test_git(f->dir, "init -q -b main");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    git_repository_free(f->repo);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    git_libgit2_shutdown();
    return 0;
}

/* FOLDER/app.kanaria.yaml declaring NAME (with `extra` spec lines) and its service. */
static void write_app(struct fixture *f, const char *folder, const char *name, int port,
                      const char *extra)
{
    char *path = kn_asprintf("%s/app.kanaria.yaml", folder);
    char *text = kn_asprintf(APP_YAML, name, extra);
    char *svc_path = kn_asprintf("%s/service.yaml", folder);
    char *svc = kn_asprintf(SERVICE_YAML, name, port);

    kn_test_write(f->dir, path, text);
    kn_test_write(f->dir, svc_path, svc);
    free(path);
    free(text);
    free(svc_path);
    free(svc);
}

/* Commit everything; hex gets the new head. */
static void commit(struct fixture *f, const char *msg, char hex[GIT_OID_HEXSZ + 1])
{
    struct kn_error err;
    git_oid oid;

    kn_test_git(f->dir, "add -A");
    kn_test_git(f->dir, "commit -qm '%s'", msg);
    git_repository_free(f->repo);
    f->repo = NULL;
    assert_int_equal(kn_git_open(&f->repo, f->dir, &err), 0);
    assert_int_equal(kn_git_resolve(f->repo, "HEAD", &oid, &err), 0);
    git_oid_tostr(hex, GIT_OID_HEXSZ + 1, &oid);
}

static void detect(struct fixture *f, const char *head, const struct kn_detect_known *known,
                   size_t nknown, struct kn_detect *out)
{
    struct kn_detect_input in;
    struct kn_error err;

    memset(&in, 0, sizeof(in));
    in.repo = f->repo;
    assert_int_equal(git_oid_fromstr(&in.head, head), 0);
    in.known = known;
    in.nknown = nknown;
    kn_error_clear(&err);
    assert_int_equal(kn_detect_run(out, &in, &err), 0);
}

static const struct kn_detect_app *app_at(const struct kn_detect *d, const char *path)
{
    for (size_t i = 0; i < d->napps; i++) {
        if (strcmp(d->apps[i].path, path) == 0) {
            return &d->apps[i];
        }
    }
    fail_msg("no app at %s", path);
    return NULL;
}

static void test_duplicate_names(void **state)
{
    struct fixture *f = *state;
    char c1[GIT_OID_HEXSZ + 1], c2[GIT_OID_HEXSZ + 1];
    struct kn_detect d;
    const struct kn_detect_app *a;

    write_app(f, "hello", "hello", 18080, "");
    write_app(f, "other", "other", 18081, "");
    commit(f, "two apps", c1);
    write_app(f, "evil", "hello", 18082, "");
    commit(f, "a second folder declares hello", c2);
    {
        struct kn_detect_known known[] = {
            {.name = S("hello"),
             .baseline = c1,
             .deployed = c1,
             .path = S("hello/app.kanaria.yaml")},
            {.name = S("other"),
             .baseline = c1,
             .deployed = c1,
             .path = S("other/app.kanaria.yaml")},
        };
        detect(f, c2, known, 2, &d);
    }
    assert_int_equal(d.napps, 3);
    a = app_at(&d, "hello/app.kanaria.yaml");
    assert_non_null(a->errors);
    assert_string_equal(a->errors, "hello/app.kanaria.yaml: app name 'hello' is also used by "
                                   "evil/app.kanaria.yaml");
    assert_false(a->planned);
    a = app_at(&d, "evil/app.kanaria.yaml");
    assert_string_equal(a->errors, "evil/app.kanaria.yaml: app name 'hello' is also used by "
                                   "hello/app.kanaria.yaml");
    assert_false(a->planned);
    a = app_at(&d, "other/app.kanaria.yaml");
    assert_null(a->errors);
    assert_int_equal(d.ngone, 0); /* hello is declared, even if invalidly: not gone */
    kn_detect_release(&d);
}

static void test_gone(void **state)
{
    struct fixture *f = *state;
    char c1[GIT_OID_HEXSZ + 1], c2[GIT_OID_HEXSZ + 1];
    struct kn_detect d;

    write_app(f, "keep", "keep", 18090, "");
    write_app(f, "gone", "gone", 18091, "");
    write_app(f, "auto", "auto", 18092, "  prune: true\n");
    write_app(f, "never", "never", 18093, "");
    commit(f, "four apps", c1);
    kn_test_git(f->dir, "rm -rq gone auto never");
    commit(f, "three folders deleted", c2);
    {
        struct kn_detect_known known[] = {
            {.name = S("keep"), .baseline = c1, .deployed = c1, .path = S("keep/app.kanaria.yaml")},
            {.name = S("gone"), .baseline = c1, .deployed = c1, .path = S("gone/app.kanaria.yaml")},
            {.name = S("auto"), .baseline = c1, .deployed = c1, .path = S("auto/app.kanaria.yaml")},
            /* never deployed: nothing of it runs, so nothing is orphaned */
            {.name = S("never"), .path = S("never/app.kanaria.yaml")},
            /* orphaned at an earlier head: said once */
            {.name = S("old"),
             .baseline = c1,
             .deployed = c1,
             .path = S("old/app.kanaria.yaml"),
             .orphaned = 1},
        };
        detect(f, c2, known, 5, &d);
    }
    assert_int_equal(d.napps, 1);
    assert_int_equal(d.ngone, 2);
    assert_string_equal(d.gone[0].name, "gone");
    assert_false(d.gone[0].prune);
    assert_string_equal(d.gone[1].name, "auto");
    assert_true(d.gone[1].prune);
    kn_detect_release(&d);
}

/* A config that stops parsing reads as its folder's name: its app, named otherwise, is not gone
 * (with prune: true it would be removed while its folder is still there). */
static void test_broken_config_not_gone(void **state)
{
    struct fixture *f = *state;
    char c1[GIT_OID_HEXSZ + 1], c2[GIT_OID_HEXSZ + 1];
    struct kn_detect d;

    write_app(f, "services/storefront", "web", 18094, "  prune: true\n");
    commit(f, "web", c1);
    kn_test_write(f->dir, "services/storefront/app.kanaria.yaml", "spec: [unclosed\n");
    commit(f, "a broken config", c2);
    {
        struct kn_detect_known known[] = {
            {.name = S("web"),
             .baseline = c1,
             .deployed = c1,
             .path = S("services/storefront/app.kanaria.yaml")},
        };
        detect(f, c2, known, 1, &d);
    }
    assert_int_equal(d.napps, 1);
    assert_non_null(app_at(&d, "services/storefront/app.kanaria.yaml")->errors);
    assert_int_equal(d.ngone, 0);
    kn_detect_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_duplicate_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_config_not_gone, setup, teardown),
    };

    /* The user's and the system's git configuration must not change what the CLI does. */
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
