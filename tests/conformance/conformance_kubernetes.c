/*
 * The conformance suite on the kubernetes platform, against kanaria's scripted API server fake
 * (tests/fakes/kube_fake.py, run with python3 on a free loopback port for each scenario, its
 * simulated controllers sped up). Each app has its own namespace (conf-0, conf-1, ...) holding
 * the Deployment web, the Service web and the HTTPRoute web; kanaria reaches the fake through a
 * kubeconfig written for the scenario.
 *
 * The truth is read from the fake's API, apart from the provider: the app's pods that are not
 * being deleted, per variant by their kanaria.dev/variant label (instances; their names are the
 * ids), the commit annotation of the variant's Deployment, the variant's Service (servers: it
 * exists, a backend the route can send to; kanaria leaves a variant at weight 0 out of the
 * route's backendRefs) and the HTTPRoute's backendRefs (routed: a weight above 0).
 * Behind kanaria's back: a weight is the route's rules rewritten to 92/8, a killed instance a pod
 * deleted, and a version that never becomes ready an image whose containers stay
 * ContainerCreating (the fake's image rule "neverready").
 *
 * Without python3 it prints a SKIPPED line and exits 77, but fails under CI=true.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "platforms/kubernetes/kubernetes.h"

#define MAX_APPS 4

struct kube_harness {
    uv_loop_t *loop;
    char *dir;
    struct kn_http_client *http;
    pid_t fake; /* the python3 process */
    int port;
    char kubeconfig[600];
    struct kn_kube_config cfg;
    struct {
        char repository[32];
        char app[32];
        char ns[32];
        struct kn_kube_app_options options;
    } apps[MAX_APPS];
    size_t napps;
};

static char g_web[] = "web", g_deployment[] = "Deployment";

/* ---- the fake: started, spoken to with a blocking loopback HTTP/1.1 request, stopped -------- */

/* Start tests/fakes/kube_fake.py; 0 with h->port set, or 1 with why. */
static int fake_start(struct kube_harness *h, char *why)
{
    const char *src = getenv("KANARIA_SOURCE_DIR");
    char *script = kn_asprintf("%s/tests/fakes/kube_fake.py", src ? src : ".");
    char *portfile = kn_asprintf("%s/fake.port", h->dir);
    int rc = 1;

    if (access(script, R_OK) != 0) {
        snprintf(why, KN_CONF_WHY, "no %s (KANARIA_SOURCE_DIR)", script);
        goto out;
    }
    if (access("/usr/bin/python3", X_OK) != 0) {
        snprintf(why, KN_CONF_WHY, "no /usr/bin/python3 for %s", script);
        goto out;
    }
    h->fake = fork();
    assert_true(h->fake >= 0);
    if (h->fake == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* gone with the test, however it ends */
        execl("/usr/bin/python3", "python3", script, "--port", "0", "--port-file", portfile,
              (char *)NULL);
        _exit(127);
    }
    /* the port file, within 10 s */
    for (int i = 0; i < 200 && !h->port; i++) {
        FILE *fp = fopen(portfile, "r");
        if (fp) {
            if (fscanf(fp, "%d", &h->port) != 1) {
                h->port = 0;
            }
            fclose(fp);
        }
        if (!h->port) {
            nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
        }
    }
    if (h->port <= 0) {
        snprintf(why, KN_CONF_WHY, "python3 could not start %s", script);
        kill(h->fake, SIGKILL);
        waitpid(h->fake, NULL, 0);
        h->fake = 0;
        goto out;
    }
    rc = 0;
out:
    free(portfile);
    free(script);
    return rc;
}

static void fake_stop(struct kube_harness *h)
{
    int status = 0;

    if (h->fake <= 0) {
        return;
    }
    kill(h->fake, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(h->fake, &status, WNOHANG) == h->fake) {
            h->fake = 0;
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    }
    kill(h->fake, SIGKILL);
    waitpid(h->fake, &status, 0);
    h->fake = 0;
}

/* One request to the fake (body stolen, may be NULL); its JSON reply, NULL on a 404. */
static json_t *fake_call(struct kube_harness *h, const char *method, const char *path, json_t *body)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)h->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    char *text = body ? json_dumps(body, JSON_COMPACT) : kn_strdup("");
    char *req =
        kn_asprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                    "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                    method, path, h->port, strlen(text), text);
    size_t cap = 1 << 16, len = 0, sent = 0;
    char *reply = kn_malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int status = 0;
    const char *start;
    json_t *out = NULL;
    json_error_t jerr;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    while (sent < strlen(req)) {
        ssize_t n = write(fd, req + sent, strlen(req) - sent);
        assert_true(n > 0);
        sent += (size_t)n;
    }
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            cap *= 2;
            reply = kn_realloc(reply, cap);
        }
        n = read(fd, reply + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        assert_true(n >= 0); /* a timeout fails the scenario */
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    reply[len] = '\0';
    start = strstr(reply, "\r\n\r\n");
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1 || !start) {
        fail_msg("kube fake %s %s: %.300s", method, path, reply);
    }
    if (status != 404) {
        if (status < 200 || status > 299) {
            fail_msg("kube fake %s %s: %.300s", method, path, reply);
        }
        out = json_loads(start + 4, 0, &jerr);
        if (!out) {
            fail_msg("kube fake %s %s: not JSON: %s", method, path, jerr.text);
        }
    }
    free(reply);
    free(req);
    free(text);
    json_decref(body);
    return out;
}

/* ---- the harness ---------------------------------------------------------------------------- */

static size_t app_slot(struct kube_harness *h, const struct kn_app_id *id)
{
    size_t i;

    for (i = 0; i < h->napps; i++) {
        if (strcmp(h->apps[i].repository, id->repository) == 0 &&
            strcmp(h->apps[i].app, id->app) == 0) {
            return i;
        }
    }
    assert_true(h->napps < MAX_APPS);
    snprintf(h->apps[i].repository, sizeof(h->apps[i].repository), "%s", id->repository);
    snprintf(h->apps[i].app, sizeof(h->apps[i].app), "%s", id->app);
    snprintf(h->apps[i].ns, sizeof(h->apps[i].ns), "conf-%zu", i);
    h->apps[i].options = (struct kn_kube_app_options){
        .set = 1,
        .namespace_ = h->apps[i].ns,
        .workload = {.set = 1, .kind = g_deployment, .name = g_web},
        .service = g_web,
        .traffic_routing = {.set = 1,
                            .method = KN_KUBE_ROUTING_GATEWAYAPI,
                            .gatewayapi = {.set = 1, .http_route = g_web}},
    };
    h->napps++;
    return i;
}

static int kube_setup(void **self, uv_loop_t *loop, const char *dir, char *why)
{
    struct kube_harness *h = kn_calloc(1, sizeof(*h));
    char *config;
    FILE *fp;

    h->loop = loop;
    h->dir = kn_strdup(dir);
    if (fake_start(h, why) != 0) {
        free(h->dir);
        free(h);
        return 1;
    }
    /* faster controllers; a version that never becomes ready waits in ContainerCreating (no pod
     * reason kanaria fails on) */
    json_decref(fake_call(
        h, "POST", "/_fake/script",
        json_pack("{s:f, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}", "speed", 4.0, "imageRules",
                  "match", "neverready", "reason", "ContainerCreating", "match", "crash", "reason",
                  "CrashLoopBackOff", "match", "badimage", "reason", "ImagePullBackOff")));
    config = kn_asprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
                         "    server: http://127.0.0.1:%d\nusers:\n- name: u\n  user:\n"
                         "    token: conformance\ncontexts:\n- name: fake\n  context:\n"
                         "    cluster: fake\n    user: u\ncurrent-context: fake\n",
                         h->port);
    snprintf(h->kubeconfig, sizeof(h->kubeconfig), "%s/kubeconfig", dir);
    fp = fopen(h->kubeconfig, "w");
    assert_non_null(fp);
    fputs(config, fp);
    fclose(fp);
    free(config);
    h->cfg.kubeconfig = h->kubeconfig;
    h->cfg.qps = 200;
    assert_int_equal(kn_http_client_new(&h->http, loop), 0);
    *self = h;
    return 0;
}

static void kube_new(void *self, struct kn_platform **out)
{
    struct kube_harness *h = self;
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "k8s",
        .ptype = &kn_platform_kubernetes,
        .options = &h->cfg,
    };
    struct kn_platform_deps deps = {.loop = h->loop, .data_dir = h->dir, .http = h->http};
    struct kn_error err;

    kn_error_clear(&err);
    if (kn_platform_new(out, &deps, &pc, &err) != 0) {
        fail_msg("kubernetes platform: %s", err.msg);
    }
}

static void kube_teardown(void *self)
{
    struct kube_harness *h = self;

    fake_stop(h);
    kn_http_client_close(h->http);
    free(h->dir);
    free(h);
}

static json_t *kube_manifests(void *self, const struct kn_app_id *id, const char *version,
                              int never_ready)
{
    struct kube_harness *h = self;
    size_t i = app_slot(h, id);
    char image[64];

    snprintf(image, sizeof(image), "web:%s%s", version, never_ready ? "-neverready" : "");
    return json_pack(
        "[{s:s, s:s, s:{s:s}},"
        " {s:s, s:s, s:{s:s}, s:{s:i, s:{s:{s:s}}, s:{s:{s:{s:s}}, s:{s:[{s:s, s:s}]}}}},"
        " {s:s, s:s, s:{s:s}, s:{s:{s:s}, s:[{s:i, s:i}]}},"
        " {s:s, s:s, s:{s:s}, s:{s:[{s:s}], s:[{s:[{s:s, s:i}]}]}}]",
        "apiVersion", "v1", "kind", "Namespace", "metadata", "name", h->apps[i].ns, "apiVersion",
        "apps/v1", "kind", "Deployment", "metadata", "name", "web", "spec", "replicas", 1,
        "selector", "matchLabels", "app", "web", "template", "metadata", "labels", "app", "web",
        "spec", "containers", "name", "web", "image", image, "apiVersion", "v1", "kind", "Service",
        "metadata", "name", "web", "spec", "selector", "app", "web", "ports", "port", 80,
        "targetPort", 8080, "apiVersion", "gateway.networking.k8s.io/v1", "kind", "HTTPRoute",
        "metadata", "name", "web", "spec", "parentRefs", "name", "gw", "rules", "backendRefs",
        "name", "web", "port", 80);
}

static const void *kube_options(void *self, const struct kn_app_id *id)
{
    struct kube_harness *h = self;

    return &h->apps[app_slot(h, id)].options;
}

static int variant_of(const char *name)
{
    if (!name) {
        return -1;
    }
    if (strcmp(name, "web") == 0) {
        return KN_VARIANT_PRIMARY;
    }
    if (strcmp(name, "web-canary") == 0) {
        return KN_VARIANT_CANARY;
    }
    if (strcmp(name, "web-baseline") == 0) {
        return KN_VARIANT_BASELINE;
    }
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void kube_truth(void *self, const struct kn_app_id *id, struct kn_conf_truth *out)
{
    struct kube_harness *h = self;
    size_t slot = app_slot(h, id);
    char path[256];
    json_t *pods, *p, *route, *rule, *ref;
    const char *names[64];
    size_t i, j, n = 0, len = 0;

    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", h->apps[slot].ns);
    pods = fake_call(h, "GET", path, NULL);
    json_array_foreach(json_object_get(pods, "items"), i, p)
    {
        const json_t *meta = json_object_get(p, "metadata");
        const char *variant = json_string_value(
            json_object_get(json_object_get(meta, "labels"), "kanaria.dev/variant"));
        int v = !variant                           ? -1
                : strcmp(variant, "primary") == 0  ? KN_VARIANT_PRIMARY
                : strcmp(variant, "canary") == 0   ? KN_VARIANT_CANARY
                : strcmp(variant, "baseline") == 0 ? KN_VARIANT_BASELINE
                                                   : -1;
        if (v < 0 || json_object_get(meta, "deletionTimestamp")) {
            continue;
        }
        out->instances[v]++;
        if (n < 64) {
            names[n++] = json_string_value(json_object_get(meta, "name"));
        }
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (i = 0; i < n && len < sizeof(out->ids); i++) {
        len += (size_t)snprintf(out->ids + len, sizeof(out->ids) - len, "%s%s", i ? "," : "",
                                names[i]);
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        json_t *d;
        snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s%s",
                 h->apps[slot].ns, "web",
                 v == KN_VARIANT_CANARY     ? "-canary"
                 : v == KN_VARIANT_BASELINE ? "-baseline"
                                            : "");
        d = fake_call(h, "GET", path, NULL);
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s%s", h->apps[slot].ns, "web",
                 v == KN_VARIANT_CANARY     ? "-canary"
                 : v == KN_VARIANT_BASELINE ? "-baseline"
                                            : "");
        {
            json_t *svc = fake_call(h, "GET", path, NULL);
            out->servers[v] = svc != NULL;
            json_decref(svc);
        }
        if (d) {
            const char *c = json_string_value(
                json_object_get(json_object_get(json_object_get(d, "metadata"), "annotations"),
                                "kanaria.dev/commit"));
            snprintf(out->commit[v], sizeof(out->commit[v]), "%s", c ? c : "");
        }
        json_decref(d);
    }
    json_decref(pods);
    snprintf(path, sizeof(path), "/apis/gateway.networking.k8s.io/v1/namespaces/%s/httproutes/web",
             h->apps[slot].ns);
    route = fake_call(h, "GET", path, NULL);
    json_array_foreach(json_object_get(json_object_get(route, "spec"), "rules"), i, rule)
    {
        json_array_foreach(json_object_get(rule, "backendRefs"), j, ref)
        {
            int v = variant_of(json_string_value(json_object_get(ref, "name")));
            const json_t *w = json_object_get(ref, "weight");
            if (v < 0) {
                continue;
            }
            if (!w || json_integer_value(w) > 0) {
                out->routed[v] = 1;
            }
        }
    }
    json_decref(route);
}

/* The route's rules rewritten to send 92/8 to the primary and canary Services. */
static int kube_tamper_weight(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct kube_harness *h = self;
    size_t slot = app_slot(h, id);
    char path[256];
    json_t *route, *rule;
    size_t i;

    (void)v;
    (void)why;
    snprintf(path, sizeof(path), "/apis/gateway.networking.k8s.io/v1/namespaces/%s/httproutes/web",
             h->apps[slot].ns);
    route = fake_call(h, "GET", path, NULL);
    assert_non_null(route);
    json_object_del(route, "status");
    json_array_foreach(json_object_get(json_object_get(route, "spec"), "rules"), i, rule)
    {
        json_object_set_new(rule, "backendRefs",
                            json_pack("[{s:s, s:i, s:i}, {s:s, s:i, s:i}]", "name", "web", "port",
                                      80, "weight", 92, "name", "web-canary", "port", 80, "weight",
                                      8));
    }
    json_decref(fake_call(h, "PUT", path, route));
    return 0;
}

/* One pod of the variant deleted. */
static int kube_kill_instance(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct kube_harness *h = self;
    size_t slot = app_slot(h, id);
    char path[512];
    json_t *pods, *p;
    size_t i;
    const char *victim = NULL;

    snprintf(path, sizeof(path),
             "/api/v1/namespaces/%s/pods?labelSelector=kanaria.dev%%2Fvariant%%3D%s",
             h->apps[slot].ns, kn_variant_name(v));
    pods = fake_call(h, "GET", path, NULL);
    json_array_foreach(json_object_get(pods, "items"), i, p)
    {
        victim = json_string_value(json_object_get(json_object_get(p, "metadata"), "name"));
        break;
    }
    if (!victim) {
        json_decref(pods);
        snprintf(why, KN_CONF_WHY, "no pod of the %s runs", kn_variant_name(v));
        return 1;
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", h->apps[slot].ns, victim);
    json_decref(pods);
    json_decref(fake_call(h, "DELETE", path, NULL));
    return 0;
}

static void child_done(int status, const char *message, void *data)
{
    (void)message;
    (void)data;
    _exit(status == 0 ? 5 : 6); /* the apply was to be killed before it ended */
}

/* The crashing kanaria: its own loop and platform, the apply, until it is killed. */
static void crash_child(struct kube_harness *h, const struct kn_app_id *id,
                        const struct kn_variant_spec *spec)
{
    uv_loop_t loop;
    struct kn_http_client *http = NULL;
    struct kn_platform *p = NULL;
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "k8s", .ptype = &kn_platform_kubernetes, .options = &h->cfg};
    struct kn_platform_deps deps;
    struct kn_platform_req req = {
        .id = *id, .deployment_id = 1, .stage_index = 0, .done = child_done};
    struct kn_error err;

    if (uv_loop_init(&loop) != 0 || kn_http_client_new(&http, &loop) != 0) {
        _exit(2);
    }
    deps = (struct kn_platform_deps){.loop = &loop, .data_dir = h->dir, .http = http};
    if (kn_platform_new(&p, &deps, &pc, &err) != 0 || kn_platform_apply(p, &req, spec, NULL) != 0) {
        _exit(3);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(4);
}

/* kanaria killed (SIGKILL) once its apply has created the variant's Deployment (whose pods never
 * become ready): a new kanaria over the same state must converge and leave nothing behind. */
static int kube_crash_mid_apply(void *self, struct kn_platform **p, const struct kn_app_id *id,
                                const struct kn_variant_spec *spec, char *why)
{
    struct kube_harness *h = self;
    size_t slot = app_slot(h, id);
    char path[256];
    int status = 0, found = 0;
    pid_t child;

    (void)why;
    kn_platform_free(*p);
    *p = NULL;
    kn_conf_spin(h->loop, 100);
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        crash_child(h, id, spec);
    }
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/web-%s", h->apps[slot].ns,
             kn_variant_name(spec->variant));
    for (int waited = 0; !found && waited < 20000; waited += 100) {
        json_t *d;
        kn_conf_spin(h->loop, 100);
        d = fake_call(h, "GET", path, NULL);
        found = d != NULL;
        json_decref(d);
        if (waitpid(child, &status, WNOHANG) == child) {
            fail_msg("the crashing kanaria exited on its own (status %d)", status);
        }
    }
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!found) {
        fail_msg("the apply in the crashing kanaria created no Deployment web-%s",
                 kn_variant_name(spec->variant));
    }
    kube_new(self, p);
    return 0;
}

static const struct kn_conf_provider kube_provider = {
    .name = "kubernetes",
    .reapply_replaces = NULL,
    .setup = kube_setup,
    .teardown = kube_teardown,
    .platform_new = kube_new,
    .manifests = kube_manifests,
    .options = kube_options,
    .truth = kube_truth,
    .tamper_weight = kube_tamper_weight,
    .kill_instance = kube_kill_instance,
    .crash_mid_apply = kube_crash_mid_apply,
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return kn_conf_run(&kube_provider);
}
