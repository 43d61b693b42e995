/*
 * Inside the API: GET /metrics, rendered from the state store (and the platforms' live state)
 * on each scrape. The pure parts are here for tests.
 */
#ifndef KANARIA_API_METRICS_H
#define KANARIA_API_METRICS_H

#include <stddef.h>

#include "kanaria/alloc.h"
#include "kanaria/platform.h"
#include "kanaria/store.h"
#include "slo.h"

/* The windows of the DORA metrics. */
#define KN_DORA_FREQUENCY_DAYS 7
#define KN_DORA_FAILURE_DAYS   30
#define KN_DORA_LEAD_TIME_LAST 20
#define KN_DORA_FAILURES_LAST  20

/* One app's DORA metrics, from its deployments of new commits only (trigger "commit"; a
 * self-heal, sync, rollback or retry deploys a commit again and is not counted); a value below
 * 0 has no data (and is not exported). */
struct kn_api_dora {
    double frequency_per_day;       /* successes finished in the last 7 days, per day */
    double lead_time_seconds;       /* median commit -> SUCCESS of the last 20 successes (the
                                       commit's time; created_at when it is not known) */
    double change_failure_rate;     /* FAILURE / (SUCCESS + FAILURE) finished in the last 30 days */
    double time_to_restore_seconds; /* median time from the first FAILURE of a run of failures to
                                       the SUCCESS that ended it */
    double time_to_detect_seconds;  /* median started_at -> first failing analysis evaluation of
                                       the last 20 failures that had one */
    double rollback_restore_seconds; /* median failure detected (the first failing evaluation, else
                                       the rollback's start) -> rollback finished, of the last 20
                                       failures that rolled back */
};

/* Whether a deployment counts in the DORA metrics: one of a new commit. */
int kn_api_dora_counts(const struct kn_deployment *d);

/* The DORA metrics of one app from its SUCCESS and FAILURE deployments, oldest finished first
 * (what kn_store_outcomes gives); f, when not NULL, holds n entries beside d: the failure times
 * of each FAILURE (zeros for the others, and when not recorded). */
void kn_api_dora_compute(const struct kn_deployment *d, const struct kn_store_failure_times *f,
                         size_t n, long long now_ms, struct kn_api_dora *out);

/* What runs now of an app, as drift last read it (a copy the renderer releases); <0 when
 * nothing does or nothing was read yet. */
typedef int (*kn_api_live_cb)(void *data, const char *app, struct kn_live_state *out);

/* Append the metrics in the Prometheus text format 0.0.4 to out. live may be NULL (no canary
 * weights). <0 when the store could not be read. */
int kn_api_metrics_render(struct kn_buf *out, struct kn_store *st, long long now_ms,
                          kn_api_live_cb live, void *data);

/* Append the SLO series of the readings r[0..n) (controller/slo.h):
 * kanaria_slo_sli, kanaria_slo_error_budget_remaining (ratios) and kanaria_slo_burn_rate (by
 * window), labelled repo, app and slo; a reading without numbers (none yet, or an error) adds
 * nothing, so a series that stops shows the gap. */
void kn_api_metrics_slo(struct kn_buf *out, const struct kn_slo_reading *r, size_t n);

#endif /* KANARIA_API_METRICS_H */
