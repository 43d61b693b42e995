/*
 * The `kubernetes` platform: plain Kubernetes manifests from Git, applied with server-side apply
 * straight to kube-apiserver (libcurl, jansson; no kubectl, no client-go). The primary is the
 * app's own workload; the canary and the baseline are copies of it named <workload>-canary and
 * <workload>-baseline with Services <service>-canary and <service>-baseline that select only
 * their pods; traffic is split by the weights of a Gateway API HTTPRoute or an Istio
 * VirtualService that kanaria owns, or (podselector) by the replica ratio. Private to
 * controller/platforms; the rest of the code reaches it through kn_platform_types[] and the
 * front end.
 *
 *   kubernetes.c  the descriptor
 *   config.c      the keys of a platforms[] entry (kubeconfig, context, qps, leaderElection)
 *   app.c         spec.kubernetes (the app's options), the manifest kinds and the checks that
 *                 need the pipeline
 *   kube.h        the API client: kubeconfig and in-cluster credentials, requests with the
 *                 apiserver's Status errors, rate limit and retries, discovery, list + watch
 *   kubeconfig.c  reading a kubeconfig / the in-cluster files into a cluster and a user
 *   client.c      requests, credentials at each request, discovery
 *   watch.c       the informer: list, then watch with bookmarks, relist on 410, reconnect
 *   render.h      pure functions: kanaria's labels, the variants' objects, route weights,
 *                 apply order, Deployment health, drift
 *   render.c      their implementation
 *   provider.c    the operations (apply, remove, set_weights, remove_app, observe, cancel)
 *   lease.c       leader election on a coordination.k8s.io/v1 Lease (ops->lead)
 */
#ifndef KANARIA_PLATFORMS_KUBERNETES_H
#define KANARIA_PLATFORMS_KUBERNETES_H

#include <stdint.h>

#include "kanaria/error.h"
#include "kanaria/manifest.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/schema.h"

/* ---- kanaria.yaml: platforms[] entry of type kubernetes ------------------------------------ */

/* leaderElection: take this Lease before deploying anything (two kanaria never deploy at once). */
struct kn_kube_leader_config {
    uint64_t set;
    char *namespace_; /* `namespace`: the Lease's namespace; NULL: the context's (in cluster:
                         the pod's) */
    char *lease;      /* the Lease's name; NULL: "kanaria" */
    long long lease_duration_ms; /* leaseDuration, 15 s */
    long long renew_deadline_ms; /* renewDeadline, 10 s */
    long long retry_period_ms;   /* retryPeriod, 2 s */
};

struct kn_kube_config {
    uint64_t set;
    char *kubeconfig; /* NULL: $KUBECONFIG (first file of the list), else in-cluster, else
                         ~/.kube/config */
    char *context;    /* NULL: the kubeconfig's current-context */
    long long qps;    /* requests per second, burst twice that; 0 (unset): 20 */
    struct kn_kube_leader_config leader_election; /* set bit clear: no leader election */
};

extern const struct kn_schema kn_kube_config_schema;

/* ---- app.kanaria.yaml: spec.kubernetes ----------------------------------------------------- */

/* trafficRouting.method; an app without trafficRouting splits no traffic. */
enum kn_kube_routing {
    KN_KUBE_ROUTING_GATEWAYAPI = 0, /* gatewayapi: HTTPRoute backendRefs weights */
    KN_KUBE_ROUTING_ISTIO,      /* istio: VirtualService route weights */
    KN_KUBE_ROUTING_PODSELECTOR /* podselector: the replica ratio behind the primary Service */
};

struct kn_kube_workload_ref {
    uint64_t set;
    char *kind; /* "Deployment" (the only kind so far) */
    char *name;
};

struct kn_kube_gatewayapi {
    uint64_t set;
    char *http_route; /* httpRoute: an HTTPRoute of the app's manifests */
};

struct kn_kube_istio {
    uint64_t set;
    char *virtual_service; /* virtualService: a VirtualService of the app's manifests */
};

struct kn_kube_traffic {
    uint64_t set;
    int method; /* enum kn_kube_routing */
    struct kn_kube_gatewayapi gatewayapi;
    struct kn_kube_istio istio;
};

/* spec.kubernetes, parsed with kn_kube_app_schema (kn_variant_spec.options, kn_desired.options). */
struct kn_kube_app_options {
    uint64_t set;
    char *namespace_;                     /* NULL: the manifests', else the context's */
    struct kn_kube_workload_ref workload; /* name NULL: the only Deployment of the manifests */
    char *service;                        /* the Service in front of the workload; NULL: the
                                             only Service of the manifests, if one */
    struct kn_kube_traffic traffic_routing;
};

extern const struct kn_schema kn_kube_app_schema;
extern const struct kn_manifest_kind kn_kube_kinds[];
#define KN_KUBE_NKINDS 6 /* entries of kn_kube_kinds */

/* The workload and the Service an app's options name, or the only ones of its manifests
 * (borrowed from manifests, a canonical array); NULL when there is none or more than one. */
const json_t *kn_kube_find_workload(const json_t *manifests, const struct kn_kube_app_options *o);
const json_t *kn_kube_find_service(const json_t *manifests, const struct kn_kube_app_options *o);
/* The route trafficRouting names (an HTTPRoute or a VirtualService), or NULL. */
const json_t *kn_kube_find_route(const json_t *manifests, const struct kn_kube_app_options *o);

/* Two apps of one platform on one workload (namespace, kind, name): a located error in the later. */
void kn_kube_check_apps(struct kn_app *const *apps, size_t n);
/* The app's options against its manifests and pipeline: the workload and the Service exist (or
 * are the only ones), the route exists and sends traffic to the Service, a pipeline that routes
 * traffic has trafficRouting, podselector says its percentages are approximate, ... */
void kn_kube_check_app(const struct kn_app *app, const struct kn_pipeline_uses *uses,
                       struct kn_schema_ctx *ctx);

extern const struct kn_placeholder kn_kube_placeholders[];
extern const struct kn_platform_provider_ops kn_kube_ops;
/* The type's create: config is a const struct kn_kube_config *. */
int kn_kube_create(void **out, const struct kn_platform_env *env, const void *config,
                   struct kn_error *err);

extern const struct kn_platform_type kn_platform_kubernetes;

#endif /* KANARIA_PLATFORMS_KUBERNETES_H */
