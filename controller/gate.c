/*
 * The start gates in order, and who passes them anyway: a gate that would hold a rollback, a
 * self-heal or a hotfix is recorded as passed, with why.
 */
#include <stdio.h>
#include <string.h>

#include "freeze.h"
#include "gate.h"
#include "slo.h"

int kn_gate_exempt(const struct kn_deployment *d, char *why, size_t size)
{
    const char *what = NULL;

    if (strncmp(d->trigger, "rollback", 8) == 0) {
        what = "a rollback";
    } else if (strcmp(d->trigger, "self-heal") == 0) {
        what = "a self-heal";
    } else if (d->message && strstr(d->message, KN_GATE_HOTFIX_MARK)) {
        what = "a hotfix (" KN_GATE_HOTFIX_MARK " in the commit message)";
    }
    if (what) {
        snprintf(why, size, "%s", what);
    }
    return what != NULL;
}

void kn_gates_check(const struct kn_gates *g, const struct kn_deployment *d,
                    const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out)
{
    struct kn_gate_verdict held = {.status = KN_DEPLOY_RUNNING};
    char why[128];
    int exempt = kn_gate_exempt(d, why, sizeof(why));

    memset(out, 0, sizeof(*out));
    out->status = KN_DEPLOY_RUNNING;
    kn_freeze_gate(g->cfg, d, app, now_ms, &held);
    if (held.status == KN_DEPLOY_RUNNING) {
        kn_slo_gate(g->slo, d, app, now_ms, &held);
    }
    if (held.status == KN_DEPLOY_RUNNING) {
        *out = held; /* a gate's own note of a pass, if any */
    } else if (exempt) {
        snprintf(out->reason, sizeof(out->reason), "passed the gates as %s; without that: %.800s",
                 why, held.reason);
    } else {
        *out = held;
    }
}
