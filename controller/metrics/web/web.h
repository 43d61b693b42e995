/*
 * The web metrics provider (Argo Rollouts' `web` metric): a metric's query is the URL of a JSON
 * document, optionally followed by white space and a JSONPath to the value in it
 * (`https://stats.example/api/errors?app={{app}}&variant={{variant}} $.data.rate`); the
 * provider's entry gives the path of queries without one, the method, headers (plain, or read
 * from files at each query for secrets), a body and the timeout. One value per evaluation: the
 * value at the path when the reply arrives, an instant sample at the query's end. The descriptor
 * is registered in controller/metrics/registry.c; the path and the reply are pure functions here.
 *
 *   config.c  the provider's keys in kanaria.yaml, the query check
 *   web.c     the descriptor, the instance, the JSONPath subset
 */
#ifndef KANARIA_METRICS_WEB_H
#define KANARIA_METRICS_WEB_H

#include <jansson.h>
#include <stddef.h>

#include "kanaria/metrics.h"

/* The bytes of a reply read: more fails the query. */
#define KN_WEB_MAX_RESPONSE ((size_t)1 << 20)

/* Used when neither the query nor the provider's config gives a timeout. */
#define KN_WEB_DEFAULT_TIMEOUT_MS 10000L

/* The longest JSONPath, and the most steps in one. */
#define KN_WEB_MAX_PATH  1024
#define KN_WEB_MAX_STEPS 64

extern const struct kn_metrics_type kn_metrics_web;

/*
 * Split a query into its URL and its JSONPath: *url_len is the length of the URL (up to the
 * first white space), *path the path after the white space (NULL when there is none).
 */
void kn_web_split_query(const char *query, size_t *url_len, const char **path);

/*
 * Follow `path` in `root`, a subset of JSONPath (Argo's `{$.a.b}` braces allowed around it):
 *   $            the document
 *   .name        a member (letters, digits, '_', '-')
 *   ['name']     a member by any name (["name"] too; no escapes)
 *   [N]          an array element, N from 0; [-1] the last
 * No wildcards, filters, slices or recursive descent. With root NULL only the syntax is checked.
 * Returns 0 and *out (borrowed from root; untouched when root is NULL); KN_EINVAL for a path
 * that is not in the subset, KN_ENOTFOUND when the document has nothing there, with a plain
 * message in msg ("no member 'rate' in the object at $.data").
 */
int kn_web_path_eval(const json_t *root, const char *path, const json_t **out, char *msg,
                     size_t size);

/*
 * Turn a reply into a result: the value at `path` in the JSON body of a 2xx reply, one series
 * "{}" with one sample at time_ms. A number is the value; a string is read as a number ("0.25",
 * "NaN"); true and false are 1 and 0; null is no data (no series). Otherwise r->ok is 0 and
 * r->error says why, prefixed "web: ": the HTTP status and the start of the body, a body that is
 * not JSON, a path with nothing there, a value that is not a number. r need not be initialised;
 * release it with kn_metrics_result_release.
 */
void kn_web_parse(struct kn_metrics_result *r, int status, const char *body, size_t body_len,
                  const char *path, long long time_ms);

#endif /* KANARIA_METRICS_WEB_H */
