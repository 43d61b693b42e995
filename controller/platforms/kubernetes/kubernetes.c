/*
 * The `kubernetes` platform's descriptor (see kubernetes.h for the folder's layout).
 */
#include "platforms/kubernetes/kubernetes.h"

const struct kn_platform_type kn_platform_kubernetes = {
    .name = "kubernetes",
    .help = "plain Kubernetes manifests applied to kube-apiserver with server-side apply: the "
            "canary and baseline are copies of the app's Deployment (<name>-canary, "
            "<name>-baseline) behind their own Services, and traffic is split by the weights "
            "of a Gateway API HTTPRoute or an Istio VirtualService that kanaria owns, or by the "
            "replica ratio (podselector: the primary Service reaches every variant's pods and "
            "kanaria scales the canary alone, to round(P x p / (100 - p)) replicas for p%, P "
            "being the primary's, at least 1 and at most P: 0% runs no canary pod, and from 50% "
            "up, 100% included, the canary runs as many pods as the primary, an even split; "
            "kanaria never scales the primary, which Git owns)",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
            KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL |
            KN_PLATFORM_HEADER_ROUTING | KN_PLATFORM_MIRROR, /* with gatewayapi or istio */
    .weight_step = 1, /* HTTPRoute and VirtualService weights are integers */
    .config_schema = &kn_kube_config_schema,
    .app_schema = &kn_kube_app_schema,
    .kinds = kn_kube_kinds,
    .nkinds = KN_KUBE_NKINDS,
    .placeholders = kn_kube_placeholders,
    .check_apps = kn_kube_check_apps,
    .check_app = kn_kube_check_app,
    .create = kn_kube_create,
    .ops = &kn_kube_ops,
};
