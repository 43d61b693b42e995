/*
 * The Prometheus metrics provider: instant and range queries through Prometheus's HTTP API
 * (`/api/v1/query`, `/api/v1/query_range`). The descriptor is registered in
 * controller/metrics/registry.c; the request building and reply parsing are pure functions here
 * so that unit tests can check them without a server.
 */
#ifndef KANARIA_METRICS_PROMETHEUS_H
#define KANARIA_METRICS_PROMETHEUS_H

#include <stddef.h>

#include "kanaria/error.h"
#include "kanaria/metrics.h"

/* Samples (over all series) a reply may carry, and the bytes of a reply read. A bigger reply
 * fails the query: a canary analysis needs a few points per series, not a dashboard. */
#define KN_PROMETHEUS_MAX_SAMPLES  10000
#define KN_PROMETHEUS_MAX_RESPONSE ((size_t)4 << 20)

/* Used when neither the query nor the provider's config gives a timeout. */
#define KN_PROMETHEUS_DEFAULT_TIMEOUT_MS 10000L

extern const struct kn_metrics_type kn_metrics_prometheus;

/*
 * The step of a range query: q->step_ms when set, else the window split into 60 points rounded
 * up to whole seconds, and never below 1 s (Prometheus refuses more than 11,000 points per
 * series; 60 is plenty for a test and cheap to fetch).
 */
long long kn_prometheus_step_ms(const struct kn_metrics_query *q);

/*
 * The URL of a query against a server at `address` (a base URL, may end in '/' or carry a path
 * prefix such as `http://host/prometheus`, but no query string):
 *   start_ms == end_ms: <address>/api/v1/query?query=Q&time=T
 *   else:               <address>/api/v1/query_range?query=Q&start=S&end=E&step=STEP
 * with Q percent-encoded and times as decimal seconds with millisecond precision. Returns 0 and
 * *out (caller frees), or KN_EINVAL with err filled when the query is missing, the window runs
 * backwards or a time is negative.
 */
int kn_prometheus_url(char **out, const char *address, const struct kn_metrics_query *q,
                      struct kn_error *err);

/*
 * Turn a reply into a result. `status` is the HTTP status; body (body_len bytes, may be NULL when
 * empty) is what the server sent. On success r->ok is 1 and r holds the series of a `matrix`,
 * `vector` or `scalar` result (a scalar is one series labelled "{}"); values may be NaN or
 * infinite, as Prometheus writes them ("NaN", "+Inf", "-Inf"). Labels are rendered
 * `{a="b",c="d"}` sorted by name, `__name__` kept, values escaped as in Prometheus's text format.
 *
 * Otherwise r->ok is 0 and r->error says why, prefixed "prometheus: ": the server's own
 * errorType and error when it sent them, the HTTP status when the body says nothing, or what was
 * wrong with the reply's shape; more than KN_PROMETHEUS_MAX_SAMPLES samples also fails. r must be
 * zeroed or released before the call; it is released with kn_metrics_result_release.
 */
void kn_prometheus_parse(struct kn_metrics_result *r, int status, const char *body,
                         size_t body_len);

#endif /* KANARIA_METRICS_PROMETHEUS_H */
