/*
 * Leader election (lease.c) through kanaria's real API client (client.c) against the scripted
 * API server fake (tests/fakes/kube_fake.py, python3 on a loopback port, plain HTTP), whose
 * Leases have optimistic locking: two sessions race and one leads; PUTs that fail (the fake's
 * faults) make the leader give up after renewDeadline and the other take over once the faults
 * end; a release hands over at once. Lease 1.5 s (written as 2 s), renew 1 s, retry 0.2 s.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kanaria/alloc.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "platforms/kubernetes/lease.h"
#include "testutil.h"

#define LEASE_PATH "/apis/coordination.k8s.io/v1/namespaces/default/leases/kanaria"

struct instance {
    struct kn_kube *kube;
    struct kn_kube_lease *lease;
    int leads;
    int lost;
    int *leaders; /* the fixture's count of cb(1) */
};

struct fixture {
    pid_t fake;
    int port;
    char *dir;
    uv_loop_t loop;
    uv_timer_t wake;
    struct kn_http_client *http;
    struct instance a, b;
    int leaders;
    struct kn_kube_leader_config cfg;
};

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag or ms passed; *flag. */
static int run_until(struct fixture *f, const int *flag, long long ms)
{
    uint64_t end;

    uv_update_time(&f->loop);
    end = uv_now(&f->loop) + (uint64_t)ms;
    uv_timer_start(&f->wake, wake_cb, 20, 20);
    while (!*flag && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->wake);
    return *flag;
}

static void run_for(struct fixture *f, long long ms)
{
    static const int never = 0;
    run_until(f, &never, ms);
}

/* ---- the fake's control API (blocking HTTP/1.0 on loopback) -------------------------------- */

static json_t *fake_call(const struct fixture *f, const char *method, const char *path,
                         json_t *body)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0, cap = 1 << 16, n = 0;
    char *buf = kn_malloc(cap), head[512];
    const char *at;
    json_t *j = NULL;
    ssize_t r;
    int code = 0;

    a.sin_port = htons((uint16_t)f->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(head, sizeof(head),
             "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t0k3n\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             method, path, len);
    assert_true(write(s, head, strlen(head)) == (ssize_t)strlen(head));
    if (len) {
        assert_true(write(s, text, len) == (ssize_t)len);
    }
    while ((r = read(s, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (n + 1 >= cap) {
            cap *= 2;
            buf = kn_realloc(buf, cap);
        }
    }
    close(s);
    buf[n] = '\0';
    sscanf(buf, "HTTP/%*s %d", &code);
    at = strstr(buf, "\r\n\r\n");
    if (code >= 200 && code <= 299 && at) {
        j = json_loads(at + 4, 0, NULL);
    }
    free(buf);
    free(text);
    json_decref(body);
    return j;
}

static void fake_post(const struct fixture *f, const char *path, json_t *body)
{
    json_decref(fake_call(f, "POST", path, body));
}

static char *holder(const struct fixture *f)
{
    json_t *l = fake_call(f, "GET", LEASE_PATH, NULL);
    const char *h = json_string_value(
        json_object_get(json_object_get(l, "spec"), "holderIdentity"));
    char *out = kn_strdup(h ? h : "");

    json_decref(l);
    return out;
}

static long long transitions(const struct fixture *f)
{
    json_t *l = fake_call(f, "GET", LEASE_PATH, NULL);
    long long t = json_integer_value(json_object_get(json_object_get(l, "spec"),
                                                     "leaseTransitions"));

    json_decref(l);
    return t;
}

/* PUTs of the Lease whose body has holder h (any status); status: of the last one. */
static int puts_with_holder(const struct fixture *f, const char *h, int *status)
{
    json_t *log = fake_call(f, "GET", "/_fake/requests", NULL), *r;
    size_t i;
    int n = 0;

    json_array_foreach(log, i, r) {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        const char *bh = json_string_value(json_object_get(
            json_object_get(json_object_get(r, "body"), "spec"), "holderIdentity"));
        if (m && p && bh && strcmp(m, "PUT") == 0 && strcmp(p, LEASE_PATH) == 0 &&
            strcmp(bh, h) == 0) {
            n++;
            if (status) {
                *status = (int)json_integer_value(json_object_get(r, "status"));
            }
        }
    }
    json_decref(log);
    return n;
}

/* ---- instances ----------------------------------------------------------------------------- */

static void on_lead(int leading, const char *why, void *data)
{
    struct instance *in = data;

    (void)why;
    if (leading) {
        in->leads++;
        (*in->leaders)++;
    } else {
        in->lost++;
    }
}

static void start(struct fixture *f, struct instance *in, const char *name)
{
    struct kn_kube_config cfg = {.kubeconfig = NULL};
    struct kn_error err;
    char path[600], state[600];

    snprintf(path, sizeof(path), "%s/kubeconfig", f->dir);
    snprintf(state, sizeof(state), "%s/%s", f->dir, name);
    cfg.kubeconfig = path;
    in->leaders = &f->leaders;
    cfg.qps = 100;
    kn_error_clear(&err);
    assert_int_equal(kn_kube_new(&in->kube, &f->loop, f->http, &cfg, state, &err), 0);
    assert_int_equal(kn_kube_lease_start(&in->lease, &f->loop, in->kube, &f->cfg, on_lead, in),
                     0);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    char script[1024], portfile[600], config[1024];
    FILE *fp;

    kn_log_setup(getenv("KANARIA_TEST_LOG") ? KN_LOG_DEBUG : KN_LOG_OFF, KN_LOG_LOGFMT);
    snprintf(script, sizeof(script), "%s/tests/fakes/kube_fake.py", kn_test_source_dir());
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIPPED: test_kube_lease_fake needs /usr/bin/python3 for "
               "tests/fakes/kube_fake.py\n");
        exit(getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77);
    }
    f->dir = kn_test_tmpdir();
    snprintf(portfile, sizeof(portfile), "%s/port", f->dir);
    f->fake = fork();
    if (f->fake == 0) {
        execl("/usr/bin/python3", "python3", script, "--port", "0", "--port-file", portfile,
              "--token", "t0k3n", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !f->port; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        fp = fopen(portfile, "r");
        if (fp) {
            if (fscanf(fp, "%d", &f->port) != 1) {
                f->port = 0;
            }
            fclose(fp);
        }
        if (!f->port) {
            nanosleep(&ts, NULL);
        }
    }
    if (!f->port) {
        fail_msg("the Kubernetes fake did not start within 10 s");
    }
    snprintf(config, sizeof(config),
             "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
             "    server: http://127.0.0.1:%d\nusers:\n- name: u\n  user:\n    token: t0k3n\n"
             "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\n"
             "    namespace: default\ncurrent-context: fake\n",
             f->port);
    kn_test_write(f->dir, "kubeconfig", config);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    int st;

    kill(f->fake, SIGTERM);
    waitpid(f->fake, &st, 0);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = *state;

    memset(&f->a, 0, sizeof(f->a));
    memset(&f->b, 0, sizeof(f->b));
    f->leaders = 0;
    f->cfg.lease_duration_ms = 1500;
    f->cfg.renew_deadline_ms = 1000;
    f->cfg.retry_period_ms = 200;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->wake);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    fake_post(f, "/_fake/reset", json_object());
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fake_post(f, "/_fake/fault", json_pack("{s:b}", "clear", 1));
    kn_kube_lease_free(f->a.lease);
    kn_kube_lease_free(f->b.lease);
    run_for(f, 500); /* the releases */
    kn_kube_free(f->a.kube);
    kn_kube_free(f->b.kube);
    kn_http_client_close(f->http);
    uv_close((uv_handle_t *)&f->wake, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    return 0;
}

/* ---- cases --------------------------------------------------------------------------------- */

/* Two sessions campaign at once: exactly one leads, renews, and the other waits. */
static void test_race(void **state)
{
    struct fixture *f = *state;
    struct instance *leader;
    char *h;
    int status = 0;

    start(f, &f->a, "a");
    start(f, &f->b, "b");
    assert_true(run_until(f, &f->leaders, 10000));
    run_for(f, 2500); /* longer than the lease */
    assert_int_equal(f->leaders, 1);
    leader = f->a.leads ? &f->a : &f->b;
    assert_int_equal(f->a.lost + f->b.lost, 0);
    h = holder(f);
    assert_string_equal(h, kn_kube_lease_identity(leader->lease));
    assert_true(puts_with_holder(f, h, &status) >= 3); /* renewed */
    assert_int_equal(status, 200);
    free(h);
}

/* Every PUT of the Lease fails (500): the leader gives up after renewDeadline; once the faults
 * end the other takes the Lease. */
static void test_fault_takeover(void **state)
{
    struct fixture *f = *state;
    char *h;

    start(f, &f->a, "a");
    assert_true(run_until(f, &f->a.leads, 10000));
    start(f, &f->b, "b");
    run_for(f, 500);
    assert_int_equal(f->b.leads, 0);
    fake_post(f, "/_fake/fault", json_pack("{s:i, s:i, s:s, s:s}", "status", 500, "count",
                                           100000, "method", "PUT", "pathRegex", "leases"));
    assert_true(run_until(f, &f->a.lost, 5000));
    assert_int_equal(f->b.leads, 0); /* the faults hold b too */
    fake_post(f, "/_fake/fault", json_pack("{s:b}", "clear", 1));
    assert_true(run_until(f, &f->b.leads, 10000));
    h = holder(f);
    assert_string_equal(h, kn_kube_lease_identity(f->b.lease));
    assert_int_equal(transitions(f), 1);
    free(h);
}

/* The leader freed releases the Lease: the other takes it without waiting for it to expire. */
static void test_release(void **state)
{
    struct fixture *f = *state;
    char *h;
    int status = 0;

    start(f, &f->a, "a");
    assert_true(run_until(f, &f->a.leads, 10000));
    start(f, &f->b, "b");
    run_for(f, 500);
    kn_kube_lease_free(f->a.lease);
    f->a.lease = NULL;
    assert_true(run_until(f, &f->b.leads, 10000));
    assert_int_equal(puts_with_holder(f, "", &status), 1);
    assert_int_equal(status, 200);
    assert_int_equal(f->a.lost, 0);
    h = holder(f);
    assert_string_equal(h, kn_kube_lease_identity(f->b.lease));
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
