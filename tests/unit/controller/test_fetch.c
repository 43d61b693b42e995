/*
 * Unit tests for controller/git/fetch.c: a fetch in a child process and its deadlines. The real
 * binary (KANARIA_BIN) fetches a file:// repository; small shell scripts stand in for a child
 * that is silent, that reports progress and then a head, that never ends, or that dies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"

#define URL "http://127.0.0.1:9/deploy.git"

struct fixture {
    char *root;
};

struct result {
    int called;
    int rc;
    char head[GIT_OID_HEXSZ + 1];
    struct kn_error err;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    f->root = kn_test_tmpdir();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_test_rmtree(f->root);
    free(f->root);
    free(f);
    return 0;
}

/* An executable script root/name standing in for `kanaria __fetch`; returns its path. */
static char *script(const struct fixture *f, const char *name, const char *body)
{
    char *text = kn_asprintf("#!/bin/sh\necho $$ >'%s/%s.pid'\n%s", f->root, name, body);
    char *path = kn_asprintf("%s/%s", f->root, name);

    kn_test_write(f->root, name, text);
    assert_int_equal(chmod(path, 0755), 0);
    free(text);
    return path;
}

/* Whether the process whose pid the script `name` wrote is gone. */
static int script_gone(const struct fixture *f, const char *name)
{
    char *path = kn_asprintf("%s/%s.pid", f->root, name);
    FILE *fp = fopen(path, "r");
    long pid = 0;

    free(path);
    if (!fp) {
        return 1; /* never started far enough to write it */
    }
    assert_int_equal(fscanf(fp, "%ld", &pid), 1);
    fclose(fp);
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void on_fetched(int rc, const git_oid *head, const struct kn_error *err, void *data)
{
    struct result *r = data;

    r->called++;
    r->rc = rc;
    if (head) {
        git_oid_tostr(r->head, sizeof(r->head), head);
    }
    if (err) {
        r->err = *err;
    }
}

static void stop_now(uv_timer_t *t)
{
    kn_git_fetch_stop(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

/* Run one fetch to its end on a loop of its own; stop it after stop_ms when > 0. */
static void run(const char *exe, const char *url, long long timeout_ms, long long stall_ms,
                long long stop_ms, struct result *r)
{
    uv_loop_t loop;
    uv_timer_t stopper;
    struct kn_git_fetch *fetch = NULL;
    struct kn_error err;
    struct kn_git_fetch_opts opts = {
        .exe = exe,
        .mirror_path = "/nonexistent/mirror.git",
        .url = url,
        .branch = "main",
        .timeout_ms = timeout_ms,
        .stall_timeout_ms = stall_ms,
    };

    memset(r, 0, sizeof(*r));
    uv_loop_init(&loop);
    assert_int_equal(kn_git_fetch_start(&fetch, &loop, &opts, on_fetched, r, &err), 0);
    if (stop_ms > 0) {
        uv_timer_init(&loop, &stopper);
        stopper.data = fetch;
        uv_timer_start(&stopper, stop_now, (uint64_t)stop_ms, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r->called, 1);
}

static void test_real_fetch(void **state)
{
    struct fixture *f = *state;
    const char *bin = getenv("KANARIA_BIN");
    char *upstream = kn_asprintf("%s/upstream", f->root);
    char *url = kn_asprintf("file://%s", upstream);
    char *mirror = kn_asprintf("%s/mirror.git", f->root);
    git_repository *repo = NULL;
    struct kn_error err;
    git_oid want;
    char hex[GIT_OID_HEXSZ + 1];
    uv_loop_t loop;
    struct kn_git_fetch *fetch = NULL;
    struct result r;
    struct kn_git_fetch_opts opts = {
        .exe = bin,
        .mirror_path = mirror,
        .url = url,
        .branch = "main",
        .timeout_ms = 60000,
        .stall_timeout_ms = 30000,
    };

    assert_non_null(bin);
    kn_test_write(f->root, "upstream/app.yaml", "name: web\n");
    kn_test_git(upstream, "init -q -b main");
    kn_test_git(upstream, "add -A");
    kn_test_git(upstream, "commit -q -m first");
    assert_int_equal(kn_git_open(&repo, upstream, &err), 0);
    assert_int_equal(kn_git_resolve(repo, "main", &want, &err), 0);
    git_repository_free(repo);
    git_oid_tostr(hex, sizeof(hex), &want);

    memset(&r, 0, sizeof(r));
    uv_loop_init(&loop);
    assert_int_equal(kn_git_fetch_start(&fetch, &loop, &opts, on_fetched, &r, &err), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.called, 1);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.head, hex);

    /* the child's own error comes back as it said it */
    opts.branch = "nope";
    memset(&r, 0, sizeof(r));
    uv_loop_init(&loop);
    assert_int_equal(kn_git_fetch_start(&fetch, &loop, &opts, on_fetched, &r, &err), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.rc, KN_EIO);
    assert_non_null(strstr(r.err.msg, "branch 'nope' not found"));

    free(mirror);
    free(url);
    free(upstream);
}

static void test_silent_child_is_killed_at_the_stall_timeout(void **state)
{
    struct fixture *f = *state;
    char *exe = script(f, "silent", "exec sleep 30\n");
    struct result r;

    run(exe, URL, 60000, 300, 0, &r);
    assert_int_equal(r.rc, KN_EIO);
    assert_string_equal(r.err.msg, "fetching " URL ": no data from the remote for 300ms "
                                   "(fetchStallTimeout), stopped");
    assert_true(script_gone(f, "silent"));
    free(exe);
}

static void test_progress_keeps_a_fetch_alive(void **state)
{
    struct fixture *f = *state;
    char *exe = script(f, "slow",
                       "cat >/dev/null\n"
                       "i=0; while [ $i -lt 30 ]; do echo '{\"progress\":1}'; sleep 0.1; "
                       "i=$((i + 1)); done\n"
                       "echo '{\"head\":\"0123456789abcdef0123456789abcdef01234567\"}'\n");
    struct result r;

    /* 3s in all, longer than the stall timeout, but never 2s without progress */
    run(exe, URL, 60000, 2000, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.head, "0123456789abcdef0123456789abcdef01234567");
    free(exe);
}

static void test_whole_fetch_timeout(void **state)
{
    struct fixture *f = *state;
    char *exe = script(f, "endless", "while :; do echo '{\"progress\":1}'; sleep 0.1; done\n");
    struct result r;

    run(exe, URL, 700, 5000, 0, &r);
    assert_int_equal(r.rc, KN_EIO);
    assert_string_equal(r.err.msg, "fetching " URL ": not done after 700ms (fetchTimeout), "
                                   "stopped");
    assert_true(script_gone(f, "endless"));
    free(exe);
}

static void test_child_dies_without_result(void **state)
{
    struct fixture *f = *state;
    char *exe = script(f, "dies", "exit 3\n");
    struct result r;

    run(exe, URL, 60000, 30000, 0, &r);
    assert_int_equal(r.rc, KN_EIO);
    assert_string_equal(r.err.msg,
                        "fetching " URL ": the fetch process ended with status 3 and no result");
    free(exe);
}

static void test_stop_and_no_credentials_in_messages(void **state)
{
    struct fixture *f = *state;
    char *exe = script(f, "stopped", "exec sleep 30\n");
    struct result r;

    run(exe, "https://bot:s3cr3t@127.0.0.1:9/deploy.git", 60000, 30000, 100, &r);
    assert_int_equal(r.rc, KN_EIO);
    assert_string_equal(r.err.msg, "fetching https://127.0.0.1:9/deploy.git: stopped");
    assert_true(script_gone(f, "stopped"));
    free(exe);
}

static void test_cannot_start(void **state)
{
    struct fixture *f = *state;
    char *exe = kn_asprintf("%s/no-such-binary", f->root);
    struct kn_git_fetch *fetch = NULL;
    struct kn_error err;
    struct result r;
    uv_loop_t loop;
    struct kn_git_fetch_opts opts = {
        .exe = exe,
        .mirror_path = "/nonexistent/mirror.git",
        .url = URL,
        .branch = "main",
        .timeout_ms = 1000,
        .stall_timeout_ms = 1000,
    };

    memset(&r, 0, sizeof(r));
    kn_error_clear(&err);
    uv_loop_init(&loop);
    assert_int_equal(kn_git_fetch_start(&fetch, &loop, &opts, on_fetched, &r, &err), KN_EIO);
    assert_non_null(strstr(err.msg, "cannot start"));
    assert_null(fetch);
    uv_run(&loop, UV_RUN_DEFAULT); /* closes what was opened */
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.called, 0); /* a start that fails never calls back */
    free(exe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_child_is_killed_at_the_stall_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_progress_keeps_a_fetch_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_fetch_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_dies_without_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_and_no_credentials_in_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cannot_start, setup, teardown),
    };

    kn_git_global_init();
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
