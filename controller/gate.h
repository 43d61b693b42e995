/*
 * The controller's start gates (kanaria/gate.h): freeze windows, then the error-budget gate, with
 * the exemptions of kn_gate_exempt. Loop thread only.
 */
#ifndef KANARIA_CONTROLLER_GATE_H
#define KANARIA_CONTROLLER_GATE_H

#include "kanaria/config.h"
#include "kanaria/gate.h"

struct kn_slo_monitor;

struct kn_gates {
    const struct kn_config *cfg;  /* kanaria.yaml as loaded (freezeWindows); borrowed, replaced
                                     on reload */
    struct kn_slo_monitor *slo;   /* the SLO readings; NULL: none taken (the gate says so) */
};

/* The verdict on deployment d (not started) of `app` at now_ms. */
void kn_gates_check(const struct kn_gates *g, const struct kn_deployment *d,
                    const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out);

#endif /* KANARIA_CONTROLLER_GATE_H */
