/* Unit tests for manifests/source.c: the folder source, path resolution, globs, discovery. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/error.h"

/* A repository folder and a folder beside it ("outside") for symlinks that leave. */
struct fixture {
    char *root; /* temporary folder holding both */
    char *repo;
    char *outside;
    struct kn_source *src;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    f->root = kn_test_tmpdir();
    f->repo = kn_asprintf("%s/repo", f->root);
    f->outside = kn_asprintf("%s/outside", f->root);
    kn_test_write(f->root, "repo/.keep", "");
    kn_test_write(f->root, "outside/secret.yaml", "password: hunter2\n");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_source_free(f->src);
    kn_test_rmtree(f->root);
    free(f->root);
    free(f->repo);
    free(f->outside);
    free(f);
    return 0;
}

static struct kn_source *open_repo(struct fixture *f)
{
    struct kn_error err;

    kn_error_clear(&err);
    if (!f->src) {
        assert_int_equal(kn_source_dir_new(&f->src, f->repo, &err), 0);
        assert_non_null(f->src);
    }
    return f->src;
}

static void make_symlink(const char *target, const char *dir, const char *relpath)
{
    char *path = kn_asprintf("%s/%s", dir, relpath);

    if (symlink(target, path) != 0) {
        fail_msg("symlink %s -> %s failed", path, target);
    }
    free(path);
}

/* Read relpath with a buffer bounded by max; returns the code, fills buf and err. */
static int read_path(struct kn_source *src, const char *relpath, size_t max, struct kn_buf *buf,
                     struct kn_error *err)
{
    kn_buf_init(buf, max);
    kn_error_clear(err);
    return src->ops->read(src, relpath, buf, err);
}

/* The read fails with `code` and a message containing `needle`, naming no absolute folder. */
static void assert_read_fails(struct fixture *f, const char *relpath, int code, const char *needle)
{
    struct kn_source *src = open_repo(f);
    struct kn_buf buf;
    struct kn_error err;

    assert_int_equal(read_path(src, relpath, KN_APP_MAX_FILE_BYTES, &buf, &err), code);
    assert_int_equal(err.code, code);
    if (!strstr(err.msg, needle)) {
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
    }
    assert_null(strstr(err.msg, f->root));
    assert_int_equal(buf.len, 0);
    kn_buf_release(&buf);
}

/* ---- read -------------------------------------------------------------------------------- */

static void test_read_file(void **state)
{
    struct fixture *f = *state;
    struct kn_buf buf;
    struct kn_error err;

    kn_test_write(f->repo, "apps/web/deploy.yaml", "kind: Deployment\n");
    kn_test_write(f->repo, "empty.yaml", "");
    open_repo(f);
    assert_string_equal(f->src->name, f->repo);

    assert_int_equal(read_path(f->src, "apps/web/deploy.yaml", 1024, &buf, &err), 0);
    assert_int_equal(buf.len, strlen("kind: Deployment\n"));
    assert_string_equal(buf.data, "kind: Deployment\n");

    /* a second read into the same buffer replaces what was there */
    assert_int_equal(f->src->ops->read(f->src, "empty.yaml", &buf, &err), 0);
    assert_int_equal(buf.len, 0);
    assert_non_null(buf.data);
    assert_string_equal(buf.data, "");
    kn_buf_release(&buf);

    /* a lexically harmless `..` stays inside */
    assert_int_equal(read_path(f->src, "apps/../apps/web/./deploy.yaml", 1024, &buf, &err), 0);
    assert_string_equal(buf.data, "kind: Deployment\n");
    kn_buf_release(&buf);
}

static void test_read_missing(void **state)
{
    struct fixture *f = *state;

    kn_test_write(f->repo, "a.yaml", "x: 1\n");
    assert_read_fails(f, "nope.yaml", KN_ENOENT, "'nope.yaml' does not exist");
    assert_read_fails(f, "no/such/dir.yaml", KN_ENOENT, "'no/such/dir.yaml' does not exist");
    assert_read_fails(f, "a.yaml/under", KN_ENOENT, "'a.yaml/under' does not exist");
}

static void test_read_too_big(void **state)
{
    struct fixture *f = *state;
    struct kn_buf buf;
    struct kn_error err;

    kn_test_write(f->repo, "five", "12345");
    open_repo(f);

    assert_int_equal(read_path(f->src, "five", 4, &buf, &err), KN_ETOOBIG);
    assert_int_equal(err.code, KN_ETOOBIG);
    assert_string_equal(err.msg, "'five' is larger than 4 bytes");
    assert_int_equal(buf.len, 0);
    kn_buf_release(&buf);

    /* exactly max is fine */
    assert_int_equal(read_path(f->src, "five", 5, &buf, &err), 0);
    assert_string_equal(buf.data, "12345");
    kn_buf_release(&buf);

    assert_int_equal(read_path(f->src, "five", KN_BUF_UNBOUNDED, &buf, &err), 0);
    assert_int_equal(buf.len, 5);
    kn_buf_release(&buf);
}

static void test_read_not_regular(void **state)
{
    struct fixture *f = *state;
    char *fifo;

    kn_test_write(f->repo, "dir/a.yaml", "a: 1\n");
    assert_read_fails(f, "dir", KN_EIO, "'dir' is not a regular file");
    assert_read_fails(f, "", KN_EIO, "'.' is not a regular file");

    /* a FIFO is refused without waiting for a writer */
    fifo = kn_asprintf("%s/pipe", f->repo);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_read_fails(f, "pipe", KN_EIO, "'pipe' is not a regular file");
    free(fifo);
}

static void test_read_symlink_inside(void **state)
{
    struct fixture *f = *state;
    struct kn_buf buf;
    struct kn_error err;

    kn_test_write(f->repo, "base/deploy.yaml", "kind: Deployment\n");
    kn_test_write(f->repo, "apps/web/app.kanaria.yaml", "kind: KanariaApp\n");
    make_symlink("../../base/deploy.yaml", f->repo, "apps/web/deploy.yaml");
    make_symlink("base", f->repo, "shared");
    open_repo(f);

    assert_int_equal(read_path(f->src, "apps/web/deploy.yaml", 1024, &buf, &err), 0);
    assert_string_equal(buf.data, "kind: Deployment\n");
    kn_buf_release(&buf);

    assert_int_equal(read_path(f->src, "shared/deploy.yaml", 1024, &buf, &err), 0);
    assert_string_equal(buf.data, "kind: Deployment\n");
    kn_buf_release(&buf);
}

static void test_read_symlink_outside(void **state)
{
    struct fixture *f = *state;
    char *abs_target = kn_asprintf("%s/secret.yaml", f->outside);

    kn_test_write(f->repo, "apps/x.yaml", "x: 1\n");
    make_symlink("../outside/secret.yaml", f->repo, "rel-link.yaml");
    make_symlink(abs_target, f->repo, "abs-link.yaml");
    make_symlink(f->outside, f->repo, "ext");
    make_symlink("../../outside", f->repo, "apps/ext");
    make_symlink("/", f->repo, "slash");

    assert_read_fails(f, "rel-link.yaml", KN_EPATH,
                      "'rel-link.yaml' is a symlink that leaves the repository");
    assert_read_fails(f, "abs-link.yaml", KN_EPATH,
                      "'abs-link.yaml' is a symlink that leaves the repository");
    assert_read_fails(f, "ext/secret.yaml", KN_EPATH,
                      "'ext/secret.yaml' is a symlink that leaves the repository");
    assert_read_fails(f, "apps/ext/secret.yaml", KN_EPATH, "leaves the repository");
    assert_read_fails(f, "slash/etc/passwd", KN_EPATH, "leaves the repository");
    free(abs_target);
}

static void test_read_dotdot(void **state)
{
    struct fixture *f = *state;

    assert_read_fails(f, "../outside/secret.yaml", KN_EPATH, "'../outside/secret.yaml'");
    assert_read_fails(f, "a/../../outside/secret.yaml", KN_EPATH, "climbs out");
    assert_read_fails(f, "..", KN_EPATH, "'..'");
}

static void test_read_absolute(void **state)
{
    struct fixture *f = *state;
    char *abs_path = kn_asprintf("%s/.keep", f->repo);
    struct kn_buf buf;
    struct kn_error err;

    assert_read_fails(f, "/etc/passwd", KN_EPATH, "'/etc/passwd' is an absolute path");
    /* even one that names a file inside the repository */
    assert_int_equal(read_path(f->src, abs_path, 1024, &buf, &err), KN_EPATH);
    kn_buf_release(&buf);
    free(abs_path);
}

static void test_dir_new_errors(void **state)
{
    struct fixture *f = *state;
    struct kn_source *src = NULL;
    struct kn_error err;
    char *missing = kn_asprintf("%s/missing", f->root);
    char *file = kn_asprintf("%s/.keep", f->repo);

    kn_error_clear(&err);
    assert_int_equal(kn_source_dir_new(&src, missing, &err), KN_ENOENT);
    assert_null(src);
    assert_int_equal(err.code, KN_ENOENT);
    assert_non_null(strstr(err.msg, "does not exist"));

    kn_error_clear(&err);
    assert_int_equal(kn_source_dir_new(&src, file, &err), KN_ENOENT);
    assert_null(src);
    assert_non_null(strstr(err.msg, "is not a folder"));

    kn_source_free(NULL);
    free(missing);
    free(file);
}

/* ---- walk -------------------------------------------------------------------------------- */

struct walk_log {
    char *paths[64];
    size_t count;
    size_t stop_after; /* 0: never stop */
};

static int walk_cb(const char *relpath, void *data)
{
    struct walk_log *log = data;

    assert_true(log->count < 64);
    log->paths[log->count++] = kn_strdup(relpath);
    if (log->stop_after && log->count == log->stop_after) {
        return 7;
    }
    return 0;
}

static void walk_log_release(struct walk_log *log)
{
    for (size_t i = 0; i < log->count; i++) {
        free(log->paths[i]);
    }
    log->count = 0;
}

static void assert_walk(const struct walk_log *log, const char *const *want, size_t n)
{
    for (size_t i = 0; i < log->count && i < n; i++) {
        assert_string_equal(log->paths[i], want[i]);
    }
    assert_int_equal(log->count, n);
}

static void test_walk_order(void **state)
{
    struct fixture *f = *state;
    struct walk_log log = {0};
    static const char *const want[] = {
        ".keep", "a-b/x", "a.yaml", "a/b/c.yaml", "a/z", "b.yaml", "sub/deploy.yaml", "z",
    };

    kn_test_write(f->repo, "z", "");
    kn_test_write(f->repo, "b.yaml", "");
    kn_test_write(f->repo, "a/z", "");
    kn_test_write(f->repo, "a/b/c.yaml", "");
    kn_test_write(f->repo, "a.yaml", "");
    kn_test_write(f->repo, "a-b/x", "");
    kn_test_write(f->repo, ".git/config", "");
    kn_test_write(f->repo, ".git/refs/heads/main", "");
    kn_test_write(f->repo, "sub/.git/HEAD", "");
    kn_test_write(f->repo, "sub/deploy.yaml", "");
    kn_test_write(f->repo, "empty/.git/x", "");
    open_repo(f);

    assert_int_equal(f->src->ops->walk(f->src, walk_cb, &log), 0);
    assert_walk(&log, want, sizeof(want) / sizeof(want[0]));
    /* the order is plain byte order of the whole paths */
    for (size_t i = 1; i < log.count; i++) {
        assert_true(strcmp(log.paths[i - 1], log.paths[i]) < 0);
    }
    walk_log_release(&log);
}

static void test_walk_stop(void **state)
{
    struct fixture *f = *state;
    struct walk_log log = {.stop_after = 2};

    kn_test_write(f->repo, "a", "");
    kn_test_write(f->repo, "b", "");
    kn_test_write(f->repo, "c/d", "");
    open_repo(f);

    assert_int_equal(f->src->ops->walk(f->src, walk_cb, &log), 7);
    assert_int_equal(log.count, 2);
    walk_log_release(&log);
}

static void test_walk_symlinks(void **state)
{
    struct fixture *f = *state;
    struct walk_log log = {0};
    static const char *const want[] = {
        ".keep",
        "file-link.yaml",
        "out-link.yaml",
        "real/f.yaml",
    };

    kn_test_write(f->repo, "real/f.yaml", "");
    make_symlink("real", f->repo, "linked");
    make_symlink(f->outside, f->repo, "outdir");
    make_symlink("real/f.yaml", f->repo, "file-link.yaml");
    make_symlink("../outside/secret.yaml", f->repo, "out-link.yaml");
    make_symlink("nowhere", f->repo, "dangling");
    make_symlink("loop", f->repo, "loop");
    open_repo(f);

    /* Symlinked folders are not entered; symlinks to files are reported and read decides. */
    assert_int_equal(f->src->ops->walk(f->src, walk_cb, &log), 0);
    assert_walk(&log, want, sizeof(want) / sizeof(want[0]));
    walk_log_release(&log);
}

/* ---- discover ---------------------------------------------------------------------------- */

static void test_discover_monorepo(void **state)
{
    struct fixture *f = *state;
    char **paths = NULL;
    size_t count = 0;
    static const char *const want[] = {
        "app.kanaria.yaml",
        "apps/api/app.kanaria.yaml",
        "apps/web-v2/app.kanaria.yaml",
        "apps/web/app.kanaria.yaml",
    };

    kn_test_write(f->repo, "app.kanaria.yaml", "");
    kn_test_write(f->repo, "apps/web/app.kanaria.yaml", "");
    kn_test_write(f->repo, "apps/web/deploy.yaml", "");
    kn_test_write(f->repo, "apps/web-v2/app.kanaria.yaml", "");
    kn_test_write(f->repo, "apps/api/app.kanaria.yaml", "");
    kn_test_write(f->repo, "apps/api/old/not-app.kanaria.yaml", "");
    kn_test_write(f->repo, "apps/api/app.kanaria.yaml.bak", "");
    kn_test_write(f->repo, ".git/app.kanaria.yaml", "");
    kn_test_write(f->repo, "docs/app.kanaria.yaml/readme", "");
    open_repo(f);

    assert_int_equal(kn_app_discover(f->src, &paths, &count), 0);
    assert_int_equal(count, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < count; i++) {
        assert_string_equal(paths[i], want[i]);
        free(paths[i]);
    }
    free(paths);
}

static void test_discover_none(void **state)
{
    struct fixture *f = *state;
    char **paths = NULL;
    size_t count = 1;

    kn_test_write(f->repo, "deploy.yaml", "");
    open_repo(f);
    assert_int_equal(kn_app_discover(f->src, &paths, &count), 0);
    assert_int_equal(count, 0);
    free(paths);
}

/* ---- kn_path_resolve --------------------------------------------------------------------- */

static void test_path_resolve(void **state)
{
    static const struct {
        const char *base;
        const char *rel;
        int rc;
        const char *want;
    } cases[] = {
        {"", "a", 0, "a"},
        {"", "a/b", 0, "a/b"},
        {"", "a/../b", 0, "b"},
        {"", "./x", 0, "x"},
        {"", ".", 0, ""},
        {"", "", 0, ""},
        {"", "a//b///c", 0, "a/b/c"},
        {"", "a/b/", 0, "a/b"},
        {"", "a/./b/.", 0, "a/b"},
        {"", "a/..", 0, ""},
        {"", "a/b/../../c", 0, "c"},
        {"apps/web", "deploy.yaml", 0, "apps/web/deploy.yaml"},
        {"apps/web", "../base/svc.yaml", 0, "apps/base/svc.yaml"},
        {"apps/web", "../../x", 0, "x"},
        {"apps/web/", "./k8s//a.yaml", 0, "apps/web/k8s/a.yaml"},
        {"apps/web", "", 0, "apps/web"},
        {"./apps", "x", 0, "apps/x"},
        {NULL, "x", 0, "x"},
        {"", "...", 0, "..."},
        {"", "..a/b..", 0, "..a/b.."},
        {"", "..", KN_EPATH, NULL},
        {"", "../x", KN_EPATH, NULL},
        {"", "a/../../x", KN_EPATH, NULL},
        {"apps/web", "../../../x", KN_EPATH, NULL},
        {"apps/web", "a/../../../../x", KN_EPATH, NULL},
        {"", "/etc/passwd", KN_EPATH, NULL},
        {"apps", "/x", KN_EPATH, NULL},
        {"/abs", "x", KN_EPATH, NULL},
        {"..", "x", KN_EPATH, NULL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dummy = 0;
        char *out = &dummy;
        int rc = kn_path_resolve(&out, cases[i].base, cases[i].rel);

        if (rc != cases[i].rc) {
            fail_msg("resolve('%s', '%s') = %d, want %d", cases[i].base ? cases[i].base : "NULL",
                     cases[i].rel, rc, cases[i].rc);
        }
        if (cases[i].want) {
            assert_non_null(out);
            if (strcmp(out, cases[i].want) != 0) {
                fail_msg("resolve('%s', '%s') = '%s', want '%s'",
                         cases[i].base ? cases[i].base : "NULL", cases[i].rel, out, cases[i].want);
            }
        } else {
            assert_null(out);
        }
        free(out);
    }
}

/* ---- kn_glob_match ----------------------------------------------------------------------- */

static void test_glob_match(void **state)
{
    static const struct {
        const char *pattern;
        const char *path;
        int want;
    } cases[] = {
        {"*.yaml", "a.yaml", 1},
        {"*.yaml", "x/a.yaml", 0},
        {"*.yaml", ".hidden.yaml", 1},
        {"*.yaml", "a.yml", 0},
        {"*", "a", 1},
        {"*", "a/b", 0},
        {"*/*", "a/b", 1},
        {"a/*", "a/b/c", 0},
        {"?.yaml", "a.yaml", 1},
        {"?.yaml", "ab.yaml", 0},
        {"a?b", "a/b", 0},
        {"[abc].yaml", "b.yaml", 1},
        {"[abc].yaml", "d.yaml", 0},
        {"[!abc].yaml", "d.yaml", 1},
        {"[^abc].yaml", "a.yaml", 0},
        {"[a-c]x", "bx", 1},
        {"[a-c]x", "dx", 0},
        {"[[:digit:]]*", "7up", 1},
        {"[[:digit:]]*", "up", 0},
        {"[]]", "]", 1},
        {"[", "[", 1},
        {"a[", "a[", 1},
        {"\\*", "*", 1},
        {"\\*", "a", 0},
        {"docs/**", "docs/a", 1},
        {"docs/**", "docs/a/b", 1},
        {"docs/**", "docs", 1},
        {"docs/**", "doc/a", 0},
        {"docs/**", "other/docs/a", 0},
        {"**", "a", 1},
        {"**", "a/b/c", 1},
        {"**", "", 1},
        {"**/*.yaml", "a.yaml", 1},
        {"**/*.yaml", "x/y/a.yaml", 1},
        {"**/*.yaml", "x/y/a.json", 0},
        {"a/**/b", "a/b", 1},
        {"a/**/b", "a/x/y/b", 1},
        {"a/**/b", "a/x/y/c", 0},
        {"a/**/b/**/c", "a/b/c", 1},
        {"a/**/b/**/c", "a/x/b/y/b/z/c", 1},
        {"a/**/b/**/c", "a/x/c/b", 0},
        {"apps/*/k8s/**", "apps/web/k8s/deploy.yaml", 1},
        {"apps/*/k8s/**", "apps/web/api/k8s/deploy.yaml", 0},
        {"a**b", "axxb", 1},
        {"a**b", "ax/xb", 0},
        {"*a*b*c", "xaybzc", 1},
        {"*a*b*c", "xaybzcd", 0},
        {"exact/path.yaml", "exact/path.yaml", 1},
        {"exact/path.yaml", "exact/path.yamlx", 0},
        {"", "", 1},
        {"", "a", 0},
        {"a", "", 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = kn_glob_match(cases[i].pattern, cases[i].path);
        if (got != cases[i].want) {
            fail_msg("glob('%s', '%s') = %d, want %d", cases[i].pattern, cases[i].path, got,
                     cases[i].want);
        }
    }
}

/* Patterns that make a backtracking matcher take exponential time. No timed assertion: an
 * exponential matcher would not finish within ctest's timeout, which fails the test. */
static void test_glob_adversarial(void **state)
{
    char pattern[512];
    char path[4096];
    size_t n = 0;
    (void)state;

    /* *a*a*a...*b against aaaa...: fails after trying every split in a naive matcher */
    for (int i = 0; i < 30; i++) {
        n += (size_t)snprintf(pattern + n, sizeof(pattern) - n, "*a");
    }
    snprintf(pattern + n, sizeof(pattern) - n, "*b");
    memset(path, 'a', 200);
    path[200] = '\0';
    assert_int_equal(kn_glob_match(pattern, path), 0);

    /* the same one level up: ** / a / ** / a ... against a deep a/a/a/... */
    n = 0;
    for (int i = 0; i < 30; i++) {
        n += (size_t)snprintf(pattern + n, sizeof(pattern) - n, "**/a/");
    }
    snprintf(pattern + n, sizeof(pattern) - n, "b");
    n = 0;
    for (int i = 0; i < 400; i++) {
        n += (size_t)snprintf(path + n, sizeof(path) - n, "a/");
    }
    path[n - 1] = '\0';
    assert_int_equal(kn_glob_match(pattern, path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_not_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_symlink_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_symlink_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_dotdot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_new_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_monorepo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_none, setup, teardown),
        cmocka_unit_test(test_path_resolve),
        cmocka_unit_test(test_glob_match),
        cmocka_unit_test(test_glob_adversarial),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
