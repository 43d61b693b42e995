/*
 * The Datadog metrics provider: a metric's query is a Datadog metrics query, run through the
 * v1 API's "query timeseries points" (`GET /api/v1/query?from=&to=&query=`) with the API and
 * application keys read from their files at each query. Its rate-limit headers are honoured (see
 * datadog.c). The descriptor is registered in controller/metrics/registry.c; the URL and the
 * reply parsing are pure functions here so that unit tests can check them without a server.
 *
 *   config.c   the provider's keys in kanaria.yaml, the query check
 *   datadog.c  the descriptor, the instance, the rate limit
 */
#ifndef KANARIA_METRICS_DATADOG_H
#define KANARIA_METRICS_DATADOG_H

#include <stddef.h>

#include "kanaria/error.h"
#include "kanaria/metrics.h"

/* Points (over all series) a reply may carry, and the bytes of a reply read: more fails the
 * query (a canary analysis needs a few points per series, not a dashboard). */
#define KN_DATADOG_MAX_SAMPLES  10000
#define KN_DATADOG_MAX_RESPONSE ((size_t)4 << 20)

/* Used when neither the query nor the provider's config gives a timeout. */
#define KN_DATADOG_DEFAULT_TIMEOUT_MS 30000L

/* The window of an instant query (start == end): Datadog answers ranges only. */
#define KN_DATADOG_INSTANT_WINDOW_S 60

extern const struct kn_metrics_type kn_metrics_datadog;

/*
 * The URL of a query against `base` (https://api.SITE, or the entry's address; a trailing '/'
 * is dropped): <base>/api/v1/query?from=S&to=E&query=Q with Q percent-encoded and the window in
 * whole seconds (start rounded down, end up; an instant query asks for the last
 * KN_DATADOG_INSTANT_WINDOW_S seconds). 0 and *out (caller frees), or KN_EINVAL with err filled
 * when the query is missing, the window runs backwards or a time is negative.
 */
int kn_datadog_url(char **out, const char *base, const struct kn_metrics_query *q,
                   struct kn_error *err);

/*
 * Turn a reply into a result. On success r->ok is 1 and r holds one series per `series[]` item:
 * its `pointlist` pairs [ms, value] (a null value, no data at that time, is left out), labelled
 * `{scope="...",KEY="VALUE",...}` from its `scope` and its `tag_set` ("KEY:VALUE" tags; a tag
 * without ':' is KEY=""), sorted by name. Otherwise r->ok is 0 and r->error says why, prefixed
 * "datadog: ": Datadog's own words (`errors` of an error reply, `error` of a status "error"), the
 * HTTP status when the body says nothing, or what is wrong with the reply's shape; more than
 * KN_DATADOG_MAX_SAMPLES points also fails. r need not be initialised; release it with
 * kn_metrics_result_release.
 */
void kn_datadog_parse(struct kn_metrics_result *r, int status, const char *body, size_t body_len);

/* Datadog's rate-limit headers of one reply; -1 where a header is absent or not a number. */
struct kn_datadog_ratelimit {
    long long limit;     /* X-RateLimit-Limit: requests allowed in a period */
    long long period;    /* X-RateLimit-Period: the period, seconds */
    long long remaining; /* X-RateLimit-Remaining: requests left in this period */
    long long reset;     /* X-RateLimit-Reset: seconds until the period resets */
};

/* Read the four values from their header strings (each may be NULL). */
void kn_datadog_ratelimit_parse(struct kn_datadog_ratelimit *rl, const char *limit,
                                const char *period, const char *remaining, const char *reset);

/* "the limit is 100 requests per 3600 s, reset in 20 s" from what rl knows, into buf. */
const char *kn_datadog_ratelimit_describe(const struct kn_datadog_ratelimit *rl, char *buf,
                                          size_t size);

#endif /* KANARIA_METRICS_DATADOG_H */
