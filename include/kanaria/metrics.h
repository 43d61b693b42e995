/*
 * kanaria — the metrics provider contract: what the ANALYSIS stage asks of a metrics backend.
 *
 * A provider type is a const descriptor (controller/metrics/<name>/) registered in one table; an
 * instance is made from a `metricsProviders` entry of kanaria.yaml. A query runs asynchronously
 * on the controller's loop (curl multi), never blocking it, and its callback runs exactly once
 * per accepted query — with samples, or with the provider's own words when it failed.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_METRICS_H
#define KANARIA_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "kanaria/error.h"

struct kn_metrics_provider_config;
struct kn_http_client;
struct kn_schema;
struct kn_metrics;

struct kn_metrics_query {
    const char *query;     /* the query as sent (templates already filled in) */
    long long start_ms;    /* range start, ms since the epoch */
    long long end_ms;      /* range end; start_ms == end_ms asks for an instant query */
    long long step_ms;     /* resolution of a range query; 0: the provider's choice */
    long timeout_ms;       /* 0: the provider's configured timeout */
};

struct kn_metrics_series {
    char *labels;          /* e.g. `{server="canary-1"}`, "{}" when none (owned) */
    size_t count;
    double *values;        /* count values, NaN kept as NaN (owned) */
    long long *times_ms;   /* count timestamps (owned) */
};

struct kn_metrics_result {
    int ok;                /* 1: the provider answered the query (maybe with no series) */
    char error[1024];      /* when !ok: why, in the provider's own words where it gave some */
    size_t nseries;
    struct kn_metrics_series *series; /* (owned) */
};

/* Frees what a result owns (not the struct itself); a zeroed result is fine. */
void kn_metrics_result_release(struct kn_metrics_result *r);

/* Called once per query; r is borrowed for the call (copy what must outlive it). */
typedef void (*kn_metrics_cb)(const struct kn_metrics_result *r, void *data);

/* A provider type: `prometheus`, ... A provider is its folder, this descriptor and one line in
 * the registry (controller/metrics/registry.c): kanaria.yaml, `kanaria validate` and
 * `kanaria help metrics` read everything else from here. */
struct kn_metrics_type {
    const char *name;  /* the `type:` of a metricsProviders entry */
    const char *help;  /* a paragraph for `kanaria help metrics TYPE` */
    /* The keys of a metricsProviders entry of this type beside `name` and `type`; the parsed
     * struct is kn_metrics_provider_config.options. NULL: none. */
    const struct kn_schema *config_schema;
    /* The keys of a metric's own options for this provider. NULL: a metric has none (the
     * ANALYSIS stage has no place for them yet). */
    const struct kn_schema *metric_schema;
    /* The platform type whose settings an instance borrows (credentials, region, endpoint):
     * the entry's `platform` key must name a platforms[] entry of this type, and create finds
     * it in kn_metrics_provider_config.platform. NULL: the type takes no platform. */
    const char *platform_type;
    /* Markdown for `kanaria help metrics TYPE`: the form of a query, with an example. NULL:
     * help says it all. */
    const char *query_help;
    /* The smallest step of a range query the provider answers, ms; 0: any. */
    long long min_step_ms;
    /*
     * Check a query at validate time, after its placeholders were filled in with sample values:
     * a cheap syntax check, no server asked. Returns 0, or KN_EINVAL with a plain message
     * ("unbalanced '(' at offset 12") in msg. NULL: every query is accepted.
     */
    int (*check_query)(const char *query, char *msg, size_t size);
    /* Make an instance from its config; http is borrowed and must outlive the instance. */
    int (*create)(void **out, const struct kn_metrics_provider_config *cfg,
                  struct kn_http_client *http, struct kn_error *err);
    /* Start a query; 0 and cb runs later exactly once, or <0 and cb never runs. */
    int (*query)(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb, void *data);
    void (*destroy)(void *instance);
};

/* The registry of provider types, NULL-terminated. */
extern const struct kn_metrics_type *const kn_metrics_types[];

/* A registered type by name, or NULL. */
const struct kn_metrics_type *kn_metrics_type_find(const char *name);

/* A configured provider (instance + type). */
struct kn_metrics {
    char *name;                      /* (owned) */
    const struct kn_metrics_type *type;
    void *instance;
};

/* Make a provider from its config (credential files are read now); *out freed with
 * kn_metrics_free; http is borrowed and must outlive it. Errors, with err filled: KN_EINVAL
 * (unknown type, no address, a credential file that is empty or not one line), KN_EIO (a
 * credential file cannot be read), KN_ETOOBIG (a credential file larger than 4 KiB). */
int kn_metrics_new(struct kn_metrics **out, const struct kn_metrics_provider_config *cfg,
                   struct kn_http_client *http, struct kn_error *err);
/* For a type's create: check that the secret file `path` of the entry's setting `what`
 * ("bearerTokenFile") can be read as each query will read it. 0, or kn_secret_read's code with
 * err saying "metrics provider 'NAME': WHAT: secret file 'PATH': REASON" (never the content). */
int kn_metrics_check_secret(const char *provider, const char *what, const char *path,
                            struct kn_error *err);
/* Start a query; q and what it points to are copied. 0 and cb runs later exactly once (never
 * from inside this call), or KN_EINVAL (no query, a window that runs backwards, missing
 * arguments) / KN_EIO (the HTTP client refused it) and cb never runs. Everything that goes wrong
 * later (transport, timeout, the server's error, a reply too large) reaches cb as !ok. */
int kn_metrics_query(struct kn_metrics *m, const struct kn_metrics_query *q, kn_metrics_cb cb,
                     void *data);
/* Free the provider; NULL is a no-op. Queries in flight still call back exactly once (they hold
 * nothing of the provider), or with "cancelled" when the HTTP client is closed. */
void kn_metrics_free(struct kn_metrics *m);

#endif /* KANARIA_METRICS_H */
