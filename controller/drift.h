/*
 * Drift: the only caller of kn_platform_observe. Every driftInterval it reads the live state of
 * every app that was deployed, asynchronously (one observe per app in flight at most), and keeps
 * the last answer per app (repository, app) for /metrics and the API (kn_drift_live), which never
 * ask a platform themselves. Each app that has a last good commit, no deployment in progress and a
 * folder in its repository (an orphan is left alone: see kn_store_app_orphan) then has that live
 * state (instances, their commit and health, the traffic weights and each resource's drift line
 * as the platform reads them back) compared with what that commit means — the primary alone, healthy, at that
 * commit, with all the traffic. A difference is recorded on the app (a DRIFT_DETECTED event, and
 * `drift` in its status); the way back, DRIFT_RESOLVED.
 *
 * Self-heal is opt-in per app (`trigger.onOutOfSync: true` in its last good commit): a drifting
 * app gets a QUICK_SYNC deployment of its last good commit (trigger "self-heal"), at most once
 * per KN_DRIFT_HEAL_MIN_MS.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_DRIFT_H
#define KANARIA_DRIFT_H

#include <stddef.h>
#include <uv.h>

#include "kanaria/platform.h"
#include "kanaria/store.h"

#define KN_DRIFT_HEAL_MIN_MS (60 * 1000)

struct kn_drift_deps {
    uv_loop_t *loop;
    struct kn_store *store;
    long long interval_ms; /* > 0 */
    /* 1: driftInterval is 0 (never compare): live state is still read every interval_ms for
     * /metrics and the API, but never compared, recorded or healed */
    int cache_only;
    /* The platforms, i = 0, 1, ... until NULL (borrowed; they outlive the drift's callbacks:
     * free them before kn_drift_free). An app's live state comes from the first platform that
     * knows it. */
    struct kn_platform *(*platform_at)(void *data, size_t i);
    /* A self-heal deployment was recorded (the engine should look at the store). */
    void (*planned)(void *data);
    long long (*now_ms)(void *data); /* NULL: the system clock */
    void *data;
};

struct kn_drift;

int kn_drift_new(struct kn_drift **out, const struct kn_drift_deps *deps);

/* Check every app now (also done every interval). */
void kn_drift_check(struct kn_drift *d);

/* Stop the timer; the loop then runs out of the drift's work; free after uv_run returns. */
void kn_drift_stop(struct kn_drift *d);
void kn_drift_free(struct kn_drift *d);

/* The app's last live state as drift read it: 0 and a deep copy in out (the caller releases it
 * with kn_live_state_release), KN_ENOTFOUND when none was read (yet), or no platform runs it.
 * repo NULL: the first app named `app` of any repository. */
int kn_drift_live(const struct kn_drift *d, const char *repo, const char *app,
                  struct kn_live_state *out);

/* How `live` differs from an idle app whose last good commit is `last_good`, as one line in
 * out ("" when it does not): the variants' counts, health, commit and traffic, then the drift
 * line of each resource. Returns 1 when it differs. */
int kn_drift_describe(char *out, size_t size, const struct kn_live_state *live,
                      const char *last_good);

#endif /* KANARIA_DRIFT_H */
