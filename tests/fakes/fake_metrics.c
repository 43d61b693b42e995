/*
 * The fake metrics provider (see fake_metrics.h).
 */
#include "fake_metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

struct kn_fake_metrics_state kn_fake_metrics_state;

struct fake_answer {
    uv_timer_t timer;
    kn_metrics_cb cb;
    void *data;
    int canary;
};

static void fake_answer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void fake_answer_fire(uv_timer_t *t)
{
    struct fake_answer *a = t->data;
    struct kn_metrics_result r;
    struct kn_metrics_series s = {.labels = (char *)(uintptr_t) "{}"};
    long long times[8] = {0};

    memset(&r, 0, sizeof(r));
    r.ok = kn_fake_metrics_state.error == NULL;
    if (!r.ok) {
        snprintf(r.error, sizeof(r.error), "%s", kn_fake_metrics_state.error);
    } else {
        s.values = a->canary ? kn_fake_metrics_state.canary : kn_fake_metrics_state.primary;
        s.count = a->canary ? kn_fake_metrics_state.ncanary : kn_fake_metrics_state.nprimary;
        s.times_ms = times;
        r.nseries = 1;
        r.series = &s;
    }
    a->cb(&r, a->data);
    uv_close((uv_handle_t *)&a->timer, fake_answer_closed);
}

static int fake_metrics_query(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb,
                              void *data)
{
    struct fake_answer *a = kn_calloc(1, sizeof(*a));

    snprintf(kn_fake_metrics_state.last_query, sizeof(kn_fake_metrics_state.last_query), "%s",
             q->query);
    a->cb = cb;
    a->data = data;
    a->canary = strstr(q->query, "canary") != NULL;
    uv_timer_init(instance, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, fake_answer_fire, 1, 0);
    return 0;
}

static const struct kn_metrics_type fake_metrics_type = {.name = "fake",
                                                         .query = fake_metrics_query};

static struct kn_metrics fake_metrics;

struct kn_metrics *kn_fake_metrics(uv_loop_t *loop, const char *name)
{
    fake_metrics.name = (char *)(uintptr_t)name;
    fake_metrics.type = &fake_metrics_type;
    fake_metrics.instance = loop;
    return &fake_metrics;
}

void kn_fake_metrics_set(const double *canary, size_t nc, const double *primary, size_t np,
                         const char *error)
{
    memset(&kn_fake_metrics_state, 0, sizeof(kn_fake_metrics_state));
    if (nc > 0) {
        memcpy(kn_fake_metrics_state.canary, canary, nc * sizeof(double));
    }
    if (np > 0) {
        memcpy(kn_fake_metrics_state.primary, primary, np * sizeof(double));
    }
    kn_fake_metrics_state.ncanary = nc;
    kn_fake_metrics_state.nprimary = np;
    kn_fake_metrics_state.error = error;
}
