/*
 * The reconcile loop: for every repository of kanaria.yaml, fetch its branch into a bare mirror
 * under dataDir in a child process with a deadline (every pollInterval, with jitter; failures and
 * timeouts retried with capped exponential backoff while everything else keeps running), detect
 * on the libuv thread pool which apps the new head touches, plan them, and record PLANNED
 * deployments and events in the store.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_RECONCILE_H
#define KANARIA_RECONCILE_H

#include <uv.h>

#include "kanaria/config.h"
#include "kanaria/store.h"

struct kn_reconcile;

/* Takes ownership of cfg. The store and the loop are borrowed and must outlive it. */
int kn_reconcile_new(struct kn_reconcile **out, uv_loop_t *loop, struct kn_store *store,
                     struct kn_config *cfg);

/* Called on the loop after a fetch recorded new deployments (the engine picks them up). */
typedef void (*kn_reconcile_planned_cb)(void *data);
void kn_reconcile_on_planned(struct kn_reconcile *rc, kn_reconcile_planned_cb cb, void *data);

/* Called on the loop when an app whose folder left the repository asks to be pruned
 * (spec.prune in its last good commit), after it was recorded orphaned. */
typedef void (*kn_reconcile_prune_cb)(void *data, const char *repo, const char *app,
                                      const char *actor);
void kn_reconcile_on_prune(struct kn_reconcile *rc, kn_reconcile_prune_cb cb, void *data);

/* Called once on the loop, when every repository of the config has been fetched (or its fetch
 * failed) and its head planned for the first time since kn_reconcile_start; at once when there
 * is no repository. What `kanaria serve` tells its service manager as readiness. */
typedef void (*kn_reconcile_round_cb)(void *data);
void kn_reconcile_on_first_round(struct kn_reconcile *rc, kn_reconcile_round_cb cb, void *data);

/* Fetch every repository now, then on its schedule. */
void kn_reconcile_start(struct kn_reconcile *rc);

/* Fetch `repo` now (a webhook); coalesced with a fetch in flight. KN_ENOTFOUND when unknown. */
int kn_reconcile_trigger(struct kn_reconcile *rc, const char *repo);

/* Use a new config (SIGHUP): takes ownership of cfg; repositories are re-created and fetched (a
 * fetch in flight is stopped, and its mirror fetched again once its process is gone). */
void kn_reconcile_set_config(struct kn_reconcile *rc, struct kn_config *cfg);

/* Stop scheduling; a fetch in flight is stopped (its process killed, nothing recorded: the next
 * start fetches again), a planning in flight (disk only) finishes and is recorded. The loop then
 * runs out of work on its own, and kn_reconcile_free may be called after uv_run returns. */
void kn_reconcile_stop(struct kn_reconcile *rc);

void kn_reconcile_free(struct kn_reconcile *rc);

/* Backoff before retry number `failures` (1, 2, ...): 1s doubling, capped at 5 minutes. */
long long kn_reconcile_backoff_ms(int failures);

/* `interval` moved by up to ±10% with `r` in [0, 1). */
long long kn_reconcile_jitter_ms(long long interval, double r);

#endif /* KANARIA_RECONCILE_H */
