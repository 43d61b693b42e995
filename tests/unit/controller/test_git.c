/*
 * Unit tests for controller/git/git.c over real repositories made with the git CLI at test
 * time: revisions, commit details, the tree source (reads, symlinks, walk, discovery and app
 * loading through it), changed paths and ancestry.
 */
#include "testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/error.h"
#include "kanaria/validate.h"

#define GIT_CMD "git -c user.name=t -c user.email=t@e -c commit.gpgsign=false -c core.symlinks=true"

/* A repository at root/repo and a folder beside it (root/outside) for symlinks that leave. */
struct fixture {
    char *root;
    char *repo_dir;
    git_repository *repo;
    struct kn_source *src;
    long long next_time; /* author and committer date of the next commit */
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    f->root = kn_test_tmpdir();
    f->repo_dir = kn_asprintf("%s/repo", f->root);
    f->next_time = 1700000000;
    kn_test_write(f->root, "outside/secret", "password: hunter2\n");
    kn_test_write(f->root, "repo/.keep", "");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_source_free(f->src);
    git_repository_free(f->repo);
    kn_test_rmtree(f->root);
    free(f->root);
    free(f->repo_dir);
    free(f);
    return 0;
}

/* The full id `git rev-parse` gives for rev, independent of the code under test. */
static void rev_parse(const char *dir, const char *rev, char hex[GIT_OID_HEXSZ + 1])
{
    char *cmd = kn_asprintf("git -C '%s' rev-parse --verify -q '%s^{commit}'", dir, rev);
    FILE *p = popen(cmd, "r");
    char line[128] = "";

    if (!p || !fgets(line, sizeof(line), p) || strlen(line) < GIT_OID_HEXSZ) {
        fail_msg("failed: %s", cmd);
    }
    pclose(p);
    memcpy(hex, line, GIT_OID_HEXSZ);
    hex[GIT_OID_HEXSZ] = '\0';
    free(cmd);
}

static void init_repo(struct fixture *f)
{
    kn_test_git(f->repo_dir, "init -q -b main");
}

/* Commit the index with a fixed date; *oid is the new commit. */
static void commit_staged(struct fixture *f, const char *msg, git_oid *oid)
{
    char hex[GIT_OID_HEXSZ + 1];
    char *cmd;

    cmd = kn_asprintf("GIT_AUTHOR_DATE='@%lld +0000' GIT_COMMITTER_DATE='@%lld +0000' " GIT_CMD
                      " -C '%s' commit -q --allow-empty -m '%s' >/dev/null",
                      f->next_time, f->next_time, f->repo_dir, msg);
    if (system(cmd) != 0) {
        fail_msg("failed: %s", cmd);
    }
    free(cmd);
    f->next_time += 60;
    if (oid) {
        rev_parse(f->repo_dir, "HEAD", hex);
        assert_int_equal(git_oid_fromstr(oid, hex), 0);
    }
}

/* Commit everything in the work tree. */
static void commit_all(struct fixture *f, const char *msg, git_oid *oid)
{
    kn_test_git(f->repo_dir, "add -A");
    commit_staged(f, msg, oid);
}

/* Stage a gitlink (a submodule entry) at relpath, without any submodule behind it. */
static void add_gitlink(struct fixture *f, const char *relpath)
{
    kn_test_git(f->repo_dir, "update-index --add --cacheinfo 160000,%s,%s",
           "0123456789012345678901234567890123456789", relpath);
}

static void make_symlink(struct fixture *f, const char *target, const char *relpath)
{
    char *path = kn_asprintf("%s/%s", f->repo_dir, relpath);

    if (symlink(target, path) != 0) {
        fail_msg("symlink %s -> %s failed", path, target);
    }
    free(path);
}

static void remove_file(struct fixture *f, const char *relpath)
{
    char *path = kn_asprintf("%s/%s", f->repo_dir, relpath);

    assert_int_equal(unlink(path), 0);
    free(path);
}

static git_repository *open_repo(struct fixture *f)
{
    struct kn_error err;

    kn_error_clear(&err);
    if (!f->repo) {
        assert_int_equal(kn_git_open(&f->repo, f->repo_dir, &err), 0);
        assert_non_null(f->repo);
    }
    return f->repo;
}

/* The tree source of `commit` (replacing the fixture's previous one). */
static struct kn_source *source_at(struct fixture *f, const git_oid *commit)
{
    struct kn_error err;

    kn_error_clear(&err);
    kn_source_free(f->src);
    f->src = NULL;
    assert_int_equal(kn_git_tree_source_new(&f->src, open_repo(f), commit, &err), 0);
    assert_non_null(f->src);
    return f->src;
}

static int read_path(struct kn_source *src, const char *relpath, size_t max, struct kn_buf *buf,
                     struct kn_error *err)
{
    kn_buf_init(buf, max);
    kn_error_clear(err);
    return src->ops->read(src, relpath, buf, err);
}

static void assert_reads(struct kn_source *src, const char *relpath, const char *want)
{
    struct kn_buf buf;
    struct kn_error err;
    int rc = read_path(src, relpath, KN_APP_MAX_FILE_BYTES, &buf, &err);

    if (rc != 0) {
        fail_msg("read '%s': %d %s", relpath, rc, err.msg);
    }
    assert_non_null(buf.data);
    assert_int_equal(buf.len, strlen(want));
    assert_string_equal(buf.data, want);
    kn_buf_release(&buf);
}

/* The read fails with `code` and a message containing `needle`, naming no absolute folder. */
static void assert_read_fails(struct kn_source *src, const char *relpath, size_t max, int code,
                              const char *needle)
{
    struct kn_buf buf;
    struct kn_error err;
    int rc = read_path(src, relpath, max, &buf, &err);

    if (rc != code) {
        fail_msg("read '%s': got %d (%s), want %d", relpath, rc, err.msg, code);
    }
    assert_int_equal(err.code, code);
    if (!strstr(err.msg, needle)) {
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    }
    assert_null(strstr(err.msg, "/tmp"));
    assert_int_equal(buf.len, 0);
    kn_buf_release(&buf);
}

/* ---- repository and revisions ------------------------------------------------------------ */

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    git_repository *repo = NULL;
    struct kn_error err;
    char *sub;

    kn_error_clear(&err);
    assert_int_equal(kn_git_open(&repo, f->repo_dir, &err), KN_ENOTFOUND);
    assert_null(repo);
    assert_non_null(strstr(err.msg, "is not a git repository"));

    /* a folder inside a repository is not the repository */
    init_repo(f);
    kn_test_write(f->repo_dir, "sub/x", "x\n");
    sub = kn_asprintf("%s/sub", f->repo_dir);
    kn_error_clear(&err);
    assert_int_equal(kn_git_open(&repo, sub, &err), KN_ENOTFOUND);
    assert_null(repo);
    free(sub);

    kn_error_clear(&err);
    assert_int_equal(kn_git_open(&repo, "", &err), KN_EINVAL);
}

static void test_resolve(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    git_oid got;
    struct kn_error err;
    char hex[GIT_OID_HEXSZ + 1];
    char shorthex[8];

    init_repo(f);
    kn_test_write(f->repo_dir, "a.txt", "one\n");
    commit_all(f, "first", &c1);
    kn_test_git(f->repo_dir, "tag -a -m release v1");
    kn_test_write(f->repo_dir, "a.txt", "two\n");
    commit_all(f, "second", &c2);
    open_repo(f);

    kn_error_clear(&err);
    assert_int_equal(kn_git_resolve(f->repo, "main", &got, &err), 0);
    assert_true(git_oid_equal(&got, &c2));
    assert_int_equal(kn_git_resolve(f->repo, "HEAD", &got, &err), 0);
    assert_true(git_oid_equal(&got, &c2));
    assert_int_equal(kn_git_resolve(f->repo, "HEAD~1", &got, &err), 0);
    assert_true(git_oid_equal(&got, &c1));

    /* an annotated tag peels to its commit */
    assert_int_equal(kn_git_resolve(f->repo, "v1", &got, &err), 0);
    assert_true(git_oid_equal(&got, &c1));

    /* full and short ids */
    git_oid_tostr(hex, sizeof(hex), &c1);
    assert_int_equal(kn_git_resolve(f->repo, hex, &got, &err), 0);
    assert_true(git_oid_equal(&got, &c1));
    memcpy(shorthex, hex, 7);
    shorthex[7] = '\0';
    assert_int_equal(kn_git_resolve(f->repo, shorthex, &got, &err), 0);
    assert_true(git_oid_equal(&got, &c1));

    kn_error_clear(&err);
    assert_int_equal(kn_git_resolve(f->repo, "nope", &got, &err), KN_ENOTFOUND);
    assert_string_equal(err.msg, "revision 'nope' not found");
    kn_error_clear(&err);
    assert_int_equal(kn_git_resolve(f->repo, "HEAD~5", &got, &err), KN_ENOTFOUND);
    assert_string_equal(err.msg, "revision 'HEAD~5' not found");

    /* a blob is no commit */
    kn_error_clear(&err);
    assert_int_equal(kn_git_resolve(f->repo, "main:a.txt", &got, &err), KN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "does not name a commit"));

    kn_error_clear(&err);
    assert_int_equal(kn_git_resolve(f->repo, "", &got, &err), KN_EINVAL);
}

static void test_commit_info(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid missing;
    struct kn_git_commit_info info;
    struct kn_error err;
    char hex[GIT_OID_HEXSZ + 1];
    char *cmd;

    init_repo(f);
    kn_test_write(f->repo_dir, "a.txt", "one\n");
    kn_test_git(f->repo_dir, "add -A");
    /* authored earlier than committed (a rebase): the commit's time is the committer's */
    cmd = kn_asprintf("GIT_AUTHOR_DATE='@1700000123 +0200' GIT_COMMITTER_DATE='@1700000456 +0000' "
                      GIT_CMD
                      " -C '%s' commit -q --author='Ann Author <ann@example.com>'"
                      " -m 'deploy: web 1.2' -m 'the body' >/dev/null",
                      f->repo_dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    rev_parse(f->repo_dir, "HEAD", hex);
    assert_int_equal(git_oid_fromstr(&c1, hex), 0);

    kn_error_clear(&err);
    assert_int_equal(kn_git_commit_info(open_repo(f), &c1, &info, &err), 0);
    assert_string_equal(info.oid, hex);
    assert_string_equal(info.summary, "deploy: web 1.2");
    assert_string_equal(info.message, "deploy: web 1.2\n\nthe body\n");
    assert_string_equal(info.author, "Ann Author <ann@example.com>");
    assert_int_equal(info.time, 1700000456);
    kn_git_commit_info_release(&info);
    assert_null(info.summary);

    /* an id that is in no repository */
    assert_int_equal(git_oid_fromstr(&missing, "0123456789012345678901234567890123456789"), 0);
    kn_error_clear(&err);
    assert_int_equal(kn_git_commit_info(f->repo, &missing, &info, &err), KN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "0123456789012345678901234567890123456789"));
    kn_git_commit_info_release(&info);
}

/* ---- the tree source --------------------------------------------------------------------- */

static void test_read_at_commit(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    struct kn_source *src;

    init_repo(f);
    kn_test_write(f->repo_dir, "apps/web/a.yaml", "one\n");
    kn_test_write(f->repo_dir, "empty", "");
    kn_test_git(f->repo_dir, "add -A");
    commit_all(f, "first", &c1);
    kn_test_write(f->repo_dir, "apps/web/a.yaml", "two\n");
    commit_all(f, "second", &c2);
    /* uncommitted: never seen by a tree source */
    kn_test_write(f->repo_dir, "apps/web/a.yaml", "three\n");

    src = source_at(f, &c1);
    assert_non_null(strstr(src->name, "repo@"));
    assert_reads(src, "apps/web/a.yaml", "one\n");
    assert_reads(src, "./apps//web/../web/a.yaml", "one\n");
    assert_reads(src, "empty", "");
    src = source_at(f, &c2);
    assert_reads(src, "apps/web/a.yaml", "two\n");
}

static void test_read_errors(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    struct kn_source *src;

    init_repo(f);
    kn_test_write(f->repo_dir, "a.txt", "0123456789");
    kn_test_write(f->repo_dir, "dir/b.txt", "b\n");
    commit_all(f, "first", &c1);
    add_gitlink(f, "vendor/lib");
    commit_staged(f, "submodule", &c1);
    src = source_at(f, &c1);

    assert_read_fails(src, "missing.txt", 100, KN_ENOENT, "'missing.txt' does not exist");
    assert_read_fails(src, "dir/missing.txt", 100, KN_ENOENT, "'dir/missing.txt' does not exist");
    assert_read_fails(src, "a.txt/x", 100, KN_ENOENT, "'a.txt/x' does not exist");
    assert_read_fails(src, "dir", 100, KN_EIO, "'dir' is not a regular file");
    assert_read_fails(src, "", 100, KN_EIO, "'.' is not a regular file");
    assert_read_fails(src, "vendor/lib", 100, KN_EIO, "'vendor/lib' is not a regular file");
    assert_read_fails(src, "vendor/lib/x", 100, KN_ENOENT, "does not exist");
    assert_read_fails(src, "/etc/passwd", 100, KN_EPATH, "'/etc/passwd' is an absolute path");
    assert_read_fails(src, "../outside/secret", 100, KN_EPATH, "climbs out of the repository");
    assert_read_fails(src, "a.txt", 9, KN_ETOOBIG, "'a.txt' is larger than 9 bytes");

    /* a source over a commit the repository does not have */
    {
        git_oid missing;
        struct kn_source *none = NULL;
        struct kn_error err;
        assert_int_equal(git_oid_fromstr(&missing, "0123456789012345678901234567890123456789"), 0);
        kn_error_clear(&err);
        assert_int_equal(kn_git_tree_source_new(&none, f->repo, &missing, &err), KN_ENOTFOUND);
        assert_null(none);
        assert_string_equal(err.msg, "commit 0123456789012345678901234567890123456789 not found");
    }

    /* exactly at the bound is fine */
    {
        struct kn_buf buf;
        struct kn_error err;
        assert_int_equal(read_path(src, "a.txt", 10, &buf, &err), 0);
        assert_int_equal(buf.len, 10);
        kn_buf_release(&buf);
    }
}

static void test_read_symlinks(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    struct kn_source *src;
    char name[32];
    char target[32];

    init_repo(f);
    kn_test_write(f->repo_dir, "shared/base.yaml", "base\n");
    kn_test_write(f->repo_dir, "apps/web/.keep", "");
    kn_test_write(f->repo_dir, "a/b/.keep", "");
    make_symlink(f, "../../shared/base.yaml", "apps/web/base.yaml");
    make_symlink(f, "shared", "shareddir");
    make_symlink(f, ".", "self");
    make_symlink(f, "../outside/secret", "out");
    make_symlink(f, "/etc/passwd", "pw");
    make_symlink(f, "../../../outside/secret", "a/b/up");
    make_symlink(f, "../outside", "outdir");
    make_symlink(f, "loop2", "loop1");
    make_symlink(f, "loop1", "loop2");
    make_symlink(f, "nothing", "dangling");
    /* a chain of 8 links works, one of 9 does not */
    for (int i = 1; i <= 9; i++) {
        snprintf(name, sizeof(name), "chain%d", i);
        snprintf(target, sizeof(target), i < 9 ? "chain%d" : "shared/base.yaml", i + 1);
        make_symlink(f, target, name);
    }
    commit_all(f, "links", &c1);
    src = source_at(f, &c1);

    assert_reads(src, "apps/web/base.yaml", "base\n");
    assert_reads(src, "shareddir/base.yaml", "base\n");
    assert_reads(src, "self/self/shared/base.yaml", "base\n");
    assert_reads(src, "chain2", "base\n");
    assert_read_fails(src, "chain1", 100, KN_EIO, "'chain1': too many levels of symlinks");
    assert_read_fails(src, "loop1", 100, KN_EIO, "too many levels of symlinks");
    assert_read_fails(src, "out", 100, KN_EPATH, "'out' is a symlink that leaves the repository");
    assert_read_fails(src, "pw", 100, KN_EPATH, "'pw' is a symlink that leaves the repository");
    assert_read_fails(src, "a/b/up", 100, KN_EPATH,
                      "'a/b/up' is a symlink that leaves the repository");
    assert_read_fails(src, "outdir/secret", 100, KN_EPATH,
                      "'outdir/secret' is a symlink that leaves the repository");
    assert_read_fails(src, "dangling", 100, KN_ENOENT, "'dangling' does not exist");
    assert_read_fails(src, "shareddir", 100, KN_EIO, "'shareddir' is not a regular file");
    assert_read_fails(src, "self", 100, KN_EIO, "'self' is not a regular file");
}

struct collect {
    char *paths[32];
    size_t count;
    size_t stop_after; /* 0: never stop */
};

static int collect_cb(const char *relpath, void *data)
{
    struct collect *c = data;

    assert_true(c->count < sizeof(c->paths) / sizeof(c->paths[0]));
    c->paths[c->count++] = kn_strdup(relpath);
    return c->stop_after && c->count == c->stop_after ? 42 : 0;
}

static void collect_release(struct collect *c)
{
    for (size_t i = 0; i < c->count; i++) {
        free(c->paths[i]);
    }
    memset(c, 0, sizeof(*c));
}

static void assert_paths(const struct collect *c, const char *const *want, size_t n)
{
    for (size_t i = 0; i < c->count && i < n; i++) {
        assert_string_equal(c->paths[i], want[i]);
    }
    assert_int_equal(c->count, n);
}

static void test_walk(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    struct kn_source *src;
    struct collect c = {0};
    char *path;
    static const char *const want1[] = {
        ".keep", "a.txt", "dir.txt", "dir/b.txt", "dir/sub/c.txt", "link", "run.sh",
    };
    static const char *const want2[] = {
        ".keep", "dir.txt", "dir/b.txt", "dir/sub/c.txt", "link", "new.txt", "run.sh",
    };

    init_repo(f);
    kn_test_write(f->repo_dir, "a.txt", "a\n");
    kn_test_write(f->repo_dir, "dir.txt", "d\n");
    kn_test_write(f->repo_dir, "dir/b.txt", "b\n");
    kn_test_write(f->repo_dir, "dir/sub/c.txt", "c\n");
    kn_test_write(f->repo_dir, "run.sh", "#!/bin/sh\n");
    path = kn_asprintf("%s/run.sh", f->repo_dir);
    assert_int_equal(chmod(path, 0755), 0);
    free(path);
    make_symlink(f, "dir", "link");
    kn_test_git(f->repo_dir, "add -A");
    add_gitlink(f, "sub");
    commit_staged(f, "first", &c1);
    kn_test_git(f->repo_dir, "rm -q a.txt");
    kn_test_write(f->repo_dir, "new.txt", "n\n");
    kn_test_git(f->repo_dir, "add new.txt");
    commit_staged(f, "second", &c2);
    /* in the work tree only */
    kn_test_write(f->repo_dir, "untracked.txt", "u\n");
    kn_test_write(f->repo_dir, "a.txt", "back\n");

    src = source_at(f, &c1);
    assert_int_equal(src->ops->walk(src, collect_cb, &c), 0);
    assert_paths(&c, want1, sizeof(want1) / sizeof(want1[0]));
    collect_release(&c);
    /* the submodule is there, only not a file */
    assert_read_fails(src, "sub", 100, KN_EIO, "'sub' is not a regular file");

    src = source_at(f, &c2);
    assert_int_equal(src->ops->walk(src, collect_cb, &c), 0);
    assert_paths(&c, want2, sizeof(want2) / sizeof(want2[0]));
    collect_release(&c);

    /* a non-zero return stops the walk and comes back */
    c.stop_after = 2;
    assert_int_equal(src->ops->walk(src, collect_cb, &c), 42);
    assert_int_equal(c.count, 2);
    collect_release(&c);
}

static int count_cb(const char *relpath, void *data)
{
    (void)relpath;
    (*(size_t *)data)++;
    return 0;
}

static void test_walk_depth(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    struct kn_source *src;
    struct kn_buf path;
    size_t count = 0;

    /* 128 nested folders walk; 129 are refused, as the folder source does */
    init_repo(f);
    kn_buf_init(&path, KN_BUF_UNBOUNDED);
    for (int i = 0; i < 128; i++) {
        kn_buf_adds(&path, "d/");
    }
    kn_buf_adds(&path, "f.txt");
    kn_test_write(f->repo_dir, path.data, "deep\n");
    commit_all(f, "deep", &c1);
    src = source_at(f, &c1);
    assert_int_equal(src->ops->walk(src, count_cb, &count), 0);
    assert_int_equal(count, 2);

    kn_buf_reset(&path);
    for (int i = 0; i < 129; i++) {
        kn_buf_adds(&path, "e/");
    }
    kn_buf_adds(&path, "f.txt");
    kn_test_write(f->repo_dir, path.data, "deeper\n");
    commit_all(f, "deeper", &c2);
    src = source_at(f, &c2);
    count = 0;
    assert_int_equal(src->ops->walk(src, count_cb, &count), KN_ELIMIT);
    assert_int_equal(count, 0);
    /* reading by path is not limited */
    assert_reads(src, path.data, "deeper\n");
    kn_buf_release(&path);
}

static const char mini_app[] = "apiVersion: kanaria.dev/v1\n"
                               "kind: Application\n"
                               "metadata: {name: mini}\n"
                               "spec:\n"
                               "  manifests: [svc.yaml]\n";

static const char mini_svc[] = "apiVersion: kanaria.dev/v1\n"
                               "kind: LocalService\n"
                               "metadata: {name: mini}\n"
                               "spec:\n"
                               "  command: [/bin/mini, \"{{port}}\"]\n"
                               "  frontend: {bind: \"127.0.0.1:9000\"}\n";

static void test_discover(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    struct kn_source *src;
    char **paths = NULL;
    size_t count = 0;

    init_repo(f);
    kn_test_write(f->repo_dir, "apps/web/app.kanaria.yaml", mini_app);
    kn_test_write(f->repo_dir, "apps/api/app.kanaria.yaml", mini_app);
    kn_test_write(f->repo_dir, "apps/api/deep/app.kanaria.yaml", mini_app);
    kn_test_write(f->repo_dir, "docs/app.kanaria.yaml.md", "not an app\n");
    kn_test_write(f->repo_dir, "README", "hi\n");
    commit_all(f, "apps", &c1);
    kn_test_write(f->repo_dir, "apps/uncommitted/app.kanaria.yaml", mini_app);

    src = source_at(f, &c1);
    assert_int_equal(kn_app_discover(src, &paths, &count), 0);
    assert_int_equal(count, 3);
    assert_string_equal(paths[0], "apps/api/app.kanaria.yaml");
    assert_string_equal(paths[1], "apps/api/deep/app.kanaria.yaml");
    assert_string_equal(paths[2], "apps/web/app.kanaria.yaml");
    for (size_t i = 0; i < count; i++) {
        free(paths[i]);
    }
    free(paths);
}

static void test_app_load(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    struct kn_source *src;
    struct kn_app *app = NULL;
    char buf[512];
    int found = 0;

    init_repo(f);
    kn_test_write(f->repo_dir, "apps/mini/app.kanaria.yaml", mini_app);
    kn_test_write(f->repo_dir, "apps/mini/svc.yaml", mini_svc);
    commit_all(f, "mini", &c1);
    remove_file(f, "apps/mini/svc.yaml");
    commit_all(f, "lose the manifest", &c2);
    /* the work tree is broken in yet another way: never read */
    kn_test_write(f->repo_dir, "apps/mini/app.kanaria.yaml", "{{{ not yaml\n");

    src = source_at(f, &c1);
    assert_int_equal(kn_validate_app_load(&app, src, "apps/mini/app.kanaria.yaml", NULL), 0);
    assert_non_null(app);
    for (size_t i = 0; i < app->diags.count; i++) {
        print_error("%s\n", kn_diag_format(&app->diags.items[i], buf, sizeof(buf)));
    }
    assert_int_equal(app->diags.count, 0);
    assert_string_equal(app->name, "mini");
    assert_string_equal(app->dir, "apps/mini");
    assert_int_equal(app->ndocs, 1);
    assert_string_equal(app->docs[0].kind, "LocalService");
    kn_app_free(app);
    app = NULL;

    src = source_at(f, &c2);
    assert_int_equal(kn_validate_app_load(&app, src, "apps/mini/app.kanaria.yaml", NULL), 0);
    assert_true(app->diags.count > 0);
    for (size_t i = 0; i < app->diags.count; i++) {
        found |= strstr(app->diags.items[i].msg, "'apps/mini/svc.yaml' does not exist") != NULL;
    }
    assert_true(found);
    kn_app_free(app);
}

/* ---- changes and ancestry ---------------------------------------------------------------- */

static void strlist_release(struct kn_strlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static void assert_list(const struct kn_strlist *l, const char *const *want, size_t n)
{
    for (size_t i = 0; i < l->count && i < n; i++) {
        assert_string_equal(l->items[i], want[i]);
    }
    assert_int_equal(l->count, n);
}

static void test_changed_paths(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    git_oid missing;
    struct kn_strlist l;
    struct kn_error err;
    char *path;
    static const char long_text[] = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n";
    static const char *const want[] = {"a.txt", "b.txt", "c.txt", "e.txt", "sub/moved.txt"};
    static const char *const all[] = {".keep", "a.txt", "d.txt", "e.txt", "sub/moved.txt"};

    init_repo(f);
    kn_test_write(f->repo_dir, "a.txt", "a\n");
    kn_test_write(f->repo_dir, "b.txt", "b\n");
    kn_test_write(f->repo_dir, "c.txt", long_text);
    kn_test_write(f->repo_dir, "d.txt", "d\n");
    commit_all(f, "first", &c1);
    kn_test_write(f->repo_dir, "a.txt", "a changed\n");
    kn_test_write(f->repo_dir, "e.txt", "e\n");
    remove_file(f, "b.txt");
    path = kn_asprintf("%s/sub", f->repo_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    free(path);
    kn_test_git(f->repo_dir, "mv c.txt sub/moved.txt");
    commit_all(f, "second", &c2);
    open_repo(f);

    kn_error_clear(&err);
    assert_int_equal(kn_git_changed_paths(f->repo, &c1, &c2, &l, &err), 0);
    assert_list(&l, want, sizeof(want) / sizeof(want[0]));
    strlist_release(&l);

    assert_int_equal(kn_git_changed_paths(f->repo, NULL, &c2, &l, &err), 0);
    assert_list(&l, all, sizeof(all) / sizeof(all[0]));
    strlist_release(&l);

    /* backwards gives the same set */
    assert_int_equal(kn_git_changed_paths(f->repo, &c2, &c1, &l, &err), 0);
    assert_list(&l, want, sizeof(want) / sizeof(want[0]));
    strlist_release(&l);

    assert_int_equal(kn_git_changed_paths(f->repo, &c2, &c2, &l, &err), 0);
    assert_int_equal(l.count, 0);
    strlist_release(&l);

    assert_int_equal(git_oid_fromstr(&missing, "0123456789012345678901234567890123456789"), 0);
    kn_error_clear(&err);
    assert_int_equal(kn_git_changed_paths(f->repo, &missing, &c2, &l, &err), KN_ENOTFOUND);
    assert_int_equal(l.count, 0);
    assert_null(l.items);
}

static void test_is_ancestor(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid c2;
    git_oid c3;
    git_oid c4;
    git_oid missing;
    char hex[GIT_OID_HEXSZ + 1];

    init_repo(f);
    kn_test_write(f->repo_dir, "a.txt", "1\n");
    commit_all(f, "one", &c1);
    kn_test_write(f->repo_dir, "a.txt", "2\n");
    commit_all(f, "two", &c2);
    kn_test_write(f->repo_dir, "a.txt", "3\n");
    commit_all(f, "three", &c3);
    /* a force-push: main goes back to c2 and on in another direction */
    git_oid_tostr(hex, sizeof(hex), &c2);
    kn_test_git(f->repo_dir, "reset -q --hard %s", hex);
    kn_test_write(f->repo_dir, "a.txt", "4\n");
    commit_all(f, "four", &c4);
    open_repo(f);

    assert_int_equal(kn_git_is_ancestor(f->repo, &c1, &c2), 1);
    assert_int_equal(kn_git_is_ancestor(f->repo, &c1, &c3), 1);
    assert_int_equal(kn_git_is_ancestor(f->repo, &c2, &c2), 1);
    assert_int_equal(kn_git_is_ancestor(f->repo, &c2, &c1), 0);
    assert_int_equal(kn_git_is_ancestor(f->repo, &c2, &c4), 1);
    assert_int_equal(kn_git_is_ancestor(f->repo, &c3, &c4), 0);
    assert_int_equal(kn_git_is_ancestor(f->repo, &c4, &c3), 0);

    assert_int_equal(git_oid_fromstr(&missing, "0123456789012345678901234567890123456789"), 0);
    assert_true(kn_git_is_ancestor(f->repo, &missing, &c4) < 0);
}

static void test_bare_clone(void **state)
{
    struct fixture *f = *state;
    git_oid c1;
    git_oid got;
    git_repository *bare = NULL;
    struct kn_source *src = NULL;
    struct kn_error err;
    char *bare_dir = kn_asprintf("%s/bare.git", f->root);
    char **paths = NULL;
    size_t count = 0;
    struct kn_buf buf;

    init_repo(f);
    kn_test_write(f->repo_dir, "apps/web/app.kanaria.yaml", mini_app);
    commit_all(f, "first", &c1);
    kn_test_git(f->root, "clone -q --bare repo bare.git");

    kn_error_clear(&err);
    assert_int_equal(kn_git_open(&bare, bare_dir, &err), 0);
    assert_true(git_repository_is_bare(bare));
    assert_int_equal(kn_git_resolve(bare, "main", &got, &err), 0);
    assert_true(git_oid_equal(&got, &c1));
    assert_int_equal(kn_git_tree_source_new(&src, bare, &got, &err), 0);
    assert_non_null(strstr(src->name, "bare.git@"));
    assert_int_equal(kn_app_discover(src, &paths, &count), 0);
    assert_int_equal(count, 1);
    assert_string_equal(paths[0], "apps/web/app.kanaria.yaml");
    free(paths[0]);
    free(paths);
    assert_int_equal(read_path(src, "apps/web/app.kanaria.yaml", 4096, &buf, &err), 0);
    assert_string_equal(buf.data, mini_app);
    kn_buf_release(&buf);

    kn_source_free(src);
    git_repository_free(bare);
    free(bare_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_at_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_is_ancestor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_clone, setup, teardown),
    };
    int failed;

    /* The user's and the system's git configuration must not change what the CLI does. */
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    git_libgit2_init();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    git_libgit2_shutdown();
    return failed;
}
