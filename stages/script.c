/*
 * SCRIPT_RUN: run a shell command in a temporary checkout of the app's folder.
 */
#include <stddef.h>

#include "kanaria/platform.h"
#include "stages.h"

static const struct kn_field script_fields[] = {
    {.key = "run",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_script_options, run),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "command run with /bin/sh -c in the app's folder; non-zero exit fails the stage"},
    {.key = "env",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_script_options, env),
     .help = "extra environment variables"},
    {.key = "onRollback",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_script_options, on_rollback),
     .help = "command run during ROLLBACK when this stage had started"},
};

static const struct kn_schema script_schema = {
    .name = "SCRIPT_RUN",
    KN_SCHEMA_FIELDS(script_fields),
    .size = sizeof(struct kn_script_options),
    .set_offset = offsetof(struct kn_script_options, set),
};

const struct kn_stage_kind kn_stage_script_run = {
    .name = "SCRIPT_RUN",
    .with = &script_schema,
    .caps = KN_PLATFORM_SCRIPT,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "run a command in the app's folder, with env and an optional onRollback command",
};
