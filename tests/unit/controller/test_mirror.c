/*
 * Unit tests for controller/git/mirror.c over real repositories made with the git CLI: creating
 * and updating a bare mirror from a path or a file:// URL, unknown branches, unreachable remotes
 * and recovery, force-pushes, credentials (against a loopback server that always answers 401)
 * and URL redaction.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"

#define GIT_CMD "git -c user.name=t -c user.email=t@e -c commit.gpgsign=false"

struct fixture {
    char *root;
    char *upstream; /* root/upstream: a work tree with branch main */
    char *mirror;   /* root/mirrors/a/b/mirror.git: not created by the fixture */
    long long next_time;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    f->root = kn_test_tmpdir();
    f->upstream = kn_asprintf("%s/upstream", f->root);
    f->mirror = kn_asprintf("%s/mirrors/a/b/mirror.git", f->root);
    f->next_time = 1700000000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_test_rmtree(f->root);
    free(f->root);
    free(f->upstream);
    free(f->mirror);
    free(f);
    return 0;
}

/* The id `git rev-parse` gives for rev, independent of the code under test. */
static void rev_parse(const char *dir, const char *rev, git_oid *oid)
{
    char *cmd = kn_asprintf("git -C '%s' rev-parse --verify -q '%s^{commit}'", dir, rev);
    FILE *p = popen(cmd, "r");
    char line[128] = "";

    if (!p || !fgets(line, sizeof(line), p) || strlen(line) < GIT_OID_HEXSZ) {
        fail_msg("failed: %s", cmd);
    }
    pclose(p);
    line[GIT_OID_HEXSZ] = '\0';
    assert_int_equal(git_oid_fromstr(oid, line), 0);
    free(cmd);
}

/* A commit on upstream's current branch with a fixed date; *oid is the new commit. */
static void commit(struct fixture *f, const char *msg, git_oid *oid)
{
    char *cmd;

    cmd = kn_asprintf("GIT_AUTHOR_DATE='@%lld +0000' GIT_COMMITTER_DATE='@%lld +0000' " GIT_CMD
                      " -C '%s' commit -q --allow-empty -m '%s' >/dev/null",
                      f->next_time, f->next_time, f->upstream, msg);
    if (system(cmd) != 0) {
        fail_msg("failed: %s", cmd);
    }
    free(cmd);
    f->next_time += 60;
    rev_parse(f->upstream, "HEAD", oid);
}

/* upstream with one commit on main; *oid is that commit. */
static void make_upstream(struct fixture *f, git_oid *oid)
{
    kn_test_write(f->root, "upstream/app.yaml", "name: web\n");
    kn_test_git(f->upstream, "init -q -b main");
    kn_test_git(f->upstream, "add -A");
    commit(f, "first", oid);
}

/* Whether the mirror's config or any file under it contains s (grep -r). */
static int mirror_contains(const struct fixture *f, const char *s)
{
    char *cmd = kn_asprintf("grep -rqF -- '%s' '%s'", s, f->mirror);
    int found = system(cmd) == 0;

    free(cmd);
    return found;
}

static void assert_oid_equal(const git_oid *a, const git_oid *b)
{
    char ha[GIT_OID_HEXSZ + 1];
    char hb[GIT_OID_HEXSZ + 1];

    git_oid_tostr(ha, sizeof(ha), a);
    git_oid_tostr(hb, sizeof(hb), b);
    assert_string_equal(ha, hb);
}

/* ---- fetching ------------------------------------------------------------------------------ */

static void test_first_and_second_fetch(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    git_oid c1;
    git_oid c2;
    git_oid got;
    git_repository *repo = NULL;
    struct stat st;

    kn_error_clear(&err);
    make_upstream(f, &c1);
    assert_int_not_equal(stat(f->mirror, &st), 0);

    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c1);
    assert_int_equal(kn_git_open(&repo, f->mirror, &err), 0);
    assert_true(git_repository_is_bare(repo));
    git_repository_free(repo);

    commit(f, "second", &c2);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c2);

    /* the mirror records nothing about where it came from */
    assert_false(mirror_contains(f, "upstream"));
    assert_false(mirror_contains(f, "[remote"));
}

static void test_file_url_and_plain_path(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    git_oid c1;
    git_oid got;
    char *url;
    char *other;
    char *cwd = getcwd(NULL, 0);

    kn_error_clear(&err);
    make_upstream(f, &c1);

    url = kn_asprintf("file://%s", f->upstream);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, url, "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c1);

    /* a relative path, resolved against the working folder */
    other = kn_asprintf("%s/other.git", f->root);
    assert_non_null(cwd);
    assert_int_equal(chdir(f->root), 0);
    memset(&got, 0, sizeof(got));
    assert_int_equal(kn_git_mirror_fetch(other, "upstream", "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c1);
    assert_int_equal(chdir(cwd), 0);

    free(cwd);
    free(other);
    free(url);
}

static void test_unknown_branch(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    git_oid c1;
    git_oid got;

    kn_error_clear(&err);
    make_upstream(f, &c1);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "nope", NULL, &got, &err), KN_EIO);
    assert_int_equal(err.code, KN_EIO);
    assert_non_null(strstr(err.msg, "branch 'nope' not found"));

    /* a branch deleted upstream is not served from what the mirror kept */
    kn_test_git(f->upstream, "branch gone");
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "gone", NULL, &got, &err), 0);
    kn_test_git(f->upstream, "branch -D gone");
    kn_error_clear(&err);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "gone", NULL, &got, &err), KN_EIO);
    assert_non_null(strstr(err.msg, "branch 'gone' not found"));

    /* not a branch name at all */
    kn_error_clear(&err);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "a..b", NULL, &got, &err),
                     KN_EINVAL);
}

static void test_unreachable_then_recovers(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    git_oid c1;
    git_oid got;

    kn_error_clear(&err);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), KN_EIO);
    assert_non_null(strstr(err.msg, "fetching "));
    assert_non_null(strstr(err.msg, f->upstream));
    assert_non_null(strstr(err.msg, "no such repository"));

    kn_error_clear(&err);
    assert_int_equal(
        kn_git_mirror_fetch(f->mirror, "http://127.0.0.1:1/x.git", "main", NULL, &got, &err),
        KN_EIO);
    assert_non_null(strstr(err.msg, "fetching http://127.0.0.1:1/x.git: "));

    make_upstream(f, &c1);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c1);
}

static void test_force_push(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    git_oid c1;
    git_oid c2;
    git_oid c3;
    git_oid got;
    git_repository *repo = NULL;

    kn_error_clear(&err);
    make_upstream(f, &c1);
    commit(f, "second", &c2);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c2);

    kn_test_git(f->upstream, "reset -q --hard HEAD~1");
    commit(f, "rewritten", &c3);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), 0);
    assert_oid_equal(&got, &c3);

    assert_int_equal(kn_git_open(&repo, f->mirror, &err), 0);
    assert_int_equal(kn_git_is_ancestor(repo, &c2, &got), 0);
    assert_int_equal(kn_git_is_ancestor(repo, &c1, &got), 1);
    git_repository_free(repo);
}

static int count_progress(void *data)
{
    (*(int *)data)++;
    return 0;
}

/* A fetch killed at its deadline (SIGKILL) may leave lock and temporary files in the mirror;
 * libgit2 refuses a lock file that exists, so every later fetch would fail. */
static void test_stale_files_of_a_killed_fetch(void **state)
{
    struct fixture *f = *state;
    static const char *const stale[] = {
        "refs/heads/main.lock", "packed-refs.lock", "HEAD.lock",
        "objects/pack/pack_git2_1a2b3c", NULL,
    };
    struct kn_error err;
    git_oid c1;
    git_oid c2;
    git_oid got;
    struct stat st;
    int progress = 0;

    kn_error_clear(&err);
    make_upstream(f, &c1);
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), 0);
    for (size_t i = 0; stale[i]; i++) {
        char *path = kn_asprintf("mirrors/a/b/mirror.git/%s", stale[i]);
        kn_test_write(f->root, path, "");
        free(path);
    }
    commit(f, "second", &c2);
    assert_int_equal(kn_git_mirror_fetch_progress(f->mirror, f->upstream, "main", NULL, &got,
                                                  &err, count_progress, &progress),
                     0);
    assert_oid_equal(&got, &c2);
    assert_true(progress > 0); /* the pack arrived, and said so */
    for (size_t i = 0; stale[i]; i++) {
        char *path = kn_asprintf("%s/%s", f->mirror, stale[i]);
        assert_int_not_equal(stat(path, &st), 0);
        free(path);
    }
}

static void test_mirror_path_not_a_repo(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    git_oid c1;
    git_oid got;

    kn_error_clear(&err);
    make_upstream(f, &c1);
    kn_test_write(f->root, "mirrors/a/b/mirror.git/stray.txt", "x\n");
    assert_int_equal(kn_git_mirror_fetch(f->mirror, f->upstream, "main", NULL, &got, &err), KN_EIO);
    assert_non_null(strstr(err.msg, "is not a git repository"));
}

/* ---- credentials ---------------------------------------------------------------------------- */

/*
 * A loopback HTTP server in a child process that answers every request with 401 Basic. For each
 * request that carried an Authorization header it writes the header's value and a newline to
 * `report`, so the test can count the attempts and see what was sent.
 */
static pid_t start_401_server(int *port, int report)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    pid_t pid;

    assert_true(s >= 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s, 16), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static const char reply[] = "HTTP/1.1 401 Unauthorized\r\n"
                                    "WWW-Authenticate: Basic realm=\"kanaria\"\r\n"
                                    "Content-Length: 0\r\n"
                                    "Connection: close\r\n\r\n";
        for (;;) {
            char req[8192];
            size_t n = 0;
            ssize_t r;
            int c = accept(s, NULL, NULL);
            const char *auth;

            if (c < 0) {
                _exit(1);
            }
            while (n < sizeof(req) - 1 && (r = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
                n += (size_t)r;
                req[n] = '\0';
                if (strstr(req, "\r\n\r\n")) {
                    break;
                }
            }
            req[n] = '\0';
            auth = strstr(req, "Authorization: ");
            if (auth) {
                const char *end = strstr(auth, "\r\n");
                auth += strlen("Authorization: ");
                if (write(report, auth, end ? (size_t)(end - auth) : strlen(auth)) < 0 ||
                    write(report, "\n", 1) < 0) {
                    _exit(1);
                }
            }
            if (write(c, reply, sizeof(reply) - 1) < 0) {
                /* the client went away; serve the next one */
            }
            close(c);
        }
    }
    close(s);
    return pid;
}

/* Fetch http://USERINFO127.0.0.1:PORT/org/repo.git from a fresh 401 server; returns the
 * Authorization headers it received, one a line (caller frees). */
static char *fetch_against_401(struct fixture *f, const char *userinfo,
                               const struct kn_git_auth *auth, struct kn_error *err, int *rc)
{
    struct kn_buf sent;
    char chunk[512];
    char *url;
    ssize_t r;
    int fds[2];
    int port = 0;
    pid_t pid;
    git_oid got;

    assert_int_equal(pipe(fds), 0);
    pid = start_401_server(&port, fds[1]);
    close(fds[1]);

    url = kn_asprintf("http://%s127.0.0.1:%d/org/repo.git", userinfo, port);
    kn_error_clear(err);
    *rc = kn_git_mirror_fetch(f->mirror, url, "main", auth, &got, err);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    kn_buf_init(&sent, KN_BUF_UNBOUNDED);
    while ((r = read(fds[0], chunk, sizeof(chunk))) > 0) {
        kn_buf_add(&sent, chunk, (size_t)r);
    }
    close(fds[0]);
    free(url);
    return kn_buf_detach(&sent, NULL);
}

static int count_lines(const char *text, const char *line)
{
    size_t len = strlen(line);
    int n = 0;

    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);

        n += l == len && strncmp(p, line, len) == 0;
        p += l + (nl ? 1 : 0);
    }
    return n;
}

/* base64 of "user:tok-SECRET-4242", "x-access-token:tok-SECRET-4242", "bot:tok-SECRET-4242" */
#define BASIC_URL_USER     "Basic dXNlcjp0b2stU0VDUkVULTQyNDI="
#define BASIC_DEFAULT_USER "Basic eC1hY2Nlc3MtdG9rZW46dG9rLVNFQ1JFVC00MjQy"
#define BASIC_BOT          "Basic Ym90OnRvay1TRUNSRVQtNDI0Mg=="

static void test_token_never_in_message(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    struct kn_git_auth auth = {.username = NULL, .token_file = NULL, .ssh_key_file = NULL};
    char *token_file;
    char *sent;
    int rc;

    kn_test_write(f->root, "token", "tok-SECRET-4242\n");
    token_file = kn_asprintf("%s/token", f->root);
    auth.token_file = token_file;

    /* user info in the URL: tried first by libgit2, then the token (three times, no more) with
     * the URL's user name */
    sent = fetch_against_401(f, "user:hunter2@", &auth, &err, &rc);
    assert_int_equal(rc, KN_EIO);
    assert_null(strstr(err.msg, "hunter2"));
    assert_null(strstr(err.msg, "tok-SECRET"));
    assert_null(strstr(err.msg, "user"));
    assert_non_null(strstr(err.msg, "fetching http://127.0.0.1:"));
    assert_non_null(strstr(err.msg, "authentication failed after 3 attempts"));
    assert_int_equal(count_lines(sent, BASIC_URL_USER), 3);
    free(sent);

    /* no user anywhere: the default user name */
    sent = fetch_against_401(f, "", &auth, &err, &rc);
    assert_int_equal(rc, KN_EIO);
    assert_null(strstr(err.msg, "tok-SECRET"));
    assert_int_equal(count_lines(sent, BASIC_DEFAULT_USER), 3);
    free(sent);

    /* a configured user name wins over the URL's */
    auth.username = "bot";
    sent = fetch_against_401(f, "user@", &auth, &err, &rc);
    assert_int_equal(rc, KN_EIO);
    assert_int_equal(count_lines(sent, BASIC_BOT), 3);
    free(sent);

    /* nothing of the URL or the credentials reached the disk */
    assert_false(mirror_contains(f, "hunter2"));
    assert_false(mirror_contains(f, "tok-SECRET"));
    assert_false(mirror_contains(f, "127.0.0.1"));

    free(token_file);
}

static void test_unreadable_token_file(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    struct kn_git_auth auth = {.username = "bot", .token_file = NULL, .ssh_key_file = NULL};
    char *token_file;
    char *sent;
    int rc;

    auth.token_file = "/nonexistent/kanaria/token";
    sent = fetch_against_401(f, "", &auth, &err, &rc);
    assert_int_equal(rc, KN_EIO);
    assert_non_null(
        strstr(err.msg, "tokenFile: secret file '/nonexistent/kanaria/token': cannot open"));
    assert_string_equal(sent, "");
    free(sent);

    kn_test_write(f->root, "empty-token", "\n");
    token_file = kn_asprintf("%s/empty-token", f->root);
    auth.token_file = token_file;
    sent = fetch_against_401(f, "", &auth, &err, &rc);
    assert_int_equal(rc, KN_EIO);
    assert_non_null(strstr(err.msg, "empty-token': empty"));
    assert_string_equal(sent, "");
    free(sent);
    free(token_file);
}

/* ---- redaction ------------------------------------------------------------------------------ */

static void check_redact(const char *in, const char *want)
{
    char *got = kn_git_redact_url(in);

    assert_string_equal(got, want);
    free(got);
}

static void test_redact_url(void **state)
{
    (void)state;
    check_redact("https://user:secret@example.com/org/repo.git",
                 "https://example.com/org/repo.git");
    check_redact("https://token@example.com/r.git", "https://example.com/r.git");
    check_redact("https://u:p@ss@example.com:8443/r", "https://example.com:8443/r");
    check_redact("ssh://git@example.com/r.git", "ssh://example.com/r.git");
    check_redact("https://example.com/org/repo@v1.git", "https://example.com/org/repo@v1.git");
    check_redact("https://example.com", "https://example.com");
    check_redact("git@example.com:org/repo.git", "git@example.com:org/repo.git");
    check_redact("/srv/git/repo.git", "/srv/git/repo.git");
    check_redact("./relative/repo", "./relative/repo");
    check_redact("", "");
    assert_null(kn_git_redact_url(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_and_second_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_url_and_plain_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_branch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_then_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_files_of_a_killed_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mirror_path_not_a_repo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_never_in_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_token_file, setup, teardown),
        cmocka_unit_test(test_redact_url),
    };
    int failed;

    /* The user's and the system's git configuration must not change what the CLI or libgit2
     * does, and a proxy must not catch the loopback requests. */
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("HTTPS_PROXY");
    signal(SIGPIPE, SIG_IGN);
    git_libgit2_init();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    git_libgit2_shutdown();
    return failed;
}
