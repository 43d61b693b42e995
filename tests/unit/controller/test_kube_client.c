/*
 * Unit tests for the Kubernetes API client (controller/platforms/kubernetes/kube.h:
 * kubeconfig.c, client.c, watch.c) against the tests' small HTTP server (testsrv.h) on the same
 * libuv loop, answering what each test scripts: kubeconfigs and their located errors, tokens
 * read at each request, exec plugins (shell scripts printing an ExecCredential), the
 * apiserver's Status errors, retries, the rate limit, discovery and informers.
 */
#include "testutil.h"
#include "testsrv.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "platforms/kubernetes/kube.h"

#define MAX_REQS 64
#define WAIT_MS  15000

struct fx;
typedef void (*answer_fn)(struct fx *f, struct kn_testsrv_conn *c,
                          const struct kn_testsrv_request *req, int n);

struct seen {
    char *method;
    char *target;
    char *auth;
    char *ctype;
    char *body;
};

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct kn_http_client *http;
    struct kn_kube *kube;
    char *dir;
    char *state;
    char *kubeconfig;
    answer_fn answer;
    struct seen reqs[MAX_REQS];
    int nreqs;
    int timed_out;
    void *ctx; /* a test's own state */
};

/* What one request's callback saw. */
struct got {
    int calls;
    int status;
    int http_status;
    int attempts;
    char *reason;
    char *message;
    char *warning;
    json_t *reply;
};

static char *dup_or_null(const char *s)
{
    return s ? kn_strdup(s) : NULL;
}

static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req, void *data)
{
    struct fx *f = data;
    int n = f->nreqs;

    assert_true(n < MAX_REQS);
    f->reqs[n].method = kn_strdup(req->method);
    f->reqs[n].target = kn_strdup(req->target);
    f->reqs[n].auth = kn_testsrv_header(req->head, "Authorization");
    f->reqs[n].ctype = kn_testsrv_header(req->head, "Content-Type");
    f->reqs[n].body = kn_strndup(req->body ? req->body : "", req->body_len);
    f->nreqs++;
    if (f->answer) {
        f->answer(f, c, req, n);
    } else {
        kn_testsrv_reply(c, 200, "", "{}", 2, 0);
    }
}

static void reply_json(struct kn_testsrv_conn *c, int status, const char *extra, const char *json)
{
    kn_testsrv_reply(c, status, extra, json, strlen(json), 0);
}

static void reply_status(struct kn_testsrv_conn *c, int code, const char *reason,
                         const char *message)
{
    char *body = kn_asprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                             "\"status\":\"Failure\",\"message\":\"%s\",\"reason\":\"%s\","
                             "\"code\":%d}",
                             message, reason, code);
    reply_json(c, code, "Content-Type: application/json\r\n", body);
    free(body);
}

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, f);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    f->dir = kn_test_tmpdir();
    f->state = kn_asprintf("%s/state", f->dir);
    f->kubeconfig = kn_asprintf("%s/kubeconfig", f->dir);
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    *state = f;
    return 0;
}

static void drain(uv_loop_t *loop)
{
    while (uv_run(loop, UV_RUN_DEFAULT) != 0) {
    }
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_kube_free(f->kube);
    kn_http_client_close(f->http);
    kn_testsrv_stop(&f->srv);
    drain(&f->loop);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < f->nreqs; i++) {
        free(f->reqs[i].method);
        free(f->reqs[i].target);
        free(f->reqs[i].auth);
        free(f->reqs[i].ctype);
        free(f->reqs[i].body);
    }
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f->state);
    free(f->kubeconfig);
    free(f);
    return 0;
}

static void on_wait_timeout(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->timed_out = 1;
}

/* Run the loop until *counter reaches want; fails the test after WAIT_MS. */
static void wait_for(struct fx *f, const int *counter, int want)
{
    uv_timer_t t;

    f->timed_out = 0;
    uv_timer_init(&f->loop, &t);
    t.data = f;
    uv_timer_start(&t, on_wait_timeout, WAIT_MS, 0);
    while (*counter < want && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (f->timed_out) {
        fail_msg("waited %d ms for %d, got %d (%d requests)", WAIT_MS, want, *counter, f->nreqs);
    }
}

/* Run the loop for ms (to see that nothing more happens). */
static void run_for(struct fx *f, uint64_t ms)
{
    int never = 0;
    uv_timer_t t;

    f->timed_out = 0;
    uv_timer_init(&f->loop, &t);
    t.data = f;
    uv_timer_start(&t, on_wait_timeout, ms, 0);
    while (!never && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* A kubeconfig for the test server with `user` (YAML lines under "- name: u\n  user:\n"). */
static void write_kubeconfig(struct fx *f, const char *user)
{
    char *text = kn_asprintf("apiVersion: v1\n"
                             "kind: Config\n"
                             "current-context: test\n"
                             "clusters:\n"
                             "- name: local\n"
                             "  cluster:\n"
                             "    server: http://127.0.0.1:%d/\n"
                             "contexts:\n"
                             "- name: test\n"
                             "  context:\n"
                             "    cluster: local\n"
                             "    user: u\n"
                             "    namespace: shop\n"
                             "users:\n"
                             "- name: u\n"
                             "  user:\n"
                             "%s",
                             f->srv.port, user);
    kn_test_write(f->dir, "kubeconfig", text);
    free(text);
}

static void new_kube(struct fx *f, long long qps)
{
    struct kn_kube_config cfg;
    struct kn_error err;

    memset(&cfg, 0, sizeof(cfg));
    cfg.kubeconfig = f->kubeconfig;
    cfg.qps = qps;
    kn_error_clear(&err);
    if (kn_kube_new(&f->kube, &f->loop, f->http, &cfg, f->state, &err) != 0) {
        fail_msg("kn_kube_new: %s", err.msg);
    }
}

static void on_result(const struct kn_kube_result *r, void *data)
{
    struct got *g = data;

    g->calls++;
    g->status = r->status;
    g->http_status = r->http_status;
    g->attempts = r->attempts;
    g->reason = dup_or_null(r->reason);
    g->message = dup_or_null(r->message);
    g->warning = dup_or_null(r->warning);
    g->reply = r->reply ? json_incref((json_t *)(uintptr_t)r->reply) : NULL;
    assert_true((r->status == 0) == (r->message == NULL));
}

static void got_release(struct got *g)
{
    free(g->reason);
    free(g->message);
    free(g->warning);
    json_decref(g->reply);
    memset(g, 0, sizeof(*g));
}

static void request(struct fx *f, const char *method, const char *path, const json_t *body,
                    long long timeout_ms, struct got *g)
{
    struct kn_kube_req req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = path;
    req.body = body;
    req.content_type = body ? "application/apply-patch+yaml" : NULL;
    req.timeout_ms = timeout_ms;
    assert_int_equal(kn_kube_request(NULL, f->kube, &req, on_result, g), 0);
    assert_int_equal(g->calls, 0); /* never from inside the call */
}

static void get(struct fx *f, const char *path, struct got *g)
{
    request(f, NULL, path, NULL, 0, g);
    wait_for(f, &g->calls, 1);
}

/* ---- kubeconfig ------------------------------------------------------------------------------ */

static void test_kubeconfig_token_and_namespace(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    json_t *body = json_pack("{s:s}", "kind", "Deployment");

    write_kubeconfig(f, "    token: s3cret-token\n");
    new_kube(f, 0);
    assert_int_equal(f->nreqs, 0); /* nothing is sent before the first request */
    char *want = kn_asprintf("http://127.0.0.1:%d", f->srv.port);
    assert_string_equal(kn_kube_server(f->kube), want);
    free(want);
    assert_string_equal(kn_kube_namespace(f->kube), "shop");

    request(f, "PATCH", "/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=kanaria", body,
            0, &g);
    wait_for(f, &g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.http_status, 200);
    assert_int_equal(g.attempts, 1);
    assert_non_null(g.reply);
    assert_string_equal(f->reqs[0].method, "PATCH");
    assert_string_equal(f->reqs[0].target,
                        "/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=kanaria");
    assert_string_equal(f->reqs[0].auth, "Bearer s3cret-token");
    assert_string_equal(f->reqs[0].ctype, "application/apply-patch+yaml");
    assert_string_equal(f->reqs[0].body, "{\"kind\":\"Deployment\"}");
    json_decref(body);
    got_release(&g);
}

static void test_kubeconfig_context_and_token_file(void **state)
{
    struct fx *f = *state;
    struct kn_kube_config cfg;
    struct kn_error err;
    struct got g = {0};
    char *text = kn_asprintf("current-context: a\n"
                             "clusters:\n"
                             "- name: c\n"
                             "  cluster: {server: 'http://127.0.0.1:%d'}\n"
                             "contexts:\n"
                             "- {name: a, context: {cluster: c, user: none}}\n"
                             "- {name: b, context: {cluster: c, user: filed}}\n"
                             "users:\n"
                             "- {name: none, user: {}}\n"
                             "- name: filed\n"
                             "  user:\n"
                             "    tokenFile: tok\n",
                             f->srv.port);

    kn_test_write(f->dir, "kubeconfig", text);
    kn_test_write(f->dir, "tok", "first\n");
    memset(&cfg, 0, sizeof(cfg));
    cfg.kubeconfig = f->kubeconfig;
    char ctx_b[] = "b";
    cfg.context = ctx_b;
    assert_int_equal(kn_kube_new(&f->kube, &f->loop, f->http, &cfg, f->state, &err), 0);
    assert_string_equal(kn_kube_namespace(f->kube), "default");
    get(f, "/api/v1/namespaces/default/pods", &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(f->reqs[0].auth, "Bearer first");
    got_release(&g);

    /* the file is read at each request: a rotated token is used at once */
    kn_test_write(f->dir, "tok", "second\n");
    get(f, "/api/v1/namespaces/default/pods", &g);
    assert_string_equal(f->reqs[1].auth, "Bearer second");
    got_release(&g);

    /* gone: a credentials error that names the file, never a token */
    char *tok = kn_asprintf("%s/tok", f->dir);
    unlink(tok);
    get(f, "/api/v1/namespaces/default/pods", &g);
    assert_int_equal(g.status, KN_EINVAL);
    assert_non_null(strstr(g.message, tok));
    assert_int_equal(f->nreqs, 2);
    free(tok);
    got_release(&g);
    free(text);
}

/* kn_kube_new on `text` must fail with code at line:col and a message holding `want`. */
static void expect_error(struct fx *f, const char *text, int code, unsigned line, unsigned col,
                         const char *want)
{
    struct kn_kube_config cfg;
    struct kn_kube *k = NULL;
    struct kn_error err;

    kn_test_write(f->dir, "kubeconfig", text);
    memset(&cfg, 0, sizeof(cfg));
    cfg.kubeconfig = f->kubeconfig;
    kn_error_clear(&err);
    assert_int_equal(kn_kube_new(&k, &f->loop, f->http, &cfg, f->state, &err), code);
    assert_null(k);
    if (!strstr(err.msg, want)) {
        fail_msg("message '%s' lacks '%s'", err.msg, want);
    }
    if (line) {
        assert_string_equal(err.file_buf, f->kubeconfig);
        if (err.line != line || err.col != col) {
            fail_msg("'%s' at %u:%u, not %u:%u", err.msg, err.line, err.col, line, col);
        }
    }
}

static void test_kubeconfig_errors(void **state)
{
    struct fx *f = *state;
    struct kn_kube_config cfg;
    struct kn_kube *k = NULL;
    struct kn_error err;
    const char *head = "clusters:\n"
                       "- name: c\n"
                       "  cluster:\n"
                       "    server: https://127.0.0.1:6443\n"
                       "contexts:\n"
                       "- name: a\n"
                       "  context: {cluster: c, user: u}\n";
    char *t;

    /* no such file */
    memset(&cfg, 0, sizeof(cfg));
    char nowhere[] = "/nonexistent/kubeconfig";
    cfg.kubeconfig = nowhere;
    assert_int_equal(kn_kube_new(&k, &f->loop, f->http, &cfg, f->state, &err), KN_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/kubeconfig"));

    expect_error(f, "clusters: [\n", KN_EPARSE, 2, 1, "");
    expect_error(f, "- a\n", KN_EPARSE, 1, 1, "must be a map");
    t = kn_asprintf("%scurrent-context: nope\n", head);
    expect_error(f, t, KN_EINVAL, 8, 18, "no context 'nope' in the kubeconfig (contexts: a)");
    free(t);
    t = kn_asprintf("%scurrent-context: a\n", head);
    expect_error(f, t, KN_EINVAL, 7, 31, "no user 'u' in the kubeconfig (users: none)");
    free(t);
    t = kn_asprintf("%scurrent-context: a\nusers:\n- name: u\n  user:\n"
                    "    client-certificate-data: 'not base64!'\n"
                    "    client-key-data: aGVsbG8=\n",
                    head);
    expect_error(f, t, KN_EPARSE, 12, 30, "'client-certificate-data' is not base64");
    free(t);
    t = kn_asprintf("%scurrent-context: a\nusers:\n- name: u\n  user:\n"
                    "    client-certificate: a.crt\n",
                    head);
    expect_error(f, t, KN_EPARSE, 12, 5, "needs its key");
    free(t);
    expect_error(f,
                 "current-context: a\n"
                 "clusters:\n"
                 "- name: c\n"
                 "  cluster:\n"
                 "    server: https://127.0.0.1:6443\n"
                 "    tls-server-name: kubernetes\n"
                 "contexts:\n"
                 "- {name: a, context: {cluster: c}}\n",
                 KN_EUNSUPPORTED, 6, 5, "'tls-server-name' is not supported");
    expect_error(f,
                 "current-context: a\n"
                 "clusters:\n"
                 "- name: c\n"
                 "  cluster:\n"
                 "    server: https://127.0.0.1:6443\n"
                 "    insecure-skip-tls-verify: true\n"
                 "contexts:\n"
                 "- {name: a, context: {cluster: c}}\n",
                 KN_EUNSUPPORTED, 6, 5, "'insecure-skip-tls-verify' is not supported");
    expect_error(f,
                 "current-context: a\n"
                 "clusters:\n"
                 "- name: c\n"
                 "  cluster: {server: 'ftp://x'}\n"
                 "contexts:\n"
                 "- {name: a, context: {cluster: c}}\n",
                 KN_EPARSE, 4, 21, "'server' must be an http:// or https:// URL");
    t = kn_asprintf("%scurrent-context: a\nusers:\n- name: u\n  user:\n"
                    "    exec:\n"
                    "      apiVersion: client.authentication.k8s.io/v1\n"
                    "      command: gke-gcloud-auth-plugin\n"
                    "      interactiveMode: Always\n",
                    head);
    expect_error(f, t, KN_EUNSUPPORTED, 15, 24, "must be Never or IfAvailable");
    free(t);
    t = kn_asprintf("%scurrent-context: a\nusers:\n- name: u\n  user:\n"
                    "    exec:\n"
                    "      apiVersion: client.authentication.k8s.io/v1\n"
                    "      command: aws\n",
                    head);
    expect_error(f, t, KN_EPARSE, 13, 7, "'interactiveMode' is required");
    free(t);
    t = kn_asprintf("%scurrent-context: a\nusers:\n- name: u\n  user:\n"
                    "    exec:\n"
                    "      apiVersion: client.authentication.k8s.io/v1alpha1\n"
                    "      command: aws\n",
                    head);
    expect_error(f, t, KN_EPARSE, 13, 19, "must be client.authentication.k8s.io/v1");
    free(t);
    expect_error(f, "clusters: []\n", KN_EINVAL, 1, 1, "no current-context");
}

static char *read_file(const char *path, mode_t *mode)
{
    struct stat st;
    FILE *fp = fopen(path, "rb");
    char *buf;
    size_t n;

    assert_non_null(fp);
    assert_int_equal(fstat(fileno(fp), &st), 0);
    *mode = st.st_mode & 07777;
    buf = kn_malloc((size_t)st.st_size + 1);
    n = fread(buf, 1, (size_t)st.st_size, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_kubeconfig_data_files(void **state)
{
    struct fx *f = *state;
    char *path, *s;
    mode_t mode;
    char *text = kn_asprintf("current-context: a\n"
                             "clusters:\n"
                             "- name: c\n"
                             "  cluster:\n"
                             "    server: https://127.0.0.1:6443\n"
                             "    certificate-authority-data: Q0EgUEVN\n" /* CA PEM */
                             "contexts:\n"
                             "- {name: a, context: {cluster: c, user: u}}\n"
                             "users:\n"
                             "- name: u\n"
                             "  user:\n"
                             "    client-certificate-data: |\n"
                             "      Q0VSVCBQ\n"
                             "      RU0=\n"                /* CERT PEM, folded */
                             "    client-key-data: S0VZ\n" /* KEY */
                             "    insecure-skip-tls-verify: false\n");

    kn_test_write(f->dir, "kubeconfig", text);
    new_kube(f, 0);
    assert_string_equal(kn_kube_server(f->kube), "https://127.0.0.1:6443");
    const char *names[] = {"ca.crt", "client.crt", "client.key"};
    const char *want[] = {"CA PEM", "CERT PEM", "KEY"};
    for (int i = 0; i < 3; i++) {
        path = kn_asprintf("%s/%s", f->state, names[i]);
        s = read_file(path, &mode);
        assert_string_equal(s, want[i]);
        assert_int_equal(mode, 0600);
        free(s);
        free(path);
    }
    /* the state dir itself is private */
    struct stat st;
    assert_int_equal(stat(f->state, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    free(text);
}

static void test_in_cluster(void **state)
{
    struct fx *f = *state;
    struct kn_error err;
    char *sa = kn_asprintf("%s/sa", f->dir);
    char *want;

    kn_test_write(f->dir, "sa/token", "pod-token\n");
    kn_test_write(f->dir, "sa/namespace", "kanaria-system\n");
    kn_test_write(f->dir, "sa/ca.crt", "CA\n");
    setenv("KANARIA_KUBE_SA_DIR", sa, 1);
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    setenv("HOME", f->dir, 1); /* no ~/.kube/config may win */
    assert_int_equal(kn_kube_new(&f->kube, &f->loop, f->http, NULL, f->state, &err), 0);
    assert_string_equal(kn_kube_server(f->kube), "https://127.0.0.1:6443");
    assert_string_equal(kn_kube_namespace(f->kube), "kanaria-system");
    kn_kube_free(f->kube);
    f->kube = NULL;

    /* IPv6 is bracketed; without a namespace file, "default" */
    kn_test_write(f->dir, "sa/namespace", "");
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(kn_kube_new(&f->kube, &f->loop, f->http, NULL, f->state, &err), 0);
    assert_string_equal(kn_kube_server(f->kube), "https://[fd00::1]:6443");
    assert_string_equal(kn_kube_namespace(f->kube), "default");
    kn_kube_free(f->kube);
    f->kube = NULL;

    /* $KUBECONFIG wins over the in-cluster files */
    write_kubeconfig(f, "    token: t\n");
    want = kn_asprintf("%s:/elsewhere", f->kubeconfig);
    setenv("KUBECONFIG", want, 1);
    assert_int_equal(kn_kube_new(&f->kube, &f->loop, f->http, NULL, f->state, &err), 0);
    assert_string_equal(kn_kube_namespace(f->kube), "shop");
    free(want);

    /* no token file: refused at once */
    kn_kube_free(f->kube);
    f->kube = NULL;
    unsetenv("KUBECONFIG");
    want = kn_asprintf("%s/token", sa);
    unlink(want);
    assert_int_equal(kn_kube_new(&f->kube, &f->loop, f->http, NULL, f->state, &err), KN_ENOENT);
    assert_non_null(strstr(err.msg, want));
    free(want);

    unsetenv("KANARIA_KUBE_SA_DIR");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    free(sa);
}

/* ---- exec plugins ---------------------------------------------------------------------------- */

/* A plugin that counts its runs in DIR/runs, keeps its KUBERNETES_EXEC_INFO in DIR/info and
 * prints the token exec-RUN, expiring at `expiry`. */
static void write_plugin(struct fx *f, const char *expiry)
{
    char *script = kn_asprintf("#!/bin/sh\n"
                               "n=$(cat \"%s/runs\" 2>/dev/null || echo 0)\n"
                               "n=$((n + 1))\n"
                               "echo $n > \"%s/runs\"\n"
                               "printf '%%s' \"$KUBERNETES_EXEC_INFO\" > \"%s/info\"\n"
                               "echo \"$PLUGIN_GREETING $1\" > \"%s/args\"\n"
                               "if [ \"$FAIL\" = 1 ]; then echo 'no credentials here' >&2; "
                               "exit 3; fi\n"
                               "cat <<EOF\n"
                               "{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                               "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"exec-$n\","
                               "\"expirationTimestamp\":\"%s\"}}\n"
                               "EOF\n",
                               f->dir, f->dir, f->dir, f->dir, expiry);
    char *path = kn_asprintf("%s/plugin.sh", f->dir);
    kn_test_write(f->dir, "plugin.sh", script);
    assert_int_equal(chmod(path, 0700), 0);
    free(path);
    free(script);
}

static int plugin_runs(struct fx *f)
{
    char *path = kn_asprintf("%s/runs", f->dir);
    FILE *fp = fopen(path, "r");
    int n = 0;

    if (fp) {
        assert_int_equal(fscanf(fp, "%d", &n), 1);
        fclose(fp);
    }
    free(path);
    return n;
}

static const char *exec_user = "    exec:\n"
                               "      apiVersion: client.authentication.k8s.io/v1\n"
                               "      command: ./plugin.sh\n"
                               "      args: [hello]\n"
                               "      env: [{name: PLUGIN_GREETING, value: hi}]\n"
                               "      interactiveMode: Never\n"
                               "      provideClusterInfo: true\n";

/* 401 for the token exec-1, else 200. */
static void answer_401_first(struct fx *f, struct kn_testsrv_conn *c,
                             const struct kn_testsrv_request *req, int n)
{
    (void)req;
    if (strcmp(f->reqs[n].auth, "Bearer exec-1") == 0) {
        reply_status(c, 401, "Unauthorized", "Unauthorized");
    } else {
        reply_json(c, 200, "", "{}");
    }
}

static void test_exec_plugin_cached_and_rerun_on_401(void **state)
{
    struct fx *f = *state;
    struct got g = {0}, h = {0};
    mode_t mode;
    char *path, *s;

    write_plugin(f, "2999-01-01T00:00:00Z");
    write_kubeconfig(f, exec_user);
    new_kube(f, 0);
    assert_int_equal(plugin_runs(f), 0); /* not before the first request */

    /* two requests at once: one run, both with its token */
    request(f, NULL, "/api/v1/namespaces/shop/pods", NULL, 0, &g);
    request(f, NULL, "/api/v1/namespaces/shop/services", NULL, 0, &h);
    wait_for(f, &g.calls, 1);
    wait_for(f, &h.calls, 1);
    assert_int_equal(plugin_runs(f), 1);
    assert_string_equal(f->reqs[0].auth, "Bearer exec-1");
    assert_string_equal(f->reqs[1].auth, "Bearer exec-1");
    got_release(&g);
    got_release(&h);

    /* what the plugin was told: v1, not interactive, the cluster; its args and env */
    path = kn_asprintf("%s/info", f->dir);
    s = read_file(path, &mode);
    json_t *info = json_loads(s, 0, NULL);
    assert_non_null(info);
    assert_string_equal(json_string_value(json_object_get(info, "apiVersion")),
                        "client.authentication.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(info, "kind")), "ExecCredential");
    assert_true(json_is_false(json_object_get(json_object_get(info, "spec"), "interactive")));
    char *server = kn_asprintf("http://127.0.0.1:%d", f->srv.port);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(info, "spec"), "cluster"), "server")),
                        server);
    free(server);
    json_decref(info);
    free(s);
    free(path);
    path = kn_asprintf("%s/args", f->dir);
    s = read_file(path, &mode);
    assert_string_equal(s, "hi hello\n");
    free(s);
    free(path);

    /* the cached token is refused: the plugin runs once more and the request goes through */
    f->answer = answer_401_first;
    get(f, "/api/v1/namespaces/shop/pods", &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(plugin_runs(f), 2);
    assert_string_equal(f->reqs[2].auth, "Bearer exec-1");
    assert_string_equal(f->reqs[3].auth, "Bearer exec-2");
    got_release(&g);
}

static void answer_always_401(struct fx *f, struct kn_testsrv_conn *c,
                              const struct kn_testsrv_request *req, int n)
{
    (void)f;
    (void)req;
    (void)n;
    reply_status(c, 401, "Unauthorized", "Unauthorized");
}

static void test_exec_plugin_expired_and_failing(void **state)
{
    struct fx *f = *state;
    struct got g = {0};

    /* an expired credential is not kept: every request runs the plugin */
    write_plugin(f, "2001-01-01T00:00:00.5+01:00");
    write_kubeconfig(f, exec_user);
    new_kube(f, 0);
    get(f, "/api/v1/pods", &g);
    got_release(&g);
    get(f, "/api/v1/pods", &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(plugin_runs(f), 2);
    assert_string_equal(f->reqs[1].auth, "Bearer exec-2");
    got_release(&g);

    /* 401 twice: one rerun only, then the refusal */
    f->answer = answer_always_401;
    get(f, "/api/v1/pods", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.http_status, 401);
    assert_string_equal(g.reason, "Unauthorized");
    assert_int_equal(g.attempts, 2);
    got_release(&g);

    /* a failing plugin: its exit status and first line of stderr, no request sent */
    kn_kube_free(f->kube);
    f->kube = NULL;
    setenv("FAIL", "1", 1);
    write_kubeconfig(f, exec_user);
    new_kube(f, 0);
    int before = f->nreqs;
    get(f, "/api/v1/pods", &g);
    unsetenv("FAIL");
    assert_int_equal(g.status, KN_EINVAL);
    assert_non_null(strstr(g.message, "exit status 3"));
    assert_non_null(strstr(g.message, "no credentials here"));
    assert_int_equal(f->nreqs, before);
    got_release(&g);
}

/* ---- errors, retries, rate limit ------------------------------------------------------------- */

static void answer_errors(struct fx *f, struct kn_testsrv_conn *c,
                          const struct kn_testsrv_request *req, int n)
{
    const char *t = req->target;

    (void)f;
    (void)n;
    if (strstr(t, "/deployments/missing")) {
        reply_status(c, 404, "NotFound", "deployments.apps \\\"missing\\\" not found");
    } else if (strstr(t, "/leases")) {
        reply_status(c, 409, "AlreadyExists",
                     "leases.coordination.k8s.io \\\"x\\\" already exists");
    } else if (strstr(t, "/deployments/conflict")) {
        reply_status(c, 409, "Conflict", "Apply failed with 1 conflict: conflict with \\\"a\\\"");
    } else if (strstr(t, "/apis/example.com/")) {
        kn_testsrv_reply(c, 404, "Content-Type: text/plain; charset=utf-8\r\n",
                         "404 page not found\n", 19, 0);
    } else if (strstr(t, "/warned")) {
        reply_json(c, 200,
                   "Warning: 299 - \"unknown field \\\"spec.replica\\\"\"\r\n"
                   "Warning: 299 - \"second\"\r\n",
                   "{\"kind\":\"Deployment\"}");
    } else if (strstr(t, "/notjson")) {
        reply_json(c, 200, "", "<html>");
    } else if (strstr(t, "/html500")) {
        reply_json(c, 500, "", "upstream broke\nmore");
    } else {
        reply_json(c, 200, "", "");
    }
}

static void test_status_errors(void **state)
{
    struct fx *f = *state;
    struct got g = {0};

    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    f->answer = answer_errors;

    get(f, "/apis/apps/v1/namespaces/shop/deployments/missing", &g);
    assert_int_equal(g.status, KN_ENOTFOUND);
    assert_int_equal(g.http_status, 404);
    assert_string_equal(g.reason, "NotFound");
    assert_string_equal(g.message, "deployments.apps \"missing\" not found");
    assert_null(g.reply);
    got_release(&g);

    json_t *empty = json_object();
    request(f, "POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", empty, 0, &g);
    json_decref(empty);
    wait_for(f, &g.calls, 1);
    assert_int_equal(g.status, KN_EEXISTS);
    assert_string_equal(g.reason, "AlreadyExists");
    got_release(&g);

    get(f, "/apis/apps/v1/namespaces/shop/deployments/conflict", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.http_status, 409);
    assert_string_equal(g.reason, "Conflict");
    assert_string_equal(g.message, "Apply failed with 1 conflict: conflict with \"a\"");
    got_release(&g);

    get(f, "/apis/example.com/v1/namespaces/shop/widgets?limit=500", &g);
    assert_int_equal(g.status, KN_ENOTFOUND);
    assert_null(g.reason);
    assert_string_equal(g.message, "the server has no resource at "
                                   "/apis/example.com/v1/namespaces/shop/widgets (404 page "
                                   "not found)");
    got_release(&g);

    get(f, "/apis/apps/v1/warned", &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.warning, "unknown field \"spec.replica\"; second");
    got_release(&g);

    get(f, "/apis/apps/v1/notjson", &g);
    assert_int_equal(g.status, KN_EPARSE);
    got_release(&g);

    get(f, "/apis/apps/v1/html500", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_null(g.reason);
    assert_string_equal(g.message, "HTTP 500 from GET /apis/apps/v1/html500: upstream broke");
    assert_int_equal(g.attempts, 1); /* no Retry-After: not retried */
    got_release(&g);

    get(f, "/api/v1/namespaces/shop/pods/empty", &g);
    assert_int_equal(g.status, 0);
    assert_null(g.reply);
    got_release(&g);

    /* no path: refused, no callback */
    struct kn_kube_req req = {0};
    assert_int_equal(kn_kube_request(NULL, f->kube, &req, on_result, &g), KN_EINVAL);
}

/* 429 twice with Retry-After: 1 (then 200); /busy always 503 with Retry-After. */
static void answer_retry(struct fx *f, struct kn_testsrv_conn *c,
                         const struct kn_testsrv_request *req, int n)
{
    (void)f;
    if (strstr(req->target, "/busy")) {
        reply_status(c, 503, "ServiceUnavailable", "busy");
    } else if (n < 2) {
        kn_testsrv_reply(c, 429, "Retry-After: 1\r\nContent-Type: application/json\r\n",
                         "{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"message\":\"slow "
                         "down\",\"code\":429}",
                         strlen("{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"message\":"
                                "\"slow down\",\"code\":429}"),
                         0);
    } else {
        reply_json(c, 200, "", "{\"ok\":true}");
    }
}

static void test_retries(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    int port;

    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    f->answer = answer_retry;
    get(f, "/api/v1/namespaces/shop/pods", &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(f->nreqs, 3);
    assert_true(json_is_true(json_object_get(g.reply, "ok")));
    got_release(&g);

    /* a 503 without Retry-After is not retried */
    get(f, "/api/v1/busy", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.message, "busy");
    got_release(&g);

    /* a server that is not there: three attempts (0.2 s, 0.4 s apart), then the refusal */
    port = f->srv.port;
    kn_testsrv_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    get(f, "/api/v1/pods", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 3);
    char *want = kn_asprintf("connection refused (GET http://127.0.0.1:%d/api/v1/pods, 3 "
                             "attempts)",
                             port);
    assert_string_equal(g.message, want);
    free(want);
    got_release(&g);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, f); /* for teardown */
}

static void test_retry_after_bounded_by_timeout(void **state)
{
    struct fx *f = *state;
    struct got g = {0};

    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    f->answer = answer_retry;
    /* a wait longer than the time left is not taken: the 429 is the answer */
    request(f, NULL, "/api/v1/pods", NULL, 500, &g);
    wait_for(f, &g.calls, 1);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.http_status, 429);
    assert_string_equal(g.reason, "TooManyRequests");
    assert_int_equal(f->nreqs, 1);
    got_release(&g);
}

static void test_rate_limit(void **state)
{
    struct fx *f = *state;
    struct got g[5];

    memset(g, 0, sizeof(g));
    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 1); /* 1 per second, burst 2 */
    /* the burst goes at once; the others wait a second per token, longer than they may */
    for (int i = 0; i < 5; i++) {
        request(f, NULL, "/api/v1/pods", NULL, 300, &g[i]);
    }
    for (int i = 0; i < 5; i++) {
        wait_for(f, &g[i].calls, 1);
    }
    assert_int_equal(f->nreqs, 2);
    int ok = 0, late = 0;
    for (int i = 0; i < 5; i++) {
        ok += g[i].status == 0;
        if (g[i].status == KN_ETIMEDOUT) {
            late++;
            assert_non_null(strstr(g[i].message, "rate limit"));
        }
        got_release(&g[i]);
    }
    assert_int_equal(ok, 2);
    assert_int_equal(late, 3);

    /* with time to wait, every request goes, in order */
    for (int i = 0; i < 3; i++) {
        request(f, NULL, "/api/v1/pods", NULL, 10000, &g[i]);
    }
    for (int i = 0; i < 3; i++) {
        wait_for(f, &g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        got_release(&g[i]);
    }
    assert_int_equal(f->nreqs, 5);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct kn_kube_call *call = NULL;
    struct kn_kube_req req = {0};
    struct got g = {0}, h = {0};

    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    req.path = "/api/v1/pods";
    assert_int_equal(kn_kube_request(&call, f->kube, &req, on_result, &g), 0);
    kn_kube_cancel(call);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, KN_ECANCELLED);
    got_release(&g);
    run_for(f, 100);
    assert_int_equal(g.calls, 0);
    assert_int_equal(f->nreqs, 0);

    /* freeing the session ends what is in flight */
    assert_int_equal(kn_kube_request(&call, f->kube, &req, on_result, &h), 0);
    kn_kube_free(f->kube);
    f->kube = NULL;
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.status, KN_ECANCELLED);
    got_release(&h);
}

/* ---- discovery ------------------------------------------------------------------------------- */

static void answer_discovery(struct fx *f, struct kn_testsrv_conn *c,
                             const struct kn_testsrv_request *req, int n)
{
    (void)f;
    (void)n;
    if (strcmp(req->target, "/apis/apps/v1") == 0) {
        reply_json(c, 200, "",
                   "{\"kind\":\"APIResourceList\",\"groupVersion\":\"apps/v1\",\"resources\":["
                   "{\"name\":\"deployments\",\"singularName\":\"deployment\",\"namespaced\":true,"
                   "\"kind\":\"Deployment\",\"verbs\":[\"get\"]},"
                   "{\"name\":\"deployments/status\",\"namespaced\":true,\"kind\":\"Deployment\"},"
                   "{\"name\":\"deployments/scale\",\"namespaced\":true,\"kind\":\"Scale\"}]}");
    } else if (strcmp(req->target, "/api/v1") == 0) {
        reply_json(c, 200, "",
                   "{\"kind\":\"APIResourceList\",\"groupVersion\":\"v1\",\"resources\":["
                   "{\"name\":\"namespaces\",\"namespaced\":false,\"kind\":\"Namespace\"},"
                   "{\"name\":\"services\",\"namespaced\":true,\"kind\":\"Service\"}]}");
    } else {
        kn_testsrv_reply(c, 404, "Content-Type: text/plain\r\n", "404 page not found\n", 19, 0);
    }
}

struct resolved {
    int calls;
    int status;
    struct kn_kube_gvr r;
    char *message;
};

static void on_resolved(int status, const struct kn_kube_gvr *r, const char *message, void *data)
{
    struct resolved *s = data;

    s->calls++;
    s->status = status;
    if (r) {
        s->r.api_version = kn_strdup(r->api_version);
        s->r.kind = kn_strdup(r->kind);
        s->r.resource = kn_strdup(r->resource);
        s->r.namespaced = r->namespaced;
    }
    s->message = dup_or_null(message);
}

static void resolved_release(struct resolved *s)
{
    free(s->r.api_version);
    free(s->r.kind);
    free(s->r.resource);
    free(s->message);
    memset(s, 0, sizeof(*s));
}

static void resolve(struct fx *f, const char *av, const char *kind, struct resolved *s)
{
    assert_int_equal(kn_kube_resolve(NULL, f->kube, av, kind, 0, on_resolved, s), 0);
    wait_for(f, &s->calls, 1);
}

static void test_discovery(void **state)
{
    struct fx *f = *state;
    struct resolved s = {0};
    char *p;

    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    f->answer = answer_discovery;

    resolve(f, "apps/v1", "Deployment", &s);
    assert_int_equal(s.status, 0);
    assert_string_equal(s.r.resource, "deployments");
    assert_string_equal(s.r.api_version, "apps/v1");
    assert_true(s.r.namespaced);
    assert_int_equal(f->nreqs, 1);
    assert_string_equal(f->reqs[0].target, "/apis/apps/v1");
    p = kn_kube_path(&s.r, "shop", "web 1/a");
    assert_string_equal(p, "/apis/apps/v1/namespaces/shop/deployments/web%201%2Fa");
    free(p);
    p = kn_kube_path(&s.r, "shop", NULL);
    assert_string_equal(p, "/apis/apps/v1/namespaces/shop/deployments");
    free(p);
    resolved_release(&s);

    /* cached: answered from inside the call, nothing sent */
    assert_int_equal(kn_kube_resolve(NULL, f->kube, "apps/v1", "Deployment", 0, on_resolved, &s),
                     0);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.r.resource, "deployments");
    assert_int_equal(f->nreqs, 1);
    resolved_release(&s);

    /* a subresource's kind is not a resource of its own */
    resolve(f, "apps/v1", "Scale", &s);
    assert_int_equal(s.status, KN_ENOTFOUND);
    assert_string_equal(s.message, "the server has no kind Scale in apps/v1");
    resolved_release(&s);

    /* the core group; a cluster-scoped kind ignores the namespace */
    resolve(f, "v1", "Namespace", &s);
    assert_int_equal(s.status, 0);
    assert_false(s.r.namespaced);
    assert_string_equal(f->reqs[1].target, "/api/v1");
    p = kn_kube_path(&s.r, "shop", "prod");
    assert_string_equal(p, "/api/v1/namespaces/prod");
    free(p);
    resolved_release(&s);

    /* a group the server lacks (a CRD not installed) */
    resolve(f, "gateway.networking.k8s.io/v1", "HTTPRoute", &s);
    assert_int_equal(s.status, KN_ENOTFOUND);
    assert_string_equal(s.message, "the server has no kind HTTPRoute in "
                                   "gateway.networking.k8s.io/v1");
    assert_string_equal(f->reqs[2].target, "/apis/gateway.networking.k8s.io/v1");
    resolved_release(&s);

    /* forgotten: asked again */
    kn_kube_forget(f->kube, "apps/v1");
    resolve(f, "apps/v1", "Deployment", &s);
    assert_int_equal(s.status, 0);
    assert_int_equal(f->nreqs, 4);
    resolved_release(&s);

    /* a text 404 on a path of apps/v1 forgets it too */
    struct got g = {0};
    get(f, "/apis/apps/v1/namespaces/shop/widgets", &g);
    assert_int_equal(g.status, KN_ENOTFOUND);
    got_release(&g);
    resolve(f, "apps/v1", "Deployment", &s);
    assert_int_equal(f->nreqs, 6);
    resolved_release(&s);

    assert_int_equal(kn_kube_resolve(NULL, f->kube, "", "Deployment", 0, on_resolved, &s),
                     KN_EINVAL);
}

/* ---- informers ------------------------------------------------------------------------------- */

static char *deploy(const char *name, const char *rv, int replicas)
{
    return kn_asprintf("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"shop\","
                       "\"resourceVersion\":\"%s\"},\"spec\":{\"replicas\":%d}}",
                       name, rv, replicas);
}

static char *event(const char *type, const char *obj)
{
    return kn_asprintf("{\"type\":\"%s\",\"object\":%s}\n", type, obj);
}

/* A chunked 200 with the given lines (NULL-terminated), cut in pieces of 7 bytes so that
 * events straddle chunks; `end` 0 keeps the connection open. */
static void reply_stream(struct kn_testsrv_conn *c, const char *const *lines, int end)
{
    struct kn_buf b, all;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_init(&all, KN_BUF_UNBOUNDED);
    for (size_t i = 0; lines[i]; i++) {
        kn_buf_adds(&all, lines[i]);
    }
    kn_buf_adds(&b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < all.len; off += 7) {
        size_t n = all.len - off < 7 ? all.len - off : 7;
        kn_buf_addf(&b, "%zx\r\n", n);
        kn_buf_add(&b, all.data + off, n);
        kn_buf_adds(&b, "\r\n");
    }
    if (end) {
        kn_buf_adds(&b, "0\r\n\r\n");
    } else {
        kn_testsrv_hold(c);
    }
    size_t len;
    char *bytes = kn_buf_detach(&b, &len);
    kn_testsrv_reply_raw(c, bytes, len);
    kn_buf_release(&all);
}

/* The informer's script, one step per request (see test_informer). */
static void answer_informer(struct fx *f, struct kn_testsrv_conn *c,
                            const struct kn_testsrv_request *req, int n)
{
    const char *t = req->target;
    char *a1 = deploy("a", "1", 1), *b2 = deploy("b", "2", 1), *a11 = deploy("a", "11", 2);
    char *c12 = deploy("c", "12", 1), *a18 = deploy("a", "18", 3), *c20 = deploy("c", "12", 1);
    char *e1 = NULL, *e2 = NULL, *e3 = NULL, *body = NULL;

    (void)f;
    switch (n) {
    case 0: /* the list, first page */
        body = kn_asprintf("{\"kind\":\"DeploymentList\",\"apiVersion\":\"apps/v1\","
                           "\"metadata\":{\"resourceVersion\":\"10\",\"continue\":\"c 1\"},"
                           "\"items\":[%s]}",
                           a1);
        reply_json(c, 200, "", body);
        break;
    case 1: /* the last page */
        body = kn_asprintf("{\"kind\":\"DeploymentList\",\"metadata\":{\"resourceVersion\":"
                           "\"10\"},\"items\":[%s]}",
                           b2);
        reply_json(c, 200, "", body);
        break;
    case 2: { /* a watch with two changes and a bookmark, ended by the server */
        e1 = event("MODIFIED", a11);
        e2 = event("ADDED", c12);
        e3 = kn_strdup("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Deployment\","
                       "\"apiVersion\":\"apps/v1\",\"metadata\":{\"resourceVersion\":\"15\"}}}\n");
        const char *lines[] = {e1, e2, e3, NULL};
        reply_stream(c, lines, 1);
        break;
    }
    case 3: { /* resumed from the bookmark: expired, in the stream */
        const char *lines[] = {"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
                               "\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                               "\"message\":\"too old resource version: 15 (19)\","
                               "\"reason\":\"Expired\",\"code\":410}}\n",
                               NULL};
        reply_stream(c, lines, 1);
        break;
    }
    case 4: /* the relist: a changed, b gone, c the same */
        body = kn_asprintf("{\"kind\":\"DeploymentList\",\"metadata\":{\"resourceVersion\":"
                           "\"20\"},\"items\":[%s,%s]}",
                           a18, c20);
        reply_json(c, 200, "", body);
        break;
    case 5: /* the watch from 20: an HTTP 410 */
        reply_status(c, 410, "Gone", "too old resource version: 20 (25)");
        break;
    case 6: /* the relist: nothing changed */
        body = kn_asprintf("{\"kind\":\"DeploymentList\",\"metadata\":{\"resourceVersion\":"
                           "\"25\"},\"items\":[%s,%s]}",
                           a18, c20);
        reply_json(c, 200, "", body);
        break;
    case 7: /* the watch fails */
        reply_status(c, 500, "InternalError", "etcd is sad");
        break;
    case 8: /* after the backoff: listed again */
        body = kn_asprintf("{\"kind\":\"DeploymentList\",\"metadata\":{\"resourceVersion\":"
                           "\"25\"},\"items\":[%s,%s]}",
                           a18, c20);
        reply_json(c, 200, "", body);
        break;
    default: { /* a watch that stays open, with one deletion */
        e1 = event("DELETED", c20);
        const char *lines[] = {e1, NULL};
        reply_stream(c, lines, 0);
        break;
    }
    }
    (void)t;
    free(a1);
    free(b2);
    free(a11);
    free(c12);
    free(a18);
    free(c20);
    free(e1);
    free(e2);
    free(e3);
    free(body);
}

struct events {
    int n;
    int synced;
    int lost;
    char log[2048];
    struct kn_kube_informer *free_me_on_delete;
};

static void on_event(enum kn_kube_event ev, const json_t *obj, void *data)
{
    struct events *e = data;
    static const char *names[] = {"", "ADDED", "MODIFIED", "DELETED", "SYNCED", "LOST"};
    size_t len = strlen(e->log);

    e->n++;
    if (ev == KN_KUBE_SYNCED) {
        e->synced++;
        assert_null(obj);
    } else if (ev == KN_KUBE_LOST) {
        e->lost++;
        assert_null(obj);
    }
    if (obj) {
        const json_t *md = json_object_get(obj, "metadata");
        snprintf(e->log + len, sizeof(e->log) - len, "%s %s %s %lld; ", names[ev],
                 json_string_value(json_object_get(md, "name")),
                 json_string_value(json_object_get(md, "resourceVersion")),
                 json_integer_value(json_object_get(json_object_get(obj, "spec"), "replicas")));
    } else {
        snprintf(e->log + len, sizeof(e->log) - len, "%s; ", names[ev]);
    }
    if (ev == KN_KUBE_DELETED && e->free_me_on_delete) {
        kn_kube_informer_free(e->free_me_on_delete);
        e->free_me_on_delete = NULL;
    }
}

static void count_obj(const json_t *obj, void *data)
{
    (void)obj;
    (*(int *)data)++;
}

static void test_informer(void **state)
{
    struct fx *f = *state;
    struct kn_kube_informer *inf = NULL;
    char av[] = "apps/v1", kind[] = "Deployment", res[] = "deployments";
    struct kn_kube_gvr r = {.api_version = av, .kind = kind, .resource = res, .namespaced = 1};
    struct events e;
    const json_t *obj;

    memset(&e, 0, sizeof(e));
    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    f->answer = answer_informer;
    assert_int_equal(
        kn_kube_informer_new(&inf, f->kube, &r, "shop", "app=web,tier!=db", on_event, &e), 0);
    assert_false(kn_kube_informer_synced(inf));
    wait_for(f, &e.synced, 1);
    assert_true(kn_kube_informer_synced(inf));
    obj = kn_kube_informer_get(inf, "shop", "b");
    assert_non_null(obj);
    /* a list's items get the type's kind and apiVersion */
    assert_string_equal(json_string_value(json_object_get(obj, "kind")), "Deployment");
    assert_string_equal(json_string_value(json_object_get(obj, "apiVersion")), "apps/v1");

    wait_for(f, &e.synced, 2); /* through the 410 event */
    wait_for(f, &e.synced, 3); /* through the HTTP 410 */
    wait_for(f, &e.synced, 4); /* through the 500 and the backoff */
    wait_for(f, &e.n, 12);     /* the last watch's deletion */
    assert_string_equal(e.log, "ADDED a 1 1; ADDED b 2 1; SYNCED; "
                               "MODIFIED a 11 2; ADDED c 12 1; "
                               "MODIFIED a 18 3; DELETED b 2 1; SYNCED; "
                               "SYNCED; "
                               "LOST; SYNCED; "
                               "DELETED c 12 1; ");
    assert_int_equal(e.lost, 1);
    assert_null(kn_kube_informer_error(inf)); /* the last list worked */
    assert_null(kn_kube_informer_get(inf, "shop", "c"));
    obj = kn_kube_informer_get(inf, "shop", "a");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(obj, "spec"), "replicas")),
                     3);

    /* the requests: paged list with the selector, watches from the right versions */
    assert_string_equal(f->reqs[0].target, "/apis/apps/v1/namespaces/shop/deployments?limit=500"
                                           "&labelSelector=app%3Dweb%2Ctier%21%3Ddb");
    assert_string_equal(f->reqs[1].target,
                        "/apis/apps/v1/namespaces/shop/deployments?limit=500"
                        "&continue=c%201&labelSelector=app%3Dweb%2Ctier%21%3Ddb");
    int watch_rv[] = {2, 10, 3, 15, 5, 20, 7, 25, 9, 25};
    for (int i = 0; i < 10; i += 2) {
        const char *t = f->reqs[watch_rv[i]].target;
        char *want = kn_asprintf("/apis/apps/v1/namespaces/shop/deployments?watch=1&"
                                 "resourceVersion=%d&allowWatchBookmarks=true&timeoutSeconds=",
                                 watch_rv[i + 1]);
        if (strncmp(t, want, strlen(want)) != 0) {
            fail_msg("request %d: '%s' does not start with '%s'", watch_rv[i], t, want);
        }
        int secs = atoi(t + strlen(want));
        assert_true(secs >= 300 && secs <= 600);
        assert_non_null(strstr(t, "&labelSelector=app%3Dweb%2Ctier%21%3Ddb"));
        free(want);
    }
    for (int i = 4; i <= 8; i += 2) {
        assert_non_null(strstr(f->reqs[i].target, "?limit=500"));
    }
    assert_int_equal(f->nreqs, 10);

    int count = 0;
    kn_kube_informer_each(inf, count_obj, &count);
    assert_int_equal(count, 1);
    kn_kube_informer_free(inf);
    run_for(f, 200);
    assert_int_equal(e.n, 12); /* nothing after the free */
}

/* Freed from its own callback in the middle of a watch; freed session first. */
static void answer_one_watch(struct fx *f, struct kn_testsrv_conn *c,
                             const struct kn_testsrv_request *req, int n)
{
    char *a = deploy("a", "1", 1), *b = deploy("b", "2", 1);
    char *e1 = event("DELETED", a), *e2 = event("ADDED", b);

    (void)f;
    (void)req;
    if (n == 0) {
        char *body = kn_asprintf("{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[%s]}", a);
        reply_json(c, 200, "", body);
        free(body);
    } else {
        const char *lines[] = {e1, e2, NULL};
        reply_stream(c, lines, 0);
    }
    free(a);
    free(b);
    free(e1);
    free(e2);
}

static void test_informer_free_from_callback(void **state)
{
    struct fx *f = *state;
    struct kn_kube_informer *inf = NULL, *other = NULL;
    char av[] = "v1", kind[] = "Pod", res[] = "pods";
    struct kn_kube_gvr r = {.api_version = av, .kind = kind, .resource = res, .namespaced = 1};
    struct events e, e2;
    int count = 0;

    memset(&e, 0, sizeof(e));
    memset(&e2, 0, sizeof(e2));
    write_kubeconfig(f, "    token: t\n");
    new_kube(f, 0);
    f->answer = answer_one_watch;
    assert_int_equal(kn_kube_informer_new(&inf, f->kube, &r, NULL, NULL, on_event, &e), 0);
    e.free_me_on_delete = inf;
    wait_for(f, &e.synced, 1);
    kn_kube_informer_each(inf, count_obj, &count);
    assert_int_equal(count, 1);
    assert_string_equal(f->reqs[0].target, "/api/v1/pods?limit=500");
    wait_for(f, &e.n, 3);
    run_for(f, 200);
    /* the ADDED after the DELETED never came: freed in between */
    assert_string_equal(e.log, "ADDED a 1 1; SYNCED; DELETED a 1 1; ");

    /* the session goes first: the informer stops, and can still be freed */
    assert_int_equal(kn_kube_informer_new(&other, f->kube, &r, NULL, NULL, on_event, &e2), 0);
    kn_kube_free(f->kube);
    f->kube = NULL;
    run_for(f, 100);
    assert_int_equal(e2.n, 0);
    kn_kube_informer_free(other);
}

/* ---- against the fake API server, over TLS ----------------------------------------------------
 */

/* tests/fakes/kube_fake.py with TLS (a CA, a server certificate for 127.0.0.1, a client
 * certificate, all made by the openssl CLI here) and a token file; one for all these cases. */
struct fake {
    pid_t pid;
    int port;
    char *dir;
};

static struct fake g_fake;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
    va_list ap;
    char *cmd;

    va_start(ap, fmt);
    cmd = kn_vasprintf(fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fail_msg("command failed: %s", cmd);
    }
    free(cmd);
}

static int fake_setup(void **state)
{
    struct fake *k = &g_fake;
    char *script = kn_asprintf("%s/tests/fakes/kube_fake.py", kn_test_source_dir());
    char *portfile, *d;
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

    (void)state;
    k->dir = kn_test_tmpdir();
    d = k->dir;
    sh("cd '%s' && openssl req -x509 %s -keyout ca.key -out ca.crt -subj /CN=kanaria-test-ca "
       "-days 1 2>/dev/null && "
       "openssl req %s -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null && "
       "printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext && "
       "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt "
       "-days 1 -extfile srv.ext 2>/dev/null && "
       "openssl req %s -keyout client.key -out client.csr -subj /CN=kanaria 2>/dev/null && "
       "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
       "-out client.crt -days 1 2>/dev/null && "
       "openssl req -x509 %s -keyout other.key -out other.crt -subj /CN=other -days 1 "
       "2>/dev/null",
       d, ec, ec, ec, ec);
    kn_test_write(d, "fake-token", "one\n");
    portfile = kn_asprintf("%s/port", d);
    k->pid = fork();
    if (k->pid == 0) {
        char *cert = kn_asprintf("%s/srv.crt", d), *key = kn_asprintf("%s/srv.key", d);
        char *ca = kn_asprintf("%s/ca.crt", d), *tok = kn_asprintf("%s/fake-token", d);
        execl("/usr/bin/python3", "python3", script, "--port", "0", "--port-file", portfile,
              "--tls-cert", cert, "--tls-key", key, "--client-ca", ca, "--token-file", tok,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !k->port; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        FILE *fp = fopen(portfile, "r");
        if (fp) {
            if (fscanf(fp, "%d", &k->port) != 1) {
                k->port = 0;
            }
            fclose(fp);
        }
        if (!k->port) {
            nanosleep(&ts, NULL);
        }
    }
    free(portfile);
    free(script);
    if (!k->port) {
        fail_msg("the Kubernetes fake did not start within 10 s");
    }
    return 0;
}

static int fake_teardown(void **state)
{
    int st;

    (void)state;
    if (g_fake.pid > 0) {
        kill(g_fake.pid, SIGTERM);
        waitpid(g_fake.pid, &st, 0);
    }
    if (g_fake.dir) {
        kn_test_rmtree(g_fake.dir);
        free(g_fake.dir);
    }
    return 0;
}

/* A file's content as one base64 line (OpenSSL), for *-data values. */
static char *b64_file(const char *dir, const char *name)
{
    char *path = kn_asprintf("%s/%s", dir, name);
    mode_t mode;
    char *raw = read_file(path, &mode);
    size_t n = strlen(raw);
    char *out = kn_malloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, (int)n);
    free(raw);
    free(path);
    return out;
}

/* A kubeconfig for the fake over TLS: CA `ca` (a file of the fake's folder, as -data), the
 * client certificate when `client`, a tokenFile when given. */
static void write_tls_kubeconfig(struct fx *f, const char *ca, int client, const char *token_file)
{
    char *ca64 = ca ? b64_file(g_fake.dir, ca) : NULL;
    char *crt64 = b64_file(g_fake.dir, "client.crt"), *key64 = b64_file(g_fake.dir, "client.key");
    char *ca_line =
        ca64 ? kn_asprintf("    certificate-authority-data: %s\n", ca64) : kn_strdup("");
    char *user = client       ? kn_asprintf("    client-certificate-data: %s\n"
                                                  "    client-key-data: %s\n",
                                            crt64, key64)
                 : token_file ? kn_asprintf("    tokenFile: %s\n", token_file)
                              : kn_strdup("    {}\n");
    char *text = kn_asprintf("current-context: t\n"
                             "clusters:\n"
                             "- name: c\n"
                             "  cluster:\n"
                             "    server: https://127.0.0.1:%d\n"
                             "%s"
                             "contexts:\n"
                             "- {name: t, context: {cluster: c, user: u, namespace: default}}\n"
                             "users:\n"
                             "- name: u\n"
                             "  user:\n"
                             "%s",
                             g_fake.port, ca_line, client || token_file ? user : "    {}\n");

    kn_test_write(f->dir, "kubeconfig", text);
    free(text);
    free(user);
    free(ca_line);
    free(ca64);
    free(crt64);
    free(key64);
}

static void fake_post(struct fx *f, const char *path, json_t *body)
{
    struct got g = {0};

    request(f, "POST", path, body, 0, &g);
    wait_for(f, &g.calls, 1);
    if (g.status != 0) {
        fail_msg("POST %s: %s", path, g.message);
    }
    json_decref(body);
    got_release(&g);
}

static void test_fake_tls_client_certificate(void **state)
{
    struct fx *f = *state;
    struct got g = {0};

    /* the CA and the client certificate as -data: the fake takes the certificate */
    write_tls_kubeconfig(f, "ca.crt", 1, NULL);
    new_kube(f, 0);
    fake_post(f, "/_fake/reset", json_object());
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    if (g.status != 0) {
        fail_msg("%s", g.message);
    }
    assert_string_equal(json_string_value(json_object_get(g.reply, "kind")), "ConfigMapList");
    got_release(&g);
    kn_kube_free(f->kube);
    f->kube = NULL;

    /* the right CA, no credentials: the fake's 401 Status */
    write_tls_kubeconfig(f, "ca.crt", 0, NULL);
    new_kube(f, 0);
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.http_status, 401);
    assert_string_equal(g.reason, "Unauthorized");
    got_release(&g);
    kn_kube_free(f->kube);
    f->kube = NULL;

    /* another CA: the server is not trusted, nothing is answered (a new HTTP client: curl
     * would reuse the verified connection, the CA file's name being the same) */
    kn_http_client_close(f->http);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    write_tls_kubeconfig(f, "other.crt", 1, NULL);
    new_kube(f, 0);
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.http_status, 0);
    assert_non_null(strstr(g.message, "https://127.0.0.1:"));
    got_release(&g);
}

static void test_fake_exec_client_certificate(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    char *script, *path, *s;
    mode_t mode;
    char *ca64 = b64_file(g_fake.dir, "ca.crt");
    char *text;

    /* a plugin printing the client certificate and key (PEM with its line ends escaped) */
    script = kn_asprintf("#!/bin/sh\n"
                         "cert=$(awk '{printf \"%%s\\\\n\", $0}' '%s/client.crt')\n"
                         "key=$(awk '{printf \"%%s\\\\n\", $0}' '%s/client.key')\n"
                         "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                         "\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":"
                         "\"%%s\",\"clientKeyData\":\"%%s\"}}' \"$cert\" \"$key\"\n",
                         g_fake.dir, g_fake.dir);
    kn_test_write(f->dir, "certplugin.sh", script);
    path = kn_asprintf("%s/certplugin.sh", f->dir);
    assert_int_equal(chmod(path, 0700), 0);
    text = kn_asprintf("current-context: t\n"
                       "clusters:\n"
                       "- name: c\n"
                       "  cluster:\n"
                       "    server: https://127.0.0.1:%d\n"
                       "    certificate-authority-data: %s\n"
                       "contexts:\n"
                       "- {name: t, context: {cluster: c, user: u}}\n"
                       "users:\n"
                       "- name: u\n"
                       "  user:\n"
                       "    exec:\n"
                       "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                       "      command: %s\n",
                       g_fake.port, ca64, path);
    kn_test_write(f->dir, "kubeconfig", text);
    new_kube(f, 0);
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    if (g.status != 0) {
        fail_msg("%s", g.message);
    }
    got_release(&g);
    /* kept for the HTTP client in private files */
    free(path);
    path = kn_asprintf("%s/exec-client.key", f->state);
    s = read_file(path, &mode);
    assert_int_equal(mode, 0600);
    assert_non_null(strstr(s, "PRIVATE KEY"));
    free(s);
    free(path);
    free(text);
    free(script);
    free(ca64);
}

static void test_fake_in_cluster_token_rotation(void **state)
{
    struct fx *f = *state;
    struct kn_error err;
    struct got g = {0};
    char *sa = kn_asprintf("%s/sa", f->dir);
    char *port = kn_asprintf("%d", g_fake.port);
    char *ca = kn_asprintf("%s/ca.crt", g_fake.dir);
    mode_t mode;
    char *pem = read_file(ca, &mode);

    kn_test_write(f->dir, "sa/token", "one\n");
    kn_test_write(f->dir, "sa/ca.crt", pem);
    kn_test_write(f->dir, "sa/namespace", "default\n");
    kn_test_write(g_fake.dir, "fake-token", "one\n");
    setenv("KANARIA_KUBE_SA_DIR", sa, 1);
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", port, 1);
    setenv("HOME", f->dir, 1);
    assert_int_equal(kn_kube_new(&f->kube, &f->loop, f->http, NULL, f->state, &err), 0);
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    if (g.status != 0) {
        fail_msg("%s", g.message);
    }
    got_release(&g);

    /* the kubelet rotates the projected token: the next request carries the new one */
    kn_test_write(g_fake.dir, "fake-token", "two\n");
    kn_test_write(f->dir, "sa/token", "two\n");
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    assert_int_equal(g.status, 0);
    got_release(&g);

    /* the server moved on alone: refused */
    kn_test_write(g_fake.dir, "fake-token", "three\n");
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    assert_int_equal(g.http_status, 401);
    got_release(&g);
    kn_test_write(g_fake.dir, "fake-token", "one\n");

    unsetenv("KANARIA_KUBE_SA_DIR");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    free(pem);
    free(ca);
    free(port);
    free(sa);
}

static void test_fake_informer_and_faults(void **state)
{
    struct fx *f = *state;
    struct kn_kube_informer *inf = NULL;
    struct resolved s = {0};
    struct events e;
    struct got g = {0};
    char *path;
    json_t *dep;

    memset(&e, 0, sizeof(e));
    write_tls_kubeconfig(f, "ca.crt", 1, NULL);
    new_kube(f, 0);
    fake_post(f, "/_fake/reset", json_object());

    /* a 429 with Retry-After twice, then the answer */
    fake_post(f, "/_fake/fault",
              json_pack("{s:i,s:i,s:i,s:s}", "status", 429, "retryAfter", 1, "count", 2,
                        "pathRegex", "configmaps"));
    get(f, "/api/v1/namespaces/default/configmaps", &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 3);
    got_release(&g);

    resolve(f, "apps/v1", "Deployment", &s);
    assert_int_equal(s.status, 0);
    assert_int_equal(kn_kube_informer_new(&inf, f->kube, &s.r, "default", "app=web", on_event, &e),
                     0);
    wait_for(f, &e.synced, 1);
    assert_int_equal(e.n, 1);

    /* server-side apply creates it: the watch tells */
    path = kn_kube_path(&s.r, "default", "web");
    char *apply = kn_asprintf("%s?fieldManager=kanaria&force=true", path);
    dep = json_pack(
        "{s:s,s:s,s:{s:s,s:{s:s}},s:{s:i,s:{s:{s:s}},s:{s:{s:{s:s}},s:{s:[{s:s,s:s}]}}}}",
        "apiVersion", "apps/v1", "kind", "Deployment", "metadata", "name", "web", "labels", "app",
        "web", "spec", "replicas", 1, "selector", "matchLabels", "app", "web", "template",
        "metadata", "labels", "app", "web", "spec", "containers", "name", "web", "image", "web:1");
    request(f, "PATCH", apply, dep, 0, &g);
    wait_for(f, &g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.http_status, 201);
    got_release(&g);
    wait_for(f, &e.n, 2);
    assert_non_null(strstr(e.log, "ADDED web"));
    assert_non_null(kn_kube_informer_get(inf, "default", "web"));

    /* compaction: the open watch gets ERROR 410, the informer relists and goes on */
    int synced = e.synced;
    fake_post(f, "/_fake/expire", json_pack("{s:b,s:s}", "current", 1, "mode", "event"));
    wait_for(f, &e.synced, synced + 1);
    json_object_set_new(json_object_get(dep, "spec"), "replicas", json_integer(2));
    request(f, "PATCH", apply, dep, 0, &g);
    wait_for(f, &g.calls, 1);
    assert_int_equal(g.status, 0);
    got_release(&g);
    /* the fake's controller may write status too: wait for the spec change */
    for (int i = 0; i < 100; i++) {
        const json_t *o = kn_kube_informer_get(inf, "default", "web");
        if (json_integer_value(json_object_get(json_object_get(o, "spec"), "replicas")) == 2) {
            break;
        }
        int n = e.n;
        wait_for(f, &e.n, n + 1);
    }
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(kn_kube_informer_get(inf, "default", "web"), "spec"), "replicas")),
        2);

    /* a dropped connection: lost, then resumed from the last version without a relist */
    synced = e.synced;
    int lost = e.lost;
    fake_post(f, "/_fake/drop", json_pack("{s:b}", "current", 1));
    wait_for(f, &e.lost, lost + 1);
    assert_non_null(kn_kube_informer_error(inf));
    json_object_set_new(json_object_get(dep, "spec"), "replicas", json_integer(3));
    request(f, "PATCH", apply, dep, 0, &g);
    wait_for(f, &g.calls, 1);
    got_release(&g);
    for (int i = 0; i < 100; i++) {
        const json_t *o = kn_kube_informer_get(inf, "default", "web");
        if (json_integer_value(json_object_get(json_object_get(o, "spec"), "replicas")) == 3) {
            break;
        }
        int n = e.n;
        wait_for(f, &e.n, n + 1);
    }
    assert_int_equal(e.synced, synced);
    assert_int_equal(e.lost, lost + 1);
    assert_null(kn_kube_informer_error(inf)); /* the watch works again */

    /* deleted: gone from the cache */
    request(f, "DELETE", path, NULL, 0, &g);
    wait_for(f, &g.calls, 1);
    assert_int_equal(g.status, 0);
    got_release(&g);
    for (int i = 0; i < 100 && kn_kube_informer_get(inf, "default", "web"); i++) {
        int n = e.n;
        wait_for(f, &e.n, n + 1);
    }
    assert_null(kn_kube_informer_get(inf, "default", "web"));
    assert_non_null(strstr(e.log, "DELETED web"));

    kn_kube_informer_free(inf);
    json_decref(dep);
    free(apply);
    free(path);
    resolved_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kubeconfig_token_and_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_context_and_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_data_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_plugin_cached_and_rerun_on_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_plugin_expired_and_failing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_bounded_by_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_free_from_callback, setup, teardown),
    };
    const struct CMUnitTest fake_tests[] = {
        cmocka_unit_test_setup_teardown(test_fake_tls_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_exec_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_in_cluster_token_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_informer_and_faults, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    if (access("/usr/bin/python3", X_OK) != 0 || access("/usr/bin/openssl", X_OK) != 0) {
        /* ctest's SKIP_RETURN_CODE; a CI machine has both, so there it fails */
        printf("SKIPPED: the cases against tests/fakes/kube_fake.py over TLS need "
               "/usr/bin/python3 and /usr/bin/openssl\n");
        if (failed) {
            return failed;
        }
        return getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77;
    }
    return failed + cmocka_run_group_tests_name("fake", fake_tests, fake_setup, fake_teardown);
}
