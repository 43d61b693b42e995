/*
 * The metrics provider types kanaria knows: one hand-written table (a new type is one line
 * here), and the provider front end over it.
 */
#include "kanaria/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/secret.h"
#include "metrics/cloudwatch/cloudwatch.h"
#include "metrics/datadog/datadog.h"
#include "metrics/prometheus/prometheus.h"
#include "metrics/web/web.h"

const struct kn_metrics_type *const kn_metrics_types[] = {
    &kn_metrics_prometheus,
    &kn_metrics_cloudwatch,
    &kn_metrics_datadog,
    &kn_metrics_web,
    NULL,
};

const struct kn_metrics_type *kn_metrics_type_find(const char *name)
{
    const struct kn_metrics_type *found = NULL;

    for (size_t i = 0; name && kn_metrics_types[i] && !found; i++) {
        if (strcmp(kn_metrics_types[i]->name, name) == 0) {
            found = kn_metrics_types[i];
        }
    }
    return found;
}

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

int kn_metrics_check_secret(const char *provider, const char *what, const char *path,
                            struct kn_error *err)
{
    struct kn_secret secret = {0};
    struct kn_error e;
    int rc = 0;

    kn_error_clear(&e);
    if ((rc = kn_secret_read(&secret, path, KN_SECRET_LINE, &e)) < 0) {
        rc = kn_error_set(err, rc, NULL, "metrics provider '%s': %s: %s", provider, what, e.msg);
    }
    kn_secret_release(&secret);
    return rc;
}

int kn_metrics_new(struct kn_metrics **out, const struct kn_metrics_provider_config *cfg,
                   struct kn_http_client *http, struct kn_error *err)
{
    const struct kn_metrics_type *type = NULL;
    struct kn_metrics *m = NULL;
    int rc = 0;

    *out = NULL;
    if (!cfg || !cfg->name || !http) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "metrics provider: missing configuration");
        goto out;
    }
    type = cfg->mtype ? cfg->mtype : kn_metrics_type_find(cfg->type);
    if (!type) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "metrics provider '%s': unknown type '%s'",
                          cfg->name, cfg->type ? cfg->type : "");
        goto out;
    }
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
