/*
 * Drift detection and opt-in self-heal (see drift.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drift.h"
#include "kanaria/alloc.h"
#include "kanaria/log.h"

#define WHO "drift"

struct kn_drift {
    struct kn_drift_deps deps;
    uv_timer_t *timer; /* freed in its close callback */
};

static long long drift_now(const struct kn_drift *d)
{
    struct timespec ts;

    if (d->deps.now_ms) {
        return d->deps.now_ms(d->deps.data);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add(char *out, size_t size, const char *fmt, ...)
{
    size_t len = strlen(out);
    va_list ap;

    if (len > 0 && len + 2 < size) {
        memcpy(out + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(out + len, size - len, fmt, ap);
    va_end(ap);
}

/* Each server against what kanaria set: in service, at its weight. One server in
 * maintenance out of four changes no variant's share, so the shares alone do not show it. */
static void describe_servers(char *out, size_t size, const struct kn_live_state *live)
{
    size_t n = live->nservers < KN_LIVE_SERVER_MAX ? live->nservers : KN_LIVE_SERVER_MAX;

    for (size_t i = 0; i < n; i++) {
        const struct kn_live_server *s = &live->servers[i];
        if (s->expected_weight < 0) {
            add(out, size, "%s is not a server kanaria registered", s->name);
        } else if (strcmp(s->state, "missing") == 0) {
            add(out, size, "%s is missing from haproxy (expected ready)", s->name);
        } else if (strcmp(s->state, "maint") == 0) {
            add(out, size, "%s is in maintenance (expected ready)", s->name);
        } else if (strcmp(s->state, "ready") != 0) {
            add(out, size, "%s is in state %s (expected ready)", s->name, s->state);
        }
        if (s->expected_weight >= 0 && strcmp(s->state, "missing") != 0 &&
            s->weight != s->expected_weight) {
            add(out, size, "%s weight %d (expected %d)", s->name, s->weight, s->expected_weight);
        }
    }
}

int kn_drift_describe(char *out, size_t size, const struct kn_live_state *live,
                      const char *last_good)
{
    const struct kn_live_variant *pri = &live->variant[KN_VARIANT_PRIMARY];

    out[0] = '\0';
    if (live->error[0]) {
        add(out, size, "live state unknown: %s", live->error);
    }
    if (pri->instances == 0) {
        add(out, size, "no primary instance runs");
    } else if (pri->healthy < pri->instances) {
        add(out, size, "%d of %d primary instances unhealthy", pri->instances - pri->healthy,
            pri->instances);
    }
    if (pri->commit[0] && last_good && *last_good && strcmp(pri->commit, last_good) != 0) {
        add(out, size, "the primary runs %.7s, not the last good %.7s", pri->commit, last_good);
    }
    for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
        if (live->variant[v].instances > 0) {
            add(out, size, "a %s runs (%d instances)", kn_variant_name((enum kn_variant)v),
                live->variant[v].instances);
        }
    }
    if (!live->error[0] && pri->instances > 0 && pri->weight < 99.5) {
        add(out, size, "traffic is primary %.0f%%, canary %.0f%%, baseline %.0f%% (expected all "
            "on the primary)", pri->weight, live->variant[KN_VARIANT_CANARY].weight,
            live->variant[KN_VARIANT_BASELINE].weight);
    }
    if (!live->error[0]) {
        describe_servers(out, size, live);
    }
    return out[0] != '\0';
}

static void heal(struct kn_drift *d, const struct kn_app_state *a, const char *drift, long long now)
{
    char summary[512], message[700];
    struct kn_deployment_new n = {
        .repo = a->repo,
        .app = a->name,
        .commit = a->last_good,
        .author = "kanaria",
        .message = message,
        .strategy = "QUICK_SYNC",
        .summary = summary,
        .trigger = "self-heal",
    };
    long long id = 0;
    int rc;

    snprintf(summary, sizeof(summary), "self-heal: re-apply %.7s", a->last_good);
    snprintf(message, sizeof(message), "self-heal of drift: %s", drift);
    if ((rc = kn_store_deployment_add(d->deps.store, &n, now, &id)) < 0 ||
        (rc = kn_store_app_healed(d->deps.store, a->repo, a->name, now)) < 0) {
        kn_log_error(WHO, "app=%s cannot record a self-heal: %s", a->name, kn_strerror(rc));
        return;
    }
    kn_log_info(WHO, "app=%s drift (%s): self-heal deployment %lld re-applies %.7s", a->name,
                drift, id, a->last_good);
    if (d->deps.planned) {
        d->deps.planned(d->deps.data);
    }
}

struct app_list {
    struct kn_app_state *items;
    size_t n;
};

static int collect(const struct kn_app_state *a, void *data)
{
    struct app_list *l = data;

    /* an orphan is no longer what the repository asks for: nothing to heal it back to */
    if (a->last_good[0] && a->current_deployment == 0 && !a->orphaned_at) {
        l->items = kn_reallocarray(l->items, l->n + 1, sizeof(*l->items));
        l->items[l->n] = *a;
        l->items[l->n++].error = NULL; /* borrowed for the call: not kept, not used */
    }
    return 0;
}

void kn_drift_check(struct kn_drift *d)
{
    struct app_list l = {0};
    long long now = drift_now(d);

    kn_store_apps(d->deps.store, NULL, collect, &l);
    for (size_t i = 0; i < l.n; i++) {
        const struct kn_app_state *a = &l.items[i];
        struct kn_live_state live;
        char drift[512];
        int rc = d->deps.live(d->deps.data, a->name, &live);
        /* a platform that cannot be read is shown, not healed: a sync could not succeed */
        int known = rc == KN_ENOTFOUND || (rc == 0 && !live.error[0]);

        if (rc == KN_ENOTFOUND) {
            snprintf(drift, sizeof(drift), "no platform runs the app");
        } else if (rc < 0) {
            snprintf(drift, sizeof(drift), "live state unknown: %s", kn_strerror(rc));
        } else {
            kn_drift_describe(drift, sizeof(drift), &live, a->last_good);
        }
        if (strcmp(drift, a->drift) != 0) {
            if (drift[0]) {
                kn_log_warn(WHO, "app=%s drift: %s", a->name, drift);
            } else {
                kn_log_info(WHO, "app=%s in sync again", a->name);
            }
            kn_store_app_drift(d->deps.store, a->repo, a->name, drift, now);
        }
        if (drift[0] && known && a->self_heal &&
            (a->healed_at == 0 || now - a->healed_at >= KN_DRIFT_HEAL_MIN_MS)) {
            heal(d, a, drift, now);
        }
    }
    free(l.items);
}

static void on_tick(uv_timer_t *t)
{
    kn_drift_check(t->data);
}

int kn_drift_new(struct kn_drift **out, const struct kn_drift_deps *deps)
{
    struct kn_drift *d;

    if (!deps || !deps->loop || !deps->store || !deps->live || deps->interval_ms <= 0) {
        return KN_EINVAL;
    }
    d = kn_calloc(1, sizeof(*d));
    d->deps = *deps;
    d->timer = kn_calloc(1, sizeof(*d->timer));
    uv_timer_init(deps->loop, d->timer);
    d->timer->data = d;
    uv_timer_start(d->timer, on_tick, (uint64_t)deps->interval_ms, (uint64_t)deps->interval_ms);
    *out = d;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void kn_drift_stop(struct kn_drift *d)
{
    if (d && d->timer) {
        uv_close((uv_handle_t *)d->timer, timer_closed);
        d->timer = NULL;
    }
}

void kn_drift_free(struct kn_drift *d)
{
    if (!d) {
        return;
    }
    kn_drift_stop(d);
    free(d);
}
