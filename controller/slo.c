/*
 * SLOs: the monitor of SLIs, error budgets and burn rates, and the error-budget gate (slo.h).
 */
#include "slo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"

#define WHO "slo"

#define FIRST_READ_MS 10 /* a new SLO is read at once (from the loop, not inside the gate) */
#define NWINDOWS (1 + KN_SLO_BURN_WINDOWS)

const long long kn_slo_burn_windows_ms[KN_SLO_BURN_WINDOWS] = {
    3600LL * 1000, 6 * 3600LL * 1000, 3 * 24 * 3600LL * 1000};

/* ---- the numbers -------------------------------------------------------------------------- */

double kn_slo_sli(double good, double total)
{
    double sli;

    if (!(total > 0)) {
        return 1.0;
    }
    sli = good / total;
    return sli < 0 ? 0 : sli > 1 ? 1 : sli;
}

double kn_slo_burn_rate(double sli, double objective_pct)
{
    return (1.0 - sli) / (1.0 - objective_pct / 100.0);
}

double kn_slo_budget_remaining(double sli, double objective_pct)
{
    return 1.0 - kn_slo_burn_rate(sli, objective_pct);
}

const char *kn_slo_window_format(long long ms, char *buf, size_t size)
{
    static const struct {
        long long ms;
        char unit;
    } units[] = {{24 * 3600LL * 1000, 'd'}, {3600LL * 1000, 'h'}, {60LL * 1000, 'm'}};
    long long s = ms / 1000;

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms >= units[i].ms && ms % units[i].ms == 0) {
            snprintf(buf, size, "%lld%c", ms / units[i].ms, units[i].unit);
            return buf;
        }
    }
    snprintf(buf, size, "%llds", s > 0 ? s : 1);
    return buf;
}

char *kn_slo_query_fill(const char *query, const char *window, const char *app,
                        const char *repo)
{
    struct kn_buf out;
    const char *p = query;

    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    while (*p) {
        const char *open = strstr(p, "{{");
        const char *end = open ? strstr(open + 2, "}}") : NULL;
        const char *b, *e, *value = NULL;

        if (!open || !end) {
            kn_buf_adds(&out, p);
            break;
        }
        kn_buf_add(&out, p, (size_t)(open - p));
        for (b = open + 2; b < end && *b == ' '; b++) {
        }
        for (e = end; e > b && e[-1] == ' '; e--) {
        }
        if ((size_t)(e - b) == 6 && strncmp(b, "window", 6) == 0) {
            value = window;
        } else if ((size_t)(e - b) == 3 && strncmp(b, "app", 3) == 0) {
            value = app;
        } else if ((size_t)(e - b) == 10 && strncmp(b, "repository", 10) == 0) {
            value = repo;
        }
        if (value) {
            kn_buf_adds(&out, value);
        } else {
            kn_buf_add(&out, open, (size_t)(end + 2 - open)); /* validation reports it */
        }
        p = end + 2;
    }
    return kn_buf_detach(&out, NULL);
}

/* A ratio as a percent: "99.712%". */
static const char *pct(double ratio, char *buf, size_t size)
{
    snprintf(buf, size, "%.3f%%", ratio * 100.0);
    return buf;
}

void kn_slo_decide(const struct kn_error_budget_policy *policy,
                   const struct kn_slo_reading *readings, size_t n, const char *approved_by,
                   long long now_ms, struct kn_gate_verdict *out)
{
    const struct kn_slo_reading *spent = NULL, *failed = NULL, *waiting = NULL;
    double min = policy->min_remaining / 100.0;
    char sli[32], left[32], window[32], until[300];

    (void)now_ms;
    memset(out, 0, sizeof(*out));
    out->status = KN_DEPLOY_RUNNING;
    for (size_t i = 0; i < n; i++) {
        const struct kn_slo_reading *r = &readings[i];
        if (!r->known) {
            waiting = waiting ? waiting : r;
        } else if (r->error[0]) {
            failed = failed ? failed : r;
        } else if (r->remaining < min && (!spent || r->remaining < spent->remaining)) {
            spent = r; /* the most overspent one */
        }
    }
    if (spent) {
        kn_slo_window_format(spent->window_ms, window, sizeof(window));
        if (approved_by && policy->action == KN_BUDGET_APPROVE) {
            snprintf(out->reason, sizeof(out->reason),
                     "error budget of SLO '%s' spent (SLI %s over %s against an objective of "
                     "%g%%, %.1f%% of the budget left, minRemaining %g%%); approved by %s",
                     spent->slo, pct(spent->sli, sli, sizeof(sli)), window, spent->objective,
                     spent->remaining * 100.0, policy->min_remaining, approved_by);
            return;
        }
        out->status = KN_DEPLOY_BLOCKED;
        snprintf(until, sizeof(until), policy->action == KN_BUDGET_APPROVE
                                           ? "waits until it recovers or `kanaria approve %s`"
                                           : "waits until it recovers",
                 spent->app);
        snprintf(out->reason, sizeof(out->reason),
                 "error budget of SLO '%s' spent: SLI %s over %s against an objective of %g%%, "
                 "%s of the budget left (minRemaining %g%%); %s",
                 spent->slo, pct(spent->sli, sli, sizeof(sli)), window, spent->objective,
                 pct(spent->remaining, left, sizeof(left)), policy->min_remaining, until);
        return;
    }
    if (failed) {
        if (policy->on_error == KN_BUDGET_ERROR_ALLOW) {
            snprintf(out->reason, sizeof(out->reason),
                     "error-budget gate passed although SLO '%s' cannot be read (onError: "
                     "allow): %.700s",
                     failed->slo, failed->error);
            return;
        }
        out->status = KN_DEPLOY_BLOCKED;
        snprintf(out->reason, sizeof(out->reason),
                 "SLO '%s' cannot be read (onError: block): %.700s; waits for a reading",
                 failed->slo, failed->error);
        return;
    }
    if (waiting) {
        out->status = KN_DEPLOY_PLANNED;
        snprintf(out->reason, sizeof(out->reason), "waiting for the first reading of SLO '%s'",
                 waiting->slo);
    }
}

/* ---- the monitor -------------------------------------------------------------------------- */

struct entry {
    struct entry *next;
    struct kn_slo_reading r; /* the SLO as configured, and its latest reading */
    char *good;
    char *total;
    unsigned gen;            /* bumped when the config changes: older answers are dropped */
    int in_flight;
};

struct kn_slo_monitor;

/* One query of a round. */
struct ask {
    struct round *round;
    int window; /* 0: the SLO's, 1..: kn_slo_burn_windows_ms[window - 1] */
    int total;  /* 0: good, 1: total */
};

/* One reading under way: 2 queries per window. */
struct round {
    struct kn_slo_monitor *m;
    struct entry *e;
    unsigned gen;
    int pending;
    char provider[128];
    struct ask asks[2 * NWINDOWS];
    double value[2 * NWINDOWS];
    int have[2 * NWINDOWS];
    char error[512];
};

struct kn_slo_monitor {
    struct kn_slo_monitor_deps deps;
    uv_timer_t *timer; /* freed in its close callback */
    struct entry *entries;
    int stopped;
};

static long long slo_now(const struct kn_slo_monitor *m)
{
    struct timespec ts;

    if (m->deps.now_ms) {
        return m->deps.now_ms(m->deps.data);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long window_of(const struct entry *e, int w)
{
    return w == 0 ? e->r.window_ms : kn_slo_burn_windows_ms[w - 1];
}

static void round_done(struct round *r)
{
    struct kn_slo_monitor *m = r->m;
    struct entry *e = r->e;
    struct kn_slo_reading *rd = &e->r;
    char window[32];

    if (r->gen != e->gen) {
        goto out; /* the SLO changed meanwhile; its new config is read in its own round */
    }
    e->in_flight = 0;
    if (m->stopped) {
        goto out;
    }
    rd->known = 1;
    rd->at_ms = slo_now(m);
    rd->error[0] = '\0';
    rd->sli = rd->remaining = NAN;
    for (int w = 0; w < KN_SLO_BURN_WINDOWS; w++) {
        rd->burn[w] = NAN;
    }
    kn_slo_window_format(rd->window_ms, window, sizeof(window));
    if (r->error[0]) {
        snprintf(rd->error, sizeof(rd->error), "%s", r->error);
    } else if (!r->have[0] || !r->have[1]) {
        snprintf(rd->error, sizeof(rd->error), "query '%s' over %s gave no data",
                 !r->have[0] ? "good" : "total", window);
    } else {
        rd->sli = kn_slo_sli(r->value[0], r->value[1]);
        rd->remaining = kn_slo_budget_remaining(rd->sli, rd->objective);
        for (int w = 1; w < NWINDOWS; w++) {
            if (r->have[2 * w] && r->have[2 * w + 1]) {
                rd->burn[w - 1] = kn_slo_burn_rate(kn_slo_sli(r->value[2 * w],
                                                              r->value[2 * w + 1]),
                                                   rd->objective);
            }
        }
    }
    if (rd->error[0]) {
        kn_log_warn(WHO, "repo=%s app=%s slo=%s: cannot read the SLO: %s", rd->repo, rd->app,
                    rd->slo, rd->error);
    } else {
        kn_log_info(WHO, "repo=%s app=%s slo=%s: SLI %.5f over %s (objective %g%%), budget "
                    "remaining %.4f, burn rates 1h %.3g 6h %.3g 3d %.3g",
                    rd->repo, rd->app, rd->slo, rd->sli, window, rd->objective, rd->remaining,
                    rd->burn[0], rd->burn[1], rd->burn[2]);
    }
    if (m->deps.kick) {
        m->deps.kick(m->deps.data);
    }
out:
    free(r);
}

static void on_answer(const struct kn_metrics_result *res, void *data)
{
    struct ask *a = data;
    struct round *r = a->round;
    int i = 2 * a->window + a->total;

    if (!res->ok) {
        if (!r->error[0]) {
            char window[32];
            kn_slo_window_format(window_of(r->e, a->window), window, sizeof(window));
            snprintf(r->error, sizeof(r->error), "metrics provider '%.60s': query '%s' over "
                     "%s: %.300s", r->provider, a->total ? "total" : "good", window, res->error);
        }
    } else if (res->nseries > 0 && res->series[0].count > 0) {
        double v = res->series[0].values[res->series[0].count - 1];
        if (!isnan(v)) {
            r->value[i] = v;
            r->have[i] = 1;
        }
    }
    if (--r->pending == 0) {
        round_done(r);
    }
}

/* Read one SLO: its good and total events over each window. */
static void read_slo(struct kn_slo_monitor *m, struct entry *e)
{
    struct round *r = kn_calloc(1, sizeof(*r));
    struct kn_metrics *p = m->deps.metrics
                               ? m->deps.metrics(m->deps.data, e->r.provider[0] ? e->r.provider
                                                                                : NULL)
                               : NULL;
    long long now = slo_now(m);

    r->m = m;
    r->e = e;
    r->gen = e->gen;
    e->in_flight = 1;
    r->pending = 2 * NWINDOWS;
    if (!p) {
        if (e->r.provider[0]) {
            snprintf(r->error, sizeof(r->error), "metrics provider '%s' is not configured",
                     e->r.provider);
        } else {
            snprintf(r->error, sizeof(r->error), "no metrics provider is configured");
        }
        r->pending = 0;
        round_done(r);
        return;
    }
    snprintf(r->provider, sizeof(r->provider), "%s", p->name);
    for (int w = 0; w < NWINDOWS; w++) {
        char window[32];
        kn_slo_window_format(window_of(e, w), window, sizeof(window));
        for (int t = 0; t < 2; t++) {
            struct ask *a = &r->asks[2 * w + t];
            char *q = kn_slo_query_fill(t ? e->total : e->good, window, e->r.app, e->r.repo);
            struct kn_metrics_query mq = {.query = q, .start_ms = now, .end_ms = now,
                                          .timeout_ms = KN_SLO_QUERY_TIMEOUT_MS};
            a->round = r;
            a->window = w;
            a->total = t;
            if (kn_metrics_query(p, &mq, on_answer, a) < 0) {
                if (!r->error[0]) {
                    snprintf(r->error, sizeof(r->error),
                             "metrics provider '%s' refused the query '%.300s'", p->name, q);
                }
                r->pending--;
            }
            free(q);
        }
    }
    if (r->pending == 0) {
        round_done(r);
    }
}

void kn_slo_monitor_refresh(struct kn_slo_monitor *m)
{
    for (struct entry *e = m ? m->entries : NULL; e && !m->stopped; e = e->next) {
        if (!e->in_flight) {
            read_slo(m, e);
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    kn_slo_monitor_refresh(t->data);
}

int kn_slo_monitor_new(struct kn_slo_monitor **out, const struct kn_slo_monitor_deps *deps)
{
    struct kn_slo_monitor *m;

    if (!out || !deps || !deps->loop || deps->interval_ms <= 0) {
        return KN_EINVAL;
    }
    m = kn_calloc(1, sizeof(*m));
    m->deps = *deps;
    m->timer = kn_calloc(1, sizeof(*m->timer));
    uv_timer_init(deps->loop, m->timer);
    m->timer->data = m;
    uv_timer_start(m->timer, on_tick, (uint64_t)deps->interval_ms, (uint64_t)deps->interval_ms);
    *out = m;
    return 0;
}

static int str_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

void kn_slo_monitor_learn(struct kn_slo_monitor *m, const char *repo, const struct kn_app *app)
{
    const struct kn_slo_config *slos = app ? app->cfg.spec.slos.items : NULL;
    int fresh = 0;

    for (size_t i = 0; m && slos && i < app->cfg.spec.slos.count; i++) {
        const struct kn_slo_config *c = &slos[i];
        struct entry *e;

        if (!c->name || !c->good || !c->total) {
            continue;
        }
        for (e = m->entries; e; e = e->next) {
            if (strcmp(e->r.repo, repo) == 0 && strcmp(e->r.app, app->name) == 0 &&
                strcmp(e->r.slo, c->name) == 0) {
                break;
            }
        }
        if (!e) {
            e = kn_calloc(1, sizeof(*e));
            snprintf(e->r.repo, sizeof(e->r.repo), "%s", repo);
            snprintf(e->r.app, sizeof(e->r.app), "%s", app->name);
            snprintf(e->r.slo, sizeof(e->r.slo), "%s", c->name);
            e->next = m->entries;
            m->entries = e;
        } else if (!str_differs(e->good, c->good) && !str_differs(e->total, c->total) &&
                   e->r.objective == c->objective && e->r.window_ms == c->window_ms &&
                   !str_differs(e->r.provider, c->provider)) {
            continue; /* known as it is */
        }
        free(e->good);
        free(e->total);
        e->good = kn_strdup(c->good);
        e->total = kn_strdup(c->total);
        snprintf(e->r.provider, sizeof(e->r.provider), "%s", c->provider ? c->provider : "");
        e->r.objective = c->objective;
        e->r.window_ms = c->window_ms;
        e->r.known = 0;
        e->r.error[0] = '\0';
        e->gen++;
        e->in_flight = 0; /* an answer still to come is for the old config */
        fresh = 1;
    }
    if (fresh && m->timer && !m->stopped) {
        uv_timer_start(m->timer, on_tick, FIRST_READ_MS, (uint64_t)m->deps.interval_ms);
    }
}

void kn_slo_monitor_each(const struct kn_slo_monitor *m, const char *repo, const char *app,
                         kn_slo_reading_cb cb, void *data)
{
    for (const struct entry *e = m ? m->entries : NULL; e; e = e->next) {
        if ((!repo || strcmp(e->r.repo, repo) == 0) && (!app || strcmp(e->r.app, app) == 0)) {
            cb(&e->r, data);
        }
    }
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void kn_slo_monitor_stop(struct kn_slo_monitor *m)
{
    if (m) {
        m->stopped = 1;
    }
    if (m && m->timer) {
        uv_close((uv_handle_t *)m->timer, timer_closed);
        m->timer = NULL;
    }
}

void kn_slo_monitor_free(struct kn_slo_monitor *m)
{
    if (!m) {
        return;
    }
    kn_slo_monitor_stop(m);
    while (m->entries) {
        struct entry *e = m->entries;
        m->entries = e->next;
        free(e->good);
        free(e->total);
        free(e);
    }
    free(m);
}

/* ---- the gate ----------------------------------------------------------------------------- */

static const struct entry *find(const struct kn_slo_monitor *m, const char *repo,
                                const char *app, const char *slo)
{
    for (const struct entry *e = m ? m->entries : NULL; e; e = e->next) {
        if (strcmp(e->r.repo, repo) == 0 && strcmp(e->r.app, app) == 0 &&
            strcmp(e->r.slo, slo) == 0) {
            return e;
        }
    }
    return NULL;
}

void kn_slo_gate(struct kn_slo_monitor *m, const struct kn_deployment *d,
                 const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out)
{
    const struct kn_slo_config *slos = app->cfg.spec.slos.items;
    size_t n = app->cfg.spec.slos.count;
    struct kn_slo_reading *readings = NULL;
    char *approved = NULL;

    memset(out, 0, sizeof(*out));
    out->status = KN_DEPLOY_RUNNING;
    kn_slo_monitor_learn(m, d->repo, app);
    if (!app->cfg.spec.budget.given || strcmp(d->strategy, "PIPELINE") != 0 || n == 0) {
        goto out;
    }
    readings = kn_calloc(n, sizeof(*readings));
    for (size_t i = 0; i < n; i++) {
        const struct entry *e = find(m, d->repo, app->name, slos[i].name);
        if (e) {
            readings[i] = e->r;
        } else {
            snprintf(readings[i].slo, sizeof(readings[i].slo), "%s", slos[i].name);
            snprintf(readings[i].app, sizeof(readings[i].app), "%s", app->name);
            if (!m) {
                readings[i].known = 1;
                snprintf(readings[i].error, sizeof(readings[i].error),
                         "no SLO monitor runs");
            }
        }
    }
    if (app->cfg.spec.budget.action == KN_BUDGET_APPROVE && m && m->deps.store) {
        approved = kn_store_stage_meta_get(m->deps.store, d->id, KN_STORE_DEPLOYMENT_META,
                                           KN_SLO_APPROVED_META);
    }
    kn_slo_decide(&app->cfg.spec.budget, readings, n, approved, now_ms, out);
    if (out->status != KN_DEPLOY_RUNNING && m) {
        /* asked again after the next reading (a kick), or at the latest then */
        out->recheck_at_ms = now_ms + m->deps.interval_ms;
    }
out:
    free(approved);
    free(readings);
}
