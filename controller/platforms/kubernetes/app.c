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

#include "kanaria/app.h"

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
     .flags = KN_FIELD_NONEMPTY,
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
     .flags = KN_FIELD_NONEMPTY,
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

static void kn_kube_check_traffic(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_kube_traffic *t = obj;

    if (!node) {
        return; /* no trafficRouting: no traffic split */
    }
    if (!kn_node_get(node, "method")) {
        kn_schema_error(ctx, node, "trafficRouting: 'method' is required (gatewayapi, istio or "
                                   "podselector)");
        return;
    }
    if (t->method == KN_KUBE_ROUTING_GATEWAYAPI && !t->gatewayapi.http_route) {
        kn_schema_error(ctx, node, "trafficRouting: method gatewayapi needs 'gatewayapi: "
                                   "{httpRoute: NAME}'");
    }
    if (t->method == KN_KUBE_ROUTING_ISTIO && !t->istio.virtual_service) {
        kn_schema_error(ctx, node, "trafficRouting: method istio needs 'istio: "
                                   "{virtualService: NAME}'");
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

const struct kn_manifest_kind kn_kube_kinds[KN_KUBE_NKINDS] = {
    {.kind = "Deployment",
     .api_version = "apps/v1",
     .role = KN_KIND_WORKLOAD,
     .runtime_paths = kn_kube_workload_runtime_paths,
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

void kn_kube_check_apps(struct kn_app *const *apps, size_t n)
{
    (void)apps;
    (void)n;
}

void kn_kube_check_app(const struct kn_app *app, const struct kn_pipeline_uses *uses,
                       struct kn_schema_ctx *ctx)
{
    (void)app;
    (void)uses;
    (void)ctx;
}
