/*
 * The web provider's own keys of a `metricsProviders[]` entry in kanaria.yaml (beside `name`
 * and `type`), and its validate-time query check. The descriptor declares kn_web_config_schema
 * as its config_schema; the parsed struct is kn_metrics_provider_config.options.
 */
#ifndef KANARIA_METRICS_WEB_CONFIG_H
#define KANARIA_METRICS_WEB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

enum kn_web_method {
    KN_WEB_GET = 0,
    KN_WEB_POST,
    KN_WEB_PUT,
};

struct kn_web_config {
    uint64_t set;
    char *json_path;                 /* the path of a query that gives none, or NULL */
    int method;                      /* enum kn_web_method */
    struct kn_strmap headers;        /* NAME: VALUE sent as written */
    struct kn_strmap headers_from_files; /* NAME: FILE, the value read at each query */
    char *body;                      /* sent with POST and PUT, or NULL */
    long long timeout_ms;
};

extern const struct kn_schema kn_web_config_schema;

/* The names of enum kn_web_method, NULL-terminated ("GET", ...). */
extern const char *const kn_web_methods[];

/*
 * The descriptor's check_query: a query is `URL` or `URL JSONPATH` (see web.h); the URL must be
 * http:// or https:// with a host, the path one kn_web_path_eval reads. Returns 0, or KN_EINVAL
 * with what is wrong in msg.
 */
int kn_web_check_query(const char *query, char *msg, size_t size);

#endif /* KANARIA_METRICS_WEB_CONFIG_H */
