/*
 * The local platform's operations through the front end, against a real managed HAProxy and
 * the test server (tests/local_test_server.c, path in KANARIA_TEST_SERVER): two apps of one
 * platform do not wait for each other, and a cancel stops an apply that waits for health. Waits
 * are bounded by a deadline on the loop, never timed assertions. What the tests started (the
 * instances, HAProxy) is stopped in the teardown, failed tests included.
 */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

struct fake_admin;

struct fixture {
    uv_loop_t loop;
    uv_timer_t wake; /* wakes the loop so that wait conditions are re-checked */
    struct kn_http_client *http;
    struct kn_platform *p;
    char *dir;
    const char *server;
    int bind_a;
    int bind_b;
    struct fake_admin *admin; /* the scripted admin socket of a test that has one */
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

/* ---- one reading of HAProxy for every app, against a scripted admin socket ---------------- */

#define FAKE_CMDS_MAX 16

/* An admin socket that answers one command per connection, as HAProxy's non-interactive mode
 * does, and records the commands. */
struct fake_admin {
    uv_pipe_t server;
    char *path;
    char *cmds[FAKE_CMDS_MAX];
    size_t ncmds;
};

struct fake_conn {
    uv_pipe_t pipe;
    uv_write_t write;
    struct fake_admin *admin;
    char line[512];
    size_t len;
    char *reply;
};

/* Two apps with servers as kanaria set them (alpha's split 50/50, beta's all on its primary)
 * beside a backend of no app and alpha's route backend (whose canary-1 has another weight);
 * gamma's backend is not there. */
static const char fake_dump[] =
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 alpha 1 primary-1 127.0.0.1 2 0 256 256 5 1 0 2 0 0 0 0 - 31001 - 0 0 - - 0\n"
    "3 alpha 2 canary-1 127.0.0.1 2 0 256 256 5 1 0 2 0 0 0 0 - 31002 - 0 0 - - 0\n"
    "4 alpha:canary 1 canary-1 127.0.0.1 2 0 1 1 5 1 0 2 0 0 0 0 - 31002 - 0 0 - - 0\n"
    "5 other 1 s1 127.0.0.1 2 0 1 1 5 1 0 2 0 0 0 0 - 31009 - 0 0 - - 0\n"
    "6 beta 1 primary-1 127.0.0.1 2 0 256 256 5 1 0 2 0 0 0 0 - 31003 - 0 0 - - 0\n"
    "\n";

static void fake_closed(uv_handle_t *h)
{
    struct fake_conn *c = h->data;

    free(c->reply);
    free(c);
}

static void fake_written(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->handle, fake_closed);
}

static void fake_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct fake_conn *c = h->data;

    (void)size;
    buf->base = c->line + c->len;
    buf->len = sizeof(c->line) - 1 - c->len;
}

static void fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct fake_conn *c = st->data;
    char *nl;
    uv_buf_t out;

    (void)buf;
    if (n < 0 || c->len + (size_t)n >= sizeof(c->line) - 1) {
        uv_close((uv_handle_t *)st, fake_closed);
        return;
    }
    c->len += (size_t)n;
    c->line[c->len] = '\0';
    if (!(nl = strchr(c->line, '\n'))) {
        return;
    }
    *nl = '\0';
    uv_read_stop(st);
    if (c->admin->ncmds < FAKE_CMDS_MAX) {
        c->admin->cmds[c->admin->ncmds++] = kn_strdup(c->line);
    }
    c->reply =
        kn_strdup(strcmp(c->line, "show servers state") == 0         ? fake_dump
                  : strncmp(c->line, "show servers state ", 19) == 0 ? "Can't find backend.\n\n"
                                                                     : "Unknown command.\n\n");
    out = uv_buf_init(c->reply, (unsigned)strlen(c->reply));
    uv_write(&c->write, st, &out, 1, fake_written);
}

static void fake_connection(uv_stream_t *server, int status)
{
    struct fake_conn *c;

    if (status < 0) {
        return;
    }
    c = kn_calloc(1, sizeof(*c));
    c->admin = server->data;
    uv_pipe_init(server->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
        uv_close((uv_handle_t *)&c->pipe, fake_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, fake_alloc, fake_read);
}

static struct fake_admin *fake_admin_start(uv_loop_t *loop, const char *dir)
{
    struct fake_admin *fa = kn_calloc(1, sizeof(*fa));

    fa->path = kn_asprintf("%s/admin.sock", dir);
    assert_int_equal(uv_pipe_init(loop, &fa->server, 0), 0);
    fa->server.data = fa;
    assert_int_equal(uv_pipe_bind(&fa->server, fa->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fa->server, 16, fake_connection), 0);
    return fa;
}

/* HAProxy goes away: nobody listens at the path any more. */
static void fake_admin_stop(struct fake_admin *fa)
{
    if (!uv_is_closing((uv_handle_t *)&fa->server)) {
        uv_close((uv_handle_t *)&fa->server, NULL);
    }
    unlink(fa->path);
}

/* Once the loop closed its handle. */
static void fake_admin_release(struct fake_admin *fa)
{
    for (size_t i = 0; i < fa->ncmds; i++) {
        free(fa->cmds[i]);
    }
    free(fa->path);
    free(fa);
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
    if (f->admin) {
        fake_admin_stop(f->admin);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (f->admin) {
        fake_admin_release(f->admin);
    }
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

struct live {
    int done;
    int status;
    struct kn_live_state state;
};

static void on_live(int status, const struct kn_live_state *live, void *data)
{
    struct live *l = data;

    l->done = 1;
    l->status = status;
    if (live) {
        kn_live_state_copy(&l->state, live);
    }
}

static void observe_app(struct fixture *f, const char *app, struct live *l)
{
    struct kn_app_id id = {.repository = "deploy", .app = app};

    kn_live_state_release(&l->state);
    memset(l, 0, sizeof(*l));
    assert_int_equal(kn_platform_observe(f->p, &id, NULL, 5000, on_live, l), 0);
    assert_true(run_until(f, &l->done, 10000));
    assert_int_equal(l->status, 0);
}

/* Observe app until its live state has an error (want_error) or has none and its servers were
 * read back from HAProxy; at most 15 s. */
static void observe_until(struct fixture *f, const char *app, int want_error, struct live *l)
{
    uint64_t end;
    int never = 0;

    uv_update_time(&f->loop);
    end = uv_now(&f->loop) + 15000;
    for (;;) {
        observe_app(f, app, l);
        if (want_error ? l->state.error != NULL : !l->state.error && l->state.nresources > 0) {
            return;
        }
        if (uv_now(&f->loop) >= end) {
            fail_msg("app %s: the reading of HAProxy did not come (error: %s)", app,
                     l->state.error ? l->state.error : "none");
        }
        run_until(f, &never, 100);
    }
}

static void write_apps_json(const char *dir)
{
    char *folder = kn_asprintf("%s/local", dir);
    char *platform = kn_asprintf("%s/local/local", dir);
    char *path = kn_asprintf("%s/apps.json", platform);
    const char *names[] = {"alpha", "beta", "gamma"};
    json_t *root = json_object();

    /* the fixture's platform made them */
    assert_true(mkdir(folder, 0755) == 0 || errno == EEXIST);
    assert_true(mkdir(platform, 0755) == 0 || errno == EEXIST);
    for (size_t i = 0; i < 3; i++) {
        json_t *insts = json_pack("[{s:s, s:i, s:i, s:i, s:s}]", "name", "primary-1", "variant",
                                  KN_VARIANT_PRIMARY, "index", 1, "port", 31001 + (int)i, "commit",
                                  "0123456789012345678901234567890123456789");
        if (i == 0) {
            json_array_append_new(insts,
                                  json_pack("{s:s, s:i, s:i, s:i, s:s}", "name", "canary-1",
                                            "variant", KN_VARIANT_CANARY, "index", 2, "port", 31002,
                                            "commit", "1123456789012345678901234567890123456789"));
        }
        json_object_set_new(root, names[i],
                            json_pack("{s:s, s:s, s:s, s:[f,f,f], s:i, s:o}", "repository",
                                      "deploy", "app", names[i], "bind", "127.0.0.1:1", "percent",
                                      i == 0 ? 50.0 : 100.0, i == 0 ? 50.0 : 0.0, 0.0, "next", 3,
                                      "instances", insts));
    }
    assert_int_equal(json_dump_file(root, path, JSON_INDENT(2)), 0);
    json_decref(root);
    free(path);
    free(platform);
    free(folder);
}

/*
 * Every app of a platform is read back from ONE `show servers state` of all backends: with
 * three apps, the admin socket sees that command once, and a command of its own only for the
 * app the dump has no row of (gamma: HAProxy does not have its backend). Each app reads its
 * own backend's rows (alpha's servers without drift: not those of its route backend). When
 * HAProxy is gone, every app's observation says so.
 */
static void test_one_reading_for_all_apps(void **state)
{
    struct fixture *f = *state;
    struct kn_platform_config cfg = {0};
    struct kn_local_config options = {0};
    struct kn_platform_deps deps = {0};
    struct fake_admin *fa;
    struct live l = {0};
    struct kn_error err;
    char name[] = "local";

    kn_platform_free(f->p); /* this test's platform uses an HAProxy it does not manage */
    f->p = NULL;
    write_apps_json(f->dir);
    fa = f->admin = fake_admin_start(&f->loop, f->dir);
    cfg.name = name;
    cfg.ptype = kn_platform_type_find("local");
    options.haproxy.managed = 0;
    options.haproxy.socket = fa->path;
    options.ports.min = 31000;
    options.ports.max = 31039;
    cfg.options = &options;
    deps.loop = &f->loop;
    deps.data_dir = f->dir;
    deps.http = f->http;
    kn_error_clear(&err);
    if (kn_platform_new(&f->p, &deps, &cfg, &err) < 0) {
        fail_msg("local platform: %s", err.msg);
    }

    observe_until(f, "alpha", 0, &l);
    assert_true(l.state.variant[KN_VARIANT_PRIMARY].weight == 50);
    assert_true(l.state.variant[KN_VARIANT_CANARY].weight == 50);
    assert_int_equal(l.state.nresources, 2); /* primary-1 and canary-1, no drift */
    for (size_t i = 0; i < l.state.nresources; i++) {
        assert_null(l.state.resources[i].drift);
    }
    observe_app(f, "beta", &l);
    assert_null(l.state.error);
    assert_true(l.state.variant[KN_VARIANT_PRIMARY].weight == 100);
    assert_int_equal(l.state.nresources, 1);
    observe_until(f, "gamma", 1, &l);
    /* the first reading: one command for all, one for the app it had no row of */
    assert_true(fa->ncmds >= 2);
    assert_string_equal(fa->cmds[0], "show servers state");
    assert_string_equal(fa->cmds[1], "show servers state gamma");
    for (size_t i = 2; i < fa->ncmds; i++) {
        /* later readings, if the machine was slow: the same two commands each */
        assert_string_equal(fa->cmds[i], i % 2 ? "show servers state gamma" : "show servers state");
    }

    /* HAProxy is gone: every app's next reading says so */
    fake_admin_stop(fa);
    observe_until(f, "alpha", 1, &l);
    assert_non_null(strstr(l.state.error, "haproxy is not reachable at "));
    observe_app(f, "beta", &l);
    assert_non_null(l.state.error);
    assert_non_null(strstr(l.state.error, "haproxy is not reachable at "));
    assert_true(l.state.variant[KN_VARIANT_PRIMARY].weight == 100); /* kanaria's own record */
    kn_live_state_release(&l.state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apps_side_by_side, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_lock_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_reading_for_all_apps, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
