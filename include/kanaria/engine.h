/*
 * kanaria — the pipeline engine: runs each deployment's stages in order on the loop, persisting
 * every transition (and each stage's metadata) in the store before acting on it, so that after a
 * restart a finished stage is not run again and an interrupted one is started again from its
 * metadata. Every stage has a timeout, and so has the deployment; a failure, a timeout, a cancel
 * or a rejection runs ROLLBACK when the app has autoRollback (its own timeout, each step retried
 * with backoff); a rollback that cannot finish leaves the deployment FAILURE with the reason.
 *
 * All functions run on the loop thread, except the `load` dependency, which runs on the thread
 * pool.
 */
#ifndef KANARIA_ENGINE_H
#define KANARIA_ENGINE_H

#include <stdarg.h>
#include <uv.h>

#include "kanaria/app.h"
#include "kanaria/gate.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/stage.h"
#include "kanaria/store.h"

/* What the engine needs to run a deployment, read on the thread pool. */
struct kn_engine_load {
    struct kn_app *app;       /* the app at the deployment's commit (owned) */
    struct kn_app *last_good; /* the app at its last successful commit, NULL: none (owned) */
    struct kn_strlist changed; /* paths changed since last_good (for skipOn.paths), owned */
    char *workdir;            /* the app's folder at the commit, on disk, for SCRIPT_RUN; NULL
                                 when the pipeline runs no script (owned; removed on release) */
    char error[512];          /* when app is NULL: why it could not be loaded */
};

struct kn_engine_deps {
    uv_loop_t *loop;
    struct kn_store *store;
    /* The platform named `name` (borrowed), or NULL. */
    struct kn_platform *(*platform)(void *data, const char *name);
    /* Fill `out` for deployment d of the app whose config is at `path` in the repository
     * (blocking; on the thread pool). */
    void (*load)(void *data, const struct kn_deployment *d, const char *path,
                 const char *last_good, struct kn_engine_load *out);
    /* The metrics provider named `name` (NULL: the first one), borrowed; NULL when none. */
    struct kn_metrics *(*metrics)(void *data, const char *name);
    /* The HTTP client for ANALYSIS probes (borrowed); NULL: probes fail as unreachable. */
    struct kn_http_client *http;
    /* The start gates (kanaria/gate.h): the verdict on deployment d, not started yet, of `app`
     * (at d's commit). Asked once the app is loaded, then on each kick and at the verdict's
     * recheck time while it waits. NULL: no gates. */
    void (*gate)(void *data, const struct kn_deployment *d, const struct kn_app *app,
                 long long now_ms, struct kn_gate_verdict *out);
    /* Wall-clock time in ms; NULL: the system clock. Tests pass a fake one. */
    long long (*now_ms)(void *data);
    void *data;
};

struct kn_engine;

int kn_engine_new(struct kn_engine **out, const struct kn_engine_deps *deps);

/* Look in the store for deployments to start or resume (at start, and after a new plan); a
 * deployment a start gate holds is asked about again (soon after, on the loop). */
void kn_engine_kick(struct kn_engine *e);

/* hold 1: start and resume nothing (kicks do nothing; a cancel or skip is only recorded) until
 * kn_engine_hold(e, 0), which kicks. For an instance that waits for the lead; call it before
 * the first kick, while nothing runs. */
void kn_engine_hold(struct kn_engine *e, int hold);

/*
 * Cancel deployment `id` on behalf of `who` (`reason` may be NULL or ""). The request is written
 * to the store before the engine acts, so that a restart does not resume the deployment:
 *  - not started yet (PENDING, PLANNED, BLOCKED, FROZEN): it becomes CANCELLED;
 *  - running, with `rollback` and the app's autoRollback: the running stage is stopped (recorded
 *    CANCELLED), ROLLBACK runs, and the deployment ends CANCELLED with the reason
 *    "cancelled by WHO[: REASON]" (FAILURE with both reasons when the rollback cannot finish);
 *  - running, without `rollback` (or without autoRollback), or already rolling back without
 *    `rollback`: the running stage is stopped and the deployment ends CANCELLED at once, the live
 *    state left as it is.
 * KN_ENOTFOUND when there is no such deployment; KN_EINVAL when it is final, or rolling back
 * already and `rollback` is asked (the rollback under way finishes).
 */
int kn_engine_cancel(struct kn_engine *e, long long id, int rollback, const char *who,
                     const char *reason);

/*
 * Skip stage `index` of deployment `id`, which the engine is running, on behalf of `who`: the
 * running stage is stopped, recorded SKIPPED, and the pipeline goes on with the next one; a later
 * stage is recorded SKIPPED now and passed over when its turn comes. A WAIT_APPROVAL passes only
 * with its approvals: it is skipped only as a break-glass, `break_glass` being its reason (NULL or
 * "" for an ordinary skip; the caller checks who may break glass). A break-glass skip is recorded
 * with the stage ("skipped by WHO (break-glass): REASON", also in its STAGE_FINISHED event) and on the deployment, whose SUCCESS reason then names it.
 * KN_ENOTFOUND when the engine is not running that deployment's pipeline (unknown, final, not
 * loaded yet, rolling back); KN_EINVAL for an index outside the pipeline; KN_EEXISTS when the
 * stage has finished; KN_EUNSUPPORTED for a WAIT_APPROVAL without `break_glass`.
 */
int kn_engine_skip(struct kn_engine *e, long long id, int index, const char *who,
                   const char *break_glass);

/*
 * Promote deployment `id`, which the engine is running, on behalf of `who` (kanaria promote
 * --full): the running stage and every stage after it up to the first PRIMARY_ROLLOUT are
 * recorded SKIPPED with the reason "promoted by WHO (full)" (a running stage is stopped and left
 * as it is, like a skip), and the pipeline goes on with the PRIMARY_ROLLOUT. Refused, with why
 * (a plain sentence) in `why`: KN_ENOTFOUND when the engine is not running that deployment's
 * pipeline; KN_EINVAL when no PRIMARY_ROLLOUT comes at or after the running stage; KN_EEXISTS
 * when the PRIMARY_ROLLOUT runs already, a WAIT_APPROVAL before it has not passed (its approvers
 * have not approved), or the newest evaluation of an analysis check of the deployment FAILed.
 */
int kn_engine_promote(struct kn_engine *e, long long id, const char *who, char *why, size_t size);

/* Where a break-glass skip is kept (stage meta of the store): the stage's "skipped by ..." under
 * KN_ENGINE_SKIP_REASON_META, and "stage N NAME skipped by ..." of the deployment under
 * KN_ENGINE_BREAK_GLASS_META at index KN_STORE_DEPLOYMENT_META. */
#define KN_ENGINE_SKIP_REASON_META "reason"
/* The stage meta key a CANARY_STEPS holding for approval after a step sets to that step
 * (1-based), and to "" once the pause ends: `kanaria approve` and `reject` act on it, and
 * their records count from the time the pause began. */
#define KN_STEPS_AWAITING_META "awaiting_approval"
#define KN_ENGINE_BREAK_GLASS_META "break_glass"

/* What a deployment runs on, recorded when it starts (metadata of the deployment, at index
 * KN_STORE_DEPLOYMENT_META): the name of its platform, and its pipeline as a JSON array of the
 * stages it runs (kn_stage_pipeline_json; a QUICK_SYNC runs one SYNC stage). */
/* An app's background analysis (spec.analysis) is recorded as stage N + 1 of a pipeline of N
 * stages (N is the ROLLBACK): its status, its analysis records and its counts (stage meta
 * "background.*"); its pipeline entry is the ANALYSIS one of kn_stage_describe with
 * "background": true, "starting_stage" and "until" (the indexes of the stages that start and
 * end it; N: the end of the pipeline). It starts when its starting stage starts, resumes after
 * a restart, stops when its until stage starts or the deployment ends, and when a check fails
 * the running stage is cancelled and the deployment fails (rolls back) with the reason
 * "background analysis failed: " and the check's. */
#define KN_ENGINE_PLATFORM_META "platform"
#define KN_ENGINE_PIPELINE_META "pipeline"

/* Stop: running stages are cancelled without a status change, so that a restart resumes them.
 * The loop then runs out of the engine's work; free after uv_run returns. */
void kn_engine_stop(struct kn_engine *e);
void kn_engine_free(struct kn_engine *e);

/* Releases what a load filled in (also a partial one). */
void kn_engine_load_release(struct kn_engine_load *l);

/* Number of deployments being run now. */
size_t kn_engine_active(const struct kn_engine *e);

/* ---- for stage kinds -------------------------------------------------------------------- */

const struct kn_stage_config *kn_stage_run_config(const struct kn_stage_run *run);
const struct kn_app *kn_stage_run_app(const struct kn_stage_run *run);
/* The app at its last successful commit, and that commit; NULL when there is none. */
const struct kn_app *kn_stage_run_last_good(const struct kn_stage_run *run);
const char *kn_stage_run_last_good_commit(const struct kn_stage_run *run);
const struct kn_deployment *kn_stage_run_deployment(const struct kn_stage_run *run);
struct kn_platform *kn_stage_run_platform(const struct kn_stage_run *run);
uv_loop_t *kn_stage_run_loop(const struct kn_stage_run *run);
struct kn_store *kn_stage_run_store(const struct kn_stage_run *run);
int kn_stage_run_index(const struct kn_stage_run *run);
/* The app's folder at the deployment's commit on disk (NULL when none was made). */
const char *kn_stage_run_workdir(const struct kn_stage_run *run);
/* The stage configs of the deployment's plan, and whether stage i started (for onRollback). */
size_t kn_stage_run_plan(const struct kn_stage_run *run, const struct kn_stage_config *const **out);
int kn_stage_run_started(const struct kn_stage_run *run, size_t i);
long long kn_stage_run_now(const struct kn_stage_run *run);
/* Milliseconds the stage has left before its timeout (at least 1 while it runs). */
long long kn_stage_run_time_left(const struct kn_stage_run *run);
/* In a kind's cancel: 1 when the stage is cancelled because it timed out or its deployment
 * timed out or is cancelled to be rolled back, so a platform operation in flight is to be
 * stopped; 0 when it is skipped or kanaria stops (what runs is left as it is). */
int kn_stage_run_halting(const struct kn_stage_run *run);
/* The metrics provider `name` (NULL: the first), and the HTTP client; NULL when none. */
struct kn_metrics *kn_stage_run_metrics(const struct kn_stage_run *run, const char *name);
struct kn_http_client *kn_stage_run_http(const struct kn_stage_run *run);
/* Whether a stage that replaces the primary (SYNC, PRIMARY_ROLLOUT) started in this deployment:
 * ROLLBACK then re-applies the last good commit. */
int kn_stage_run_primary_touched(const struct kn_stage_run *run);

/* Per-stage metadata kept in the store for resumption (value caller frees; NULL when unset). */
char *kn_stage_run_meta_get(struct kn_stage_run *run, const char *key);
void kn_stage_run_meta_set(struct kn_stage_run *run, const char *key, const char *value);

/* A line in the stage's log (stored as an event and logged with the deployment's names). */
void kn_stage_run_log(struct kn_stage_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A place for the kind's own state while the stage runs (freed by the kind's cancel or before
 * finishing). */
void **kn_stage_run_state(struct kn_stage_run *run);

/* End the stage: ok 1 (SUCCESS) or 0 (FAILURE with the reason). Exactly once per start. */
void kn_stage_run_finish(struct kn_stage_run *run, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* KANARIA_ENGINE_H */
