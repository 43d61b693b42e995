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

#define OBSERVE_TIMEOUT_MS (10 * 1000)
#define FIRST_CHECK_MS 1000 /* the first reading after the start */

/* The last live state read of one app. */
struct seen {
    struct seen *next;
    char *repo;
    char *app;
    int known;                 /* live holds an answer */
    int rc;                    /* 0, or KN_ENOTFOUND: no platform runs it */
    struct kn_live_state live;
    int in_flight;             /* an observe is under way */
};

struct kn_drift {
    struct kn_drift_deps deps;
    uv_timer_t *timer; /* freed in its close callback */
    struct seen *seen;
    int stopped;
};

/* One observe under way: the app, and which platform it asks. */
struct ask {
    struct kn_drift *d;
    struct seen *s;
    size_t platform;
    char last_good[41];
    /* the deployment that was running when the observe was asked (0: none): what the platform
     * answers then may predate that deployment's last step, so it is shown, never judged */
    long long busy;
};

static void ask_next(struct ask *a);

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

int kn_drift_describe(char *out, size_t size, const struct kn_live_state *live,
                      const char *last_good)
{
    const struct kn_live_variant *pri = &live->variant[KN_VARIANT_PRIMARY];

    out[0] = '\0';
    if (live->error) {
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
    if (!live->error && pri->instances > 0 && pri->weight < 99.5) {
        add(out, size, "traffic is primary %.0f%%, canary %.0f%%, baseline %.0f%% (expected all "
            "on the primary)", pri->weight, live->variant[KN_VARIANT_CANARY].weight,
            live->variant[KN_VARIANT_BASELINE].weight);
    }
    /* each resource against what kanaria set, as the platform says: one server in
     * maintenance out of four changes no variant's share, so the shares alone do not show it */
    for (size_t i = 0; !live->error && i < live->nresources; i++) {
        if (live->resources[i].drift) {
            add(out, size, "%s", live->resources[i].drift);
        }
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

static struct seen *seen_of(struct kn_drift *d, const char *repo, const char *app)
{
    struct seen *s;

    for (s = d->seen; s; s = s->next) {
        if (strcmp(s->repo, repo) == 0 && strcmp(s->app, app) == 0) {
            return s;
        }
    }
    s = kn_calloc(1, sizeof(*s));
    s->repo = kn_strdup(repo);
    s->app = kn_strdup(app);
    s->next = d->seen;
    d->seen = s;
    return s;
}

int kn_drift_live(const struct kn_drift *d, const char *repo, const char *app,
                  struct kn_live_state *out)
{
    memset(out, 0, sizeof(*out));
    for (const struct seen *s = d ? d->seen : NULL; s; s = s->next) {
        if ((!repo || strcmp(s->repo, repo) == 0) && strcmp(s->app, app) == 0 && s->known &&
            s->rc == 0) {
            kn_live_state_copy(out, &s->live);
            return 0;
        }
    }
    return KN_ENOTFOUND;
}

/* The answer for an app: cache it, then compare it with the last good commit when the app is
 * idle now (read again: a deployment may have started while the platform answered). */
static void judge(struct kn_drift *d, struct seen *s, long long busy, int rc,
                  const struct kn_live_state *live)
{
    struct kn_app_state a = {0};
    long long now = drift_now(d);
    char drift[512];
    int known;

    kn_live_state_release(&s->live);
    s->known = 1;
    s->rc = rc;
    if (rc == 0 && live) {
        kn_live_state_copy(&s->live, live);
    }
    if (d->deps.cache_only) {
        return;
    }
    if (kn_store_app_get(d->deps.store, s->repo, s->app, &a) < 0 || !a.last_good[0] ||
        a.current_deployment != 0 || busy != 0 || a.orphaned_at) {
        goto out;
    }
    /* a platform that cannot be read is shown, not healed: a sync could not succeed */
    known = rc == KN_ENOTFOUND || (rc == 0 && !s->live.error);
    if (rc == KN_ENOTFOUND) {
        snprintf(drift, sizeof(drift), "no platform runs the app");
    } else if (rc < 0) {
        snprintf(drift, sizeof(drift), "live state unknown: %s",
                 live && live->error ? live->error : kn_strerror(rc));
    } else {
        kn_drift_describe(drift, sizeof(drift), &s->live, a.last_good);
    }
    if (strcmp(drift, a.drift) != 0) {
        if (drift[0]) {
            kn_log_warn(WHO, "repo=%s app=%s drift: %s", a.repo, a.name, drift);
        } else {
            kn_log_info(WHO, "repo=%s app=%s in sync again", a.repo, a.name);
        }
        kn_store_app_drift(d->deps.store, a.repo, a.name, drift, now);
    }
    if (drift[0] && known && a.self_heal &&
        (a.healed_at == 0 || now - a.healed_at >= KN_DRIFT_HEAL_MIN_MS)) {
        heal(d, &a, drift, now);
    }
out:
    kn_app_state_release(&a);
}

static void observed(int status, const struct kn_live_state *live, void *data)
{
    struct ask *a = data;

    if (a->d->stopped || status == KN_ECANCELLED) {
        a->s->in_flight = 0;
        free(a);
        return;
    }
    if (status == KN_ENOTFOUND || status == KN_EUNSUPPORTED) {
        a->platform++; /* not there: the next platform */
        ask_next(a);
        return;
    }
    judge(a->d, a->s, a->busy, status, live);
    a->s->in_flight = 0;
    free(a);
}

/* Ask the next platform about the app; none left: no platform runs it. */
static void ask_next(struct ask *a)
{
    struct kn_drift *d = a->d;
    struct kn_platform *p;
    struct kn_app_id id = {.repository = a->s->repo, .app = a->s->app};
    struct kn_desired desired = {
        .commit = a->last_good,
        .percent = {[KN_VARIANT_PRIMARY] = 100},
    };

    while ((p = d->deps.platform_at(d->deps.data, a->platform))) {
        if (kn_platform_observe(p, &id, &desired, OBSERVE_TIMEOUT_MS, observed, a) == 0) {
            return;
        }
        a->platform++;
    }
    judge(d, a->s, a->busy, KN_ENOTFOUND, NULL);
    a->s->in_flight = 0;
    free(a);
}

struct app_list {
    struct kn_app_state *items;
    size_t n;
};

static int collect(const struct kn_app_state *st, void *data)
{
    struct app_list *l = data;

    /* what was never deployed runs nowhere */
    if (st->last_good[0] || st->current_deployment != 0) {
        l->items = kn_reallocarray(l->items, l->n + 1, sizeof(*l->items));
        l->items[l->n] = *st;
        l->items[l->n++].error = NULL; /* borrowed for the call: not kept, not used */
    }
    return 0;
}

void kn_drift_check(struct kn_drift *d)
{
    struct app_list l = {0};

    if (d->stopped) {
        return;
    }
    kn_store_apps(d->deps.store, NULL, collect, &l);
    for (size_t i = 0; i < l.n; i++) {
        struct seen *s = seen_of(d, l.items[i].repo, l.items[i].name);
        struct ask *a;
        if (s->in_flight) {
            continue;
        }
        s->in_flight = 1;
        a = kn_calloc(1, sizeof(*a));
        a->d = d;
        a->s = s;
        snprintf(a->last_good, sizeof(a->last_good), "%s", l.items[i].last_good);
        a->busy = l.items[i].current_deployment;
        ask_next(a);
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

    if (!deps || !deps->loop || !deps->store || !deps->platform_at || deps->interval_ms <= 0) {
        return KN_EINVAL;
    }
    d = kn_calloc(1, sizeof(*d));
    d->deps = *deps;
    d->timer = kn_calloc(1, sizeof(*d->timer));
    uv_timer_init(deps->loop, d->timer);
    d->timer->data = d;
    /* the first reading soon after the start, so /metrics and the API have live state */
    uv_timer_start(d->timer, on_tick,
                   (uint64_t)(deps->interval_ms < FIRST_CHECK_MS ? deps->interval_ms
                                                                 : FIRST_CHECK_MS),
                   (uint64_t)deps->interval_ms);
    *out = d;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void kn_drift_stop(struct kn_drift *d)
{
    if (d) {
        d->stopped = 1; /* answers still to come are dropped */
    }
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
    while (d->seen) {
        struct seen *s = d->seen;
        d->seen = s->next;
        kn_live_state_release(&s->live);
        free(s->repo);
        free(s->app);
        free(s);
    }
    free(d);
}
