/*
 * spec.kubernetes of an app on a `kubernetes` platform, and its manifest kinds: plain Kubernetes
 * manifests (multi-document YAML) listed in spec.manifests.
 *
 *     spec:
 *       platform: k8s
 *       manifests: [deploy.yaml, service.yaml, route.yaml]
 *       kubernetes:
 *         namespace: shop
 *         workload: {kind: Deployment, name: web}
 *         service: web
 *         trafficRouting:
 *           method: gatewayapi
 *           gatewayapi: {httpRoute: web}
 */
#include "platforms/kubernetes/kubernetes.h"

#include <stddef.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "platforms/kubernetes/render.h"

static const char *const kn_kube_workload_kinds[] = {"Deployment", NULL};

static const struct kn_field kn_kube_workload_fields[] = {
    {.key = "kind",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_workload_ref, kind),
     .flags = KN_FIELD_NONEMPTY,
     .def = "Deployment",
     .help = "the workload's kind: Deployment"},
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_workload_ref, name),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the workload's metadata.name; else the only Deployment of the manifests"},
};

static void kn_kube_check_workload(void *obj, const struct kn_node *node,
                                   struct kn_schema_ctx *ctx)
{
    const struct kn_kube_workload_ref *w = obj;

    if (!w->kind) {
        return;
    }
    for (size_t i = 0; kn_kube_workload_kinds[i]; i++) {
        if (strcmp(w->kind, kn_kube_workload_kinds[i]) == 0) {
            return;
        }
    }
    kn_schema_error(ctx, kn_node_get(node, "kind"),
                    "workload.kind: kanaria runs canaries of Deployments, not '%s'", w->kind);
}

static const struct kn_schema kn_kube_workload_schema = {
    .name = "workload",
    KN_SCHEMA_FIELDS(kn_kube_workload_fields),
    .check = kn_kube_check_workload,
    .size = sizeof(struct kn_kube_workload_ref),
    .set_offset = offsetof(struct kn_kube_workload_ref, set),
};

static const struct kn_field kn_kube_gatewayapi_fields[] = {
    {.key = "httpRoute",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_gatewayapi, http_route),
     .flags = KN_FIELD_NONEMPTY, /* required when given: see kn_kube_check_traffic */
     .help = "the HTTPRoute (gateway.networking.k8s.io/v1) of the app's manifests whose rules "
             "send traffic to the Service"},
};

static const struct kn_schema kn_kube_gatewayapi_schema = {
    .name = "gatewayapi",
    KN_SCHEMA_FIELDS(kn_kube_gatewayapi_fields),
    .size = sizeof(struct kn_kube_gatewayapi),
    .set_offset = offsetof(struct kn_kube_gatewayapi, set),
};

static const struct kn_field kn_kube_istio_fields[] = {
    {.key = "virtualService",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_istio, virtual_service),
     .flags = KN_FIELD_NONEMPTY, /* required when given: see kn_kube_check_traffic */
     .help = "the VirtualService (networking.istio.io) of the app's manifests whose http "
             "routes send traffic to the Service"},
};

static const struct kn_schema kn_kube_istio_schema = {
    .name = "istio",
    KN_SCHEMA_FIELDS(kn_kube_istio_fields),
    .size = sizeof(struct kn_kube_istio),
    .set_offset = offsetof(struct kn_kube_istio, set),
};

static const char *const kn_kube_routing_names[] = {"gatewayapi", "istio", "podselector", NULL};

/* The section's required keys, checked here and not by the table: the table's would also be
 * required when the whole (optional) section is absent. */
static void kn_kube_check_traffic(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_kube_traffic *t = obj;
    const struct kn_node *sub;

    if (!node) {
        return; /* no trafficRouting: no traffic split */
    }
    if (!kn_node_get(node, "method")) {
        kn_schema_error(ctx, node, "trafficRouting: 'method' is required (gatewayapi, istio or "
                                   "podselector)");
        return;
    }
    if (t->method == KN_KUBE_ROUTING_GATEWAYAPI) {
        sub = kn_node_get(node, "gatewayapi");
        if (!sub) {
            kn_schema_error(ctx, node, "trafficRouting: method gatewayapi needs 'gatewayapi: "
                                       "{httpRoute: NAME}'");
        } else if (!kn_node_get(sub, "httpRoute")) {
            kn_schema_error(ctx, sub, "trafficRouting.gatewayapi: 'httpRoute' is required");
        }
    }
    if (t->method == KN_KUBE_ROUTING_ISTIO) {
        sub = kn_node_get(node, "istio");
        if (!sub) {
            kn_schema_error(ctx, node, "trafficRouting: method istio needs 'istio: "
                                       "{virtualService: NAME}'");
        } else if (!kn_node_get(sub, "virtualService")) {
            kn_schema_error(ctx, sub, "trafficRouting.istio: 'virtualService' is required");
        }
    }
}

static const struct kn_field kn_kube_traffic_fields[] = {
    {.key = "method",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_kube_traffic, method),
     /* required when given: see kn_kube_check_traffic */
     .enums = kn_kube_routing_names,
     .help = "gatewayapi (HTTPRoute backendRefs weights), istio (VirtualService route weights) "
             "or podselector (no router: the split follows the replica ratio, approximately)"},
    {.key = "gatewayapi",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_kube_traffic, gatewayapi),
     .sub = &kn_kube_gatewayapi_schema,
     .help = "method gatewayapi: {httpRoute: NAME}"},
    {.key = "istio",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_kube_traffic, istio),
     .sub = &kn_kube_istio_schema,
     .help = "method istio: {virtualService: NAME}"},
};

static const struct kn_schema kn_kube_traffic_schema = {
    .name = "trafficRouting",
    KN_SCHEMA_FIELDS(kn_kube_traffic_fields),
    .check = kn_kube_check_traffic,
    .size = sizeof(struct kn_kube_traffic),
    .set_offset = offsetof(struct kn_kube_traffic, set),
};

static const struct kn_field kn_kube_app_fields[] = {
    {.key = "namespace",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_app_options, namespace_),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the namespace of the app's namespaced objects that name none; else the "
             "context's"},
    {.key = "workload",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_kube_app_options, workload),
     .sub = &kn_kube_workload_schema,
     .help = "{kind: Deployment, name: NAME}: the workload kanaria runs canaries of; else the "
             "only Deployment of the manifests"},
    {.key = "service",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_app_options, service),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the Service in front of the workload; else the only Service of the manifests"},
    {.key = "trafficRouting",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_kube_app_options, traffic_routing),
     .sub = &kn_kube_traffic_schema,
     .help = "how traffic is split between the variants; without it TRAFFIC_ROUTING is refused"},
};

const struct kn_schema kn_kube_app_schema = {
    .name = "spec.kubernetes",
    KN_SCHEMA_FIELDS(kn_kube_app_fields),
    .size = sizeof(struct kn_kube_app_options),
    .set_offset = offsetof(struct kn_kube_app_options, set),
};

/* What changes the pods: a change elsewhere (spec.replicas) is planned as a quick sync. */
static const char *const kn_kube_workload_runtime_paths[] = {
    "apiVersion", "spec.template", "spec.selector", NULL,
};

/* What kanaria needs of a Deployment to make its canary: the selector's matchLabels (it adds
 * kanaria.dev/variant to them), pod labels that match them, and containers with a name and an
 * image. The rest is the apiserver's to judge. */
static void kn_kube_check_deployment(const struct kn_node *doc, struct kn_schema_ctx *ctx)
{
    const char *name = NULL;
    const struct kn_node *spec = kn_node_get(doc, "spec");
    const struct kn_node *selector = kn_node_get(spec, "selector");
    const struct kn_node *match = kn_node_get(selector, "matchLabels");
    const struct kn_node *tmpl = kn_node_get(spec, "template");
    const struct kn_node *labels = kn_node_get(kn_node_get(tmpl, "metadata"), "labels");
    const struct kn_node *containers = kn_node_get(kn_node_get(tmpl, "spec"), "containers");
    const struct kn_node *n = kn_node_get(kn_node_get(doc, "metadata"), "name");

    name = n && n->type == KN_NODE_SCALAR ? n->scalar : "";
    if (!spec || spec->type != KN_NODE_MAP) {
        kn_schema_error(ctx, spec ? spec : doc, "Deployment '%s': 'spec' must be a map", name);
        return;
    }
    if (!match || match->type != KN_NODE_MAP || match->len == 0) {
        kn_schema_error(ctx, match ? match : selector ? selector : spec,
                        "Deployment '%s': 'spec.selector.matchLabels' must be a map of labels "
                        "(kanaria selects the canary's pods by adding one)",
                        name);
    } else {
        for (size_t i = 0; i < match->len; i++) {
            const struct kn_pair *p = &match->pairs[i];
            const struct kn_node *v = kn_node_get(labels, p->key->scalar);
            if (!v || v->type != KN_NODE_SCALAR || p->value->type != KN_NODE_SCALAR ||
                strcmp(v->scalar, p->value->scalar) != 0) {
                kn_schema_error(ctx, v ? v : labels ? labels : tmpl ? tmpl : spec,
                                "Deployment '%s': 'spec.template.metadata.labels' must have "
                                "%s: %s, as 'spec.selector.matchLabels' selects",
                                name, p->key->scalar,
                                p->value->type == KN_NODE_SCALAR ? p->value->scalar : "?");
            }
        }
    }
    if (!containers || containers->type != KN_NODE_SEQ || containers->len == 0) {
        kn_schema_error(ctx, containers ? containers : tmpl ? tmpl : spec,
                        "Deployment '%s': 'spec.template.spec.containers' must list at least "
                        "one container",
                        name);
        return;
    }
    for (size_t i = 0; i < containers->len; i++) {
        const struct kn_node *c = containers->items[i];
        static const char *const keys[] = {"name", "image", NULL};
        for (size_t k = 0; keys[k]; k++) {
            const struct kn_node *v = kn_node_get(c, keys[k]);
            if (!v || v->type != KN_NODE_SCALAR || v->len == 0 ||
                kn_node_scalar_kind(v) == KN_SCALAR_NULL) {
                kn_schema_error(ctx, v ? v : c,
                                "Deployment '%s': 'spec.template.spec.containers[%zu].%s' is "
                                "required",
                                name, i, keys[k]);
            }
        }
    }
}

const struct kn_manifest_kind kn_kube_kinds[KN_KUBE_NKINDS] = {
    {.kind = "Deployment",
     .api_version = "apps/v1",
     .role = KN_KIND_WORKLOAD,
     .runtime_paths = kn_kube_workload_runtime_paths,
     .check = kn_kube_check_deployment,
     .help = "apps/v1 Deployment: the workload; kanaria runs its canary and baseline beside it"},
    {.kind = "Service",
     .api_version = "v1",
     .role = KN_KIND_OPEN,
     .help = "v1 Service: the one in front of the workload gets a -canary twin"},
    {.kind = "HTTPRoute",
     .role = KN_KIND_ROUTE,
     .help = "gateway.networking.k8s.io HTTPRoute: kanaria owns the backendRefs of the rules "
             "that name the Service (trafficRouting gatewayapi)"},
    {.kind = "VirtualService",
     .role = KN_KIND_ROUTE,
     .help = "networking.istio.io VirtualService: kanaria owns the route weights of the Service "
             "(trafficRouting istio)"},
    {.kind = "Namespace",
     .api_version = "v1",
     .role = KN_KIND_OPEN,
     .help = "applied first"},
    {.kind = NULL,
     .role = KN_KIND_OPEN,
     .help = "any other kind (ConfigMap, Secret, ServiceAccount, CRDs and custom resources): "
             "applied with server-side apply, in dependency order, pruned when removed"},
};

const struct kn_placeholder kn_kube_placeholders[] = {
    {.name = "namespace", .help = "the app's namespace"},
    {.name = "workload",
     .help = "the variant's Deployment (web, web-canary, web-baseline): select its pods with "
             "pod=~\"{{workload}}-[a-z0-9]+-[a-z0-9]+\""},
    {.name = "service", .help = "the variant's Service (web, web-canary, web-baseline)"},
    {.name = "variant_url",
     .help = "http checks only: the variant's Service inside the cluster "
             "(`http://web-canary.NAMESPACE.svc:PORT`, its first port), when kanaria runs where "
             "cluster names resolve; \"\" when the app has no Service"},
    {.name = NULL},
};

static const json_t *find_kind(const json_t *manifests, const char *kind, const char *name)
{
    const json_t *found = NULL;
    size_t i;
    json_t *m;

    json_array_foreach(manifests, i, m) {
        const char *k = json_string_value(json_object_get(m, "kind"));
        const char *n =
            json_string_value(json_object_get(json_object_get(m, "metadata"), "name"));
        if (!k || !n || strcmp(k, kind) != 0) {
            continue;
        }
        if (name) {
            if (strcmp(n, name) == 0) {
                return m;
            }
        } else if (found) {
            return NULL; /* more than one: the options must name it */
        } else {
            found = m;
        }
    }
    return found;
}

const json_t *kn_kube_find_workload(const json_t *manifests, const struct kn_kube_app_options *o)
{
    return find_kind(manifests, o && o->workload.kind ? o->workload.kind : "Deployment",
                     o ? o->workload.name : NULL);
}

const json_t *kn_kube_find_service(const json_t *manifests, const struct kn_kube_app_options *o)
{
    return find_kind(manifests, "Service", o ? o->service : NULL);
}

const json_t *kn_kube_find_route(const json_t *manifests, const struct kn_kube_app_options *o)
{
    if (!o || !o->traffic_routing.set) {
        return NULL;
    }
    switch (o->traffic_routing.method) {
    case KN_KUBE_ROUTING_GATEWAYAPI:
        return o->traffic_routing.gatewayapi.http_route
                   ? find_kind(manifests, "HTTPRoute", o->traffic_routing.gatewayapi.http_route)
                   : NULL;
    case KN_KUBE_ROUTING_ISTIO:
        return o->traffic_routing.istio.virtual_service
                   ? find_kind(manifests, "VirtualService",
                               o->traffic_routing.istio.virtual_service)
                   : NULL;
    default:
        return NULL;
    }
}

/* The app's spec.kubernetes, or NULL when it gives none. */
static const struct kn_kube_app_options *options_of(const struct kn_app *app)
{
    if (app->cfg.platform_schema != &kn_kube_app_schema) {
        return NULL;
    }
    return app->cfg.platform_options;
}

/* The node of the app config's key path (spec.kubernetes....), for locations; NULL: absent. */
static const struct kn_node *config_node(const struct kn_app *app, const char *const *keys)
{
    const struct kn_node *n = NULL;

    for (size_t i = 0; i < app->nfiles; i++) {
        if (app->files[i]->ndocs >= 1 && strcmp(app->files[i]->file, app->config_path) == 0) {
            n = app->files[i]->docs[0];
        }
    }
    for (size_t i = 0; n && keys[i]; i++) {
        n = kn_node_get(n, keys[i]);
    }
    return n;
}

/* The document of the manifest (kind, name), for locations; NULL: none. */
static const struct kn_manifest_doc *doc_of(const struct kn_app *app, const char *kind,
                                            const char *name)
{
    for (size_t i = 0; i < app->ndocs; i++) {
        if (strcmp(app->docs[i].kind, kind) == 0 &&
            (!name || strcmp(app->docs[i].name, name) == 0)) {
            return &app->docs[i];
        }
    }
    return NULL;
}

static const char *name_of(const json_t *m)
{
    return json_string_value(json_object_get(json_object_get(m, "metadata"), "name"));
}

/* "a, b" of the manifests of a kind into buf; how many. */
static size_t names_of_kind(const struct kn_app *app, const char *kind, struct kn_buf *buf)
{
    size_t n = 0;

    for (size_t i = 0; i < app->ndocs; i++) {
        if (strcmp(app->docs[i].kind, kind) == 0) {
            kn_buf_addf(buf, "%s%s", n++ ? ", " : "", app->docs[i].name);
        }
    }
    return n;
}

/* Where an app's workload runs: its namespace (the manifest's, the options', else "" for the
 * context's) and name. 0 when the app has no single workload. */
static int workload_of(const struct kn_app *app, const char **ns, const char **name,
                       const struct kn_manifest_doc **doc)
{
    const struct kn_kube_app_options *o = options_of(app);
    const json_t *w = kn_kube_find_workload(app->manifests, o);
    const char *mns;

    if (!w) {
        return 0;
    }
    *name = name_of(w);
    mns = json_string_value(json_object_get(json_object_get(w, "metadata"), "namespace"));
    *ns = mns && *mns ? mns : o && o->namespace_ ? o->namespace_ : "";
    *doc = doc_of(app, "Deployment", *name);
    return *name && *doc;
}

void kn_kube_check_apps(struct kn_app *const *apps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *ns, *name;
        const struct kn_manifest_doc *doc;
        if (apps[i]->diags.count > 0 || !workload_of(apps[i], &ns, &name, &doc)) {
            continue; /* an invalid app owns nothing (its own errors say why) */
        }
        for (size_t j = 0; j < i; j++) {
            const char *ns2, *name2;
            const struct kn_manifest_doc *doc2;
            if (apps[j]->diags.count > 0 || !workload_of(apps[j], &ns2, &name2, &doc2) ||
                strcmp(ns, ns2) != 0 || strcmp(name, name2) != 0) {
                continue;
            }
            kn_diags_add(&apps[i]->diags, &doc->loc,
                         "Deployment '%s' of namespace '%s' is already deployed by app '%s' (%s) "
                         "on platform '%s'",
                         name, *ns ? ns : "(the context's)", apps[j]->name, apps[j]->config_path,
                         apps[i]->cfg.spec.platform);
            break;
        }
    }
}

static void check_workload(const struct kn_app *app, const struct kn_kube_app_options *o,
                           struct kn_schema_ctx *ctx)
{
    static const char *const name_key[] = {"spec", "kubernetes", "workload", "name", NULL};
    static const char *const manifests_key[] = {"spec", "manifests", NULL};
    struct kn_buf names;
    size_t count;

    if (kn_kube_find_workload(app->manifests, o)) {
        return;
    }
    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    count = names_of_kind(app, "Deployment", &names);
    if (o && o->workload.name) {
        kn_schema_error(ctx, config_node(app, name_key),
                        "'spec.kubernetes.workload.name': the app's manifests have no Deployment "
                        "'%s' (their Deployments: %s)",
                        o->workload.name, count ? names.data : "none");
    } else if (count == 0) {
        kn_schema_error(ctx, config_node(app, manifests_key),
                        "platform '%s': the app's manifests have no Deployment (kanaria runs "
                        "canaries of one)",
                        app->cfg.spec.platform);
    } else {
        const struct kn_manifest_doc *second = NULL;
        for (size_t i = 0, seen = 0; i < app->ndocs && !second; i++) {
            if (strcmp(app->docs[i].kind, "Deployment") == 0 && seen++ == 1) {
                second = &app->docs[i];
            }
        }
        kn_schema_error_at(ctx, second ? &second->loc : NULL,
                           "the app's manifests have %zu Deployments (%s): name the one kanaria "
                           "runs canaries of in 'spec.kubernetes.workload.name'",
                           count, names.data);
    }
    kn_buf_release(&names);
}

/* The Service; NULL (reported when needed is 1) when there is none or it is not named. */
static const json_t *check_service(const struct kn_app *app,
                                   const struct kn_kube_app_options *o, int needed,
                                   struct kn_schema_ctx *ctx)
{
    static const char *const service_key[] = {"spec", "kubernetes", "service", NULL};
    static const char *const routing_key[] = {"spec", "kubernetes", "trafficRouting", NULL};
    const json_t *s = kn_kube_find_service(app->manifests, o);
    struct kn_buf names;
    size_t count;

    if (s || (!needed && !(o && o->service))) {
        return s;
    }
    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    count = names_of_kind(app, "Service", &names);
    if (o && o->service) {
        kn_schema_error(ctx, config_node(app, service_key),
                        "'spec.kubernetes.service': the app's manifests have no Service '%s' "
                        "(their Services: %s)",
                        o->service, count ? names.data : "none");
    } else if (count == 0) {
        kn_schema_error(ctx, config_node(app, routing_key),
                        "'spec.kubernetes.trafficRouting': the app's manifests have no Service "
                        "for the route to send traffic to");
    } else {
        kn_schema_error(ctx, config_node(app, routing_key),
                        "'spec.kubernetes.trafficRouting': the app's manifests have %zu Services "
                        "(%s): name the one in front of the workload in "
                        "'spec.kubernetes.service'",
                        count, names.data);
    }
    kn_buf_release(&names);
    return NULL;
}

static void check_route(const struct kn_app *app, const struct kn_kube_app_options *o,
                        const json_t *service, struct kn_schema_ctx *ctx)
{
    static const char *const http_key[] = {"spec", "kubernetes", "trafficRouting", "gatewayapi",
                                           "httpRoute", NULL};
    static const char *const vs_key[] = {"spec", "kubernetes", "trafficRouting", "istio",
                                         "virtualService", NULL};
    static const double all[KN_VARIANT_COUNT] = {100, 0, 0};
    int istio = o->traffic_routing.method == KN_KUBE_ROUTING_ISTIO;
    const char *kind = istio ? "VirtualService" : "HTTPRoute";
    const char *name = istio ? o->traffic_routing.istio.virtual_service
                             : o->traffic_routing.gatewayapi.http_route;
    const json_t *route;
    const struct kn_manifest_doc *doc;
    struct kn_buf names;
    char why[512];
    json_t *split;

    if (!name) {
        return; /* reported by the schema */
    }
    route = kn_kube_find_route(app->manifests, o);
    if (!route) {
        size_t count;
        kn_buf_init(&names, KN_BUF_UNBOUNDED);
        count = names_of_kind(app, kind, &names);
        kn_schema_error(ctx, config_node(app, istio ? vs_key : http_key),
                        "'spec.kubernetes.trafficRouting.%s': the app's manifests have no %s "
                        "'%s' (their %ss: %s)",
                        istio ? "istio.virtualService" : "gatewayapi.httpRoute", kind, name,
                        kind, count ? names.data : "none");
        kn_buf_release(&names);
        return;
    }
    if (!service || !name_of(service)) {
        return; /* reported */
    }
    split = kn_kube_route_with_weights(route, name_of(service), all, why, sizeof(why));
    if (!split) {
        doc = doc_of(app, kind, name);
        kn_schema_error_at(ctx, doc ? &doc->loc : NULL,
                           "%s (kanaria splits the traffic by the weights of the rules that do)",
                           why);
    }
    json_decref(split);
}

void kn_kube_check_app(const struct kn_app *app, const struct kn_pipeline_uses *uses,
                       struct kn_schema_ctx *ctx)
{
    const struct kn_kube_app_options *o = options_of(app);
    /* without a method, trafficRouting is reported already and judged no further */
    int routed = o && kn_schema_isset(&kn_kube_traffic_schema, &o->traffic_routing, "method");
    int router = routed && o->traffic_routing.method != KN_KUBE_ROUTING_PODSELECTOR;
    const json_t *service;

    /* manifests that did not load (or load wrong) are reported already: judging what is left
     * of them would only add noise */
    if (app->diags.count == 0) {
        check_workload(app, o, ctx);
        service = check_service(app, o, router, ctx);
        if (router) {
            check_route(app, o, service, ctx);
        }
    }
    if (!router && (uses->matches || uses->mirror)) {
        const struct kn_stage_config *st = uses->matches ? uses->matches : uses->mirror;
        kn_schema_error_at(ctx, &st->loc,
                           "stage '%s': '%s' needs spec.kubernetes.trafficRouting gatewayapi (an "
                           "HTTPRoute) or istio (a VirtualService)%s",
                           st->name, uses->matches ? "match" : "mirror",
                           routed ? "; podselector splits by replicas only" : "");
    }
    if (router && o->traffic_routing.method == KN_KUBE_ROUTING_GATEWAYAPI && uses->mirror &&
        uses->mirror_percent < 100) {
        kn_schema_error_at(ctx, &uses->mirror->loc,
                           "stage '%s': an HTTPRoute mirrors all the requests or none (gateway-api "
                           "v1 has no mirror percent): 'mirror' must be 100 with trafficRouting "
                           "gatewayapi, got %g",
                           uses->mirror->name, uses->mirror_percent);
    }
    for (int v = KN_VARIANT_CANARY; !routed && v < KN_VARIANT_COUNT; v++) {
        const struct kn_stage_config *st = uses->routes[v];
        if (st) {
            kn_schema_error_at(ctx, &st->loc,
                               "stage '%s': platform '%s' needs 'spec.kubernetes.trafficRouting' "
                               "to send traffic to the %s",
                               st->name, app->cfg.spec.platform,
                               v == KN_VARIANT_CANARY ? "canary" : "baseline");
            break;
        }
    }
}
