/*
 * kanaria — start gates: what a deployment that has not started yet (PENDING, PLANNED, BLOCKED,
 * FROZEN) must pass before its first stage runs. The engine asks once the app is loaded at the
 * deployment's commit, and again on each kick and when the verdict's recheck time comes, until
 * the gate lets it go or a newer commit supersedes it or someone cancels it.
 *
 * Two gates, asked in this order (controller/gate.c):
 *  - freeze windows (controller/freeze.c): inside a window that covers the app, the deployment
 *    waits as FROZEN until the window ends;
 *  - the error-budget gate (controller/slo.c): a PIPELINE deployment of an app whose SLO budget
 *    is spent (spec.errorBudgetPolicy) waits as BLOCKED until the budget recovers or, under
 *    `action: approve`, an operator approves it.
 * Rollbacks (trigger "rollback by NAME"), self-heals (the last good commit again) and commits
 * whose message holds KN_GATE_HOTFIX_MARK pass both: a gate that would have held them is
 * recorded as passed, with why (a GATE_PASSED event).
 *
 * A gate decides from what is in memory or the store (no I/O of its own on the loop): the SLO
 * readings come from the SLO monitor, which kicks the engine after each reading.
 */
#ifndef KANARIA_GATE_H
#define KANARIA_GATE_H

#include "kanaria/app.h"
#include "kanaria/store.h"

/* In a commit's summary line: the commit passes the gates (recorded as a hotfix). */
#define KN_GATE_HOTFIX_MARK "[kanaria hotfix]"

struct kn_gate_verdict {
    /* KN_DEPLOY_RUNNING: go. KN_DEPLOY_BLOCKED / KN_DEPLOY_FROZEN: wait with `reason`.
     * KN_DEPLOY_PLANNED: not decided yet (no SLO reading yet): stays PLANNED with `reason`. */
    enum kn_deploy_status status;
    /* Why it waits, with the numbers ("error budget of SLO 'availability' spent: SLI 99.71% over
     * 30d against an objective of 99.9%, 0.0% of the budget left (minRemaining 0%); waits until
     * it recovers"), or for a go, what it passed and why, recorded as a GATE_PASSED event
     * ("error-budget gate passed as a hotfix ([kanaria hotfix] in the commit message)"); ""
     * for a plain go. */
    char reason[1024];
    /* When to ask again, ms since the epoch; 0: in KN_GATE_RECHECK_MS. A kick asks sooner. */
    long long recheck_at_ms;
};

#define KN_GATE_RECHECK_MS 30000

/* The event type of a recorded pass. */
#define KN_GATE_PASSED_EVENT "GATE_PASSED"

/* Whether deployment d passes the gates by its kind: a rollback or a self-heal (a known good
 * commit again), or a commit whose message holds KN_GATE_HOTFIX_MARK. 1 with `why` filled
 * ("a rollback", "a self-heal", "a hotfix ([kanaria hotfix] in the commit message)"), or 0. */
int kn_gate_exempt(const struct kn_deployment *d, char *why, size_t size);

#endif /* KANARIA_GATE_H */
