/*
 * One platform operation on behalf of a stage, safe against the stage being cancelled while the
 * operation is in flight: the operation's data is a small record that outlives the stage's
 * interest in it. The request names the deployment and the stage (the provider's idempotency
 * key), takes the stage's time left as its deadline, and sends the platform's progress lines to
 * the stage's log. A stage cancelled for a timeout or a rollback also cancels the operation
 * (kn_platform_cancel), so what follows (the rollback) does not wait for it.
 */
#include <stdlib.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/platform.h"
#include "stages.h"

#define DEADLINE_GRACE_MS 5000

struct op {
    struct kn_stage_run *run; /* NULL once cancelled */
    struct kn_platform_op *pop; /* the front end's handle, until its callback ran */
    void **slot;
    kn_stage_op_done done;
    char *what;
};

static void op_progress(const char *line, void *data)
{
    struct op *op = data;

    if (op->run) {
        kn_stage_run_log(op->run, "  %s", line);
    }
}

static void op_complete(int status, const char *message, void *data)
{
    struct op *op = data;
    struct kn_stage_run *run = op->run;

    op->pop = NULL;
    if (run) {
        *op->slot = NULL;
        if (op->done) {
            op->done(run, status, message);
        } else if (status == 0) {
            kn_stage_run_finish(run, 1, NULL);
        } else {
            kn_stage_run_finish(run, 0, "%s: %s", op->what, message ? message : kn_strerror(status));
        }
    }
    free(op->what);
    free(op);
}

void kn_stage_op_run(struct kn_stage_run *run, void **slot, kn_stage_op_fn fn,
                     kn_stage_op_done done, const char *what)
{
    struct op *op = kn_calloc(1, sizeof(*op));
    const struct kn_deployment *d = kn_stage_run_deployment(run);
    const struct kn_stage_config *cfg = kn_stage_run_config(run);
    struct kn_platform_req req = {
        .id = {.repository = d->repo, .app = d->app},
        .deployment_id = d->id,
        .stage_index = kn_stage_run_index(run),
        .stage_name = cfg && cfg->name ? cfg->name : NULL,
        /* the stage's own timeout ends it first, naming the stage; the deadline is the
         * backstop for a platform that does not answer its cancel */
        .timeout_ms = kn_stage_run_time_left(run) + DEADLINE_GRACE_MS,
        .done = op_complete,
        .progress = op_progress,
        .data = op,
    };
    int rc;

    op->run = run;
    op->slot = slot;
    op->done = done;
    op->what = kn_strdup(what);
    *slot = op;
    kn_stage_run_log(run, "%s", what);
    rc = fn(run, &req, &op->pop);
    if (rc < 0) {
        /* refused at once: no callback will come */
        op->pop = NULL;
        op_complete(rc, kn_strerror(rc), op);
    }
}

void kn_stage_op_cancel(void **slot)
{
    struct op *op = *slot;
    int halt;

    if (op) {
        halt = op->run && kn_stage_run_halting(op->run);
        op->run = NULL;
        *slot = NULL;
        if (halt && op->pop) {
            /* its callback still comes, and frees op */
            kn_platform_cancel(op->pop);
        }
    }
}

/* ---- timers ----------------------------------------------------------------------------- */

struct stage_timer {
    uv_timer_t timer;
    struct kn_stage_run *run; /* NULL once cancelled */
    void **slot;
    void (*cb)(struct kn_stage_run *run);
};

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void timer_fired(uv_timer_t *t)
{
    struct stage_timer *st = t->data;
    struct kn_stage_run *run = st->run;

    if (run) {
        *st->slot = NULL;
    }
    uv_close((uv_handle_t *)&st->timer, timer_closed);
    if (run) {
        st->cb(run);
    }
}

void kn_stage_timer_start(struct kn_stage_run *run, void **slot, long long ms,
                          void (*cb)(struct kn_stage_run *run))
{
    struct stage_timer *st = kn_calloc(1, sizeof(*st));

    st->run = run;
    st->slot = slot;
    st->cb = cb;
    uv_timer_init(kn_stage_run_loop(run), &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, timer_fired, (uint64_t)(ms > 0 ? ms : 0), 0);
    *slot = st;
}

void kn_stage_timer_cancel(void **slot)
{
    struct stage_timer *st = *slot;

    if (st) {
        st->run = NULL;
        uv_timer_stop(&st->timer);
        uv_close((uv_handle_t *)&st->timer, timer_closed);
        *slot = NULL;
    }
}
