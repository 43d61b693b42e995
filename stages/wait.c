/*
 * WAIT: sleep for a duration. The engine keeps the deadline, so a restart waits only for what
 * is left.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "kanaria/engine.h"
#include "stages.h"

static const struct kn_field wait_fields[] = {
    {.key = "duration",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_wait_options, duration_ms),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1000,
     .max = 7 * 24 * 3600 * 1000.0,
     .help = "how long to wait"},
};

static const struct kn_schema wait_schema = {
    .name = "WAIT",
    KN_SCHEMA_FIELDS(wait_fields),
    .size = sizeof(struct kn_wait_options),
    .set_offset = offsetof(struct kn_wait_options, set),
};

static void wait_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                          struct kn_schema_ctx *ctx)
{
    const struct kn_wait_options *w = stage->with;
    char a[32], b[32];

    (void)sim;
    if (w && stage->timeout_ms > 0 && stage->timeout_ms <= w->duration_ms) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage 'WAIT': 'timeout' (%s) must be longer than 'duration' (%s)",
                           kn_duration_format(stage->timeout_ms, a, sizeof(a)),
                           kn_duration_format(w->duration_ms, b, sizeof(b)));
    }
}

static void wait_over(struct kn_stage_run *run)
{
    kn_stage_run_finish(run, 1, NULL);
}

/* The deadline is kept in the store: a restart waits only for what is left. */
static void wait_start(struct kn_stage_run *run)
{
    const struct kn_wait_options *w = kn_stage_run_config(run)->with;
    char *stored = kn_stage_run_meta_get(run, "deadline");
    long long now = kn_stage_run_now(run);
    long long deadline;
    char buf[32];

    if (stored) {
        deadline = atoll(stored);
        free(stored);
    } else {
        deadline = now + w->duration_ms;
        snprintf(buf, sizeof(buf), "%lld", deadline);
        kn_stage_run_meta_set(run, "deadline", buf);
    }
    kn_stage_run_log(run, "waiting %s", kn_duration_format(deadline - now, buf, sizeof(buf)));
    kn_stage_timer_start(run, kn_stage_run_state(run), deadline - now, wait_over);
}

static void wait_cancel(struct kn_stage_run *run)
{
    kn_stage_timer_cancel(kn_stage_run_state(run));
}

static void wait_describe(const struct kn_stage_config *stage, json_t *out)
{
    const struct kn_wait_options *w = stage->with;

    json_object_set_new(out, "duration_ms", json_integer(w->duration_ms));
}

const struct kn_stage_kind kn_stage_wait = {
    .name = "WAIT",
    .with = &wait_schema,
    .default_timeout_ms = 0, /* duration + 1m, computed by the engine */
    .help = "wait for a duration; a restart continues with the time that is left",
    .simulate = wait_simulate,
    .start = wait_start,
    .cancel = wait_cancel,
    .describe = wait_describe,
};
