/*
 * The local platform's operations through the front end, against a real managed HAProxy and
 * the test server (tests/local_test_server.c, path in KANARIA_TEST_SERVER): two apps of one
 * platform do not wait for each other, and a cancel stops an apply that waits for health. Waits
 * are bounded by a deadline on the loop, never timed assertions. What the tests started (the
 * instances, HAProxy) is stopped in the teardown, failed tests included.
 */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/log.h"
#include "kanaria/platform.h"
#include "testutil.h"
#include "kanaria/http.h"
#include "platforms/local/config.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t wake; /* wakes the loop so that wait conditions are re-checked */
    struct kn_http_client *http;
    struct kn_platform *p;
    char *dir;
    const char *server;
    int bind_a;
    int bind_b;
};

struct outcome {
    int done;
    int status;
    char message[512];
};

struct seen {
    int done;
    int status;
    int canaries;
};

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag is set or ms pass; the flag. */
static int run_until(struct fixture *f, const int *flag, long long ms)
{
    uint64_t end;

    uv_update_time(&f->loop);
    end = uv_now(&f->loop) + (uint64_t)ms;
    uv_timer_start(&f->wake, wake_cb, 50, 50);
    while (!*flag && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->wake);
    return *flag;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

static void on_done(int status, const char *message, void *data)
{
    struct outcome *o = data;

    o->done = 1;
    o->status = status;
    snprintf(o->message, sizeof(o->message), "%s", message ? message : "");
}

static void on_observed(int status, const struct kn_live_state *live, void *data)
{
    struct seen *s = data;

    s->done = 1;
    s->status = status;
    s->canaries = live ? live->variant[KN_VARIANT_CANARY].instances : -1;
}

/* The manifests of app NAME: one instance of the test server saying VERSION on 127.0.0.1:BIND,
 * never healthy when `unhealthy`. */
static json_t *manifests(const struct fixture *f, const char *name, const char *version,
                         int bind, int unhealthy)
{
    char addr[32];
    json_t *env = json_pack("{s:s}", "VERSION", version);

    if (unhealthy) {
        json_object_set_new(env, "UNHEALTHY", json_string("1"));
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", bind);
    return json_pack("[{s:s, s:s, s:{s:s}, s:{s:[s,s,s], s:o, s:i, s:{s:s, s:s, s:s}, "
                     "s:{s:s}}}]",
                     "apiVersion", "kanaria.dev/v1", "kind", "LocalService", "metadata", "name",
                     name, "spec", "command", f->server, "--port", "{{port}}", "env", env,
                     "replicas", 1, "healthCheck", "path", "/healthz", "interval", "200ms",
                     "timeout", "200ms", "frontend", "bind", addr);
}

static struct kn_platform_req req_for(const char *app, struct outcome *o)
{
    struct kn_platform_req req = {
        .id = {.repository = "deploy", .app = app},
        .deployment_id = 7,
        .stage_index = 0,
        .stage_name = "CANARY_ROLLOUT",
        .done = on_done,
        .data = o,
    };
    return req;
}

static void apply(struct fixture *f, const char *app, enum kn_variant v, const char *version,
                  int bind, int unhealthy, long long ready_ms, struct outcome *o,
                  struct kn_platform_op **op)
{
    json_t *m = manifests(f, app, version, bind, unhealthy);
    struct kn_platform_req req = req_for(app, o);
    struct kn_variant_spec spec = {
        .variant = v,
        .commit = "0123456789012345678901234567890123456789",
        .manifests = m,
        .replicas = {.value = 1},
        .ready_timeout_ms = ready_ms,
    };

    memset(o, 0, sizeof(*o));
    assert_int_equal(kn_platform_apply(f->p, &req, &spec, op), 0);
    json_decref(m);
}

static int canaries(struct fixture *f, const char *app)
{
    struct kn_app_id id = {.repository = "deploy", .app = app};
    struct seen s = {0};

    assert_int_equal(kn_platform_observe(f->p, &id, NULL, 5000, on_observed, &s), 0);
    assert_true(run_until(f, &s.done, 10000));
    assert_int_equal(s.status, 0);
    return s.canaries;
}

/* ---- teardown: stop what the platform started ---------------------------------------------- */

static int stop_pidfile(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    size_t len = strlen(path);
    json_t *doc;
    long long pid = 0;

    (void)st;
    (void)ftw;
    if (flag != FTW_F) {
        return 0;
    }
    if (len > 11 && strcmp(path + len - 11, "haproxy.pid") == 0) {
        FILE *fp = fopen(path, "r");
        if (fp && fscanf(fp, "%lld", &pid) == 1 && pid > 1) {
            kill((pid_t)pid, SIGTERM);
        }
        if (fp) {
            fclose(fp);
        }
        return 0;
    }
    if (len < 5 || strcmp(path + len - 5, ".json") != 0 || strstr(path, "apps.json")) {
        return 0;
    }
    doc = json_load_file(path, 0, NULL);
    pid = json_integer_value(json_object_get(doc, "pid"));
    if (pid > 1) {
        kill((pid_t)-pid, SIGTERM);
        kill((pid_t)pid, SIGTERM);
    }
    json_decref(doc);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    struct kn_platform_config cfg = {0};
    struct kn_local_config options = {0}; /* the platform copies what it keeps */
    struct kn_platform_deps deps = {0};
    struct kn_error err;
    char name[] = "local";
    int port_min = 30000 + (int)(getpid() % 700) * 40;

    f->server = getenv("KANARIA_TEST_SERVER");
    if (!f->server || f->server[0] != '/') {
        fail_msg("KANARIA_TEST_SERVER must be the absolute path of kanaria_test_server");
    }
    kn_log_setup(getenv("KANARIA_TEST_LOG") ? KN_LOG_DEBUG : KN_LOG_OFF, KN_LOG_LOGFMT);
    f->dir = kn_test_tmpdir();
    f->bind_a = free_port();
    f->bind_b = free_port();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->wake);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    cfg.name = name;
    cfg.ptype = kn_platform_type_find("local");
    options.haproxy.managed = 1;
    options.ports.min = port_min;
    options.ports.max = port_min + 39;
    cfg.options = &options;
    deps.loop = &f->loop;
    deps.data_dir = f->dir;
    deps.http = f->http;
    kn_error_clear(&err);
    if (kn_platform_new(&f->p, &deps, &cfg, &err) < 0) {
        fail_msg("local platform: %s", err.msg);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_platform_free(f->p);
    kn_http_client_close(f->http);
    uv_close((uv_handle_t *)&f->wake, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    nftw(f->dir, stop_pidfile, 16, FTW_PHYS);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- the tests ----------------------------------------------------------------------------- */

/* {{variant_url}} of the app's variant: one of its instances' address, or "" when none runs. */
static void assert_variant_url(struct fixture *f, const char *app, enum kn_variant v, int runs)
{
    struct kn_app_id id = {.repository = "deploy", .app = app};
    struct kn_strmap vars = {0};
    const char *url = NULL;
    char *end;

    kn_platform_template_vars(f->p, &id, v, &vars);
    for (size_t i = 0; i < vars.count; i++) {
        if (strcmp(vars.keys[i], "variant_url") == 0) {
            url = vars.values[i];
        }
    }
    assert_non_null(url);
    if (!runs) {
        assert_string_equal(url, "");
    } else {
        assert_int_equal(strncmp(url, "http://127.0.0.1:", 17), 0);
        assert_true(strtol(url + 17, &end, 10) >= 30000 && *end == '\0');
    }
    kn_platform_vars_release(&vars);
}

/*
 * alpha's canary never gets healthy and may wait 10 minutes for it; meanwhile beta's canary
 * fails, beta's rollback (the canary removed, the traffic on the primary) completes, and
 * only then does a cancel of alpha end its apply KN_ECANCELLED with its canary stopped.
 */
static void test_apps_side_by_side(void **state)
{
    struct fixture *f = *state;
    struct outcome a = {0}, b = {0}, r = {0};
    struct kn_platform_op *op_a = NULL;
    struct kn_platform_req req;
    const double all_primary[KN_VARIANT_COUNT] = {100, 0, 0};

    apply(f, "alpha", KN_VARIANT_PRIMARY, "a1", f->bind_a, 0, 0, &a, NULL);
    apply(f, "beta", KN_VARIANT_PRIMARY, "b1", f->bind_b, 0, 0, &b, NULL);
    assert_true(run_until(f, &a.done, 30000));
    assert_true(run_until(f, &b.done, 30000));
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);

    apply(f, "alpha", KN_VARIANT_CANARY, "a2", f->bind_a, 1, 10LL * 60 * 1000, &a, &op_a);
    apply(f, "beta", KN_VARIANT_CANARY, "b2", f->bind_b, 1, 1500, &b, NULL);
    if (!run_until(f, &b.done, 20000)) {
        fail_msg("beta's apply did not end while alpha's waits for health");
    }
    assert_int_not_equal(b.status, 0);
    assert_false(a.done);

    /* beta's rollback */
    req = req_for("beta", &r);
    assert_int_equal(kn_platform_set_weights(f->p, &req, all_primary, NULL), 0);
    assert_true(run_until(f, &r.done, 20000));
    assert_int_equal(r.status, 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kn_platform_remove(f->p, &req, KN_VARIANT_CANARY, NULL), 0);
    assert_true(run_until(f, &r.done, 20000));
    assert_int_equal(r.status, 0);
    assert_int_equal(canaries(f, "beta"), 0);
    assert_false(a.done);
    assert_int_equal(canaries(f, "alpha"), 1);
    assert_variant_url(f, "beta", KN_VARIANT_PRIMARY, 1);
    assert_variant_url(f, "beta", KN_VARIANT_CANARY, 0); /* removed: nothing to probe */
    assert_variant_url(f, "alpha", KN_VARIANT_CANARY, 0); /* not healthy yet: not probed */
    assert_variant_url(f, "alpha", KN_VARIANT_PRIMARY, 1);

    /* a cancel stops alpha's wait, and its canary */
    kn_platform_cancel(op_a);
    assert_true(run_until(f, &a.done, 20000));
    assert_int_equal(a.status, KN_ECANCELLED);
    assert_int_equal(canaries(f, "alpha"), 0);
}

/*
 * A call that waits for the HAProxy lock (here: beta's weights while a new app's reload holds
 * it alone) leaves the wait when cancelled, before the holder is done; the holder goes on.
 * Then kanaria stops with an apply in flight: its caller is told, and the platform is freed
 * after the provider ended it (the sanitizers see no leak).
 */
static void test_cancel_lock_wait(void **state)
{
    struct fixture *f = *state;
    struct outcome b = {0}, g = {0}, w = {0}, a = {0};
    struct kn_platform_op *op_w = NULL;
    struct kn_platform_req req;
    const double all_primary[KN_VARIANT_COUNT] = {100, 0, 0};
    int bind_g = free_port();

    apply(f, "beta", KN_VARIANT_PRIMARY, "b1", f->bind_b, 0, 0, &b, NULL);
    assert_true(run_until(f, &b.done, 30000));
    assert_int_equal(b.status, 0);

    /* gamma is new: its apply holds HAProxy alone until HAProxy serves its frontend */
    apply(f, "gamma", KN_VARIANT_PRIMARY, "g1", bind_g, 0, 0, &g, NULL);
    req = req_for("beta", &w);
    assert_int_equal(kn_platform_set_weights(f->p, &req, all_primary, &op_w), 0);
    kn_platform_cancel(op_w);
    assert_true(run_until(f, &w.done, 10000));
    assert_int_equal(w.status, KN_ECANCELLED);
    assert_false(g.done);
    assert_true(run_until(f, &g.done, 30000));
    assert_int_equal(g.status, 0);

    /* beta's weights go through afterwards */
    memset(&w, 0, sizeof(w));
    assert_int_equal(kn_platform_set_weights(f->p, &req, all_primary, NULL), 0);
    assert_true(run_until(f, &w.done, 10000));
    assert_int_equal(w.status, 0);

    /* kanaria stops while an apply waits for health */
    apply(f, "beta", KN_VARIANT_CANARY, "b2", f->bind_b, 1, 10LL * 60 * 1000, &a, NULL);
    kn_platform_free(f->p);
    f->p = NULL;
    assert_true(run_until(f, &a.done, 10000));
    assert_int_equal(a.status, KN_ECANCELLED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apps_side_by_side, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_lock_wait, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
