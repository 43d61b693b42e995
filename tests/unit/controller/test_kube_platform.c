/*
 * The kubernetes platform's operations through the front end (include/kanaria/platform.h),
 * against kanaria's scripted API server fake (tests/fakes/kube_fake.py, run with python3 on a
 * free loopback port, its simulated Deployment and HTTPRoute controllers sped up). Each test
 * starts from a reset fake and a fresh platform; what was sent is read back from the fake's
 * request log (/_fake/requests) and from its API. Every wait is bounded.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "kanaria/platform.h"
#include "kanaria/store.h"
#include "platforms/kubernetes/kubernetes.h"
#include "testutil.h"

#define COMMIT1   "1111111111111111111111111111111111111111"
#define COMMIT2   "2222222222222222222222222222222222222222"
#define DEPLOY    "/apis/apps/v1/namespaces/shop/deployments/"
#define SERVICE   "/api/v1/namespaces/shop/services/"
#define ROUTE     "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/web"
#define CONFIGMAP "/api/v1/namespaces/shop/configmaps/web-config"

struct fixture {
    uv_loop_t loop;
    uv_timer_t wake;
    struct kn_http_client *http;
    struct kn_platform *p;
    pid_t fake;
    int port;
    char *dir;
    char kubeconfig[512];
    struct kn_store *store; /* NULL: memos in memory */
};

struct outcome {
    int done;
    int status;
    char message[2048];
    char progress[16384];
};

struct seen {
    int done;
    int status;
    struct kn_live_state live;
};

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

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

/* ---- the fake (plain HTTP/1.0 on loopback, blocking) ---------------------------------------- */

/* method path with body (content type ctype); the reply's body, *code its status. */
static char *fake_http(const struct fixture *f, const char *method, const char *path,
                       const char *ctype, const char *body, int *code)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char head[512];
    size_t len = body ? strlen(body) : 0, cap = 1 << 16, n = 0;
    char *buf = kn_malloc(cap);
    const char *at;
    ssize_t r;
    char *out;

    a.sin_port = htons((uint16_t)f->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(head, sizeof(head),
             "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n",
             method, path, ctype ? ctype : "application/json", len);
    assert_true(write(s, head, strlen(head)) == (ssize_t)strlen(head));
    if (len) {
        assert_true(write(s, body, len) == (ssize_t)len);
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
    *code = 0;
    sscanf(buf, "HTTP/%*s %d", code);
    at = strstr(buf, "\r\n\r\n");
    out = kn_strdup(at ? at + 4 : "");
    free(buf);
    return out;
}

/* A JSON reply (NULL on a 404); body stolen. */
static json_t *fake_json(const struct fixture *f, const char *method, const char *path,
                         const char *ctype, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int code;
    char *reply = fake_http(f, method, path, ctype, text, &code);
    json_t *j = NULL;

    if (code == 404) {
        goto out;
    }
    if (code < 200 || code > 299) {
        fail_msg("fake %s %s: %d %s", method, path, code, reply);
    }
    j = json_loads(reply, 0, NULL);
    assert_non_null(j);
out:
    free(text);
    free(reply);
    json_decref(body);
    return j;
}

static void fake_post(const struct fixture *f, const char *path, json_t *body)
{
    json_decref(fake_json(f, "POST", path, NULL, body));
}

static json_t *fake_get(const struct fixture *f, const char *path)
{
    return fake_json(f, "GET", path, NULL, NULL);
}

/* The requests of method whose path starts with prefix, in the log. */
static int requests_of(const struct fixture *f, const char *method, const char *prefix,
                       json_t **last)
{
    json_t *log = fake_get(f, "/_fake/requests");
    json_t *r;
    size_t i;
    int n = 0;

    json_array_foreach(log, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        if (m && p && strcmp(m, method) == 0 && strncmp(p, prefix, strlen(prefix)) == 0) {
            n++;
            if (last) {
                json_decref(*last);
                *last = json_incref(r);
            }
        }
    }
    json_decref(log);
    return n;
}

/* The LISTs of pods in shop since request number since (a GET of the collection, not a watch);
 * *watches (when not NULL): the WATCHes of them. */
static int pod_lists(const struct fixture *f, long long since, int *watches)
{
    json_t *log = fake_get(f, "/_fake/requests");
    json_t *r;
    size_t i;
    int n = 0;

    if (watches) {
        *watches = 0;
    }
    json_array_foreach(log, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        int watch = json_object_get(json_object_get(r, "query"), "watch") != NULL;
        if (json_integer_value(json_object_get(r, "seq")) <= since || !m || !p ||
            strcmp(m, "GET") != 0 || strcmp(p, "/api/v1/namespaces/shop/pods") != 0) {
            continue;
        }
        if (!watch) {
            n++;
        } else if (watches) {
            (*watches)++;
        }
    }
    json_decref(log);
    return n;
}

/* The number of the last request the fake logged. */
static long long last_request(const struct fixture *f)
{
    json_t *log = fake_get(f, "/_fake/requests");
    long long seq =
        json_integer_value(json_object_get(json_array_get(log, json_array_size(log) - 1), "seq"));

    json_decref(log);
    return seq;
}

/* The name of a pod of the variant the fake's Deployment controller made (caller frees), or
 * NULL; read from /_fake/objects, which the request log leaves out. */
static char *pod_of(const struct fixture *f, const char *variant)
{
    json_t *objs = fake_get(f, "/_fake/objects");
    json_t *o;
    size_t i;
    char *name = NULL;

    json_array_foreach(json_object_get(objs, "items"), i, o)
    {
        const json_t *md = json_object_get(o, "metadata");
        const char *v = json_string_value(
            json_object_get(json_object_get(md, "labels"), "kanaria.dev/variant"));
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (kind && strcmp(kind, "Pod") == 0 && v && strcmp(v, variant) == 0) {
            name = kn_strdup(json_string_value(json_object_get(md, "name")));
            break;
        }
    }
    json_decref(objs);
    return name;
}

/* A route rule's weight of backend name; -1 when the rule does not name it. */
static long long rule_weight(const json_t *route, size_t rule, const char *name)
{
    const json_t *refs = json_object_get(
        json_array_get(json_object_get(json_object_get(route, "spec"), "rules"), rule),
        "backendRefs");
    size_t i;
    json_t *b;

    json_array_foreach(refs, i, b)
    {
        if (strcmp(json_string_value(json_object_get(b, "name")), name) == 0) {
            json_t *w = json_object_get(b, "weight");
            return w ? json_integer_value(w) : 1;
        }
    }
    return -1;
}

/* ---- the platform --------------------------------------------------------------------------- */

static char g_ns[] = "shop", g_gw[] = "web", g_deploy[] = "Deployment", g_web[] = "web";
static int g_istio; /* the manifests route with a VirtualService, not an HTTPRoute */

static struct kn_kube_app_options options_for(int method)
{
    struct kn_kube_app_options o = {.set = 1, .namespace_ = g_ns};

    o.workload.set = 1;
    o.workload.kind = g_deploy;
    o.workload.name = g_web;
    o.service = g_web;
    o.traffic_routing.set = 1;
    o.traffic_routing.method = method;
    if (method == KN_KUBE_ROUTING_GATEWAYAPI) {
        o.traffic_routing.gatewayapi.set = 1;
        o.traffic_routing.gatewayapi.http_route = g_gw;
    }
    if (method == KN_KUBE_ROUTING_ISTIO) {
        o.traffic_routing.istio.set = 1;
        o.traffic_routing.istio.virtual_service = g_gw;
    }
    return o;
}

static struct kn_kube_app_options g_options;

static void platform_open(struct fixture *f)
{
    struct kn_platform_config cfg = {0};
    struct kn_kube_config options = {0};
    struct kn_platform_deps deps = {0};
    struct kn_error err;
    char name[] = "k8s";

    cfg.name = name;
    cfg.ptype = kn_platform_type_find("kubernetes");
    assert_non_null(cfg.ptype);
    options.kubeconfig = f->kubeconfig;
    options.qps = 200;
    cfg.options = &options;
    deps.loop = &f->loop;
    deps.http = f->http;
    deps.data_dir = f->dir;
    deps.store = f->store;
    kn_error_clear(&err);
    if (kn_platform_new(&f->p, &deps, &cfg, &err) < 0) {
        fail_msg("kubernetes platform: %s", err.msg);
    }
}

static void on_done(int status, const char *message, void *data)
{
    struct outcome *o = data;

    o->done = 1;
    o->status = status;
    snprintf(o->message, sizeof(o->message), "%s", message ? message : "");
}

static void on_progress(const char *line, void *data)
{
    struct outcome *o = data;
    size_t len = strlen(o->progress);

    snprintf(o->progress + len, sizeof(o->progress) - len, "%s\n", line);
}

static struct kn_platform_req req_for(struct outcome *o, long long deployment, int stage)
{
    struct kn_platform_req req = {
        .id = {.repository = "deploy", .app = "web"},
        .deployment_id = deployment,
        .stage_index = stage,
        .stage_name = "STAGE",
        .timeout_ms = 60000,
        .done = on_done,
        .progress = on_progress,
        .data = o,
    };
    memset(o, 0, sizeof(*o));
    return req;
}

/* The app's manifests: a Namespace, a ConfigMap (with_cm), the Deployment web with image and
 * replicas, the Service web and the HTTPRoute web with two rules sending to it. */
static json_t *manifests(const char *image, int replicas, int with_cm)
{
    char text[4096];
    json_t *m;

    snprintf(text, sizeof(text),
             "[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}},"
             "%s"
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
             "\"spec\":{\"replicas\":%d,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
             "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":"
             "[{\"name\":\"web\",\"image\":\"%s\",\"ports\":[{\"containerPort\":8080}]}]}}}},"
             "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},"
             "\"spec\":{\"selector\":{\"app\":\"web\"},\"ports\":[{\"port\":80,"
             "\"targetPort\":8080}]}},"
             "%s]",
             with_cm ? "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                       "\"web-config\"},\"data\":{\"greeting\":\"hello\"}},"
                     : "",
             replicas, image,
             g_istio
                 ? "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
                   "\"metadata\":{\"name\":\"web\"},\"spec\":{\"hosts\":[\"web.example.com\"],"
                   "\"http\":[{\"match\":[{\"uri\":{\"prefix\":\"/api\"}}],\"route\":"
                   "[{\"destination\":{\"host\":\"web\",\"port\":{\"number\":80}}}]},"
                   "{\"route\":[{\"destination\":{\"host\":\"web\",\"port\":{\"number\":80}}}]}]}}"
                 : "{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"HTTPRoute\","
                   "\"metadata\":{\"name\":\"web\"},\"spec\":{\"parentRefs\":[{\"name\":\"gw\"}],"
                   "\"rules\":[{\"matches\":[{\"path\":{\"type\":\"PathPrefix\",\"value\":"
                   "\"/api\"}}],\"backendRefs\":[{\"name\":\"web\",\"port\":80}]},"
                   "{\"backendRefs\":[{\"name\":\"web\",\"port\":80}]}]}}");
    m = json_loads(text, 0, NULL);
    assert_non_null(m);
    return m;
}

static void apply_start(struct fixture *f, enum kn_variant v, const char *commit, const char *image,
                        struct kn_scale replicas, int with_cm, long long ready_ms,
                        struct outcome *o, struct kn_platform_op **op)
{
    json_t *m = manifests(image, 2, with_cm);
    struct kn_platform_req req = req_for(o, 5, v == KN_VARIANT_PRIMARY ? 0 : 1);
    struct kn_variant_spec spec = {
        .variant = v,
        .commit = commit,
        .manifests = m,
        .options = &g_options,
        .replicas = replicas,
        .ready_timeout_ms = ready_ms,
    };

    assert_int_equal(kn_platform_apply(f->p, &req, &spec, op), 0);
    json_decref(m);
}

static void apply_ok(struct fixture *f, enum kn_variant v, const char *commit, const char *image,
                     struct kn_scale replicas, int with_cm, struct outcome *o)
{
    apply_start(f, v, commit, image, replicas, with_cm, 0, o, NULL);
    if (!run_until(f, &o->done, 50000)) {
        fail_msg("apply %s did not end", kn_variant_name(v));
    }
    if (o->status != 0) {
        fail_msg("apply %s: %s\n%s", kn_variant_name(v), o->message, o->progress);
    }
}

static void weights(struct fixture *f, int primary, int canary, struct outcome *o)
{
    struct kn_platform_req req = req_for(o, 5, 2);
    const double pc[KN_VARIANT_COUNT] = {primary, canary, 0};

    assert_int_equal(kn_platform_set_weights(f->p, &req, pc, NULL), 0);
    assert_true(run_until(f, &o->done, 30000));
}

static void remove_variant(struct fixture *f, enum kn_variant v, struct outcome *o)
{
    struct kn_platform_req req = req_for(o, 5, 4);

    assert_int_equal(kn_platform_remove(f->p, &req, v, NULL), 0);
    assert_true(run_until(f, &o->done, 30000));
}

static void on_observed(int status, const struct kn_live_state *live, void *data)
{
    struct seen *s = data;

    s->done = 1;
    s->status = status;
    if (live) {
        kn_live_state_copy(&s->live, live);
    }
}

static void observe(struct fixture *f, const json_t *m, int primary, int canary, struct seen *s)
{
    struct kn_app_id id = {.repository = "deploy", .app = "web"};
    struct kn_desired d = {
        .commit = COMMIT1, .manifests = m, .options = &g_options, .percent = {primary, canary, 0}};

    memset(s, 0, sizeof(*s));
    assert_int_equal(kn_platform_observe(f->p, &id, m ? &d : NULL, 20000, on_observed, s), 0);
    assert_true(run_until(f, &s->done, 25000));
}

static const struct kn_live_resource *resource(const struct kn_live_state *l, const char *kind,
                                               const char *name)
{
    for (size_t i = 0; i < l->nresources; i++) {
        if (strcmp(l->resources[i].kind, kind) == 0 && strcmp(l->resources[i].name, name) == 0) {
            return &l->resources[i];
        }
    }
    return NULL;
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
        /* ctest's SKIP_RETURN_CODE; a CI machine has python3, so there it fails */
        printf("SKIPPED: test_kube_platform needs /usr/bin/python3 for tests/fakes/kube_fake.py\n");
        exit(getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77);
    }
    f->dir = kn_test_tmpdir();
    snprintf(portfile, sizeof(portfile), "%s/port", f->dir);
    f->fake = fork();
    if (f->fake == 0) {
        execl("/usr/bin/python3", "python3", script, "--port", "0", "--port-file", portfile,
              (char *)NULL);
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
    snprintf(f->kubeconfig, sizeof(f->kubeconfig), "%s/kubeconfig", f->dir);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    int st;

    if (f) {
        kill(f->fake, SIGTERM);
        waitpid(f->fake, &st, 0);
        kn_test_rmtree(f->dir);
        free(f->dir);
        free(f);
    }
    return 0;
}

static int setup_with(void **state, int method)
{
    struct fixture *f = *state;

    g_options = options_for(method);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->wake);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    fake_post(f, "/_fake/reset", json_object());
    fake_post(f, "/_fake/script", json_pack("{s:f}", "speed", 4.0));
    platform_open(f);
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, KN_KUBE_ROUTING_GATEWAYAPI);
}

static int setup_podselector(void **state)
{
    return setup_with(state, KN_KUBE_ROUTING_PODSELECTOR);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_platform_free(f->p);
    f->p = NULL;
    kn_http_client_close(f->http);
    uv_close((uv_handle_t *)&f->wake, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    return 0;
}

static const struct kn_scale all = {.value = 0};
static const struct kn_scale one = {.value = 1};

/* ---- the tests ----------------------------------------------------------------------------- */

/* The first sync applies every manifest with server-side apply, the Namespace first, then the
 * Deployment; the Service (which selects only the primary's pods) and the route once the
 * Deployment is healthy, so that an adopted Deployment's old pods keep their traffic until its
 * new ones are ready; all labelled for the app, with kubectl's words on the way. */
static void test_first_sync(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *last = NULL, *d, *svc, *log, *r;
    size_t i;
    int ns_at = -1, route_at = -1, deploy_at = -1, svc_at = -1;
    const char *healthy, *svc_line;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 1, &o);
    assert_int_equal(requests_of(f, "PATCH", DEPLOY "web", &last), 1);
    assert_string_equal(json_string_value(json_object_get(last, "contentType")),
                        "application/apply-patch+yaml");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last, "query"), "fieldManager")),
        "kanaria");
    assert_string_equal(json_string_value(json_object_get(json_object_get(last, "query"), "force")),
                        "true");
    json_decref(last);
    /* dependency order */
    log = fake_get(f, "/_fake/requests");
    json_array_foreach(log, i, r)
    {
        const char *p = json_string_value(json_object_get(r, "path"));
        if (strcmp(json_string_value(json_object_get(r, "method")), "PATCH") != 0) {
            continue;
        }
        if (strcmp(p, "/api/v1/namespaces/shop") == 0) {
            ns_at = (int)i;
        } else if (strcmp(p, ROUTE) == 0) {
            route_at = (int)i;
        } else if (strcmp(p, DEPLOY "web") == 0) {
            deploy_at = (int)i;
        } else if (strcmp(p, SERVICE "web") == 0) {
            svc_at = (int)i;
        }
    }
    json_decref(log);
    assert_true(ns_at >= 0 && deploy_at > ns_at && svc_at > deploy_at && route_at > svc_at);
    d = fake_get(f, DEPLOY "web");
    assert_non_null(d);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(d, "metadata"), "labels"),
                                          "kanaria.dev/app")),
        "web");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(d, "metadata"), "annotations"), "kanaria.dev/commit")),
        COMMIT1);
    json_decref(d);
    svc = fake_get(f, SERVICE "web");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(svc, "spec"), "selector"),
                                          "kanaria.dev/variant")),
        "primary");
    json_decref(svc);
    healthy = strstr(o.progress, "Deployment shop/web is healthy");
    svc_line = strstr(o.progress, "Service shop/web ");
    assert_non_null(healthy);
    assert_non_null(svc_line);
    assert_true(svc_line > healthy);
    assert_non_null(strstr(o.progress, "updated replicas are available"));
}

/* A canary runs beside the primary as web-canary behind web-canary; the route's rules get the
 * split; observe reads it back; the canary cannot be removed while it has traffic; at 0 it is
 * deleted. */
static void test_canary_and_weights(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct seen s;
    json_t *d, *route, *m;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    d = fake_get(f, DEPLOY "web-canary");
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")),
                     1);
    json_decref(d);
    d = fake_get(f, SERVICE "web-canary");
    assert_non_null(d);
    json_decref(d);

    weights(f, 90, 10, &o);
    assert_int_equal(o.status, 0);
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_weight(route, 0, "web"), 90);
    assert_int_equal(rule_weight(route, 0, "web-canary"), 10);
    assert_int_equal(rule_weight(route, 1, "web"), 90);
    assert_int_equal(rule_weight(route, 1, "web-canary"), 10);
    json_decref(route);

    m = manifests("web:1", 2, 0);
    observe(f, m, 90, 10, &s);
    assert_int_equal(s.status, 0);
    assert_true(s.live.variant[KN_VARIANT_CANARY].weight > 9.5 &&
                s.live.variant[KN_VARIANT_CANARY].weight < 10.5);
    assert_int_equal(s.live.variant[KN_VARIANT_CANARY].healthy, 1);
    assert_string_equal(s.live.variant[KN_VARIANT_CANARY].commit, COMMIT2);
    assert_string_equal(s.live.variant[KN_VARIANT_PRIMARY].commit, COMMIT1);
    assert_non_null(resource(&s.live, "Deployment", "shop/web"));
    assert_string_equal(resource(&s.live, "Deployment", "shop/web")->status, "2/2 available");
    for (size_t i = 0; i < s.live.nresources; i++) {
        if (s.live.resources[i].drift) {
            fail_msg("drift on %s %s: %s", s.live.resources[i].kind, s.live.resources[i].name,
                     s.live.resources[i].drift);
        }
    }
    kn_live_state_release(&s.live);

    remove_variant(f, KN_VARIANT_CANARY, &o);
    assert_int_equal(o.status, KN_EINVAL);
    assert_non_null(strstr(o.message, "10% of the traffic"));
    weights(f, 100, 0, &o);
    assert_int_equal(o.status, 0);
    remove_variant(f, KN_VARIANT_CANARY, &o);
    assert_int_equal(o.status, 0);
    assert_null(fake_get(f, DEPLOY "web-canary"));
    assert_null(fake_get(f, SERVICE "web-canary"));
    /* removing what is gone is done at once */
    remove_variant(f, KN_VARIANT_CANARY, &o);
    assert_int_equal(o.status, 0);
    json_decref(m);
}

/* The same canary applied twice (a restart mid-stage) is created once and applied again; its
 * Service follows its healthy Deployment. */
static void test_canary_idempotent(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *objs, *it;
    size_t i;
    int canaries = 0;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    assert_non_null(strstr(o.progress, "Deployment shop/web-canary created"));
    /* the canary's Service comes once its pods are ready: it never selects none */
    assert_non_null(strstr(o.progress, "Service shop/web-canary created"));
    assert_true(strstr(o.progress, "Deployment shop/web-canary is healthy") <
                strstr(o.progress, "Service shop/web-canary created"));
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    assert_null(strstr(o.progress, "Deployment shop/web-canary created"));
    assert_non_null(strstr(o.progress, "Deployment shop/web-canary applied"));
    objs = fake_get(f, "/_fake/objects");
    json_array_foreach(json_object_get(objs, "items"), i, it)
    {
        const char *n = json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
        if (strcmp(json_string_value(json_object_get(it, "kind")), "Deployment") == 0 &&
            strncmp(n, "web-canary", 10) == 0) {
            canaries++;
        }
    }
    json_decref(objs);
    assert_int_equal(canaries, 1);
}

/* A resource kanaria applied that leaves the manifests is deleted; the others stay. */
static void test_prune(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *cm, *last = NULL;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 1, &o);
    cm = fake_get(f, CONFIGMAP);
    assert_non_null(cm);
    json_decref(cm);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT2, "web:2", all, 0, &o);
    assert_null(fake_get(f, CONFIGMAP));
    assert_int_equal(requests_of(f, "DELETE", CONFIGMAP, &last), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last, "query"), "propagationPolicy")),
        "Background");
    json_decref(last);
    assert_non_null(strstr(o.progress, "ConfigMap shop/web-config deleted"));
    cm = fake_get(f, DEPLOY "web");
    assert_non_null(cm);
    json_decref(cm);
    /* and nothing is deleted twice */
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT2, "web:2", all, 0, &o);
    assert_int_equal(requests_of(f, "DELETE", CONFIGMAP, NULL), 1);
}

/* A canary whose pods crash fails with the pods' reason, long before its ready timeout. */
static void test_crash_fails_fast(void **state)
{
    struct fixture *f = *state;
    struct outcome o;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_start(f, KN_VARIANT_CANARY, COMMIT2, "web:crash", one, 0, 600000, &o, NULL);
    assert_true(run_until(f, &o.done, 40000));
    assert_int_equal(o.status, KN_EIO);
    assert_non_null(strstr(o.message, "CrashLoopBackOff"));
    assert_non_null(strstr(o.message, "web-canary"));
}

/* A canary whose pod never becomes ready: while the apply waits, its pods come from a watch,
 * listed once and never again; the watch drops and resumes from its resourceVersion; when the
 * pod turns ImagePullBackOff, the watch event fails the apply at once with the reason, long
 * before its ready timeout, with no LIST after it. */
static void test_pull_backoff_from_watch(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    int never = 0, watches = 0;
    long long start, before;
    char *pod, *path;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    start = last_request(f);
    fake_post(f, "/_fake/script", json_pack("{s:f}", "podSeconds", 1000.0));
    apply_start(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, 600000, &o, NULL);
    run_until(f, &never, 3500); /* past the 3 s at which the pods were once listed again */
    assert_false(o.done);
    assert_int_equal(pod_lists(f, start, &watches), 1);
    assert_true(watches >= 1);
    pod = pod_of(f, "canary");
    assert_non_null(pod);
    path = kn_asprintf("/api/v1/namespaces/shop/pods/%s", pod);
    before = last_request(f);
    /* the watches drop first: the pods' resumes from its resourceVersion, with no new LIST */
    fake_post(f, "/_fake/drop", json_pack("{s:b}", "current", 1));
    fake_post(f, "/_fake/status",
              json_pack("{s:s, s:{s:s, s:[{s:s, s:b, s:i, s:s, s:{s:{s:s, s:s}}}]}}", "path", path,
                        "status", "phase", "Pending", "containerStatuses", "name", "web", "ready",
                        0, "restartCount", 0, "image", "web:2", "state", "waiting", "reason",
                        "ImagePullBackOff", "message", "Back-off pulling image \"web:2\""));
    assert_true(run_until(f, &o.done, 10000));
    assert_int_equal(o.status, KN_EIO);
    assert_non_null(strstr(o.message, "ImagePullBackOff"));
    assert_non_null(strstr(o.message, "web-canary"));
    assert_int_equal(pod_lists(f, before, NULL), 0);
    assert_int_equal(pod_lists(f, start, NULL), 1);
    free(path);
    free(pod);
}

/* Without the Gateway API the apply says the router is unavailable, in the server's words. */
static void test_router_unavailable(void **state)
{
    struct fixture *f = *state;
    struct outcome o;

    fake_post(f, "/_fake/groups", json_pack("{s:[s]}", "remove", "gateway.networking.k8s.io/v1"));
    apply_start(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, 0, &o, NULL);
    assert_true(run_until(f, &o.done, 30000));
    assert_int_equal(o.status, KN_ENOTFOUND);
    assert_string_equal(o.message, "router unavailable: the server has no kind HTTPRoute in "
                                   "gateway.networking.k8s.io/v1");
}

/* A route whose parent refuses the backends fails the weights with the parent's reason. */
static void test_route_refused(void **state)
{
    struct fixture *f = *state;
    struct outcome o;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    fake_post(f, "/_fake/script",
              json_pack("{s:[{s:s, s:b, s:s}]}", "routeRules", "name", "web", "resolvedRefs", 0,
                        "resolvedReason", "BackendNotFound"));
    weights(f, 80, 20, &o);
    assert_int_equal(o.status, KN_EIO);
    assert_non_null(strstr(o.message, "BackendNotFound"));
}

/* The apiserver's Status message reaches the caller as it is. */
static void test_status_message(void **state)
{
    struct fixture *f = *state;
    struct outcome o;

    fake_post(f, "/_fake/fault",
              json_pack("{s:i, s:s, s:s, s:i}", "status", 500, "pathRegex", "deployments/web$",
                        "message", "etcdserver: request timed out", "count", 5));
    apply_start(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, 0, &o, NULL);
    assert_true(run_until(f, &o.done, 30000));
    assert_int_not_equal(o.status, 0);
    assert_non_null(strstr(o.message, "applying Deployment shop/web: "));
    assert_non_null(strstr(o.message, "etcdserver: request timed out"));
}

/* Drift: a weight edited by hand, a resource deleted. */
static void test_observe_drift(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct seen s;
    const struct kn_live_resource *r;
    json_t *m = manifests("web:1", 2, 1), *route;
    int code;
    char *reply;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 1, &o);
    observe(f, m, 100, 0, &s);
    assert_int_equal(s.status, 0);
    for (size_t i = 0; i < s.live.nresources; i++) {
        assert_null(s.live.resources[i].drift);
    }
    kn_live_state_release(&s.live);

    /* someone sends half the traffic to the canary's Service in every rule, and deletes the
     * ConfigMap */
    route = fake_get(f, ROUTE);
    json_object_del(route, "status");
    {
        json_t *rules = json_object_get(json_object_get(route, "spec"), "rules"), *rule;
        size_t i;
        json_array_foreach(rules, i, rule)
        {
            json_object_set_new(rule, "backendRefs",
                                json_pack("[{s:s, s:i, s:i}, {s:s, s:i, s:i}]", "name", "web",
                                          "port", 80, "weight", 50, "name", "web-canary", "port",
                                          80, "weight", 50));
        }
    }
    {
        char *text = json_dumps(route, JSON_COMPACT);
        reply = fake_http(f, "PUT", ROUTE, "application/json", text, &code);
        free(text);
        free(reply);
        assert_int_equal(code, 200);
    }
    json_decref(route);
    reply = fake_http(f, "DELETE", CONFIGMAP, NULL, NULL, &code);
    free(reply);
    assert_int_equal(code, 200);

    /* the informers see it (watch events): bounded retries */
    for (int i = 0; i < 50; i++) {
        observe(f, m, 100, 0, &s);
        assert_int_equal(s.status, 0);
        r = resource(&s.live, "ConfigMap", "shop/web-config");
        if (r && r->drift) {
            break;
        }
        kn_live_state_release(&s.live);
        run_until(f, &(int){0}, 100);
    }
    r = resource(&s.live, "ConfigMap", "shop/web-config");
    assert_non_null(r);
    assert_non_null(r->drift);
    assert_non_null(strstr(r->drift, "deleted"));
    r = resource(&s.live, "HTTPRoute", "shop/web weights");
    assert_non_null(r);
    assert_non_null(r->drift);
    assert_non_null(strstr(r->drift, "kanaria set 100/0/0"));
    kn_live_state_release(&s.live);
    json_decref(m);
}

/* observe of an app never deployed: not found. */
static void test_observe_nothing(void **state)
{
    struct fixture *f = *state;
    struct seen s;

    observe(f, NULL, 100, 0, &s);
    assert_int_equal(s.status, KN_ENOTFOUND);
    assert_non_null(s.live.error);
    assert_non_null(strstr(s.live.error, "has not deployed the app"));
    kn_live_state_release(&s.live);
}

/* A cancelled wait ends at once with KN_ECANCELLED. */
static void test_cancel_wait(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_platform_op *op = NULL;
    int never = 0;

    fake_post(f, "/_fake/script", json_pack("{s:f}", "podSeconds", 1000.0));
    apply_start(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, 0, &o, &op);
    run_until(f, &never, 1500);
    assert_false(o.done);
    kn_platform_cancel(op);
    assert_true(run_until(f, &o.done, 5000));
    assert_int_equal(o.status, KN_ECANCELLED);
}

/* A Deployment deleted while kanaria waits for it fails the wait at once, as `kubectl rollout
 * status` does, not at the ready timeout. */
static void test_deleted_while_waiting(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    int never = 0, code = 0;
    char *reply;

    fake_post(f, "/_fake/script", json_pack("{s:f}", "podSeconds", 1000.0));
    apply_start(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, 0, &o, NULL);
    run_until(f, &never, 1500);
    assert_false(o.done);
    reply = fake_http(f, "DELETE", DEPLOY "web", NULL, NULL, &code);
    free(reply);
    assert_int_equal(code, 200);
    assert_true(run_until(f, &o.done, 10000));
    assert_int_equal(o.status, KN_EIO);
    assert_non_null(strstr(o.message, "Deployment shop/web was deleted"));
}

/* remove_app deletes everything kanaria applied, the canary too. */
static void test_remove_app(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_platform_req req;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 1, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    req = req_for(&o, 0, -1);
    assert_int_equal(kn_platform_remove_app(f->p, &req, NULL), 0);
    assert_true(run_until(f, &o.done, 30000));
    assert_int_equal(o.status, 0);
    assert_null(fake_get(f, DEPLOY "web"));
    assert_null(fake_get(f, DEPLOY "web-canary"));
    assert_null(fake_get(f, SERVICE "web"));
    assert_null(fake_get(f, SERVICE "web-canary"));
    assert_null(fake_get(f, ROUTE));
    assert_null(fake_get(f, CONFIGMAP));
}

static const char *var_of(const struct kn_strmap *m, const char *name)
{
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->keys[i], name) == 0) {
            return m->values[i];
        }
    }
    return NULL;
}

/* The analysis placeholders name the variant's objects, after a restart too (before the app's
 * next call). */
static void test_template_vars_after_restart(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_app_id id = {.repository = "deploy", .app = "web"};
    struct kn_strmap vars = {0};

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    kn_platform_free(f->p);
    platform_open(f);
    kn_platform_template_vars(f->p, &id, KN_VARIANT_CANARY, &vars);
    assert_string_equal(var_of(&vars, "namespace"), "shop");
    assert_string_equal(var_of(&vars, "workload"), "web-canary");
    assert_string_equal(var_of(&vars, "service"), "web-canary");
    /* a probe of the canary alone: its Service, at the port of the Service in Git */
    assert_string_equal(var_of(&vars, "variant_url"), "http://web-canary.shop.svc:80");
    kn_platform_vars_release(&vars);
    kn_platform_template_vars(f->p, &id, KN_VARIANT_PRIMARY, &vars);
    assert_string_equal(var_of(&vars, "workload"), "web");
    assert_string_equal(var_of(&vars, "variant_url"), "http://web.shop.svc:80");
    kn_platform_vars_release(&vars);
}

/* ---- header routing ------------------------------------------------------------------------ */

static const struct kn_route_match g_matches[] = {
    {.field = KN_ROUTE_HEADER, .name = "X-Canary", .value = "always"},
    {.field = KN_ROUTE_COOKIE, .name = "tester", .value = "^(alice|bob)$", .regex = 1},
};

static void set_routes(struct fixture *f, int primary, int canary, size_t nmatches, double mirror,
                       struct outcome *o)
{
    struct kn_platform_req req = req_for(o, 5, 3);
    const double pc[KN_VARIANT_COUNT] = {primary, canary, 0};
    struct kn_routes r = {.matches = g_matches, .nmatches = nmatches, .mirror = mirror};

    assert_int_equal(kn_platform_set_routes(f->p, &req, pc, &r, NULL), 0);
    assert_true(run_until(f, &o->done, 30000));
}

static size_t rule_count(const json_t *route)
{
    return json_array_size(json_object_get(json_object_get(route, "spec"), "rules"));
}

static const json_t *rule_at(const json_t *route, size_t i)
{
    return json_array_get(json_object_get(json_object_get(route, "spec"), "rules"), i);
}

/* The route holds header routing's rules: before each weighted rule, one with that rule's matches
 * times the route's, sending to the canary's Service alone. */
static void assert_routed(struct fixture *f, int primary, int canary)
{
    json_t *route = fake_get(f, ROUTE);
    const json_t *r0, *m, *h;

    assert_non_null(route);
    assert_int_equal(rule_count(route), 4);
    r0 = rule_at(route, 0);
    assert_int_equal(json_array_size(json_object_get(r0, "backendRefs")), 1);
    assert_int_equal(rule_weight(route, 0, "web-canary"), 1);
    assert_int_equal(json_array_size(json_object_get(r0, "matches")), 2);
    m = json_array_get(json_object_get(r0, "matches"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "path"), "value")),
                        "/api");
    h = json_array_get(json_object_get(m, "headers"), 0);
    assert_string_equal(json_string_value(json_object_get(h, "type")), "Exact");
    assert_string_equal(json_string_value(json_object_get(h, "name")), "X-Canary");
    assert_string_equal(json_string_value(json_object_get(h, "value")), "always");
    m = json_array_get(json_object_get(r0, "matches"), 1);
    h = json_array_get(json_object_get(m, "headers"), 0);
    assert_string_equal(json_string_value(json_object_get(h, "type")), "RegularExpression");
    assert_string_equal(json_string_value(json_object_get(h, "name")), "Cookie");
    assert_string_equal(json_string_value(json_object_get(h, "value")),
                        "(^|;\\s*)tester=((alice|bob))(;|$)");
    /* the rule without matches: one match per route entry, headers only */
    assert_int_equal(json_array_size(json_object_get(rule_at(route, 2), "matches")), 2);
    assert_int_equal(rule_weight(route, 2, "web-canary"), 1);
    assert_int_equal(rule_weight(route, 2, "web"), -1);
    assert_int_equal(rule_weight(route, 1, "web"), primary);
    assert_int_equal(rule_weight(route, 3, "web"), primary);
    assert_int_equal(rule_weight(route, 1, "web-canary"), canary ? canary : -1);
    json_decref(route);
}

/* Header and cookie matches go into the HTTPRoute, stay through set_weights (observe sees no
 * drift and the weighted rules' split), and go away when the traffic goes all to the primary. */
static void test_header_routes(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct seen s;
    json_t *m = manifests("web:1", 2, 0), *route;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    set_routes(f, 90, 10, 2, 0, &o);
    if (o.status != 0) {
        fail_msg("set_routes: %s\n%s", o.message, o.progress);
    }
    assert_routed(f, 90, 10);

    weights(f, 80, 20, &o);
    assert_int_equal(o.status, 0);
    assert_routed(f, 80, 20);
    observe(f, m, 80, 20, &s);
    assert_int_equal(s.status, 0);
    assert_true(s.live.variant[KN_VARIANT_CANARY].weight > 19.5 &&
                s.live.variant[KN_VARIANT_CANARY].weight < 20.5);
    for (size_t i = 0; i < s.live.nresources; i++) {
        if (s.live.resources[i].drift) {
            fail_msg("drift on %s %s: %s", s.live.resources[i].kind, s.live.resources[i].name,
                     s.live.resources[i].drift);
        }
    }
    kn_live_state_release(&s.live);

    /* promotion or rollback: all to the primary takes the routes away */
    weights(f, 100, 0, &o);
    assert_int_equal(o.status, 0);
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_count(route), 2);
    assert_int_equal(rule_weight(route, 0, "web-canary"), -1);
    assert_int_equal(rule_weight(route, 1, "web-canary"), -1);
    json_decref(route);
    /* and a later split has none */
    weights(f, 90, 10, &o);
    assert_int_equal(o.status, 0);
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_count(route), 2);
    json_decref(route);
    json_decref(m);
}

/* Removing the canary takes its routes out of the HTTPRoute first: nothing names its Service. */
static void test_header_routes_remove(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *route;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    set_routes(f, 100, 0, 1, 0, &o);
    assert_int_equal(o.status, 0);
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_count(route), 4);
    json_decref(route);
    remove_variant(f, KN_VARIANT_CANARY, &o);
    if (o.status != 0) {
        fail_msg("remove: %s\n%s", o.message, o.progress);
    }
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_count(route), 2);
    assert_int_equal(rule_weight(route, 0, "web-canary"), -1);
    json_decref(route);
    assert_null(fake_get(f, SERVICE "web-canary"));
    /* a later primary apply renders no route either */
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_count(route), 2);
    json_decref(route);
}

/* A mirror of part of the traffic cannot be written in an HTTPRoute (gateway-api v1): refused,
 * and the route is left as it was. */
static void test_mirror_refused(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *route;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    set_routes(f, 90, 10, 0, 20, &o);
    assert_int_equal(o.status, KN_EUNSUPPORTED);
    assert_non_null(strstr(o.message, "mirror must be 100"));
    route = fake_get(f, ROUTE);
    assert_int_equal(rule_count(route), 2);
    assert_int_equal(rule_weight(route, 0, "web-canary"), -1);
    json_decref(route);
}

#define VIRTUAL_SERVICE "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/web"

static const json_t *vs_http(const json_t *vs, size_t i)
{
    return json_array_get(json_object_get(json_object_get(vs, "spec"), "http"), i);
}

static const char *vs_str(const json_t *v, const char *a, const char *b, const char *c)
{
    const json_t *x = json_object_get(v, a);
    x = b ? json_object_get(x, b) : x;
    x = c ? json_object_get(x, c) : x;
    return json_string_value(x);
}

/* istio: the matches go into the VirtualService as an http route to the canary before each
 * weighted one, the mirror of a part as mirror and mirrorPercentage; all to the primary takes
 * them away. */
static void test_istio_routes(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *vs;
    const json_t *h, *m;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    set_routes(f, 90, 10, 2, 25, &o);
    if (o.status != 0) {
        fail_msg("set_routes: %s\n%s", o.message, o.progress);
    }
    vs = fake_get(f, VIRTUAL_SERVICE);
    assert_non_null(vs);
    assert_int_equal(json_array_size(json_object_get(json_object_get(vs, "spec"), "http")), 4);
    h = vs_http(vs, 0);
    assert_int_equal(json_array_size(json_object_get(h, "route")), 1);
    assert_string_equal(vs_str(json_array_get(json_object_get(h, "route"), 0), "destination",
                               "host", NULL),
                        "web-canary");
    m = json_array_get(json_object_get(h, "match"), 0);
    assert_string_equal(vs_str(m, "uri", "prefix", NULL), "/api");
    assert_string_equal(vs_str(m, "headers", "x-canary", "exact"), "always");
    m = json_array_get(json_object_get(h, "match"), 1);
    assert_string_equal(vs_str(m, "headers", "cookie", "regex"),
                        "^(.*;\\s*)?tester=((alice|bob))(;.*)?$");
    h = vs_http(vs, 1);
    assert_string_equal(vs_str(h, "mirror", "host", NULL), "web-canary");
    assert_true(json_number_value(json_object_get(json_object_get(h, "mirrorPercentage"),
                                                  "value")) == 25);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(h, "route"), 1), "weight")),
                     10);
    json_decref(vs);
    weights(f, 100, 0, &o);
    assert_int_equal(o.status, 0);
    vs = fake_get(f, VIRTUAL_SERVICE);
    assert_int_equal(json_array_size(json_object_get(json_object_get(vs, "spec"), "http")), 2);
    assert_null(json_object_get(vs_http(vs, 0), "mirror"));
    assert_null(json_object_get(vs_http(vs, 1), "mirror"));
    json_decref(vs);
}

static int setup_istio(void **state)
{
    g_istio = 1;
    return setup_with(state, KN_KUBE_ROUTING_ISTIO);
}

static int teardown_istio(void **state)
{
    g_istio = 0;
    return teardown(state);
}

/* The routes are in the memo: after a restart, set_weights and an apply of the primary keep them.
 */
static void test_header_routes_restart(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_error err;
    char db[700];

    kn_platform_free(f->p);
    snprintf(db, sizeof(db), "%s/routes.db", f->dir);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&f->store, db, &err), 0);
    platform_open(f);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    set_routes(f, 90, 10, 2, 0, &o);
    assert_int_equal(o.status, 0);
    kn_platform_free(f->p);
    platform_open(f);
    weights(f, 70, 30, &o);
    assert_int_equal(o.status, 0);
    assert_routed(f, 70, 30);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    assert_routed(f, 70, 30);
    kn_platform_free(f->p);
    f->p = NULL;
    kn_store_close(f->store);
    f->store = NULL;
    unlink(db);
    platform_open(f);
}

/* podselector: the split follows the canary's replicas against the primary's. */
static void test_podselector(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *d, *svc;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, "web:1", all, 0, &o);
    svc = fake_get(f, SERVICE "web");
    /* no router: the primary Service keeps Git's selector and reaches the canary's pods */
    assert_null(json_object_get(json_object_get(json_object_get(svc, "spec"), "selector"),
                                "kanaria.dev/variant"));
    json_decref(svc);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, "web:2", one, 0, &o);
    weights(f, 50, 50, &o);
    assert_int_equal(o.status, 0);
    d = fake_get(f, DEPLOY "web-canary");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")),
                     2);
    json_decref(d);
    weights(f, 100, 0, &o);
    assert_int_equal(o.status, 0);
    d = fake_get(f, DEPLOY "web-canary");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")),
                     0);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary_and_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_backoff_from_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_app, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_vars_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_podselector, setup_podselector, teardown),
        cmocka_unit_test_setup_teardown(test_header_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_routes_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mirror_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_routes_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_istio_routes, setup_istio, teardown_istio),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
