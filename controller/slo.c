/*
 * SLOs. (Skeleton of the contract: no SLOs yet.)
 */
#include "slo.h"

void kn_slo_gate(struct kn_slo_monitor *m, const struct kn_deployment *d,
                 const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out)
{
    (void)m;
    (void)d;
    (void)app;
    (void)now_ms;
    out->status = KN_DEPLOY_RUNNING;
}
