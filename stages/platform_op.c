/*
 * One platform operation on behalf of a stage, safe against the stage being cancelled while the
 * operation is in flight: the operation's data is a small record that outlives the stage's
 * interest in it. A stage cancelled for a timeout or a rollback also asks the platform to stop
 * the operation, so what follows (the rollback) does not wait for it.
 */
#include <stdlib.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/platform.h"
#include "stages.h"

struct op {
    struct kn_stage_run *run; /* NULL once cancelled */
    struct kn_platform *platform; /* borrowed: the engine keeps it while the deployment runs */
    void **slot;
    kn_stage_op_done done;
    char *what;
};

static void op_complete(int status, const char *message, void *data)
{
    struct op *op = data;
    struct kn_stage_run *run = op->run;

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
    int rc;

    op->run = run;
    op->platform = kn_stage_run_platform(run);
    op->slot = slot;
    op->done = done;
    op->what = kn_strdup(what);
    *slot = op;
    kn_stage_run_log(run, "%s", what);
    rc = fn(run, op_complete, op);
    if (rc < 0) {
        /* refused at once: no callback will come */
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
        if (halt && op->platform && op->platform->ops->cancel) {
            /* its callback still comes, and frees op */
            op->platform->ops->cancel(op->platform, op);
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
