/*
 * kanaria — what the kubernetes platform sends and how it reads what it gets back, as pure
 * functions of JSON (no I/O): kanaria's labels, the objects of each variant, the route weights,
 * the apply order, Deployment health (kubectl's `rollout status` rule), the pods' reasons, the
 * route's status and drift. Every object is jansson JSON in the API's shape.
 *
 * Names and labels. Every object kanaria applies carries the labels kanaria.dev/app (the app's
 * name) and kanaria.dev/repository (the repository's name, or "h-" and 16 hex digits of its
 * SHA-256 when it is not a valid label value), and the annotation kanaria.dev/commit. The
 * variants' own objects carry kanaria.dev/variant = primary | canary | baseline too.
 *
 *   primary:  the workload as in Git; its pod template gets kanaria.dev/variant=primary (the
 *             selector is never touched: it is immutable). With a router (gatewayapi, istio)
 *             the primary Service selects kanaria.dev/variant=primary as well, so canary pods
 *             never take the primary Service's traffic and the weights are exact.
 *   canary:   <workload>-canary: the new pod template, selector and template labels plus
 *             kanaria.dev/variant=canary, replicas a count or a percent of the primary's
 *             (at least 1); <service>-canary: a ClusterIP Service with the primary Service's
 *             ports and selector plus kanaria.dev/variant=canary.
 *   baseline: the same with -baseline, at the last good commit.
 */
#ifndef KANARIA_PLATFORMS_KUBE_RENDER_H
#define KANARIA_PLATFORMS_KUBE_RENDER_H

#include <jansson.h>
#include <stddef.h>

#include "kanaria/platform.h"
#include "kanaria/schema.h"

#define KN_KUBE_FIELD_MANAGER "kanaria"
#define KN_KUBE_LABEL_APP "kanaria.dev/app"
#define KN_KUBE_LABEL_REPOSITORY "kanaria.dev/repository"
#define KN_KUBE_LABEL_VARIANT "kanaria.dev/variant"
#define KN_KUBE_ANNOTATION_COMMIT "kanaria.dev/commit"

/* Whose objects, for the labels. */
struct kn_kube_owner {
    const char *app;
    const char *repository;
    const char *commit;
};

/* s as a label value (at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric), or "h-"
 * and 16 hex digits of its SHA-256 when it is not one. */
void kn_kube_label_value(const char *s, char out[64]);
/* The label selector of every object of an app: "kanaria.dev/app=web,kanaria.dev/repository=shop"
 * (caller frees). */
char *kn_kube_owner_selector(const struct kn_kube_owner *o);
/* "primary", "canary", "baseline". */
const char *kn_kube_variant_name(enum kn_variant v);

/*
 * The object to apply for a manifest: a deep copy with kanaria's labels and commit annotation,
 * metadata.namespace set to ns when the kind is namespaced (namespaced 1) and the manifest has
 * none, and nothing kanaria must not send (status, metadata.managedFields, resourceVersion, uid,
 * creationTimestamp, generation). New reference.
 */
json_t *kn_kube_render(const json_t *manifest, const struct kn_kube_owner *o, const char *ns,
                       int namespaced);

/* Apply order: Namespaces, then CustomResourceDefinitions, then ServiceAccounts, Roles and
 * bindings, ConfigMaps, Secrets and the rest, then Services, then workloads, then routes
 * (HTTPRoute, VirtualService). Lower first; deletion goes in the reverse order. */
int kn_kube_apply_rank(const char *api_version, const char *kind);

/* A kn_scale (count, or percent of the primary's replicas) as replicas: at least 1. */
long long kn_kube_replicas(const struct kn_scale *s, long long primary);

/*
 * The variant's workload from the workload manifest (already rendered with kn_kube_render): see
 * the header's comment. replicas < 0 keeps the manifest's. New reference.
 */
json_t *kn_kube_variant_workload(const json_t *workload, enum kn_variant v, long long replicas);
/* The variant's Service from the primary Service (rendered). For the primary, `exclusive` 1
 * adds the variant to the selector (routers) and 0 returns it as it is. New reference. */
json_t *kn_kube_variant_service(const json_t *service, enum kn_variant v, int exclusive);
/* "<name>-canary" / "<name>-baseline"; the name itself for the primary (caller frees). */
char *kn_kube_variant_object_name(const char *name, enum kn_variant v);

/*
 * The route with the split: in every HTTPRoute rule whose backendRefs name `service` (a Service
 * by kind or by default), the backendRefs become the primary Service with percent[PRIMARY] and
 * the canary and baseline Services with theirs (left out at 0, the primary always kept), each
 * with the port of the primary's entry; rules that do not name it are kept as they are. For a
 * VirtualService, the same on every http[] route whose destination host is `service` (short name
 * or FQDN). New reference; NULL with why filled when no rule names the service.
 */
json_t *kn_kube_route_with_weights(const json_t *route, const char *service,
                                   const double percent[KN_VARIANT_COUNT], char *why, size_t size);
/*
 * The route with the split and the app's routes (NULL or none: as kn_kube_route_with_weights).
 * HTTPRoute only: before every rule that names `service`, a copy whose matches are the rule's own
 * (or one empty match) each with one route match added to its headers (a header Exact, or
 * RegularExpression "^(RE)$"; a cookie a RegularExpression on the Cookie header,
 * "(^|;\s*)NAME=VALUE(;|$)"), sending to the canary Service only; a mirror of 100 adds a
 * RequestMirror filter to the canary Service on the weighted rules (gateway-api v1 has no
 * percent: any other mirror is refused). NULL with why for a VirtualService, a mirror under 100
 * or more than 8 matches in a rule.
 */
json_t *kn_kube_route_with_routes(const json_t *route, const char *service,
                                  const double percent[KN_VARIANT_COUNT],
                                  const struct kn_routes *routes, char *why, size_t size);
/* The split a live route sends to the variants' Services (percent of the weights' sum, taken from
 * the first rule that names one of them; HTTPRoute rules without the primary's Service, header
 * routing's, are left out); 0 with percent filled, -1 with why when it names none
 * or the rules disagree ("rule 2 sends 50/50, rule 1 80/20"). */
int kn_kube_route_weights(const json_t *route, const char *service,
                          double percent[KN_VARIANT_COUNT], char *why, size_t size);

enum kn_kube_health {
    KN_KUBE_PROGRESSING = 0, /* not yet: why says what it waits for */
    KN_KUBE_HEALTHY,
    KN_KUBE_FAILED, /* why says why: never healthy without a change */
};

/*
 * A live Deployment by kubectl's `rollout status` rule: observedGeneration >= generation, then a
 * Progressing condition with reason ProgressDeadlineExceeded fails, a ReplicaFailure condition
 * True fails, then updatedReplicas == spec.replicas, replicas == updatedReplicas,
 * availableReplicas >= updatedReplicas (absent counters are 0). why in kubectl's words
 * ("Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...").
 */
enum kn_kube_health kn_kube_deployment_health(const json_t *deploy, char *why, size_t size);

/*
 * The pods' reasons for not running, from the items of a PodList: containers (init ones too)
 * waiting in ErrImagePull, ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError,
 * CreateContainerError, InvalidImageName or RunContainerError, and pods unschedulable
 * (PodScheduled False, reason Unschedulable), written into out as "pod web-canary-7d9f-x2k:
 * container web ImagePullBackOff: Back-off pulling image \"web:bad\"; ..." (bounded). Returns how
 * many pods have such a reason.
 */
int kn_kube_pod_problems(const json_t *pods, char *out, size_t size);

/*
 * A route's status after a write: every parent in status.parents (and every spec.parentRefs
 * entry has one) with Accepted True and ResolvedRefs True at observedGeneration >=
 * metadata.generation. 1 ready; 0 not yet (why: "parent gw: Accepted at generation 3 of 4");
 * -1 refused (why: "parent gw: ResolvedRefs False, BackendNotFound: service \"web-canary\" not
 * found"). A VirtualService has no such status: always 1.
 */
int kn_kube_route_ready(const json_t *route, char *why, size_t size);

/*
 * How live differs from what kanaria applied, on the fields kanaria applied only (a key live has
 * and applied does not is the server's or another manager's: never drift; PipeCD's rule): lists
 * of maps with a `name` member are matched by name (containers, ports, env), others by index;
 * a number equals its numeric string; null, "", [] and {} equal an absent key. The route's
 * weights are left out when skip_weights is 1 (they are judged against the split instead). NULL
 * when nothing differs, else "spec.template.spec.containers[web].image: live \"web:2\", kanaria
 * applied \"web:1\"" (the first difference, and "(and N more)"); caller frees.
 */
char *kn_kube_drift(const json_t *applied, const json_t *live, int skip_weights);

#endif /* KANARIA_PLATFORMS_KUBE_RENDER_H */
