/*
 * The metrics provider types kanaria knows: one hand-written table, in the order of enum
 * kn_metrics_provider_type (the `type` enum of the metricsProviders section in
 * controller/config.c), and the provider front end over it.
 */
#include "kanaria/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "metrics/prometheus/prometheus.h"

const struct kn_metrics_type *const kn_metrics_types[] = {
    &kn_metrics_prometheus,
    NULL,
};

void kn_metrics_result_release(struct kn_metrics_result *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->nseries; i++) {
        free(r->series[i].labels);
        free(r->series[i].values);
        free(r->series[i].times_ms);
    }
    free(r->series);
    memset(r, 0, sizeof(*r));
}

int kn_metrics_new(struct kn_metrics **out, const struct kn_metrics_provider_config *cfg,
                   struct kn_http_client *http, struct kn_error *err)
{
    const struct kn_metrics_type *type = NULL;
    struct kn_metrics *m = NULL;
    size_t ntypes = 0;
    int rc = 0;

    *out = NULL;
    if (!cfg || !cfg->name || !http) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "metrics provider: missing configuration");
        goto out;
    }
    while (kn_metrics_types[ntypes]) {
        ntypes++;
    }
    if (cfg->type < 0 || (size_t)cfg->type >= ntypes) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "metrics provider '%s': unknown type %d", cfg->name,
                          cfg->type);
        goto out;
    }
    type = kn_metrics_types[cfg->type];
    m = kn_calloc(1, sizeof(*m));
    m->name = kn_strdup(cfg->name);
    m->type = type;
    if ((rc = type->create(&m->instance, cfg, http, err)) < 0) {
        goto out;
    }
    *out = m;
    m = NULL;
out:
    if (m) {
        free(m->name);
        free(m);
    }
    return rc;
}

int kn_metrics_query(struct kn_metrics *m, const struct kn_metrics_query *q, kn_metrics_cb cb,
                     void *data)
{
    int rc = KN_EINVAL;

    if (m && q && cb) {
        rc = m->type->query(m->instance, q, cb, data);
    }
    return rc;
}

void kn_metrics_free(struct kn_metrics *m)
{
    if (!m) {
        return;
    }
    if (m->instance) {
        m->type->destroy(m->instance);
    }
    free(m->name);
    free(m);
}
