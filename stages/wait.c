/*
 * WAIT: sleep for a duration. The engine keeps the deadline, so a restart waits only for what
 * is left.
 */
#include <stddef.h>

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

const struct kn_stage_kind kn_stage_wait = {
    .name = "WAIT",
    .with = &wait_schema,
    .default_timeout_ms = 0, /* duration + 1m, computed by the engine */
    .help = "wait for a duration; a restart continues with the time that is left",
    .simulate = wait_simulate,
};
