/*
 * The fake metrics provider, for tests: each query is answered on the next loop turn with the
 * values a test set per variant (the variant found in the query as sent), or an error.
 */
#ifndef KANARIA_TESTS_FAKE_METRICS_H
#define KANARIA_TESTS_FAKE_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "kanaria/metrics.h"

/* What it answers, reset by kn_fake_metrics_set; last_query is the last query as sent. */
struct kn_fake_metrics_state {
    double canary[8], primary[8];
    size_t ncanary, nprimary;
    const char *error;
    char last_query[256];
};

extern struct kn_fake_metrics_state kn_fake_metrics_state;

/* Answer canary/primary values (at most 8 each), or `error` when not NULL. */
void kn_fake_metrics_set(const double *canary, size_t nc, const double *primary, size_t np,
                         const char *error);

/* The one fake provider, named `name`, answering on `loop` (static: not freed). */
struct kn_metrics *kn_fake_metrics(uv_loop_t *loop, const char *name);

#endif /* KANARIA_TESTS_FAKE_METRICS_H */
