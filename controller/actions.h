/*
 * The operator's actions on an app: approve, reject, cancel, roll back, sync, retry, skip a
 * stage, promote, prune; and fetch a repository now. Whoever asks calls these (the API on
 * behalf of a user, the reconcile loop for spec.prune): each checks the app's state in the store, records the audit
 * event with the actor's name and where the call came from, and starts the work (the engine,
 * the reconcile loop, the platforms). The caller has checked the actor's role for the action.
 *
 * A refusal is a code and err->msg saying why:
 *   KN_EINVAL       the request is wrong (no such stage, a commit never deployed)
 *   KN_EUNSUPPORTED the actor may not (not an approver of the stage, a WAIT_APPROVAL skipped
 *                   without break-glass, break-glass without the admin role)
 *   KN_ENOTFOUND    no such app
 *   KN_EEXISTS      not now (nothing waiting or in progress, another deployment running, a
 *                   stage that has finished, an app that is not orphaned)
 *   KN_EIO          the state store could not be written
 *   KN_ELIMIT       it cannot be started now (the service is missing, the thread pool refused)
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_ACTIONS_H
#define KANARIA_ACTIONS_H

#include <stddef.h>

#include <uv.h>

#include "kanaria/engine.h"
#include "kanaria/error.h"
#include "kanaria/platform.h"
#include "kanaria/store.h"

struct kn_feed;
struct kn_reconcile;

/* The longest reason of a break-glass skip, in bytes. */
#define KN_ACTIONS_REASON_MAX 500

struct kn_actions_deps {
    uv_loop_t *loop;                /* borrowed; outlives the actions */
    struct kn_store *store;         /* borrowed; outlives the actions */
    const char *data_dir;           /* where the repositories' mirrors are; copied */
    struct kn_engine *engine;       /* borrowed; NULL: cancel and skip are refused (KN_ELIMIT) */
    struct kn_reconcile *reconcile; /* borrowed; NULL: fetches are refused */
    struct kn_feed *feed;           /* borrowed; may be NULL: told after each change */
    struct kn_platform *const *platforms; /* borrowed, for prune; n 0: prunes are refused */
    size_t nplatforms;
};

/* Who acts: written in the audit log and the stage's approvals. */
struct kn_actor {
    const char *name; /* the user, or "kanaria" */
    int role;         /* KN_ROLE_*: a break-glass skip needs KN_ROLE_ADMIN */
    const char *from; /* where the call came from ("127.0.0.1:5555"), or NULL */
};

/* What an action did. */
struct kn_action_result {
    long long deployment;         /* the deployment acted on or created */
    char repo[128];
    char app[128];
    char commit[41];              /* rollback and sync: the commit deployed */
    enum kn_deploy_status status; /* cancel: the deployment's status after it */
    int stage;                    /* skip, approve, reject: the stage */
    char stage_name[64];
};

struct kn_actions;

int kn_actions_new(struct kn_actions **out, const struct kn_actions_deps *deps);

/* After the loop has ended (an approval in flight finishes on the loop). NULL is a no-op. */
void kn_actions_free(struct kn_actions *a);

/* The engine and the event feed look at the store again. */
void kn_actions_kick(struct kn_actions *a);

/* Fetch repository `repo` now (a verified webhook): 0, or KN_ENOTFOUND when unknown. */
int kn_actions_fetch(struct kn_actions *a, const char *repo);

/* Cancel the app's deployment in progress, rolling back unless `rollback` is 0; `reason` may be
 * "" (at most 500 bytes of it are recorded). */
int kn_actions_cancel(struct kn_actions *a, const char *repo, const char *app, int rollback,
                      const char *reason, const struct kn_actor *who,
                      struct kn_action_result *out, struct kn_error *err);

/* Deploy `to` again (7 to 40 hex digits of a commit the app ran successfully; NULL: the last
 * good commit) as a QUICK_SYNC. */
int kn_actions_rollback(struct kn_actions *a, const char *repo, const char *app, const char *to,
                        const struct kn_actor *who, struct kn_action_result *out,
                        struct kn_error *err);

/* Deploy the repository's head for the app now (a QUICK_SYNC). */
int kn_actions_sync(struct kn_actions *a, const char *repo, const char *app,
                    const struct kn_actor *who, struct kn_action_result *out,
                    struct kn_error *err);

/* Plan the app's newest deployment again (its commit, strategy and plan), trigger "retry by
 * NAME": refused (KN_EEXISTS) unless that deployment FAILed (rolled back or not) and nothing of
 * the app is in progress. */
int kn_actions_retry(struct kn_actions *a, const char *repo, const char *app,
                     const struct kn_actor *who, struct kn_action_result *out,
                     struct kn_error *err);

/* Promote a running deployment in full (kn_engine_promote): KN_ENOTFOUND for no such
 * deployment, KN_EINVAL when no PRIMARY_ROLLOUT is ahead, KN_EEXISTS when it is not running, an
 * approval before the promotion has not passed, or an analysis check is failing. */
int kn_actions_promote(struct kn_actions *a, long long deployment, const struct kn_actor *who,
                       struct kn_action_result *out, struct kn_error *err);

/* Skip stage `index` of the app's running deployment. `break_glass` NULL, or the reason of an
 * admin's break-glass skip (needed for a WAIT_APPROVAL). */
int kn_actions_skip(struct kn_actions *a, const char *repo, const char *app, int index,
                    const char *break_glass, const struct kn_actor *who,
                    struct kn_action_result *out, struct kn_error *err);

/* Remove the orphaned app from its platforms; the outcome is an event (APP_PRUNED or
 * PRUNE_FAILED). 0 once started. */
int kn_actions_prune(struct kn_actions *a, const char *repo, const char *app,
                     const struct kn_actor *who, struct kn_error *err);

/* The outcome of an approval or a rejection: rc 0 with `result`, or a refusal with err (both
 * borrowed for the call). */
typedef void (*kn_actions_decided_cb)(int rc, const struct kn_action_result *result,
                                      const struct kn_error *err, void *data);

/*
 * Approve (reject 0) or reject the app's deployment waiting at WAIT_APPROVAL; `reason` may be
 * "". An approval also lets go a deployment BLOCKED by the error-budget gate under `action:
 * approve` (by the approvers of the app's WAIT_APPROVAL stage, if any): who approved is kept as
 * deployment meta KN_SLO_APPROVED_META, which the gate reads (result->stage is then -1). The stage's `approvers` are read from the app's config at the deployment's commit on the
 * thread pool; then the decision is checked again (the stage may have ended meanwhile), recorded
 * and the engine woken, and cb says how it went. A refusal found at once is returned (<0) and cb
 * is not called.
 */
int kn_actions_decide(struct kn_actions *a, const char *repo, const char *app, int reject,
                      const char *reason, const struct kn_actor *who, kn_actions_decided_cb cb,
                      void *data, struct kn_error *err);

#endif /* KANARIA_ACTIONS_H */
