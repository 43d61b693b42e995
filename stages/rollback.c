/*
 * ROLLBACK: implicit. Appended by kanaria when autoRollback is true and run only on failure,
 * timeout, cancel or reject: traffic back to the last good primary first, then re-apply the last
 * good commit if the primary had changed, then remove canary and baseline.
 */
#include "stages.h"

const struct kn_stage_kind kn_stage_rollback = {
    .name = "ROLLBACK",
    .flags = KN_STAGE_IMPLICIT,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "implicit: restore the last good primary and remove canary and baseline",
};
