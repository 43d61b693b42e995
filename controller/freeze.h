/*
 * Freeze windows (kanaria.yaml `freezeWindows`, and an app's own `spec.freezeWindows`): which
 * windows cover an app, which one is open and which opens next, and the gate that holds a
 * deployment FROZEN inside one. The window math is kanaria/freeze.h. Everything here decides
 * from the parsed config alone (the time zones were read with it): no I/O, loop thread.
 */
#ifndef KANARIA_FREEZE_H
#define KANARIA_FREEZE_H

#include "kanaria/config.h"
#include "kanaria/freeze.h"
#include "kanaria/gate.h"

/* Whether kanaria.yaml's window w covers app `app` of repository `repo` (its apps globs and
 * repositories; none of either covers all). */
int kn_freeze_covers(const struct kn_freeze_window *w, const char *repo, const char *app);

/* The open window covering the app that ends last: 1 with its span, or 0. cfg (kanaria.yaml)
 * and own (the app's spec.freezeWindows, struct kn_freeze_window) may each be NULL. */
int kn_freeze_active(const struct kn_config *cfg, const struct kn_list *own, const char *repo,
                     const char *app, long long now_ms, struct kn_freeze_span *out);

/* The window covering the app that opens next (after now_ms, and after its own opening that is
 * open now): 1 with its span, or 0. */
int kn_freeze_next(const struct kn_config *cfg, const struct kn_list *own, const char *repo,
                   const char *app, long long now_ms, struct kn_freeze_span *out);

/* The freeze gate: FROZEN with "freeze window 'NAME' is open until 2026-12-08 09:00
 * Europe/Berlin (2026-12-08T08:00:00Z)" and recheck_at_ms the window's end, or RUNNING. cfg may
 * be NULL (no windows of kanaria.yaml); app's spec.freezeWindows count too. */
void kn_freeze_gate(const struct kn_config *cfg, const struct kn_deployment *d,
                    const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out);

#endif /* KANARIA_FREEZE_H */
