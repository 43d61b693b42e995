/*
 * Freeze windows. (Skeleton of the contract: no windows yet.)
 */
#include "freeze.h"

void kn_freeze_gate(const struct kn_config *cfg, const struct kn_deployment *d,
                    const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out)
{
    (void)cfg;
    (void)d;
    (void)app;
    (void)now_ms;
    out->status = KN_DEPLOY_RUNNING;
}
