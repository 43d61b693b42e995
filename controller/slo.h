/*
 * SLOs: the monitor that reads each app's SLIs, error budgets and burn rates from its metrics
 * provider, and the error-budget gate that holds a PIPELINE deployment BLOCKED while a budget is
 * spent (spec.errorBudgetPolicy).
 */
#ifndef KANARIA_SLO_H
#define KANARIA_SLO_H

#include "kanaria/gate.h"

struct kn_slo_monitor;

/* The error-budget gate: BLOCKED with the SLO, its SLI and budget in numbers, PLANNED while no
 * reading is there yet, or RUNNING. m may be NULL (no readings: the policy's onError says). */
void kn_slo_gate(struct kn_slo_monitor *m, const struct kn_deployment *d,
                 const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out);

#endif /* KANARIA_SLO_H */
