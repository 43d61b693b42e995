/*
 * Unit tests for controller/detect.c over real repositories made with the git CLI at test time:
 * two folders that declare one app name are both invalid (as `kanaria validate` says) and
 * neither is planned; a known app whose folder is gone is reported once, with whether its last
 * good config asks to be pruned; with a cache, a commit loads only the apps it may change (one
 * app's folder, a manifest outside an app's folder, a new or deleted app) and the result is the
 * same as a detection without a cache on the same commits.
 */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static const struct kn_detect_app *listed(const struct kn_detect *d, const char *path)
{
    for (size_t i = 0; i < d->napps; i++) {
        if (strcmp(d->apps[i].path, path) == 0) {
            return &d->apps[i];
        }
    }
    return NULL;
}

static const struct kn_detect_app *app_at(const struct kn_detect *d, const char *path)
{
    const struct kn_detect_app *a = listed(d, path);

    if (!a) {
        fail_msg("no app at %s", path);
    }
    return a;
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

/* The detection as text, to compare one with a cache against one without. */
/* An app as a line; `carried` (the apps a detection with the cache left out) as the world saw
 * them: the apps of the head before, whose record holds (untouched, same name and errors). */
struct seen {
    char *path;
    char *name;
    char *errors;
};

static void describe_app(struct kn_buf *b, const struct kn_detect_app *a)
{
    kn_buf_addf(b, "%s %s touched=%d planned=%d errors=%s plan=%s\n", a->name, a->path,
                a->touched, a->planned, a->errors ? a->errors : "-",
                a->plan_json ? a->plan_json : "-");
}

/* `d`, its carried apps put back from `seen` in the places `paths` (the full detection's, in
 * order) says; NULL paths: d alone. */
static char *describe_with(const struct kn_detect *d, const struct kn_detect *paths,
                           const struct seen *seen, size_t nseen)
{
    struct kn_buf b;
    size_t j = 0, carried = 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; paths && i < paths->napps; i++) {
        const char *path = paths->apps[i].path;
        const struct seen *was = NULL;
        if (j < d->napps && strcmp(d->apps[j].path, path) == 0) {
            describe_app(&b, &d->apps[j++]);
            continue;
        }
        for (size_t k = 0; k < nseen && !was; k++) {
            was = strcmp(seen[k].path, path) == 0 ? &seen[k] : NULL;
        }
        if (!was) {
            kn_buf_addf(&b, "%s: neither listed nor seen before\n", path);
            continue;
        }
        kn_buf_addf(&b, "%s %s touched=0 planned=0 errors=%s plan=-\n", was->name, was->path,
                    was->errors ? was->errors : "-");
        carried++;
    }
    for (size_t i = 0; !paths && i < d->napps; i++) {
        describe_app(&b, &d->apps[i]);
    }
    if (paths && (j != d->napps || carried != d->carried)) {
        kn_buf_addf(&b, "%zu of %zu listed apps placed, %zu carried for %zu said\n", j, d->napps,
                    carried, d->carried);
    }
    for (size_t i = 0; i < d->ngone; i++) {
        kn_buf_addf(&b, "gone %s prune=%d\n", d->gone[i].name, d->gone[i].prune);
    }
    for (size_t i = 0; i < d->nstale; i++) {
        kn_buf_addf(&b, "stale %s\n", d->stale[i]);
    }
    return kn_buf_detach(&b, NULL);
}

static char *describe(const struct kn_detect *d)
{
    return describe_with(d, NULL, NULL, 0);
}

/* What the store would know after the detection at `head`: every planned app deployed there. */
struct world {
    struct kn_detect_known known[16];
    size_t nknown;
    struct seen seen[16]; /* the apps of the head, as the full detection saw them */
    size_t nseen;
};

static void seen_release(struct world *w)
{
    for (size_t i = 0; i < w->nseen; i++) {
        free(w->seen[i].path);
        free(w->seen[i].name);
        free(w->seen[i].errors);
    }
    w->nseen = 0;
}

static void world_release(struct world *w)
{
    for (size_t i = 0; i < w->nknown; i++) {
        free(w->known[i].name);
        free(w->known[i].baseline);
        free(w->known[i].deployed);
        free(w->known[i].path);
    }
    seen_release(w);
    memset(w, 0, sizeof(*w));
}

static void world_record(struct world *w, const struct kn_detect *d, const char *head)
{
    for (size_t i = 0; i < d->napps; i++) {
        const struct kn_detect_app *a = &d->apps[i];
        struct kn_detect_known *k = NULL;
        for (size_t j = 0; j < w->nknown && !k; j++) {
            k = strcmp(w->known[j].name, a->name) == 0 ? &w->known[j] : NULL;
        }
        if (!k) {
            assert_true(w->nknown < 16);
            k = &w->known[w->nknown++];
            memset(k, 0, sizeof(*k));
            k->name = kn_strdup(a->name);
        }
        free(k->path);
        k->path = kn_strdup(a->path);
        if (a->planned && a->plan.strategy != KN_PLAN_NONE) {
            free(k->baseline);
            free(k->deployed);
            k->baseline = kn_strdup(head);
            k->deployed = kn_strdup(head);
        }
    }
    for (size_t i = 0; i < d->ngone; i++) {
        for (size_t j = 0; j < w->nknown; j++) {
            if (strcmp(w->known[j].name, d->gone[i].name) == 0) {
                w->known[j].orphaned = 1;
            }
        }
    }
}

/* Detect at `head` with the cache and without, on what `w` knows; both must say the same. The
 * cached result goes to *out; the world records it. */
static void detect_both(struct fixture *f, struct kn_detect_cache *cache, struct world *w,
                        const char *head, struct kn_detect *out)
{
    struct kn_detect_input in;
    struct kn_detect full;
    struct kn_error err;
    char *a, *b;

    memset(&in, 0, sizeof(in));
    in.repo = f->repo;
    assert_int_equal(git_oid_fromstr(&in.head, head), 0);
    in.known = w->known;
    in.nknown = w->nknown;
    kn_error_clear(&err);
    assert_int_equal(kn_detect_run(&full, &in, &err), 0);
    assert_int_equal(full.loaded, full.napps);
    in.cache = cache;
    assert_int_equal(kn_detect_run(out, &in, &err), 0);
    if (!out->incremental) {
        assert_int_equal(out->carried, 0);
    }
    a = describe(&full);
    b = describe_with(out, &full, w->seen, w->nseen);
    assert_string_equal(b, a);
    free(a);
    free(b);
    seen_release(w);
    for (size_t i = 0; i < full.napps; i++) {
        assert_true(w->nseen < 16);
        w->seen[w->nseen].path = kn_strdup(full.apps[i].path);
        w->seen[w->nseen].name = kn_strdup(full.apps[i].name);
        w->seen[w->nseen].errors = full.apps[i].errors ? kn_strdup(full.apps[i].errors) : NULL;
        w->nseen++;
    }
    world_record(w, &full, head);
    kn_detect_release(&full);
}

/* An app whose only manifest lives outside its folder. */
static void write_outside_app(struct fixture *f, int port, const char *version)
{
    char *svc = kn_asprintf(SERVICE_YAML "  env: {VERSION: \"%s\"}\n", "shared-svc", port,
                            version);

    kn_test_write(f->dir, "apps/outside/app.kanaria.yaml",
                  "apiVersion: kanaria.dev/v1\nkind: Application\nmetadata: {name: outside}\n"
                  "spec:\n  manifests: [../../shared/outside.yaml]\n");
    kn_test_write(f->dir, "shared/outside.yaml", svc);
    free(svc);
}

static void test_incremental(void **state)
{
    struct fixture *f = *state;
    struct kn_detect_cache *cache = kn_detect_cache_new();
    struct world w = {0};
    char c[GIT_OID_HEXSZ + 1];
    struct kn_detect d;

    write_app(f, "apps/one", "one", 18101, "");
    write_app(f, "apps/two", "two", 18102, "");
    write_app(f, "apps/three", "three", 18103, "");
    write_outside_app(f, 18104, "1");
    commit(f, "four apps", c);
    detect_both(f, cache, &w, c, &d);
    assert_false(d.incremental); /* nothing cached yet: every app loaded */
    assert_int_equal(d.loaded, 4);
    kn_detect_release(&d);

    /* one app's manifest: only that app is loaded, and planned */
    kn_test_write(f->dir, "apps/two/service.yaml", "apiVersion: kanaria.dev/v1\n"
                  "kind: LocalService\nmetadata: {name: two}\nspec:\n"
                  "  command: [/bin/false, \"{{port}}\"]\n"
                  "  frontend: {bind: \"127.0.0.1:18102\"}\n");
    commit(f, "two changes", c);
    detect_both(f, cache, &w, c, &d);
    assert_true(d.incremental);
    assert_int_equal(d.loaded, 1);
    assert_true(app_at(&d, "apps/two/app.kanaria.yaml")->planned);
    assert_null(listed(&d, "apps/one/app.kanaria.yaml")); /* carried: its record holds */
    assert_int_equal(d.napps, 1);
    assert_int_equal(d.carried, 3);
    kn_detect_release(&d);

    /* a manifest outside its app's folder: that app is found, loaded and planned */
    write_outside_app(f, 18104, "2");
    commit(f, "the shared manifest changes", c);
    detect_both(f, cache, &w, c, &d);
    assert_true(d.incremental);
    assert_int_equal(d.loaded, 1);
    assert_true(app_at(&d, "apps/outside/app.kanaria.yaml")->planned);
    kn_detect_release(&d);

    /* a file none reads: nothing loaded */
    kn_test_write(f->dir, "README.md", "hello\n");
    commit(f, "docs", c);
    detect_both(f, cache, &w, c, &d);
    assert_int_equal(d.loaded, 0);
    kn_detect_release(&d);

    /* a shared file under .kanaria/: everything is loaded again */
    kn_test_write(f->dir, ".kanaria/analysis-templates.yaml",
                  "apiVersion: kanaria.dev/v1\nkind: AnalysisTemplate\n"
                  "metadata: {name: none}\nspec: {metrics: []}\n");
    commit(f, "a shared template", c);
    detect_both(f, cache, &w, c, &d);
    assert_false(d.incremental);
    assert_int_equal(d.loaded, 4);
    kn_detect_release(&d);

    /* a deleted app is gone (orphaned), a new one planned, a broken one invalid: three loads */
    kn_test_git(f->dir, "rm -rq apps/three");
    write_app(f, "apps/four", "four", 18105, "");
    kn_test_write(f->dir, "apps/one/app.kanaria.yaml", "spec: [unclosed\n");
    commit(f, "one deleted, one added, one broken", c);
    detect_both(f, cache, &w, c, &d);
    assert_true(d.incremental);
    assert_int_equal(d.loaded, 2);
    assert_int_equal(d.ngone, 1);
    assert_string_equal(d.gone[0].name, "three");
    assert_true(app_at(&d, "apps/four/app.kanaria.yaml")->planned);
    assert_non_null(app_at(&d, "apps/one/app.kanaria.yaml")->errors);
    kn_detect_release(&d);

    /* a new app on a deployed app's bind loses it; the broken app is carried, still invalid */
    write_app(f, "apps/five", "five", 18104, "");
    commit(f, "five takes the bind of outside", c);
    detect_both(f, cache, &w, c, &d);
    assert_int_equal(d.loaded, 1);
    assert_non_null(app_at(&d, "apps/five/app.kanaria.yaml")->errors);
    assert_null(listed(&d, "apps/one/app.kanaria.yaml")); /* carried, invalid as recorded */
    kn_detect_release(&d);

    /* a new app takes the name of a carried one: both are listed, invalid; once it is gone, the
     * carried one is listed again, valid */
    write_app(f, "apps/six", "two", 18106, "");
    commit(f, "six is named two", c);
    detect_both(f, cache, &w, c, &d);
    assert_int_equal(d.loaded, 2); /* six, and five: refused its bind, it is never untouched */
    assert_non_null(app_at(&d, "apps/six/app.kanaria.yaml")->errors);
    assert_non_null(app_at(&d, "apps/two/app.kanaria.yaml")->errors);
    kn_detect_release(&d);
    kn_test_git(f->dir, "rm -rq apps/six");
    commit(f, "six is gone", c);
    detect_both(f, cache, &w, c, &d);
    assert_null(app_at(&d, "apps/two/app.kanaria.yaml")->errors);
    assert_int_equal(d.removed.count, 1);
    assert_string_equal(d.removed.items[0], "apps/six/app.kanaria.yaml");
    kn_detect_release(&d);

    /* a manifest turned into a symlink to a file elsewhere: the app is loaded at every commit
     * (a change of the target is a change of another path), and says what a full load says */
    kn_test_write(f->dir, "elsewhere/two.yaml", "apiVersion: kanaria.dev/v1\n"
                  "kind: LocalService\nmetadata: {name: two}\nspec:\n"
                  "  command: [/bin/echo, \"{{port}}\"]\n"
                  "  frontend: {bind: \"127.0.0.1:18102\"}\n");
    kn_test_git(f->dir, "rm -q apps/two/service.yaml");
    {
        char *link = kn_asprintf("%s/apps/two/service.yaml", f->dir);
        assert_int_equal(symlink("../../elsewhere/two.yaml", link), 0);
        free(link);
    }
    commit(f, "the manifest of two is a symlink", c);
    detect_both(f, cache, &w, c, &d);
    kn_detect_release(&d);
    kn_test_write(f->dir, "elsewhere/two.yaml", "apiVersion: kanaria.dev/v1\n"
                  "kind: LocalService\nmetadata: {name: two}\nspec:\n"
                  "  command: [/bin/echo, changed, \"{{port}}\"]\n"
                  "  frontend: {bind: \"127.0.0.1:18102\"}\n");
    commit(f, "the target of the symlink changes", c);
    detect_both(f, cache, &w, c, &d);
    assert_true(d.loaded >= 1);
    kn_detect_release(&d);

    world_release(&w);
    kn_detect_cache_free(cache);
}

/* A cached head gone from the repository (a force-push, then gc) plans everything again. */
static void test_incremental_head_gone(void **state)
{
    struct fixture *f = *state;
    struct kn_detect_cache *cache = kn_detect_cache_new();
    struct world w = {0};
    char c1[GIT_OID_HEXSZ + 1], c2[GIT_OID_HEXSZ + 1];
    struct kn_detect d;

    (void)c1;
    write_app(f, "apps/one", "one", 18111, "");
    commit(f, "one", c1);
    write_app(f, "apps/two", "two", 18112, "");
    commit(f, "two", c2);
    detect_both(f, cache, &w, c2, &d);
    kn_detect_release(&d);
    kn_test_git(f->dir, "reset -q --hard HEAD~1");
    kn_test_git(f->dir, "reflog expire --expire=now --all");
    kn_test_git(f->dir, "gc -q --prune=now");
    kn_test_write(f->dir, "README.md", "hello\n");
    commit(f, "a new head after the rewrite", c2);
    detect_both(f, cache, &w, c2, &d);
    assert_false(d.incremental);
    assert_int_equal(d.napps, 1);
    kn_detect_release(&d);
    world_release(&w);
    kn_detect_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_duplicate_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_config_not_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_head_gone, setup, teardown),
    };

    /* The user's and the system's git configuration must not change what the CLI does. */
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
