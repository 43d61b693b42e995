/*
 * The keys of a `platforms[]` entry of type kubernetes in kanaria.yaml:
 *
 *     platforms:
 *       - name: k8s
 *         type: kubernetes
 *         kubeconfig: /etc/kanaria/kubeconfig   # else $KUBECONFIG, in-cluster, ~/.kube/config
 *         context: prod                         # else the kubeconfig's current-context
 *         qps: 20                               # client-side rate limit, burst twice that
 *         leaderElection: {namespace: kanaria, lease: kanaria}
 */
#include "platforms/kubernetes/kubernetes.h"

#include <stddef.h>

static void kn_kube_check_leader(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_kube_leader_config *l = obj;

    /* client-go's rule: leaseDuration > renewDeadline > 1.2 x retryPeriod */
    if (l->lease_duration_ms <= l->renew_deadline_ms) {
        kn_schema_error(ctx, node,
                        "leaderElection: leaseDuration (%lld ms) must be longer than "
                        "renewDeadline (%lld ms)",
                        l->lease_duration_ms, l->renew_deadline_ms);
    } else if ((double)l->renew_deadline_ms <= 1.2 * (double)l->retry_period_ms) {
        kn_schema_error(ctx, node,
                        "leaderElection: renewDeadline (%lld ms) must be longer than 1.2 x "
                        "retryPeriod (%lld ms)",
                        l->renew_deadline_ms, l->retry_period_ms);
    }
}

static const struct kn_field kn_kube_leader_fields[] = {
    {.key = "namespace",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_leader_config, namespace_),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the Lease's namespace; else the context's (in a cluster: kanaria's own)"},
    {.key = "lease",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_leader_config, lease),
     .flags = KN_FIELD_NONEMPTY,
     .def = "kanaria",
     .help = "the coordination.k8s.io/v1 Lease's name"},
    {.key = "leaseDuration",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_kube_leader_config, lease_duration_ms),
     .flags = KN_FIELD_MIN,
     .min = 1000,
     .def = "15s",
     .help = "how long a lease not renewed stays another instance's"},
    {.key = "renewDeadline",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_kube_leader_config, renew_deadline_ms),
     .flags = KN_FIELD_MIN,
     .min = 500,
     .def = "10s",
     .help = "the leader stops deploying when it could not renew for this long"},
    {.key = "retryPeriod",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_kube_leader_config, retry_period_ms),
     .flags = KN_FIELD_MIN,
     .min = 100,
     .def = "2s",
     .help = "how often to try to take or renew the lease"},
};

static const struct kn_schema kn_kube_leader_schema = {
    .name = "leaderElection",
    KN_SCHEMA_FIELDS(kn_kube_leader_fields),
    .check = kn_kube_check_leader,
    .size = sizeof(struct kn_kube_leader_config),
    .set_offset = offsetof(struct kn_kube_leader_config, set),
};

static const struct kn_field kn_kube_config_fields[] = {
    {.key = "kubeconfig",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_config, kubeconfig),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the kubeconfig file; else the first file of $KUBECONFIG, else the in-cluster "
             "service account, else ~/.kube/config"},
    {.key = "context",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_kube_config, context),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the kubeconfig's context; else its current-context"},
    {.key = "qps",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_kube_config, qps),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1,
     .max = 10000,
     .def = "20",
     .help = "requests per second to the API server, bursts of twice that"},
    {.key = "leaderElection",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_kube_config, leader_election),
     .sub = &kn_kube_leader_schema,
     .help = "deploy only while holding a coordination.k8s.io Lease, so that two kanaria "
             "instances never deploy at once"},
};

const struct kn_schema kn_kube_config_schema = {
    .name = "kubernetes platform",
    KN_SCHEMA_FIELDS(kn_kube_config_fields),
    .size = sizeof(struct kn_kube_config),
    .set_offset = offsetof(struct kn_kube_config, set),
};
