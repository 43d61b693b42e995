/*
 * Freeze windows (kanaria.yaml `freezeWindows`, and an app's own): the gate that holds a
 * deployment FROZEN inside a window that covers its app.
 */
#ifndef KANARIA_FREEZE_H
#define KANARIA_FREEZE_H

#include "kanaria/config.h"
#include "kanaria/gate.h"

/* The freeze gate: FROZEN with "freeze window 'NAME' is open until TIME" and recheck_at_ms the
 * window's end, or RUNNING. cfg may be NULL (no windows of kanaria.yaml). */
void kn_freeze_gate(const struct kn_config *cfg, const struct kn_deployment *d,
                    const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out);

#endif /* KANARIA_FREEZE_H */
