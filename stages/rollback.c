/*
 * ROLLBACK: implicit. Appended by kanaria when autoRollback is true and run only on failure,
 * timeout, cancel or reject: traffic back to the primary first, then re-apply the last good
 * commit if the primary had changed, then remove canary and baseline, then run the onRollback
 * commands of the SCRIPT_RUN stages that had started. Each step is retried with
 * backoff until the stage's own timeout; the step reached is kept in the store, so a restart
 * continues from it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/platform.h"
#include "stages.h"

#define RETRY_MAX_MS (30 * 1000LL)

enum rollback_step {
    STEP_TRAFFIC = 0,
    STEP_PRIMARY,
    STEP_CANARY,
    STEP_BASELINE,
    STEP_SCRIPTS,
    STEP_DONE,
};

struct rollback {
    void *op;
    void *script;
    void *timer;
    int step;
    int attempts;
    size_t script_at; /* next plan index to look at for an onRollback command */
};

static void next_step(struct kn_stage_run *run);

/* Each step goes through the platform's front end, which skips what the platform cannot do
 * (no canary to remove, all traffic already on the primary) the same way as for SYNC. */
static int do_step(struct kn_stage_run *run, const struct kn_platform_req *req,
                   struct kn_platform_op **op)
{
    struct rollback *rb = *kn_stage_run_state(run);
    struct kn_platform *p = kn_stage_run_platform(run);

    switch (rb->step) {
    case STEP_TRAFFIC: {
        static const double all_primary[KN_VARIANT_COUNT] = {100, 0, 0};
        return kn_platform_set_weights(p, req, all_primary, op);
    }
    case STEP_PRIMARY: {
        const struct kn_app *good = kn_stage_run_last_good(run);
        struct kn_variant_spec spec = {
            .variant = KN_VARIANT_PRIMARY,
            .commit = kn_stage_run_last_good_commit(run),
            .manifests = good->manifests,
            .options = good->cfg.platform_options,
        };
        return kn_platform_apply(p, req, &spec, op);
    }
    case STEP_CANARY:
        return kn_platform_remove(p, req, KN_VARIANT_CANARY, op);
    default:
        return kn_platform_remove(p, req, KN_VARIANT_BASELINE, op);
    }
}

static void retry(struct kn_stage_run *run)
{
    next_step(run);
}

static void save_progress(struct kn_stage_run *run, const struct rollback *rb)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%d", rb->step);
    kn_stage_run_meta_set(run, "step", buf);
    snprintf(buf, sizeof(buf), "%zu", rb->script_at);
    kn_stage_run_meta_set(run, "script", buf);
}

static void step_done(struct kn_stage_run *run, int status, const char *message)
{
    struct rollback *rb = *kn_stage_run_state(run);

    if (status != 0) {
        long long delay = 1000LL << (rb->attempts < 5 ? rb->attempts : 5);
        rb->attempts++;
        kn_stage_run_log(run, "rollback step %d failed (attempt %d), retrying in %llds: %s",
                         rb->step, rb->attempts, (delay < RETRY_MAX_MS ? delay : RETRY_MAX_MS) / 1000,
                         message ? message : kn_strerror(status));
        kn_stage_timer_start(run, &rb->timer, delay < RETRY_MAX_MS ? delay : RETRY_MAX_MS, retry);
        return;
    }
    rb->attempts = 0;
    if (rb->step == STEP_SCRIPTS) {
        rb->script_at++;
    } else {
        rb->step++;
    }
    save_progress(run, rb);
    next_step(run);
}

static void script_done(struct kn_stage_run *run, int status, const char *output)
{
    char message[256];

    snprintf(message, sizeof(message), "onRollback exited with status %d%s%.200s", status,
             output ? ": " : "", output ? output : "");
    step_done(run, status == 0 ? 0 : KN_EIO, message);
}

/* The next SCRIPT_RUN stage that started and has an onRollback command, from script_at on;
 * NULL when there is none left. */
static const struct kn_script_options *next_script(struct kn_stage_run *run, struct rollback *rb)
{
    const struct kn_stage_config *const *plan;
    size_t n = kn_stage_run_plan(run, &plan);

    for (; rb->script_at < n; rb->script_at++) {
        const struct kn_stage_config *cfg = plan[rb->script_at];
        const struct kn_script_options *o = cfg->with;
        if (cfg->kind == &kn_stage_script_run && o && o->on_rollback &&
            kn_stage_run_started(run, rb->script_at)) {
            return o;
        }
    }
    return NULL;
}

static void next_step(struct kn_stage_run *run)
{
    struct rollback *rb = *kn_stage_run_state(run);
    static const char *const what[] = {
        "traffic back to the primary", "re-applying the last good commit as the primary",
        "removing the canary", "removing the baseline", "onRollback commands"};

    if (rb->step == STEP_PRIMARY &&
        (!kn_stage_run_primary_touched(run) || !kn_stage_run_last_good(run))) {
        rb->step = STEP_CANARY; /* the primary still runs the last good commit */
    }
    if (rb->step == STEP_SCRIPTS) {
        const struct kn_script_options *o = next_script(run, rb);
        if (o) {
            kn_stage_run_log(run, "onRollback: %s", o->on_rollback);
            if (kn_script_start(run, &rb->script, o->on_rollback, &o->env, script_done) < 0) {
                step_done(run, KN_EIO, "cannot run /bin/sh");
            }
            return;
        }
        rb->step = STEP_DONE;
    }
    if (rb->step >= STEP_DONE) {
        *kn_stage_run_state(run) = NULL;
        free(rb);
        kn_stage_run_finish(run, 1, NULL);
        return;
    }
    kn_stage_op_run(run, &rb->op, do_step, step_done, what[rb->step]);
}

static void rollback_start(struct kn_stage_run *run)
{
    struct rollback *rb = kn_calloc(1, sizeof(*rb));
    char *stored = kn_stage_run_meta_get(run, "step");

    rb->step = stored ? atoi(stored) : STEP_TRAFFIC;
    free(stored);
    stored = kn_stage_run_meta_get(run, "script");
    rb->script_at = stored ? (size_t)atoll(stored) : 0;
    free(stored);
    *kn_stage_run_state(run) = rb;
    next_step(run);
}

static void rollback_cancel(struct kn_stage_run *run)
{
    struct rollback *rb = *kn_stage_run_state(run);

    if (rb) {
        kn_stage_op_cancel(&rb->op);
        kn_script_cancel(&rb->script);
        kn_stage_timer_cancel(&rb->timer);
        free(rb);
        *kn_stage_run_state(run) = NULL;
    }
}

const struct kn_stage_kind kn_stage_rollback = {
    .name = "ROLLBACK",
    .flags = KN_STAGE_IMPLICIT,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "implicit: restore the last good primary and remove canary and baseline",
    .start = rollback_start,
    .cancel = rollback_cancel,
};
