/*
 * The kubernetes platform's operations, as a provider (include/kanaria/plugin/platform.h), on the
 * API client (kube.h) and the pure builders (render.h).
 *
 *   apply primary  each manifest's resource found through discovery, rendered with kanaria's
 *                  labels (the workload with kanaria.dev/variant=primary in its pod template, the
 *                  Service selecting only the primary's pods when a router splits the traffic,
 *                  the route with the weights kanaria set last, never Git's: kanaria owns its
 *                  backendRefs), then server-side applied in dependency order
 *                  (PATCH ?fieldManager=kanaria&force=true, application/apply-patch+yaml); the
 *                  resources applied before for the app and no longer in the manifests are
 *                  deleted (propagationPolicy=Background, a 404 is gone); then the Deployment is
 *                  waited for on watch events until it is healthy by kubectl's `rollout status`
 *                  rule, its pods followed meanwhile by an informer of their own (the variant's
 *                  pod selector; one LIST, then a WATCH, freed when the wait ends) so that a pod
 *                  that cannot run (ImagePullBackOff, CrashLoopBackOff, unschedulable) fails the
 *                  apply at once with its reason. No request is repeated while waiting.
 *   apply canary   <workload>-canary (replicas a count or a percent of the primary's), applied
 *                  and waited for the same way, then <service>-canary, so that the Service
 *                  never selects no pod (baseline: -baseline). Server-side apply makes a
 *                  repeated call harmless: the same call after a restart applies the same objects
 *                  and waits again. A cancelled variant's apply deletes what it applied.
 *   set_weights    gatewayapi, istio: the route rendered with the split and applied, then
 *                  followed until every parent accepted it at the new generation
 *                  (kn_kube_route_ready), on the route's watch; a GET a second only while that
 *                  watch is down.
 *                  podselector: no router; the canary (and baseline) Deployment is scaled so that
 *                  its share of the pods approximates its percent: p% runs
 *                  round(P * p / primary%) replicas (at least 1, at most P, the primary's count):
 *                  0% runs none, and from an even split up (100% too) the variant runs as many
 *                  pods as the primary. kanaria never scales the primary, which Git owns.
 *   remove         refused while the variant has weight; <workload>-variant and
 *                  <service>-variant deleted (a 404 is done).
 *   remove_app     everything kanaria applied for the app deleted, in reverse apply order.
 *   observe        from informers (list + watch per namespace and kind, the app's label
 *                  selector), never per-object polling: the variants' counts and commits, the
 *                  weights read back from the live route, a line per resource and drift (a field
 *                  kanaria applied changed, a resource it applied deleted, the route's weights
 *                  not the split kanaria set).
 *
 * The memo keeps, per app: "app" (namespace, workload, Service, routing, route, the primary's
 * replicas), "resources" (the keys apiVersion/kind/namespace/name of what the primary's applies
 * made, for prune and remove_app), "variant-canary"/"variant-baseline" (the same for the
 * variants), "workload-canary"/"workload-baseline" (the variant's Deployment as applied, which
 * podselector scales), "route" (the route as rendered from Git, without weights) and "weights"
 * (the split kanaria set), "routes" (the header routes and mirror kanaria set: {"matches":
 * [{"cookie", "name", "value", "regex"}], "mirror"}, rendered into the route by every write and
 * by observe). The records of "app" are also kept in <state>/apps.json, for the
 * analysis placeholders, which have no call to read the memo with.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/plugin/platform.h"
#include "platforms/kubernetes/kube.h"
#include "platforms/kubernetes/kubernetes.h"
#include "platforms/kubernetes/lease.h"
#include "platforms/kubernetes/render.h"

#define TICK_MS          1000               /* waits look again at least this often */
#define REQUEST_MS       30000              /* one request, retries included */
#define DEFAULT_READY_MS (10LL * 60 * 1000) /* an apply's wait without ready_timeout_ms */
#define LEASE_RELEASE_MS 2100               /* kn_kube_lease_free's release (2 s), and a bit */
#define MEMO_APP         "app"
#define MEMO_RESOURCES   "resources"
#define MEMO_ROUTE       "route"
#define MEMO_WEIGHTS     "weights"
#define MEMO_ROUTES      "routes"
#define APPLY_QUERY      "?fieldManager=" KN_KUBE_FIELD_MANAGER "&force=true"
#define APPLY_TYPE       "application/apply-patch+yaml"
#define DELETE_QUERY     "?propagationPolicy=Background"

struct kube;

/* An informer of one kind in one namespace, with an app's selector; shared by the app's calls. */
struct kinf {
    struct kinf *next;
    struct kube *kb;
    char *api_version;
    char *kind;
    char *ns;
    char *selector;
    struct kn_kube_informer *inf;
};

/* What the provider knows of an app: from the memo "app", or from its manifests. */
struct kapp {
    struct kapp *next;
    char *repository;
    char *app;
    char *ns;
    char *workload; /* the primary Deployment's name */
    char *service;  /* the primary Service's name; NULL: none */
    long long service_port; /* its first port ({{variant_url}}); 0: none */
    int routing;    /* enum kn_kube_routing; -1: no trafficRouting */
    char *route_api;
    char *route_kind;
    char *route_name;   /* NULL: no route */
    long long replicas; /* the primary's in its manifest */
    int from_file;      /* read from apps.json only: the memo confirms it at the next call */
    char *selector;     /* kn_kube_owner_selector */
};

struct op;

struct kube {
    char *name;
    uv_loop_t *loop;
    struct kn_kube *kube;
    struct kn_kube_leader_config leader;
    struct kn_kube_lease *lease;
    kn_platform_lead_cb lead_cb;
    void *lead_data;
    int leading; /* the Lease is held: its release must run before the session goes */
    struct op *ops;
    struct kapp *apps;
    char *apps_path; /* <state>/apps.json */
    struct kinf *infs;
    size_t handles; /* timers not yet closed */
    int closing;
    char who[160];
};

enum op_kind { OP_APPLY, OP_REMOVE, OP_WEIGHTS, OP_REMOVE_APP, OP_OBSERVE };

typedef void (*step_fn)(struct op *op, const struct kn_kube_result *r);

struct op {
    struct op *next;
    struct kube *kb;
    enum op_kind kind;
    struct kn_platform_call *call;
    struct kapp *a;
    enum kn_variant variant;
    char commit[41];
    /* the request or discovery in flight */
    struct kn_kube_call *inflight;
    step_fn then;
    int tolerate_404;
    char doing[640];
    int resolving;
    struct kn_kube_gvr gvr; /* the last resolve's answer (owned strings) */
    int res_status;
    char res_message[512];
    void (*resolved)(struct op *op);
    uv_timer_t *timer;
    void (*tick)(struct op *op);
    int cancelled;
    int ended;
    int undoing; /* a cancelled variant's apply deleting what it applied */
    /* apply and deletes: [{"key": {apiVersion, kind, namespace, name}, "obj": rendered}] */
    json_t *items;
    size_t at;
    json_t *keys;   /* the keys this apply made (owned array) */
    json_t *doomed; /* keys to delete (owned array) */
    void (*deleted)(struct op *op);
    json_t *later;    /* a variant's Service, applied once its Deployment is healthy (owned) */
    int after_health; /* applying op->later */
    json_t *workload; /* the variant's Deployment as applied (owned) */
    json_t *route;    /* the route as rendered from Git (owned) */
    json_t *routes;   /* the routes to render into it (memo "routes" form; owned, NULL: none) */
    int save_routes;  /* set_routes: op->routes go into the memo once applied */
    long long ready_ms;
    double percent[KN_VARIANT_COUNT];
    int scale_at; /* podselector: the variant being scaled */
    /* waits */
    void (*check)(struct op *op); /* on every informer event and tick */
    void (*ready)(struct op *op);
    struct kinf *winf;
    char *wait_ns;
    char *wait_name;
    long long wait_gen;
    uint64_t wait_until;
    char *pod_selector;
    /* the waited Deployment's pods (the op's own informer), else NULL */
    struct kn_kube_informer *pods;
    int wait_seen; /* the informer has shown the Deployment since the wait began */
    char last_why[512];
    /* observe */
    const struct kn_desired *desired;
    json_t *expect; /* [{"key": ..., "obj": rendered or null, "missing": message}] */
    json_t *infs;   /* keys {apiVersion, kind, namespace} whose informers observe reads */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long jint(const json_t *j, long long def)
{
    if (json_is_integer(j)) {
        return (long long)json_integer_value(j);
    }
    if (json_is_real(j)) {
        return (long long)json_real_value(j);
    }
    return def;
}

static const char *meta_str(const json_t *obj, const char *key)
{
    return jstr(json_object_get(obj, "metadata"), key);
}

static void set_str(char **at, const char *s)
{
    free(*at);
    *at = s && s[0] ? kn_strdup(s) : NULL;
}

static json_t *key_of(const json_t *obj)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", jstr(obj, "apiVersion"), "kind",
                     jstr(obj, "kind"), "namespace", meta_str(obj, "namespace"), "name",
                     meta_str(obj, "name"));
}

static int key_equal(const json_t *a, const json_t *b)
{
    return strcmp(jstr(a, "apiVersion"), jstr(b, "apiVersion")) == 0 &&
           strcmp(jstr(a, "kind"), jstr(b, "kind")) == 0 &&
           strcmp(jstr(a, "namespace"), jstr(b, "namespace")) == 0 &&
           strcmp(jstr(a, "name"), jstr(b, "name")) == 0;
}

static int keys_have(const json_t *keys, const json_t *key)
{
    size_t i;
    json_t *k;

    json_array_foreach(keys, i, k)
    {
        if (key_equal(k, key)) {
            return 1;
        }
    }
    return 0;
}

static void keys_add(json_t *keys, const json_t *key)
{
    if (!keys_have(keys, key)) {
        json_array_append_new(keys, json_deep_copy(key));
    }
}

/* "Deployment shop/web" */
static void key_name(const json_t *key, char *out, size_t size)
{
    const char *ns = jstr(key, "namespace");

    snprintf(out, size, "%s %s%s%s", jstr(key, "kind"), ns, ns[0] ? "/" : "", jstr(key, "name"));
}

static int rank_of(const json_t *key)
{
    return kn_kube_apply_rank(jstr(key, "apiVersion"), jstr(key, "kind"));
}

/* Sort items ({"key": ...}) or keys by apply rank (stable); descending: deletion order. */
static void sort_by_rank(json_t *arr, int descending)
{
    size_t n = json_array_size(arr);

    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            json_t *x = json_array_get(arr, j - 1), *y = json_array_get(arr, j);
            const json_t *kx = json_object_get(x, "key") ? json_object_get(x, "key") : x;
            const json_t *ky = json_object_get(y, "key") ? json_object_get(y, "key") : y;
            int rx = rank_of(kx), ry = rank_of(ky);
            if (descending ? rx >= ry : rx <= ry) {
                break;
            }
            json_incref(x);
            json_array_set(arr, j - 1, y);
            json_array_set_new(arr, j, x);
        }
    }
}

static json_t *memo_json(struct kn_platform_call *call, const char *key)
{
    char *text = kn_platform_call_memo_get(call, key);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;

    free(text);
    return j;
}

static int memo_put(struct kn_platform_call *call, const char *key, const json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    int rc = kn_platform_call_memo_set(call, key, text);

    free(text);
    return rc;
}

static char *memo_variant_key(const char *what, enum kn_variant v)
{
    return kn_asprintf("%s-%s", what, kn_kube_variant_name(v));
}

/* The split kanaria set last (memo "weights"), else all on the primary. */
static void weights_recall(struct kn_platform_call *call, double percent[KN_VARIANT_COUNT])
{
    json_t *w = memo_json(call, MEMO_WEIGHTS);

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        const json_t *x = json_array_get(w, (size_t)v);
        percent[v] = json_is_number(x) ? json_number_value(x) : (v == KN_VARIANT_PRIMARY ? 100 : 0);
    }
    json_decref(w);
}

static void weights_save(struct kn_platform_call *call, const double percent[KN_VARIANT_COUNT])
{
    json_t *w = json_pack("[f, f, f]", percent[0], percent[1], percent[2]);

    memo_put(call, MEMO_WEIGHTS, w);
    json_decref(w);
}

/* Routes in the memo's form; NULL when there are none. */
static json_t *routes_to_json(const struct kn_routes *r)
{
    json_t *m;

    if (!r || (!r->nmatches && r->mirror <= 0)) {
        return NULL;
    }
    m = json_array();
    for (size_t i = 0; i < r->nmatches; i++) {
        json_array_append_new(m, json_pack("{s:b, s:s, s:s, s:b}", "cookie",
                                           r->matches[i].field == KN_ROUTE_COOKIE, "name",
                                           r->matches[i].name, "value", r->matches[i].value,
                                           "regex", r->matches[i].regex));
    }
    return json_pack("{s:o, s:f}", "matches", m, "mirror", r->mirror);
}

/* route (as Git has it) with the split and the routes in the memo's form; NULL with why. */
static json_t *route_render(const json_t *route, const struct kapp *a,
                            const double percent[KN_VARIANT_COUNT], const json_t *routes, char *why,
                            size_t size)
{
    const json_t *ms = json_object_get(routes, "matches"), *e;
    struct kn_route_match *buf = kn_calloc(json_array_size(ms) + 1, sizeof(*buf));
    struct kn_routes r = {.matches = buf,
                          .mirror = json_number_value(json_object_get(routes, "mirror"))};
    json_t *out;
    size_t i;

    json_array_foreach(ms, i, e)
    {
        buf[i].field =
            json_is_true(json_object_get(e, "cookie")) ? KN_ROUTE_COOKIE : KN_ROUTE_HEADER;
        buf[i].name = jstr(e, "name");
        buf[i].value = jstr(e, "value");
        buf[i].regex = json_is_true(json_object_get(e, "regex"));
        r.nmatches++;
    }
    out = kn_kube_route_with_routes(route, a->service ? a->service : "", percent, &r, why, size);
    free(buf);
    return out;
}

/* The label selector of a Deployment's pods of variant v: its matchLabels and the variant. */
static char *pod_selector(const json_t *workload, enum kn_variant v)
{
    const json_t *ml = json_object_get(
        json_object_get(json_object_get(workload, "spec"), "selector"), "matchLabels");
    size_t len = 0, cap = 256;
    char *out = kn_malloc(cap);
    const char *k;
    json_t *val;
    int has_variant = 0;

    out[0] = '\0';
    json_object_foreach((json_t *)(uintptr_t)ml, k, val)
    {
        const char *s = json_string_value(val);
        size_t need = strlen(k) + (s ? strlen(s) : 0) + 3;
        if (!s) {
            continue;
        }
        if (strcmp(k, KN_KUBE_LABEL_VARIANT) == 0) {
            has_variant = 1;
        }
        while (len + need >= cap) {
            cap *= 2;
            out = kn_realloc(out, cap);
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", len ? "," : "", k, s);
    }
    if (!has_variant) {
        char *more = kn_asprintf("%s%s%s=%s", out, len ? "," : "", KN_KUBE_LABEL_VARIANT,
                                 kn_kube_variant_name(v));
        free(out);
        out = more;
    }
    return out;
}

/* ---- what is known of an app --------------------------------------------------------------- */

static void kapp_free(struct kapp *a)
{
    free(a->repository);
    free(a->app);
    free(a->ns);
    free(a->workload);
    free(a->service);
    free(a->route_api);
    free(a->route_kind);
    free(a->route_name);
    free(a->selector);
    free(a);
}

static struct kapp *kapp_find(struct kube *kb, const struct kn_app_id *id)
{
    for (struct kapp *a = kb->apps; a; a = a->next) {
        if (strcmp(a->repository, id->repository) == 0 && strcmp(a->app, id->app) == 0) {
            return a;
        }
    }
    return NULL;
}

static struct kapp *kapp_get(struct kube *kb, const struct kn_app_id *id)
{
    struct kapp *a = kapp_find(kb, id);
    struct kn_kube_owner o = {.app = id->app, .repository = id->repository};

    if (!a) {
        a = kn_calloc(1, sizeof(*a));
        a->repository = kn_strdup(id->repository);
        a->app = kn_strdup(id->app);
        a->routing = -1;
        a->selector = kn_kube_owner_selector(&o);
        a->next = kb->apps;
        kb->apps = a;
    }
    return a;
}

/* The app's record from its options and manifests; NULL with why when they name no workload. */
static struct kapp *kapp_learn(struct kube *kb, const struct kn_app_id *id,
                               const struct kn_kube_app_options *o, const json_t *manifests,
                               char *why, size_t size)
{
    const json_t *w = kn_kube_find_workload(manifests, o);
    const json_t *s = kn_kube_find_service(manifests, o);
    const json_t *r = kn_kube_find_route(manifests, o);
    const json_t *ports;
    struct kapp *a;
    const char *ns;

    if (!w) {
        snprintf(why, size, "%s",
                 o && o->workload.name ? "the manifests have no Deployment of spec.kubernetes."
                                         "workload"
                                       : "the manifests need exactly one Deployment, or "
                                         "spec.kubernetes.workload");
        return NULL;
    }
    if (o && o->traffic_routing.set && o->traffic_routing.method != KN_KUBE_ROUTING_PODSELECTOR &&
        !r) {
        snprintf(why, size, "the manifests have no %s named by spec.kubernetes.trafficRouting",
                 o->traffic_routing.method == KN_KUBE_ROUTING_ISTIO ? "VirtualService"
                                                                    : "HTTPRoute");
        return NULL;
    }
    if (o && o->traffic_routing.set && o->traffic_routing.method != KN_KUBE_ROUTING_PODSELECTOR &&
        !s) {
        snprintf(why, size,
                 "trafficRouting needs the Service in front of the workload: the "
                 "manifests need exactly one Service, or spec.kubernetes.service");
        return NULL;
    }
    a = kapp_get(kb, id);
    ns = o && o->namespace_ ? o->namespace_ : meta_str(w, "namespace");
    set_str(&a->ns, ns[0] ? ns : kn_kube_namespace(kb->kube));
    set_str(&a->workload, meta_str(w, "name"));
    set_str(&a->service, s ? meta_str(s, "name") : NULL);
    ports = s ? json_object_get(json_object_get(s, "spec"), "ports") : NULL;
    a->service_port = jint(json_object_get(json_array_get(ports, 0), "port"), 0);
    a->routing = o && o->traffic_routing.set ? o->traffic_routing.method : -1;
    set_str(&a->route_api, r ? jstr(r, "apiVersion") : NULL);
    set_str(&a->route_kind, r ? jstr(r, "kind") : NULL);
    set_str(&a->route_name, r ? meta_str(r, "name") : NULL);
    a->replicas = jint(json_object_get(json_object_get(w, "spec"), "replicas"), 1);
    a->from_file = 0;
    return a;
}

static const char *const routing_names[] = {"gatewayapi", "istio", "podselector"};

static json_t *kapp_json(const struct kapp *a)
{
    json_t *m = json_pack("{s:s, s:s, s:I}", "namespace", a->ns, "workload", a->workload,
                          "replicas", (json_int_t)a->replicas);

    if (a->service) {
        json_object_set_new(m, "service", json_string(a->service));
    }
    if (a->service_port > 0) {
        json_object_set_new(m, "servicePort", json_integer(a->service_port));
    }
    if (a->routing >= 0) {
        json_object_set_new(m, "routing", json_string(routing_names[a->routing]));
    }
    if (a->route_name) {
        json_object_set_new(m, "route",
                            json_pack("{s:s, s:s, s:s}", "apiVersion", a->route_api, "kind",
                                      a->route_kind, "name", a->route_name));
    }
    return m;
}

/* The apps' records, kept in the state directory as well (apps.json): the analysis placeholders
 * ({{namespace}}, {{workload}}, {{service}}) have no call to read the memo with, and must be
 * right after a restart too. Best effort: the memo stays the record. */
static void apps_file_write(struct kube *kb)
{
    json_t *all = json_array();
    char *tmp = kn_asprintf("%s.tmp", kb->apps_path);

    for (struct kapp *a = kb->apps; a; a = a->next) {
        json_t *m;
        if (!a->workload) {
            continue;
        }
        m = kapp_json(a);
        json_object_set_new(m, "repository", json_string(a->repository));
        json_object_set_new(m, "app", json_string(a->app));
        json_array_append_new(all, m);
    }
    if (json_dump_file(all, tmp, JSON_COMPACT) == 0 && rename(tmp, kb->apps_path) < 0) {
        unlink(tmp);
    }
    json_decref(all);
    free(tmp);
}

static void kapp_save(struct kube *kb, struct kn_platform_call *call, const struct kapp *a)
{
    json_t *m = kapp_json(a);

    memo_put(call, MEMO_APP, m);
    json_decref(m);
    apps_file_write(kb);
}

/* a's fields from its record (memo "app", or an entry of apps.json). */
static void kapp_load(struct kapp *a, const json_t *m)
{
    const char *routing = jstr(m, "routing");
    const json_t *r = json_object_get(m, "route");

    set_str(&a->ns, jstr(m, "namespace"));
    set_str(&a->workload, jstr(m, "workload"));
    set_str(&a->service, jstr(m, "service"));
    a->service_port = jint(json_object_get(m, "servicePort"), 0);
    a->routing = -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(routing, routing_names[i]) == 0) {
            a->routing = i;
        }
    }
    set_str(&a->route_api, jstr(r, "apiVersion"));
    set_str(&a->route_kind, jstr(r, "kind"));
    set_str(&a->route_name, jstr(r, "name"));
    a->replicas = jint(json_object_get(m, "replicas"), 1);
}

static void apps_file_read(struct kube *kb)
{
    json_t *all = json_load_file(kb->apps_path, 0, NULL);
    size_t i;
    json_t *m;

    json_array_foreach(all, i, m)
    {
        struct kn_app_id id = {.repository = jstr(m, "repository"), .app = jstr(m, "app")};
        if (id.repository[0] && id.app[0] && jstr(m, "workload")[0]) {
            struct kapp *a = kapp_get(kb, &id);
            kapp_load(a, m);
            a->from_file = 1;
        }
    }
    json_decref(all);
}

/* The app's record from memory, else from the memo; NULL when neither knows it. */
static struct kapp *kapp_recall(struct kube *kb, struct kn_platform_call *call)
{
    const struct kn_app_id *id = kn_platform_call_id(call);
    struct kapp *a = kapp_find(kb, id);
    json_t *m;

    if (a && a->workload && !a->from_file) {
        return a;
    }
    m = memo_json(call, MEMO_APP);
    if (!m || !jstr(m, "workload")[0]) {
        json_decref(m);
        return NULL;
    }
    a = kapp_get(kb, id);
    kapp_load(a, m);
    a->from_file = 0;
    json_decref(m);
    return a;
}

/* ---- informers ----------------------------------------------------------------------------- */

static void op_poke_all(struct kube *kb);

static void kinf_event(enum kn_kube_event ev, const json_t *obj, void *data)
{
    struct kinf *ki = data;

    (void)ev;
    (void)obj;
    op_poke_all(ki->kb);
}

static void kinf_free(struct kinf *ki)
{
    kn_kube_informer_free(ki->inf);
    free(ki->api_version);
    free(ki->kind);
    free(ki->ns);
    free(ki->selector);
    free(ki);
}

static struct kinf *kinf_find(struct kube *kb, const char *api_version, const char *kind,
                              const char *ns, const char *selector)
{
    for (struct kinf *ki = kb->infs; ki; ki = ki->next) {
        if (strcmp(ki->api_version, api_version) == 0 && strcmp(ki->kind, kind) == 0 &&
            strcmp(ki->ns, ns) == 0 && strcmp(ki->selector, selector) == 0) {
            return ki;
        }
    }
    return NULL;
}

/* The informer of r's objects in ns with the app's selector, made on first use; NULL when it
 * cannot be made. */
static struct kinf *kinf_get(struct kube *kb, const struct kn_kube_gvr *r, const char *ns,
                             const char *selector)
{
    const char *in = r->namespaced ? ns : "";
    struct kinf *ki = kinf_find(kb, r->api_version, r->kind, in, selector);

    if (ki) {
        return ki;
    }
    ki = kn_calloc(1, sizeof(*ki));
    ki->kb = kb;
    ki->api_version = kn_strdup(r->api_version);
    ki->kind = kn_strdup(r->kind);
    ki->ns = kn_strdup(in);
    ki->selector = kn_strdup(selector);
    if (kn_kube_informer_new(&ki->inf, kb->kube, r, in[0] ? in : NULL, selector, kinf_event, ki) <
        0) {
        kinf_free(ki);
        return NULL;
    }
    ki->next = kb->infs;
    kb->infs = ki;
    return ki;
}

/* Free the informers of an app (its selector). */
static void kinf_forget(struct kube *kb, const char *selector)
{
    struct kinf **at = &kb->infs;

    while (*at) {
        struct kinf *ki = *at;
        if (strcmp(ki->selector, selector) == 0) {
            *at = ki->next;
            kinf_free(ki);
        } else {
            at = &ki->next;
        }
    }
}

/* ---- operations: start, requests, end ------------------------------------------------------ */

static void handle_closed(uv_handle_t *h)
{
    struct kube *kb = h->data;

    free(h);
    if (--kb->handles == 0 && kb->closing && !kb->ops) {
        free(kb->name);
        free(kb);
    }
}

static void gvr_release(struct kn_kube_gvr *g)
{
    free(g->api_version);
    free(g->kind);
    free(g->resource);
    memset(g, 0, sizeof(*g));
}

static void op_free(struct op *op)
{
    struct kube *kb = op->kb;

    gvr_release(&op->gvr);
    json_decref(op->items);
    json_decref(op->keys);
    json_decref(op->doomed);
    json_decref(op->workload);
    json_decref(op->later);
    json_decref(op->route);
    json_decref(op->routes);
    json_decref(op->expect);
    json_decref(op->infs);
    free(op->wait_ns);
    free(op->wait_name);
    free(op->pod_selector);
    kn_kube_informer_free(op->pods);
    op->timer->data = kb;
    uv_close((uv_handle_t *)op->timer, handle_closed);
    free(op);
}

static void op_end(struct op *op, int status, const char *message)
{
    struct kube *kb = op->kb;
    struct op **at = &kb->ops;
    struct kn_kube_call *c = op->inflight;

    if (op->ended) {
        return;
    }
    op->ended = 1;
    op->inflight = NULL;
    if (c) {
        kn_kube_cancel(c); /* its callback sees the op ended */
    }
    while (*at && *at != op) {
        at = &(*at)->next;
    }
    if (*at) {
        *at = op->next;
    }
    uv_timer_stop(op->timer);
    if (status) {
        if (op->kind != OP_OBSERVE) {
            const struct kn_app_id *id = kn_platform_call_id(op->call);
            kn_log_warn(kb->who, "repository=%s app=%s %s", id->repository, id->app, message);
        }
        kn_platform_call_done(op->call, status, "%s", message);
    } else {
        kn_platform_call_done(op->call, 0, NULL);
    }
    op_free(op);
}

static void op_fail(struct op *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_fail(struct op *op, int status, const char *fmt, ...)
{
    char message[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    op_end(op, status, message);
}

static void op_undo(struct op *op);

/* End a cancelled call. A canary's (baseline's) apply first deletes what it applied, so that
 * nothing of a cancelled variant runs; when kanaria stops nothing more is sent: the same call
 * after the restart applies the same objects again. */
static void op_cancelled(struct op *op)
{
    if (op->undoing && !op->kb->closing) {
        return; /* the undo under way ends the call */
    }
    if (!op->kb->closing && !op->undoing && op->kind == OP_APPLY &&
        op->variant != KN_VARIANT_PRIMARY && op->keys) {
        op_undo(op);
        return;
    }
    op_end(op, KN_ECANCELLED, op->kb->closing ? "kanaria is stopping" : "cancelled");
}

/* 1 when op must stop: cancelled (unless it is undoing what it did) or kanaria stopping. */
static int op_stopping(const struct op *op)
{
    return (op->cancelled && !op->undoing) || op->kb->closing;
}

static void timer_fired(uv_timer_t *t)
{
    struct op *op = t->data;

    if (op_stopping(op)) {
        op_cancelled(op);
        return;
    }
    op->tick(op);
}

/* Run tick after ms, from the loop. */
static void op_after(struct op *op, long long ms, void (*tick)(struct op *op))
{
    op->tick = tick;
    uv_timer_start(op->timer, timer_fired, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static struct op *op_new(struct kube *kb, enum op_kind kind, struct kn_platform_call *call)
{
    struct op *op = kn_calloc(1, sizeof(*op));

    op->kb = kb;
    op->kind = kind;
    op->call = call;
    op->timer = kn_calloc(1, sizeof(*op->timer));
    uv_timer_init(kb->loop, op->timer);
    op->timer->data = op;
    kb->handles++;
    op->next = kb->ops;
    kb->ops = op;
    return op;
}

/* Every waiting call looks at the informers again (an event arrived). */
static void op_poke_all(struct kube *kb)
{
    struct op *op = kb->ops, *next;

    while (op) {
        next = op->next;
        if (op->check && !op->inflight && !op->cancelled && !op->ended) {
            op->check(op);
        }
        op = next;
    }
}

/* Milliseconds a request of op may take. */
static long long request_budget(const struct op *op)
{
    long long left = kn_platform_call_time_left(op->call);
    return left < REQUEST_MS && !op->undoing ? left : REQUEST_MS;
}

static void request_done(const struct kn_kube_result *r, void *data)
{
    struct op *op = data;

    if (op->ended) {
        return;
    }
    op->inflight = NULL;
    if (op_stopping(op) || (r->status == KN_ECANCELLED && !op->undoing)) {
        op_after(op, 0, op_cancelled);
        return;
    }
    if (r->status && !(op->tolerate_404 && r->status == KN_ENOTFOUND)) {
        op_fail(op, r->status, "%s: %s", op->doing,
                r->message ? r->message : kn_strerror(r->status));
        return;
    }
    op->then(op, r);
}

/* Send method path (body borrowed; content type by method) and go on with then; a 404 is an
 * answer when tolerate_404. Any other failure ends op with the apiserver's words prefixed by
 * doing. When the request cannot be made op ends at once: the caller returns without touching
 * op. */
static void op_request(struct op *op, const char *method, const char *path, const json_t *body,
                       int tolerate_404, step_fn then)
{
    struct kn_kube_req req = {
        .method = method,
        .path = path,
        .content_type = body ? APPLY_TYPE : NULL,
        .body = body,
        .timeout_ms = request_budget(op),
    };
    int rc;

    op->then = then;
    op->tolerate_404 = tolerate_404;
    rc = kn_kube_request(&op->inflight, op->kb->kube, &req, request_done, op);
    if (rc < 0) {
        op->inflight = NULL;
        op_fail(op, rc, "%s: the request could not be made (%s)", op->doing, kn_strerror(rc));
    }
}

static void resolve_done(int status, const struct kn_kube_gvr *r, const char *message, void *data)
{
    struct op *op = data;

    if (op->ended) {
        return;
    }
    op->resolving = 0;
    op->inflight = NULL;
    gvr_release(&op->gvr);
    op->res_status = status;
    snprintf(op->res_message, sizeof(op->res_message), "%s",
             message ? message : kn_strerror(status));
    if (status == 0 && r) {
        op->gvr.api_version = kn_strdup(r->api_version);
        op->gvr.kind = kn_strdup(r->kind);
        op->gvr.resource = kn_strdup(r->resource);
        op->gvr.namespaced = r->namespaced;
    }
    if (op_stopping(op) || (status == KN_ECANCELLED && !op->undoing)) {
        op_after(op, 0, op_cancelled);
        return;
    }
    /* discovery may answer from its cache before kn_kube_resolve returns: go on from the loop */
    op_after(op, 0, op->resolved);
}

/* Find the resource of (api_version, kind); then runs with op->res_status and op->gvr. */
static void op_resolve(struct op *op, const char *api_version, const char *kind,
                       void (*then)(struct op *op))
{
    struct kn_kube_call *c = NULL;
    int rc;

    op->resolved = then;
    op->resolving = 1;
    rc = kn_kube_resolve(&c, op->kb->kube, api_version, kind, request_budget(op), resolve_done, op);
    if (rc < 0) {
        op->resolving = 0;
        op_fail(op, rc, "%s %s: discovery could not be asked (%s)", kind, api_version,
                kn_strerror(rc));
        return;
    }
    op->inflight = op->resolving ? c : NULL;
}

/* "router unavailable: ..." for a route's kind the server lacks, else the server's words. */
static void resolve_failed(struct op *op, const char *kind)
{
    int route = strcmp(kind, "HTTPRoute") == 0 || strcmp(kind, "VirtualService") == 0;

    op_fail(op, op->res_status, "%s%s", route ? "router unavailable: " : "", op->res_message);
}

/* ---- deleting a list of keys (prune, remove, remove_app) ----------------------------------- */

static void delete_next(struct op *op);

static void delete_r(struct op *op, const struct kn_kube_result *r)
{
    char name[512];

    key_name(json_array_get(op->doomed, op->at), name, sizeof(name));
    kn_platform_call_progress(op->call, "%s %s", name,
                              r->status == KN_ENOTFOUND ? "was already gone" : "deleted");
    op->at++;
    delete_next(op);
}

static void delete_resolved(struct op *op)
{
    const json_t *key = json_array_get(op->doomed, op->at);
    char name[512];
    char *path;

    key_name(key, name, sizeof(name));
    if (op->res_status == KN_ENOTFOUND) {
        /* the kind itself is gone (a CRD deleted): so are its objects */
        kn_platform_call_progress(op->call, "%s was already gone (%s)", name, op->res_message);
        op->at++;
        delete_next(op);
        return;
    }
    if (op->res_status) {
        op_fail(op, op->res_status, "deleting %s: %s", name, op->res_message);
        return;
    }
    path = kn_kube_path(&op->gvr, jstr(key, "namespace"), jstr(key, "name"));
    snprintf(op->doing, sizeof(op->doing), "deleting %s", name);
    {
        char *full = kn_asprintf("%s%s", path, DELETE_QUERY);
        op_request(op, "DELETE", full, NULL, 1, delete_r);
        free(full);
    }
    free(path);
}

static void delete_next(struct op *op)
{
    const json_t *key = json_array_get(op->doomed, op->at);

    if (!key) {
        op->deleted(op);
        return;
    }
    op_resolve(op, jstr(key, "apiVersion"), jstr(key, "kind"), delete_resolved);
}

/* Delete op->doomed (owned; sorted here into deletion order), then run then. */
static void delete_all(struct op *op, void (*then)(struct op *op))
{
    sort_by_rank(op->doomed, 1);
    op->at = 0;
    op->deleted = then;
    delete_next(op);
}

static void undo_done(struct op *op)
{
    char *k = memo_variant_key("variant", op->variant);

    kn_platform_call_memo_set(op->call, k, NULL);
    free(k);
    k = memo_variant_key("workload", op->variant);
    kn_platform_call_memo_set(op->call, k, NULL);
    free(k);
    op_end(op, KN_ECANCELLED, "cancelled; what it applied was deleted");
}

static void op_undo(struct op *op)
{
    op->undoing = 1;
    op->check = NULL;
    uv_timer_stop(op->timer);
    kn_platform_call_progress(op->call, "cancelled: deleting the %s",
                              kn_kube_variant_name(op->variant));
    json_decref(op->doomed);
    op->doomed = json_deep_copy(op->keys);
    delete_all(op, undo_done);
}

/* ---- waiting for a Deployment -------------------------------------------------------------- */

/* A Deployment is followed on the deployments informer and its pods on an informer of their own
 * (the pod selector of the variant, in the namespace), made for the wait and freed when it ends:
 * no request is repeated while waiting. A dropped watch resumes from its resourceVersion (the
 * informer's rule); the wait's deadline holds whatever the watches do. */

static void collect_pod(const json_t *obj, void *data)
{
    json_array_append((json_t *)data, (json_t *)(uintptr_t)obj);
}

/* 1 when a pod of the wait cannot run (ImagePullBackOff, CrashLoopBackOff, unschedulable, ...):
 * op has failed with the pods' reasons. */
static int wait_pods_failed(struct op *op)
{
    json_t *items;
    char why[768];
    int n;

    if (!op->pods || !kn_kube_informer_synced(op->pods)) {
        return 0;
    }
    items = json_array();
    kn_kube_informer_each(op->pods, collect_pod, items);
    n = kn_kube_pod_problems(items, why, sizeof(why));
    json_decref(items);
    if (n > 0) {
        op_fail(op, KN_EIO, "Deployment %s/%s: %s", op->wait_ns, op->wait_name, why);
        return 1;
    }
    return 0;
}

static void wait_check(struct op *op)
{
    const json_t *d =
        op->winf ? kn_kube_informer_get(op->winf->inf, op->wait_ns, op->wait_name) : NULL;
    char why[512];

    op->wait_seen |= d != NULL;
    if (!d && op->wait_seen && kn_kube_informer_synced(op->winf->inf)) {
        /* as `kubectl rollout status` does: no wait for what is gone */
        op_fail(op, KN_EIO,
                "Deployment %s/%s was deleted (or lost its kanaria.dev labels) while kanaria "
                "waited for it",
                op->wait_ns, op->wait_name);
        return;
    } else if (!d) {
        snprintf(why, sizeof(why), "Deployment %s/%s: not seen yet", op->wait_ns, op->wait_name);
    } else if (jint(json_object_get(json_object_get(d, "metadata"), "generation"), 0) <
               op->wait_gen) {
        snprintf(why, sizeof(why), "Deployment %s/%s: waiting for generation %lld to be seen",
                 op->wait_ns, op->wait_name, op->wait_gen);
    } else {
        char h[400];
        switch (kn_kube_deployment_health(d, h, sizeof(h))) {
        case KN_KUBE_HEALTHY:
            op->check = NULL;
            uv_timer_stop(op->timer);
            kn_kube_informer_free(op->pods); /* safe from its own callback */
            op->pods = NULL;
            kn_platform_call_progress(op->call, "Deployment %s/%s is healthy", op->wait_ns,
                                      op->wait_name);
            op->ready(op);
            return;
        case KN_KUBE_FAILED:
            op_fail(op, KN_EIO, "Deployment %s/%s: %s", op->wait_ns, op->wait_name, h);
            return;
        default:
            snprintf(why, sizeof(why), "%s", h);
            break;
        }
    }
    if (wait_pods_failed(op)) {
        return;
    }
    if (strcmp(why, op->last_why) != 0) {
        snprintf(op->last_why, sizeof(op->last_why), "%s", why);
        kn_platform_call_progress(op->call, "%s", why);
    }
}

/* A change among the waited pods: look again at once (a pod that cannot run fails the wait). */
static void wait_pods_event(enum kn_kube_event ev, const json_t *obj, void *data)
{
    struct op *op = data;

    (void)obj;
    if (ev == KN_KUBE_LOST || op->check != wait_check || op->inflight || op->cancelled ||
        op->ended) {
        return;
    }
    wait_check(op);
}

/* The deadline, checked on the op's timer; the state itself comes from the informers' events. */
static void wait_tick(struct op *op)
{
    if (uv_now(op->kb->loop) >= op->wait_until) {
        const char *lost = op->winf ? kn_kube_informer_error(op->winf->inf) : NULL;
        const char *plost = kn_kube_informer_error(op->pods);
        op_fail(op, KN_ETIMEDOUT, "Deployment %s/%s is not healthy in time: %s%s%s%s%s",
                op->wait_ns, op->wait_name, op->last_why[0] ? op->last_why : "not seen",
                lost ? "; watching deployments: " : "", lost ? lost : "",
                plost ? "; watching its pods: " : "", plost ? plost : "");
        return;
    }
    op_after(op, TICK_MS, wait_tick);
    op->check(op);
}

/* Wait until Deployment ns/name (applied at generation gen, with the pods of selector) is
 * healthy, then run ready; bounded by ready_ms and the call's deadline. */
static void wait_deployment(struct op *op, const struct kn_kube_gvr *r, const char *ns,
                            const char *name, long long gen, const char *selector,
                            void (*ready)(struct op *op))
{
    static char v1[] = "v1", pod[] = "Pod", pods[] = "pods";
    const struct kn_kube_gvr pods_gvr = {
        .api_version = v1, .kind = pod, .resource = pods, .namespaced = 1};
    long long left = kn_platform_call_time_left(op->call);
    long long ms = op->ready_ms > 0 ? op->ready_ms : DEFAULT_READY_MS;

    if (ms > left) {
        ms = left;
    }
    set_str(&op->wait_ns, ns);
    set_str(&op->wait_name, name);
    set_str(&op->pod_selector, selector);
    op->wait_gen = gen;
    op->winf = kinf_get(op->kb, r, ns, op->a->selector);
    op->wait_until = uv_now(op->kb->loop) + (uint64_t)(ms > 0 ? ms : 0);
    op->last_why[0] = '\0';
    op->wait_seen = 0;
    op->ready = ready;
    op->check = wait_check;
    kn_kube_informer_free(op->pods); /* podselector waits for each variant in turn */
    op->pods = NULL;
    if (!op->winf) {
        op_fail(op, KN_EIO, "deployments in %s cannot be watched", ns);
        return;
    }
    if (kn_kube_informer_new(&op->pods, op->kb->kube, &pods_gvr, ns, op->pod_selector,
                             wait_pods_event, op) < 0) {
        op_fail(op, KN_EIO, "the pods of Deployment %s/%s cannot be watched", ns, name);
        return;
    }
    op_after(op, TICK_MS, wait_tick);
    wait_check(op);
}

/* ---- apply --------------------------------------------------------------------------------- */

static void apply_next(struct op *op);
static void apply_pruned(struct op *op);

static void apply_healthy(struct op *op)
{
    if (json_array_size(op->later)) {
        /* a variant's Service, once its pods are ready: it never selects none */
        json_decref(op->items);
        op->items = op->later;
        op->later = NULL;
        op->after_health = 1;
        op->at = 0;
        apply_next(op);
        return;
    }
    op_end(op, 0, NULL);
}

static void apply_wait(struct op *op)
{
    const json_t *w = op->workload;
    long long gen = jint(json_object_get(json_object_get(w, "metadata"), "generation"), 0);
    char *sel = pod_selector(w, op->variant);

    if (!op->gvr.resource || strcmp(op->gvr.kind, "Deployment") != 0) {
        op_fail(op, KN_EIO, "Deployment: discovery lost it");
        free(sel);
        return;
    }
    wait_deployment(op, &op->gvr, meta_str(w, "namespace"), meta_str(w, "name"), gen, sel,
                    apply_healthy);
    free(sel);
}

static void apply_workload_resolved(struct op *op)
{
    if (op->res_status) {
        resolve_failed(op, "Deployment");
        return;
    }
    apply_wait(op);
}

static void apply_pruned(struct op *op)
{
    memo_put(op->call, MEMO_RESOURCES, op->keys);
    op_resolve(op, "apps/v1", "Deployment", apply_workload_resolved);
}

static void apply_applied(struct op *op)
{
    char *memo_key;
    json_t *old;
    size_t i;
    json_t *k;

    if (op->after_health) {
        op_end(op, 0, NULL);
        return;
    }
    if (op->variant != KN_VARIANT_PRIMARY) {
        memo_key = memo_variant_key("variant", op->variant);
        memo_put(op->call, memo_key, op->keys);
        free(memo_key);
        memo_key = memo_variant_key("workload", op->variant);
        if (memo_put(op->call, memo_key, op->workload) < 0) {
            kn_platform_call_progress(op->call,
                                      "the %s's Deployment is too large to keep: "
                                      "podselector cannot scale it",
                                      kn_kube_variant_name(op->variant));
        }
        free(memo_key);
        op_resolve(op, "apps/v1", "Deployment", apply_workload_resolved);
        return;
    }
    /* prune: what the primary's applies made before and the manifests no longer have */
    old = memo_json(op->call, MEMO_RESOURCES);
    op->doomed = json_array();
    json_array_foreach(old, i, k)
    {
        if (!keys_have(op->keys, k)) {
            json_array_append(op->doomed, k);
        }
    }
    json_decref(old);
    if (json_array_size(op->doomed)) {
        kn_platform_call_progress(op->call, "pruning %zu resources no longer in the manifests",
                                  json_array_size(op->doomed));
    }
    delete_all(op, apply_pruned);
}

static void apply_r(struct op *op, const struct kn_kube_result *r)
{
    json_t *item = json_array_get(op->items, op->at);
    const json_t *key = json_object_get(item, "key");
    char name[512];

    key_name(key, name, sizeof(name));
    kn_platform_call_progress(op->call, "%s %s%s%s", name,
                              r->http_status == 201 ? "created" : "applied", r->warning ? ": " : "",
                              r->warning ? r->warning : "");
    if (strcmp(jstr(key, "kind"), "Deployment") == 0 && op->workload &&
        strcmp(jstr(key, "name"), meta_str(op->workload, "name")) == 0 && r->reply) {
        /* the generation the wait must see */
        json_t *meta = json_object_get(op->workload, "metadata");
        json_object_set_new(
            meta, "generation",
            json_integer(
                jint(json_object_get(json_object_get(r->reply, "metadata"), "generation"), 0)));
    }
    op->at++;
    apply_next(op);
}

static void apply_resolved(struct op *op)
{
    json_t *item = json_array_get(op->items, op->at);
    const json_t *key = json_object_get(item, "key");
    const json_t *obj = json_object_get(item, "obj");
    char name[512];
    char *path, *full;

    key_name(key, name, sizeof(name));
    if (op->res_status) {
        resolve_failed(op, jstr(key, "kind"));
        return;
    }
    path = kn_kube_path(&op->gvr, jstr(key, "namespace"), jstr(key, "name"));
    full = kn_asprintf("%s%s", path, APPLY_QUERY);
    snprintf(op->doing, sizeof(op->doing), "applying %s", name);
    op_request(op, "PATCH", full, obj, 0, apply_r);
    free(full);
    free(path);
}

static void apply_next(struct op *op)
{
    const json_t *item = json_array_get(op->items, op->at);
    const json_t *key = json_object_get(item, "key");

    if (!item) {
        apply_applied(op);
        return;
    }
    op_resolve(op, jstr(key, "apiVersion"), jstr(key, "kind"), apply_resolved);
}

/* A router splits the traffic: the primary Service selects the primary's pods alone. */
static int kapp_exclusive(const struct kapp *a)
{
    return a->routing == KN_KUBE_ROUTING_GATEWAYAPI || a->routing == KN_KUBE_ROUTING_ISTIO;
}

/* Applied once the Deployment is healthy: a variant's Service; for the primary, the app's
 * Service and the route that sends to it. */
static int deferred(const struct op *op, const json_t *key)
{
    const char *kind = jstr(key, "kind");
    const char *name = jstr(key, "name");

    if (!kind || !name) {
        return 0;
    }
    if (op->variant != KN_VARIANT_PRIMARY) {
        return strcmp(kind, "Service") == 0;
    }
    return (strcmp(kind, "Service") == 0 && op->a->service &&
            strcmp(name, op->a->service) == 0) ||
           (op->a->route_name && strcmp(kind, op->a->route_kind) == 0 &&
            strcmp(name, op->a->route_name) == 0);
}

/* Resolve every manifest first (to know which are namespaced), render, then apply. */
static void apply_render_next(struct op *op);

static void apply_render_resolved(struct op *op)
{
    json_t *item = json_array_get(op->items, op->at);
    const json_t *m = json_object_get(item, "manifest");
    const struct kapp *a = op->a;
    struct kn_kube_owner owner = {.app = a->app, .repository = a->repository, .commit = op->commit};
    const char *kind = jstr(m, "kind");
    const char *name = meta_str(m, "name");
    json_t *obj;

    if (op->res_status) {
        resolve_failed(op, kind);
        return;
    }
    obj = kn_kube_render(m, &owner, a->ns, op->gvr.namespaced);
    if (strcmp(kind, "Deployment") == 0 && strcmp(name, a->workload) == 0) {
        json_t *v = kn_kube_variant_workload(obj, op->variant,
                                             json_integer_value(json_object_get(item, "replicas")));
        json_decref(obj);
        obj = v;
        json_decref(op->workload);
        op->workload = json_incref(obj);
    } else if (strcmp(kind, "Service") == 0 && a->service && strcmp(name, a->service) == 0) {
        json_t *v = kn_kube_variant_service(obj, op->variant, kapp_exclusive(a));
        json_decref(obj);
        obj = v;
    } else if (a->route_name && strcmp(kind, a->route_kind) == 0 &&
               strcmp(name, a->route_name) == 0) {
        double percent[KN_VARIANT_COUNT];
        char why[512];
        json_t *v;
        json_t *routes = memo_json(op->call, MEMO_ROUTES);
        weights_recall(op->call, percent);
        v = route_render(obj, a, percent, routes, why, sizeof(why));
        json_decref(routes);
        if (!v) {
            json_decref(obj);
            op_fail(op, KN_EINVAL, "%s %s: %s", kind, name, why);
            return;
        }
        json_decref(op->route);
        op->route = obj; /* as Git has it, for set_weights */
        obj = v;
    }
    json_object_set_new(item, "key", key_of(obj));
    json_object_set_new(item, "obj", obj);
    op->at++;
    apply_render_next(op);
}

static void apply_render_next(struct op *op)
{
    const json_t *item = json_array_get(op->items, op->at);
    const json_t *m = json_object_get(item, "manifest");
    json_t *old;
    size_t i;
    json_t *it;

    if (item) {
        op_resolve(op, jstr(m, "apiVersion"), jstr(m, "kind"), apply_render_resolved);
        return;
    }
    /* all rendered: the keys, the memo (before anything is sent, so that a restart in the middle
     * still knows what it may have made), then the applies in dependency order */
    sort_by_rank(op->items, 0);
    op->keys = json_array();
    json_array_foreach(op->items, i, it)
    {
        keys_add(op->keys, json_object_get(it, "key"));
    }
    if (op->variant == KN_VARIANT_PRIMARY) {
        json_t *all = json_deep_copy(op->keys);
        old = memo_json(op->call, MEMO_RESOURCES);
        json_array_foreach(old, i, it)
        {
            keys_add(all, it);
        }
        json_decref(old);
        memo_put(op->call, MEMO_RESOURCES, all);
        json_decref(all);
        kapp_save(op->kb, op->call, op->a);
        if (op->route) {
            memo_put(op->call, MEMO_ROUTE, op->route);
        } else {
            memo_put(op->call, MEMO_ROUTE, NULL);
        }
    } else {
        char *memo_key = memo_variant_key("variant", op->variant);
        json_t *all = json_deep_copy(op->keys);
        old = memo_json(op->call, memo_key);
        json_array_foreach(old, i, it)
        {
            keys_add(all, it);
        }
        json_decref(old);
        memo_put(op->call, memo_key, all);
        json_decref(all);
        free(memo_key);
    }
    kn_platform_call_progress(op->call, "applying %zu resources to %s (server-side apply)",
                              json_array_size(op->items), kn_kube_server(op->kb->kube));
    if (op->variant != KN_VARIANT_PRIMARY || kapp_exclusive(op->a)) {
        /* The variant's Service follows its healthy Deployment, so that it never selects no pod.
         * The primary's too behind a router (and the route after it): its selector narrows to
         * kanaria.dev/variant=primary, and an adopted Deployment's pods gain that label only as
         * they roll, so the old pods keep their traffic until the new ones are ready. */
        json_t *now = json_array();
        op->later = json_array();
        json_array_foreach(op->items, i, it)
        {
            json_array_append(deferred(op, json_object_get(it, "key")) ? op->later : now, it);
        }
        json_decref(op->items);
        op->items = now;
    }
    op->at = 0;
    apply_next(op);
}

/* The primary's replicas now: the live Deployment's, else its manifest's. */
static long long primary_replicas(struct kube *kb, const struct kapp *a)
{
    for (struct kinf *ki = kb->infs; ki; ki = ki->next) {
        const json_t *d;
        if (strcmp(ki->kind, "Deployment") != 0 || strcmp(ki->selector, a->selector) != 0) {
            continue;
        }
        d = kn_kube_informer_get(ki->inf, a->ns, a->workload);
        if (d) {
            return jint(json_object_get(json_object_get(d, "spec"), "replicas"), 1);
        }
    }
    return a->replicas;
}

/* A variant's apply where the memo does not know the app (its primary was applied by another
 * kanaria, or the memo was lost): what set_weights and remove need, from the variant's manifests.
 */
static void variant_learn(struct kube *kb, struct kn_platform_call *call, const struct kapp *a,
                          const struct kn_variant_spec *spec)
{
    char *known = kn_platform_call_memo_get(call, MEMO_APP);
    const json_t *route;

    if (!known) {
        kapp_save(kb, call, a);
    }
    free(known);
    known = kn_platform_call_memo_get(call, MEMO_ROUTE);
    route = known ? NULL : kn_kube_find_route(spec->manifests, spec->options);
    if (route) {
        struct kn_kube_owner owner = {
            .app = a->app, .repository = a->repository, .commit = spec->commit};
        json_t *obj = kn_kube_render(route, &owner, a->ns, 1); /* routes are namespaced */
        memo_put(call, MEMO_ROUTE, obj);
        json_decref(obj);
    }
    free(known);
}

static int kube_apply(void *self, struct kn_platform_call *call, const struct kn_variant_spec *spec)
{
    struct kube *kb = self;
    const struct kn_kube_app_options *o = spec->options;
    char why[512];
    struct kapp *a;
    struct op *op;
    size_t i;
    json_t *m;

    if (!json_is_array(spec->manifests) || json_array_size(spec->manifests) == 0) {
        kn_platform_call_done(call, KN_EINVAL, "the app has no manifests");
        return 0;
    }
    a = kapp_learn(kb, kn_platform_call_id(call), o, spec->manifests, why, sizeof(why));
    if (!a) {
        kn_platform_call_done(call, KN_EINVAL, "%s", why);
        return 0;
    }
    if (spec->variant != KN_VARIANT_PRIMARY && !a->service) {
        kn_platform_call_done(call, KN_EINVAL,
                              "a %s needs the Service in front of the workload: the manifests "
                              "need exactly one Service, or spec.kubernetes.service",
                              kn_kube_variant_name(spec->variant));
        return 0;
    }
    if (spec->variant != KN_VARIANT_PRIMARY) {
        variant_learn(kb, call, a, spec);
    }
    op = op_new(kb, OP_APPLY, call);
    op->a = a;
    op->variant = spec->variant;
    snprintf(op->commit, sizeof(op->commit), "%s", spec->commit ? spec->commit : "");
    op->ready_ms = spec->ready_timeout_ms;
    op->items = json_array();
    json_array_foreach(spec->manifests, i, m)
    {
        const char *kind = jstr(m, "kind");
        const char *name = meta_str(m, "name");
        long long replicas = -1;
        int is_workload = strcmp(kind, "Deployment") == 0 && strcmp(name, a->workload) == 0;
        int is_service =
            strcmp(kind, "Service") == 0 && a->service && strcmp(name, a->service) == 0;

        if (spec->variant == KN_VARIANT_PRIMARY) {
            if (is_workload && spec->replicas.value > 0 && !spec->replicas.percent) {
                replicas = (long long)spec->replicas.value;
            }
        } else if (is_workload) {
            replicas = kn_kube_replicas(&spec->replicas, primary_replicas(kb, a));
        } else if (!is_service) {
            continue; /* a variant is its Deployment and its Service */
        }
        json_array_append_new(
            op->items, json_pack("{s:O, s:I}", "manifest", m, "replicas", (json_int_t)replicas));
    }
    op->at = 0;
    apply_render_next(op);
    return 0;
}

/* ---- set_weights --------------------------------------------------------------------------- */

static void weights_ready_check(struct op *op, const json_t *route)
{
    char why[512];
    int ready;

    if (!route) {
        snprintf(why, sizeof(why), "%s %s/%s: not seen yet", op->a->route_kind, op->a->ns,
                 op->a->route_name);
        ready = 0;
    } else if (jint(json_object_get(json_object_get(route, "metadata"), "generation"), 0) <
               op->wait_gen) {
        snprintf(why, sizeof(why), "%s %s/%s: waiting for generation %lld to be seen",
                 op->a->route_kind, op->a->ns, op->a->route_name, op->wait_gen);
        ready = 0;
    } else {
        ready = kn_kube_route_ready(route, why, sizeof(why));
    }
    if (ready < 0) {
        op_fail(op, KN_EIO, "%s %s/%s: %s", op->a->route_kind, op->a->ns, op->a->route_name, why);
        return;
    }
    if (ready > 0) {
        op->check = NULL;
        kn_platform_call_progress(op->call, "%s %s/%s accepted the weights %g/%g/%g",
                                  op->a->route_kind, op->a->ns, op->a->route_name, op->percent[0],
                                  op->percent[1], op->percent[2]);
        op_end(op, 0, NULL);
        return;
    }
    if (strcmp(why, op->last_why) != 0) {
        snprintf(op->last_why, sizeof(op->last_why), "%s", why);
        kn_platform_call_progress(op->call, "%s", why);
    }
}

/* 1 when the route's informer is listed and its watch up: its cache is the route's state. */
static int weights_watched(const struct op *op)
{
    return op->winf && kn_kube_informer_synced(op->winf->inf) &&
           !kn_kube_informer_error(op->winf->inf);
}

static void weights_check(struct op *op)
{
    if (weights_watched(op)) {
        weights_ready_check(op, kn_kube_informer_get(op->winf->inf, op->a->ns, op->a->route_name));
    }
}

static void weights_get_r(struct op *op, const struct kn_kube_result *r)
{
    weights_ready_check(op, r->status ? NULL : r->reply);
}

static void weights_tick(struct op *op)
{
    if (uv_now(op->kb->loop) >= op->wait_until) {
        op_fail(op, KN_ETIMEDOUT, "%s %s/%s did not accept the weights in time: %s",
                op->a->route_kind, op->a->ns, op->a->route_name,
                op->last_why[0] ? op->last_why : "no status");
        return;
    }
    op_after(op, TICK_MS, weights_tick);
    if (weights_watched(op)) {
        weights_check(op);
        return;
    }
    if (op->inflight || (op->winf && !kn_kube_informer_error(op->winf->inf))) {
        return; /* a request in flight, or the informer's first list: its events will tell */
    }
    /* the watch is down (or could not be made): a GET a tick until it is back */
    {
        char *path = kn_kube_path(&op->gvr, op->a->ns, op->a->route_name);
        snprintf(op->doing, sizeof(op->doing), "reading %s %s/%s", op->a->route_kind, op->a->ns,
                 op->a->route_name);
        op_request(op, "GET", path, NULL, 1, weights_get_r);
        free(path);
    }
}

static void weights_applied(struct op *op, const struct kn_kube_result *r)
{
    long long left = kn_platform_call_time_left(op->call);

    weights_save(op->call, op->percent);
    if (op->save_routes) {
        memo_put(op->call, MEMO_ROUTES, op->routes);
    }
    op->wait_gen = jint(json_object_get(json_object_get(r->reply, "metadata"), "generation"), 0);
    op->winf = kinf_get(op->kb, &op->gvr, op->a->ns, op->a->selector);
    op->wait_until = uv_now(op->kb->loop) + (uint64_t)(left > 500 ? left - 250 : left);
    op->check = weights_check;
    op->last_why[0] = '\0';
    op_after(op, TICK_MS, weights_tick);
    weights_check(op);
}

static void weights_route_resolved(struct op *op)
{
    char why[512];
    json_t *obj;
    char *path, *full;

    if (op->res_status) {
        resolve_failed(op, op->a->route_kind);
        return;
    }
    obj = route_render(op->route, op->a, op->percent, op->routes, why, sizeof(why));
    if (!obj) {
        op_fail(op, op->routes ? KN_EUNSUPPORTED : KN_EINVAL, "%s %s: %s", op->a->route_kind,
                op->a->route_name, why);
        return;
    }
    path = kn_kube_path(&op->gvr, op->a->ns, op->a->route_name);
    full = kn_asprintf("%s%s", path, APPLY_QUERY);
    snprintf(op->doing, sizeof(op->doing), "applying %s %s/%s", op->a->route_kind, op->a->ns,
             op->a->route_name);
    op_request(op, "PATCH", full, obj, 0, weights_applied);
    free(full);
    free(path);
    json_decref(obj);
}

/* podselector: scale each variant in turn */
static void scale_next(struct op *op);

static void scale_healthy(struct op *op)
{
    op->scale_at++;
    scale_next(op);
}

static void scale_applied(struct op *op, const struct kn_kube_result *r)
{
    long long gen = jint(json_object_get(json_object_get(r->reply, "metadata"), "generation"), 0);
    char *sel = pod_selector(op->workload, (enum kn_variant)op->scale_at);

    wait_deployment(op, &op->gvr, meta_str(op->workload, "namespace"),
                    meta_str(op->workload, "name"), gen, sel, scale_healthy);
    free(sel);
}

static void scale_resolved(struct op *op)
{
    char *path, *full;

    if (op->res_status) {
        resolve_failed(op, "Deployment");
        return;
    }
    path =
        kn_kube_path(&op->gvr, meta_str(op->workload, "namespace"), meta_str(op->workload, "name"));
    full = kn_asprintf("%s%s", path, APPLY_QUERY);
    snprintf(op->doing, sizeof(op->doing), "scaling Deployment %s/%s",
             meta_str(op->workload, "namespace"), meta_str(op->workload, "name"));
    op_request(op, "PATCH", full, op->workload, 0, scale_applied);
    free(full);
    free(path);
}

/* The replicas that give variant v about percent[v] of the pods beside the primary's P. */
static long long podselector_replicas(const double percent[KN_VARIANT_COUNT], enum kn_variant v,
                                      long long primary)
{
    double p = percent[v], pp = percent[KN_VARIANT_PRIMARY];
    long long n;

    if (p <= 0) {
        return 0;
    }
    if (pp <= 0 || p >= pp) {
        return primary > 0 ? primary : 1;
    }
    n = llround((double)primary * p / pp);
    return n < 1 ? 1 : n;
}

static void scale_next(struct op *op)
{
    char *memo_key;
    json_t *w;
    long long n;

    while (op->scale_at < KN_VARIANT_COUNT) {
        enum kn_variant v = (enum kn_variant)op->scale_at;
        memo_key = memo_variant_key("workload", v);
        w = memo_json(op->call, memo_key);
        if (!w) {
            free(memo_key);
            if (op->percent[v] > 0) {
                op_fail(op, KN_EINVAL, "the %s does not run: it cannot take %g%% of the pods",
                        kn_kube_variant_name(v), op->percent[v]);
                return;
            }
            op->scale_at++;
            continue;
        }
        n = podselector_replicas(op->percent, v, primary_replicas(op->kb, op->a));
        kn_platform_call_progress(op->call,
                                  "Deployment %s/%s: %lld replicas for about %g%% of "
                                  "the pods",
                                  meta_str(w, "namespace"), meta_str(w, "name"), n, op->percent[v]);
        json_object_set_new(json_object_get(w, "spec"), "replicas", json_integer(n));
        memo_put(op->call, memo_key, w);
        free(memo_key);
        json_decref(op->workload);
        op->workload = w;
        op_resolve(op, "apps/v1", "Deployment", scale_resolved);
        return;
    }
    weights_save(op->call, op->percent);
    op_end(op, 0, NULL);
}

/* set_weights and set_routes: routes (owned) in the memo's form, saved when save is 1. */
static int weights_start(struct kube *kb, struct kn_platform_call *call,
                         const double percent[KN_VARIANT_COUNT], json_t *routes, int save)
{
    struct kapp *a = kapp_recall(kb, call);
    struct op *op;

    if (routes && (!a || (a->routing != KN_KUBE_ROUTING_GATEWAYAPI &&
                          a->routing != KN_KUBE_ROUTING_ISTIO))) {
        json_decref(routes);
        kn_platform_call_done(call, KN_EUNSUPPORTED,
                              "header routing and mirroring need spec.kubernetes.trafficRouting "
                              "gatewayapi (an HTTPRoute) or istio (a VirtualService)");
        return 0;
    }
    if (routes && a->routing == KN_KUBE_ROUTING_GATEWAYAPI &&
        json_number_value(json_object_get(routes, "mirror")) > 0 &&
        json_number_value(json_object_get(routes, "mirror")) < 100) {
        json_decref(routes);
        kn_platform_call_done(call, KN_EUNSUPPORTED,
                              "an HTTPRoute mirrors all the requests or none (gateway-api v1 has "
                              "no mirror percent): mirror must be 100");
        return 0;
    }

    if (!a || a->routing < 0) {
        if (percent[KN_VARIANT_PRIMARY] >= 100) {
            kn_platform_call_progress(call, "all traffic on the primary: nothing to route");
            kn_platform_call_done(call, 0, NULL);
            return 0;
        }
        kn_platform_call_done(call, KN_EUNSUPPORTED,
                              a ? "the app has no spec.kubernetes.trafficRouting"
                                : "the app is not deployed on this platform");
        return 0;
    }
    op = op_new(kb, OP_WEIGHTS, call);
    op->a = a;
    op->routes = routes;
    op->save_routes = save;
    memcpy(op->percent, percent, sizeof(op->percent));
    if (a->routing == KN_KUBE_ROUTING_PODSELECTOR) {
        op->scale_at = KN_VARIANT_CANARY;
        scale_next(op);
        return 0;
    }
    op->route = memo_json(call, MEMO_ROUTE);
    if (!op->route || !a->route_name) {
        op_fail(op, KN_EINVAL, "the app's route is not known: apply the app first");
        return 0;
    }
    op_resolve(op, a->route_api, a->route_kind, weights_route_resolved);
    return 0;
}

static int kube_set_weights(void *self, struct kn_platform_call *call,
                            const double percent[KN_VARIANT_COUNT])
{
    return weights_start(self, call, percent, memo_json(call, MEMO_ROUTES), 0);
}

static int kube_set_routes(void *self, struct kn_platform_call *call,
                           const double percent[KN_VARIANT_COUNT], const struct kn_routes *routes)
{
    json_t *j = routes_to_json(routes);

    if (!j) {
        /* none: the weights alone, and the memo forgets the routes */
        kn_platform_call_memo_set(call, MEMO_ROUTES, NULL);
    }
    return weights_start(self, call, percent, j, 1);
}

/* ---- remove, remove_app -------------------------------------------------------------------- */

static void remove_deleted(struct op *op)
{
    char *k = memo_variant_key("variant", op->variant);

    kn_platform_call_memo_set(op->call, k, NULL);
    free(k);
    k = memo_variant_key("workload", op->variant);
    kn_platform_call_memo_set(op->call, k, NULL);
    free(k);
    op_end(op, 0, NULL);
}

/* remove(canary) with routes: the route without them first, so that nothing names the canary's
 * Service once it is deleted. */
static void remove_route_applied(struct op *op, const struct kn_kube_result *r)
{
    (void)r;
    memo_put(op->call, MEMO_ROUTES, NULL);
    kn_platform_call_progress(op->call, "%s %s/%s: the routes to the canary taken away",
                              op->a->route_kind, op->a->ns, op->a->route_name);
    delete_all(op, remove_deleted);
}

static void remove_route_resolved(struct op *op)
{
    char why[512];
    json_t *obj;
    char *path, *full;

    if (op->res_status) {
        resolve_failed(op, op->a->route_kind);
        return;
    }
    obj = route_render(op->route, op->a, op->percent, NULL, why, sizeof(why));
    if (!obj) {
        op_fail(op, KN_EINVAL, "%s %s: %s", op->a->route_kind, op->a->route_name, why);
        return;
    }
    path = kn_kube_path(&op->gvr, op->a->ns, op->a->route_name);
    full = kn_asprintf("%s%s", path, APPLY_QUERY);
    snprintf(op->doing, sizeof(op->doing), "applying %s %s/%s", op->a->route_kind, op->a->ns,
             op->a->route_name);
    op_request(op, "PATCH", full, obj, 0, remove_route_applied);
    free(full);
    free(path);
    json_decref(obj);
}

static int kube_remove(void *self, struct kn_platform_call *call, enum kn_variant v)
{
    struct kube *kb = self;
    struct kapp *a = kapp_recall(kb, call);
    double percent[KN_VARIANT_COUNT];
    struct op *op;
    char *k;

    if (!a) {
        kn_platform_call_progress(call, "%s: nothing deployed", kn_kube_variant_name(v));
        kn_platform_call_done(call, 0, NULL);
        return 0;
    }
    if (v == KN_VARIANT_PRIMARY) {
        kn_platform_call_done(call, KN_EUNSUPPORTED,
                              "the primary of a kubernetes app goes only with the app (prune)");
        return 0;
    }
    weights_recall(call, percent);
    if (percent[v] > 0) {
        kn_platform_call_done(call, KN_EINVAL,
                              "the %s still receives %g%% of the traffic: its weight must be 0 "
                              "before it is removed",
                              kn_kube_variant_name(v), percent[v]);
        return 0;
    }
    op = op_new(kb, OP_REMOVE, call);
    op->a = a;
    op->variant = v;
    k = memo_variant_key("variant", v);
    op->doomed = memo_json(call, k);
    free(k);
    if (!json_is_array(op->doomed)) {
        json_decref(op->doomed);
        op->doomed = json_array();
    }
    {
        /* the names the variant has, in case the memo lost them */
        char *wn = kn_kube_variant_object_name(a->workload, v);
        json_t *key = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "apps/v1", "kind",
                                "Deployment", "namespace", a->ns, "name", wn);
        keys_add(op->doomed, key);
        json_decref(key);
        free(wn);
        if (a->service) {
            char *sn = kn_kube_variant_object_name(a->service, v);
            key = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "v1", "kind", "Service",
                            "namespace", a->ns, "name", sn);
            keys_add(op->doomed, key);
            json_decref(key);
            free(sn);
        }
    }
    op->routes = v == KN_VARIANT_CANARY ? memo_json(call, MEMO_ROUTES) : NULL;
    op->route = op->routes ? memo_json(call, MEMO_ROUTE) : NULL;
    if (op->route && a->route_name) {
        memcpy(op->percent, percent, sizeof(op->percent));
        op_resolve(op, a->route_api, a->route_kind, remove_route_resolved);
        return 0;
    }
    if (op->routes) {
        memo_put(call, MEMO_ROUTES, NULL);
    }
    delete_all(op, remove_deleted);
    return 0;
}

static void remove_app_deleted(struct op *op)
{
    static const char *const memos[] = {
        MEMO_APP,         MEMO_RESOURCES,     MEMO_ROUTE,        MEMO_WEIGHTS,        MEMO_ROUTES,
        "variant-canary", "variant-baseline", "workload-canary", "workload-baseline", NULL};
    struct kube *kb = op->kb;
    const struct kn_app_id *id = kn_platform_call_id(op->call);
    struct kapp **at = &kb->apps;

    for (int i = 0; memos[i]; i++) {
        kn_platform_call_memo_set(op->call, memos[i], NULL);
    }
    while (*at) {
        struct kapp *a = *at;
        if (strcmp(a->repository, id->repository) == 0 && strcmp(a->app, id->app) == 0) {
            struct op *o;
            *at = a->next;
            for (o = kb->ops; o; o = o->next) {
                if (o->a == a && o != op) {
                    break;
                }
            }
            if (!o) {
                kinf_forget(kb, a->selector);
                op->a = NULL;
                kapp_free(a);
                apps_file_write(kb);
            } else {
                a->next = kb->apps; /* still in use by another call: keep it */
                kb->apps = a;
            }
            break;
        }
        at = &a->next;
    }
    op_end(op, 0, NULL);
}

static int kube_remove_app(void *self, struct kn_platform_call *call)
{
    struct kube *kb = self;
    static const char *const lists[] = {MEMO_RESOURCES, "variant-canary", "variant-baseline", NULL};
    struct op *op = op_new(kb, OP_REMOVE_APP, call);

    op->a = kapp_recall(kb, call);
    op->doomed = json_array();
    for (int i = 0; lists[i]; i++) {
        json_t *keys = memo_json(call, lists[i]);
        size_t j;
        json_t *k;
        json_array_foreach(keys, j, k)
        {
            keys_add(op->doomed, k);
        }
        json_decref(keys);
    }
    kn_platform_call_progress(call, "deleting %zu resources", json_array_size(op->doomed));
    delete_all(op, remove_app_deleted);
    return 0;
}

/* ---- observe ------------------------------------------------------------------------------- */

static struct kinf *observe_inf(struct op *op, const json_t *key)
{
    return kinf_find(op->kb, jstr(key, "apiVersion"), jstr(key, "kind"), jstr(key, "namespace"),
                     op->a->selector);
}

static const json_t *observe_live(struct op *op, const json_t *key)
{
    struct kinf *ki = observe_inf(op, key);
    const char *ns = jstr(key, "namespace");

    return ki ? kn_kube_informer_get(ki->inf, ns[0] ? ns : NULL, jstr(key, "name")) : NULL;
}

static void observe_variant(struct op *op, struct kn_live_state *out, enum kn_variant v)
{
    char *name = kn_kube_variant_object_name(op->a->workload, v);
    json_t *key = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "apps/v1", "kind", "Deployment",
                            "namespace", op->a->ns, "name", name);
    const json_t *d = observe_live(op, key);
    const json_t *st = json_object_get(d, "status");
    const char *commit = jstr(json_object_get(json_object_get(d, "metadata"), "annotations"),
                              KN_KUBE_ANNOTATION_COMMIT);

    if (d) {
        out->variant[v].instances = (int)jint(json_object_get(st, "replicas"), 0);
        out->variant[v].healthy = (int)jint(json_object_get(st, "availableReplicas"), 0);
        snprintf(out->variant[v].commit, sizeof(out->variant[v].commit), "%s", commit);
    }
    json_decref(key);
    free(name);
}

/* The weights read back from the live route, with the route's resource line. */
static void observe_weights(struct op *op, struct kn_live_state *out)
{
    const struct kapp *a = op->a;
    double live[KN_VARIANT_COUNT], set[KN_VARIANT_COUNT];
    json_t *key;
    const json_t *route;
    char why[512], drift[512], status[256];
    int differs = 0;

    if (op->desired) {
        memcpy(set, op->desired->percent, sizeof(set));
    } else {
        weights_recall(op->call, set);
    }
    if (a->routing == KN_KUBE_ROUTING_PODSELECTOR || !a->route_name || a->routing < 0) {
        /* no router: the pods' share (approximate by design) */
        int total = 0;
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            total += out->variant[v].healthy;
        }
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            out->variant[v].weight = total ? 100.0 * out->variant[v].healthy / total
                                           : (v == KN_VARIANT_PRIMARY ? 100 : 0);
        }
        return;
    }
    key = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", a->route_api, "kind", a->route_kind,
                    "namespace", a->ns, "name", a->route_name);
    route = observe_live(op, key);
    json_decref(key);
    if (!route) {
        return; /* its resource line says it is gone */
    }
    if (kn_kube_route_weights(route, a->service ? a->service : "", live, why, sizeof(why)) < 0) {
        char name[512];
        snprintf(name, sizeof(name), "%s/%s weights", a->ns, a->route_name);
        kn_live_state_add(out, a->route_kind, name, why, why);
        return;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        out->variant[v].weight = live[v];
        if (llround(live[v]) != llround(set[v])) {
            differs = 1;
        }
    }
    snprintf(status, sizeof(status), "weights %g/%g/%g", live[0], live[1], live[2]);
    snprintf(drift, sizeof(drift), "weights %g/%g/%g, kanaria set %g/%g/%g", live[0], live[1],
             live[2], set[0], set[1], set[2]);
    {
        char name[512];
        snprintf(name, sizeof(name), "%s/%s weights", a->ns, a->route_name);
        kn_live_state_add(out, a->route_kind, name, status, differs ? drift : NULL);
    }
}

static void observe_report(struct op *op)
{
    struct kn_live_state *out = kn_platform_call_live(op->call);
    size_t i;
    json_t *e;
    int found = 0;

    json_array_foreach(op->expect, i, e)
    {
        found += !jstr(e, "missing")[0] && observe_live(op, json_object_get(e, "key")) != NULL;
    }
    if (!found) {
        op_fail(op, KN_ENOTFOUND, "platform '%s' has none of the app's %zu resources", op->kb->name,
                json_array_size(op->expect));
        return;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        observe_variant(op, out, (enum kn_variant)v);
    }
    json_array_foreach(op->expect, i, e)
    {
        const json_t *key = json_object_get(e, "key");
        const json_t *applied = json_object_get(e, "obj");
        const json_t *live;
        char name[512], status[512];
        char *drift = NULL;
        int is_route = op->a->route_name && strcmp(jstr(key, "kind"), op->a->route_kind) == 0 &&
                       strcmp(jstr(key, "name"), op->a->route_name) == 0;

        snprintf(name, sizeof(name), "%s%s%s", jstr(key, "namespace"),
                 jstr(key, "namespace")[0] ? "/" : "", jstr(key, "name"));
        if (jstr(e, "missing")[0]) {
            kn_live_state_add(out, jstr(key, "kind"), name, jstr(e, "missing"),
                              "kanaria applied it; its kind is gone");
            continue;
        }
        live = observe_live(op, key);
        if (!live) {
            kn_live_state_add(out, jstr(key, "kind"), name, "absent",
                              "kanaria applied it; it was deleted");
            continue;
        }
        if (strcmp(jstr(key, "kind"), "Deployment") == 0) {
            const json_t *st = json_object_get(live, "status");
            snprintf(status, sizeof(status), "%lld/%lld available",
                     jint(json_object_get(st, "availableReplicas"), 0),
                     jint(json_object_get(json_object_get(live, "spec"), "replicas"), 1));
        } else {
            snprintf(status, sizeof(status), "present");
        }
        if (applied && json_is_object(applied)) {
            drift = kn_kube_drift(applied, live, is_route);
        }
        kn_live_state_add(out, jstr(key, "kind"), name, status, drift);
        free(drift);
    }
    observe_weights(op, out);
    op_end(op, 0, NULL);
}

/* Every informer observe reads is synced, or one failed to list. */
static void observe_check(struct op *op)
{
    size_t i;
    json_t *k;

    json_array_foreach(op->infs, i, k)
    {
        struct kinf *ki = kinf_find(op->kb, jstr(k, "apiVersion"), jstr(k, "kind"),
                                    jstr(k, "namespace"), op->a->selector);
        const char *err;
        if (!ki) {
            continue;
        }
        if (kn_kube_informer_synced(ki->inf)) {
            continue;
        }
        err = kn_kube_informer_error(ki->inf);
        if (err) {
            op_fail(op, KN_EIO, "listing %s in %s: %s", jstr(k, "kind"),
                    jstr(k, "namespace")[0] ? jstr(k, "namespace") : "the cluster", err);
        }
        return;
    }
    op->check = NULL;
    uv_timer_stop(op->timer);
    observe_report(op);
}

static void observe_tick(struct op *op)
{
    if (kn_platform_call_time_left(op->call) <= TICK_MS / 4) {
        op_fail(op, KN_ETIMEDOUT, "the app's resources are not listed yet");
        return;
    }
    op_after(op, TICK_MS / 4, observe_tick);
    observe_check(op);
}

static void observe_next(struct op *op);

static void observe_resolved(struct op *op)
{
    json_t *e = json_array_get(op->expect, op->at);
    json_t *key = json_object_get(e, "key");
    const json_t *m = json_object_get(e, "manifest");

    if (op->res_status) {
        if (op->res_status != KN_ENOTFOUND) {
            op_fail(op, op->res_status, "%s", op->res_message);
            return;
        }
        json_object_set_new(e, "missing", json_string(op->res_message));
        if (m) {
            json_object_set_new(e, "key", key_of(m));
        }
    } else {
        struct kinf *ki;
        json_t *ik;
        if (m) {
            struct kn_kube_owner owner = {
                .app = op->a->app, .repository = op->a->repository, .commit = op->desired->commit};
            const char *kind = jstr(m, "kind"), *name = meta_str(m, "name");
            json_t *obj = kn_kube_render(m, &owner, op->a->ns, op->gvr.namespaced);
            if (strcmp(kind, "Deployment") == 0 && strcmp(name, op->a->workload) == 0) {
                json_t *v = kn_kube_variant_workload(obj, KN_VARIANT_PRIMARY, -1);
                json_decref(obj);
                obj = v;
            } else if (strcmp(kind, "Service") == 0 && op->a->service &&
                       strcmp(name, op->a->service) == 0) {
                json_t *v = kn_kube_variant_service(obj, KN_VARIANT_PRIMARY,
                                                    op->a->routing == KN_KUBE_ROUTING_GATEWAYAPI ||
                                                        op->a->routing == KN_KUBE_ROUTING_ISTIO);
                json_decref(obj);
                obj = v;
            } else if (op->a->route_name && strcmp(kind, op->a->route_kind) == 0 &&
                       strcmp(name, op->a->route_name) == 0) {
                char why[256];
                json_t *routes = memo_json(op->call, MEMO_ROUTES);
                json_t *v =
                    route_render(obj, op->a, op->desired->percent, routes, why, sizeof(why));
                json_decref(routes);
                if (v) {
                    json_decref(obj);
                    obj = v;
                }
            }
            json_object_set_new(e, "key", key_of(obj));
            json_object_set_new(e, "obj", obj);
            key = json_object_get(e, "key");
        }
        ki = kinf_get(op->kb, &op->gvr, op->a->ns, op->a->selector);
        if (!ki) {
            op_fail(op, KN_EIO, "%s in %s cannot be watched", op->gvr.resource, op->a->ns);
            return;
        }
        ik = json_pack("{s:s, s:s, s:s}", "apiVersion", ki->api_version, "kind", ki->kind,
                       "namespace", ki->ns);
        keys_add(op->infs, ik);
        json_decref(ik);
        /* informers are keyed by the resolved namespace: cluster-scoped objects have none */
        json_object_set_new(key, "namespace", json_string(ki->ns));
    }
    op->at++;
    observe_next(op);
}

static void observe_next(struct op *op)
{
    const json_t *e = json_array_get(op->expect, op->at);
    const json_t *m = json_object_get(e, "manifest");
    const json_t *key = json_object_get(e, "key");

    if (e) {
        op_resolve(op, m ? jstr(m, "apiVersion") : jstr(key, "apiVersion"),
                   m ? jstr(m, "kind") : jstr(key, "kind"), observe_resolved);
        return;
    }
    op->check = observe_check;
    op_after(op, TICK_MS / 4, observe_tick);
    observe_check(op);
}

static int kube_observe(void *self, struct kn_platform_call *call, const struct kn_desired *desired)
{
    struct kube *kb = self;
    struct kapp *a = NULL;
    struct op *op;
    json_t *keys = memo_json(call, MEMO_RESOURCES);
    char why[512];
    size_t i;
    json_t *x;

    if (desired && json_is_array(desired->manifests) && json_array_size(desired->manifests)) {
        a = kapp_learn(kb, kn_platform_call_id(call), desired->options, desired->manifests, why,
                       sizeof(why));
    }
    if (!a) {
        a = kapp_recall(kb, call);
    }
    if (!a || (!desired && !json_array_size(keys))) {
        json_decref(keys);
        kn_platform_call_done(call, KN_ENOTFOUND, "platform '%s' has not deployed the app",
                              kb->name);
        return 0;
    }
    op = op_new(kb, OP_OBSERVE, call);
    op->a = a;
    op->desired = desired;
    op->expect = json_array();
    op->infs = json_array();
    if (desired && json_is_array(desired->manifests) && json_array_size(desired->manifests)) {
        json_array_foreach(desired->manifests, i, x)
        {
            json_array_append_new(op->expect, json_pack("{s:O}", "manifest", x));
        }
    } else {
        json_array_foreach(keys, i, x)
        {
            json_array_append_new(op->expect, json_pack("{s:O}", "key", x));
        }
    }
    json_decref(keys);
    op->at = 0;
    observe_next(op);
    return 0;
}

/* ---- cancel, placeholders, lead, life ------------------------------------------------------ */

static void kube_cancel(void *self, struct kn_platform_call *call)
{
    struct kube *kb = self;
    struct op *op = kb->ops;
    struct kn_kube_call *c;

    while (op && op->call != call) {
        op = op->next;
    }
    if (!op || op->cancelled || op->ended) {
        return;
    }
    op->cancelled = 1;
    op->check = NULL;
    c = op->inflight;
    op->inflight = NULL;
    op->resolving = 0;
    op_after(op, 0, op_cancelled); /* ends from the loop */
    if (c) {
        kn_kube_cancel(c); /* its callback sees the op cancelled */
    }
}

static void kube_template_vars(void *self, const struct kn_app_id *id, enum kn_variant v,
                               struct kn_strmap *out)
{
    struct kube *kb = self;
    const struct kapp *a = kapp_find(kb, id);
    char *w = a && a->workload ? kn_kube_variant_object_name(a->workload, v) : NULL;
    char *s = a && a->service ? kn_kube_variant_object_name(a->service, v) : NULL;

    kn_platform_vars_set(out, "namespace", a && a->ns ? a->ns : "");
    kn_platform_vars_set(out, "workload", w ? w : "");
    kn_platform_vars_set(out, "service", s ? s : "");
    /* the variant's Service inside the cluster (kanaria probes from where it runs) */
    if (s && a->service_port > 0) {
        char *url = kn_asprintf("http://%s.%s.svc:%lld", s, a->ns ? a->ns : "default",
                                a->service_port);
        kn_platform_vars_set(out, "variant_url", url);
        free(url);
    } else {
        kn_platform_vars_set(out, "variant_url", "");
    }
    free(w);
    free(s);
}

static void kube_lead_changed(int leading, const char *why, void *data)
{
    struct kube *kb = data;

    kb->leading = leading;
    kb->lead_cb(leading, why, kb->lead_data);
}

static int kube_lead(void *self, kn_platform_lead_cb cb, void *data)
{
    struct kube *kb = self;

    if (!kb->leader.set) {
        return KN_EUNSUPPORTED;
    }
    if (kb->lease) {
        return KN_EEXISTS;
    }
    kb->lead_cb = cb;
    kb->lead_data = data;
    return kn_kube_lease_start(&kb->lease, kb->loop, kb->kube, &kb->leader, kube_lead_changed, kb);
}

/* The Lease's release (a request on the session, at most 2 s) has run out: the session goes. */
static void released(uv_timer_t *t)
{
    struct kube *kb = t->data;

    kn_kube_free(kb->kube);
    kb->kube = NULL;
    uv_close((uv_handle_t *)t, handle_closed);
}

static void kube_destroy(void *self)
{
    struct kube *kb = self;

    if (!kb) {
        return;
    }
    kb->closing = 1;
    while (kb->ops) {
        op_cancelled(kb->ops);
    }
    while (kb->infs) {
        struct kinf *ki = kb->infs;
        kb->infs = ki->next;
        kinf_free(ki);
    }
    kn_kube_lease_free(kb->lease);
    kb->lease = NULL;
    if (kb->leading) {
        /* the release is a request on the session: free it once the release ran out */
        uv_timer_t *t = kn_calloc(1, sizeof(*t));
        uv_timer_init(kb->loop, t);
        t->data = kb;
        kb->handles++;
        uv_timer_start(t, released, LEASE_RELEASE_MS, 0);
    } else {
        kn_kube_free(kb->kube);
        kb->kube = NULL;
    }
    while (kb->apps) {
        struct kapp *a = kb->apps;
        kb->apps = a->next;
        kapp_free(a);
    }
    free(kb->leader.namespace_);
    free(kb->leader.lease);
    free(kb->apps_path);
    kb->apps_path = NULL;
    if (kb->handles == 0) {
        free(kb->name);
        free(kb);
    }
}

const struct kn_platform_provider_ops kn_kube_ops = {
    .apply = kube_apply,
    .remove = kube_remove,
    .set_weights = kube_set_weights,
    .set_routes = kube_set_routes,
    .remove_app = kube_remove_app,
    .observe = kube_observe,
    .cancel = kube_cancel,
    .template_vars = kube_template_vars,
    .lead = kube_lead,
    .destroy = kube_destroy,
};

int kn_kube_create(void **out, const struct kn_platform_env *env, const void *config,
                   struct kn_error *err)
{
    const struct kn_kube_config *cfg = config;
    struct kube *kb = kn_calloc(1, sizeof(*kb));
    struct kn_error kerr;
    char *dir = NULL, *state = NULL;
    int rc = 0;

    *out = NULL;
    kb->name = kn_strdup(env->name);
    kb->loop = env->loop;
    snprintf(kb->who, sizeof(kb->who), "platform=%s", env->name);
    if (cfg->leader_election.set) {
        kb->leader = cfg->leader_election;
        kb->leader.namespace_ =
            cfg->leader_election.namespace_ ? kn_strdup(cfg->leader_election.namespace_) : NULL;
        kb->leader.lease =
            kn_strdup(cfg->leader_election.lease ? cfg->leader_election.lease : "kanaria");
    }
    dir = kn_asprintf("%s/kubernetes", env->data_dir ? env->data_dir : ".");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = kn_error_set(err, KN_EIO, NULL, "platform '%s': %s: %s", env->name, dir,
                          strerror(errno));
        goto out;
    }
    state = kn_asprintf("%s/%s", dir, env->name);
    kn_error_clear(&kerr);
    if ((rc = kn_kube_new(&kb->kube, env->loop, env->http, cfg, state, &kerr)) < 0) {
        rc = kn_error_set(err, rc, NULL, "platform '%s': %s", env->name, kerr.msg);
        goto out;
    }
    kb->apps_path = kn_asprintf("%s/apps.json", state);
    apps_file_read(kb);
    *out = kb;
    kb = NULL;
out:
    if (kb) {
        free(kb->leader.namespace_);
        free(kb->leader.lease);
        free(kb->name);
        free(kb);
    }
    free(dir);
    free(state);
    return rc;
}
