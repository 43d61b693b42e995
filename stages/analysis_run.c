/*
 * ANALYSIS at run time: every check is evaluated each `interval` over the window that just
 * ended, until `duration` is over. Each evaluation is PASS, FAIL or INCONCLUSIVE (or SKIPPED when
 * `noData: skip` meets no data), is stored with the query as sent, the samples and the bound or
 * p-value, and is counted; a check whose FAILs exceed its failureLimit, or whose INCONCLUSIVEs
 * exceed its inconclusiveLimit, fails the stage at once with a reason that names the check and
 * the numbers. The deadline and the counts are kept in the stage's metadata, so a restart
 * continues with the time that is left and the counts so far.
 *
 * The checks run in a runner (struct kn_analysis_runner, declared in stages.h) that any stage can
 * start: the ANALYSIS stage runs one over its duration, CANARY_STEPS one per step, the engine one
 * for a pipeline's background analysis.
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/engine.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "stages.h"
#include "stats.h"
#include "kanaria/http.h"

#define MAX_STORED_SAMPLES 80 /* per side in an analysis record (the store keeps 4 KiB of them) */

enum verdict { V_PASS, V_FAIL, V_INCONCLUSIVE, V_SKIPPED };

static const char *const verdict_names[] = {"PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"};

struct check {
    const char *name;
    const struct kn_analysis_metric *m; /* one of m and h */
    const struct kn_http_check *h;
    long long interval_ms;
    long long next_at;
    int passes, fails, inconclusives;
    int skipped; /* evaluations SKIPPED by noData: skip */
    struct eval *eval; /* the evaluation in flight, NULL when none */
    /* strategy previous: the samples this check measured in the last successful deployment's
     * analysis (NULL when there is none), and that deployment's commit */
    double *prev;
    size_t nprev;
    char prev_name[32];
};

struct kn_analysis_runner {
    struct kn_stage_run *run;
    const struct kn_analysis_options *options;
    int record_index;
    char meta_prefix[64];
    void (*done)(struct kn_stage_run *run, int ok, const char *reason, void *data);
    void *data;
    int in_done; /* done is running: a kn_analysis_runner_stop meanwhile waits for it */
    struct check *checks;
    size_t n;
    long long deadline;
    struct runner_timer *timer;
    int canary_runs; /* a canary runs at this point of the pipeline */
    /* tick() is on the stack: an ending found meanwhile waits for it (finishing starts the next
     * stage, which takes over the run's state) */
    int in_tick;
    int concluded;
    int ok;
    char reason[900];
};

/* One evaluation in flight; it outlives a cancelled stage (a is NULL then). */
struct eval {
    struct kn_analysis_runner *a;
    size_t check;
    int outstanding;
    int nq;
    char *query[2];
    const char *variant[2];
    struct kn_metrics_result res[2];
};

struct runner_timer;
static void tick(struct kn_analysis_runner *a);

/* ---- small helpers -------------------------------------------------------------------------- */

/* The value of `name` in m, or NULL. */
static const char *strmap_get(const struct kn_strmap *m, const char *name)
{
    for (size_t i = 0; m && i < m->count; i++) {
        if (strcmp(m->keys[i], name) == 0) {
            return m->values[i];
        }
    }
    return NULL;
}

char *kn_analysis_fill(const char *tmpl, const struct kn_strmap *args,
                       const struct kn_strmap *vars)
{
    struct kn_buf b;
    const char *p = tmpl, *open;
    int over = 0;

    kn_buf_init(&b, 64 * 1024);
    while ((open = strstr(p, "{{")) != NULL) {
        const char *end = strstr(open + 2, "}}"), *s = open + 2, *e;
        char name[128];
        const char *value = NULL;

        if (!end) {
            break;
        }
        over |= kn_buf_add(&b, p, (size_t)(open - p)) < 0;
        while (s < end && *s == ' ') {
            s++;
        }
        e = end;
        while (e > s && e[-1] == ' ') {
            e--;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(e - s), s);
        value = strncmp(name, "args.", 5) == 0 ? strmap_get(args, name + 5)
                                                : strmap_get(vars, name);
        over |= kn_buf_adds(&b, value ? value : "") < 0;
        p = end + 2;
    }
    over |= kn_buf_adds(&b, p) < 0;
    if (over) {
        kn_buf_release(&b);
        return NULL; /* over 64 KiB once filled in */
    }
    return kn_buf_detach(&b, NULL);
}

/* Every value of every series, NaN kept (the statistics drop it), and their times into *t (ms
 * since the epoch, 0 where the provider gave none). Caller frees both. */
static double *samples_of(const struct kn_metrics_result *r, size_t *n, long long **t)
{
    double *v = NULL;

    *n = 0;
    *t = NULL;
    for (size_t i = 0; i < r->nseries; i++) {
        const struct kn_metrics_series *s = &r->series[i];
        v = kn_reallocarray(v, *n + s->count + 1, sizeof(*v));
        *t = kn_reallocarray(*t, *n + s->count + 1, sizeof(**t));
        memcpy(v + *n, s->values, s->count * sizeof(*v));
        if (s->times_ms) {
            memcpy(*t + *n, s->times_ms, s->count * sizeof(**t));
        } else {
            memset(*t + *n, 0, s->count * sizeof(**t));
        }
        *n += s->count;
    }
    return v;
}

/* The stored samples of one variant into values, and their times into times (left empty when a
 * sample has no time): the finite ones, at most MAX_STORED_SAMPLES. */
static void samples_json(const double *v, const long long *t, size_t n, json_t *values,
                         json_t *times)
{
    int timed = 1;

    for (size_t i = 0; i < n && json_array_size(values) < MAX_STORED_SAMPLES; i++) {
        if (isfinite(v[i])) {
            json_array_append_new(values, json_real(v[i]));
            json_array_append_new(times, json_integer(t[i]));
            timed &= t[i] > 0;
        }
    }
    if (!timed) {
        json_array_clear(times);
    }
}

json_t *kn_analysis_values_read(const char *values_json)
{
    json_t *j = json_loads(values_json ? values_json : "", 0, NULL);

    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    if (json_is_object(json_object_get(j, "values"))) {
        return j;
    }
    return json_pack("{s:o}", "values", j); /* the samples alone, as recorded before times */
}

static void save_counts(struct kn_analysis_runner *a, const struct check *c)
{
    char key[160], value[64];

    snprintf(key, sizeof(key), "%scheck.%s", a->meta_prefix, c->name);
    snprintf(value, sizeof(value), "%d %d %d", c->passes, c->fails, c->inconclusives);
    kn_stage_run_meta_set(a->run, key, value);
}

static void load_counts(struct kn_analysis_runner *a, struct check *c)
{
    char key[160];
    char *value;

    snprintf(key, sizeof(key), "%scheck.%s", a->meta_prefix, c->name);
    if ((value = kn_stage_run_meta_get(a->run, key)) != NULL) {
        sscanf(value, "%d %d %d", &c->passes, &c->fails, &c->inconclusives);
        free(value);
    }
}

/* ---- the runner's timer: a uv timer whose memory is freed in its close callback ------------ */

struct runner_timer {
    uv_timer_t timer;
    struct kn_analysis_runner *a; /* NULL once cancelled */
};

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void timer_fired(uv_timer_t *t)
{
    struct runner_timer *rt = t->data;
    struct kn_analysis_runner *a = rt->a;

    if (a) {
        a->timer = NULL;
    }
    uv_close((uv_handle_t *)&rt->timer, timer_closed);
    if (a) {
        tick(a);
    }
}

static void timer_start(struct kn_analysis_runner *a, long long ms)
{
    struct runner_timer *rt = kn_calloc(1, sizeof(*rt));

    rt->a = a;
    uv_timer_init(kn_stage_run_loop(a->run), &rt->timer);
    rt->timer.data = rt;
    uv_timer_start(&rt->timer, timer_fired, (uint64_t)(ms > 0 ? ms : 0), 0);
    a->timer = rt;
}

static void timer_cancel(struct kn_analysis_runner *a)
{
    struct runner_timer *rt = a->timer;

    if (rt) {
        rt->a = NULL;
        uv_timer_stop(&rt->timer);
        uv_close((uv_handle_t *)&rt->timer, timer_closed);
        a->timer = NULL;
    }
}

/* Free the runner; evaluations in flight end on their own. */
static void runner_free(struct kn_analysis_runner *a)
{
    timer_cancel(a);
    for (size_t i = 0; i < a->n; i++) {
        if (a->checks[i].eval) {
            a->checks[i].eval->a = NULL;
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        free(a->checks[i].prev);
    }
    free(a->checks);
    free(a);
}

static void eval_free(struct eval *ev)
{
    for (int i = 0; i < 2; i++) {
        free(ev->query[i]);
        kn_metrics_result_release(&ev->res[i]);
    }
    free(ev);
}

/* ---- verdicts ------------------------------------------------------------------------------- */

/* Tell the user how it ended, then free the runner. */
static void deliver(struct kn_analysis_runner *a)
{
    timer_cancel(a);
    a->in_done = 1;
    a->done(a->run, a->ok, a->ok ? NULL : a->reason, a->data);
    runner_free(a);
}

/* End the run now, or when tick() returns if it is running. */
static void conclude(struct kn_analysis_runner *a, int ok, const char *reason)
{
    a->concluded = 1;
    a->ok = ok;
    snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
    if (!a->in_tick) {
        deliver(a);
    }
}

/* Count a verdict, store it, and fail the stage when the check is over its limits. Returns 1
 * when the stage has finished. */
static int record(struct kn_analysis_runner *a, struct check *c, enum verdict v, const char *query,
                  const char *values, const char *bound, const char *why)
{
    struct kn_stage_run *run = a->run;
    const struct kn_deployment *d = kn_stage_run_deployment(run);
    long long failure_limit = c->m ? c->m->failure_limit : c->h->failure_limit;
    long long inconclusive_limit = c->m ? c->m->inconclusive_limit : c->h->inconclusive_limit;
    char reason[900];

    kn_store_analysis_add(kn_stage_run_store(run), d->id, a->record_index, c->name,
                          query ? query : "", values ? values : "", bound ? bound : "",
                          verdict_names[v], kn_stage_run_now(run));
    c->passes += v == V_PASS;
    c->fails += v == V_FAIL;
    c->inconclusives += v == V_INCONCLUSIVE;
    c->skipped += v == V_SKIPPED;
    save_counts(a, c);
    kn_stage_run_log(run, "check '%s': %s: %s (%d passed, %d failed, %d inconclusive)", c->name,
                     verdict_names[v], why, c->passes, c->fails, c->inconclusives);
    if (c->fails > failure_limit) {
        snprintf(reason, sizeof(reason), "analysis '%s' failed: %s (%d of %d evaluations failed, "
                 "%lld allowed)", c->name, why, c->fails,
                 c->passes + c->fails + c->inconclusives, failure_limit);
    } else if (c->inconclusives > inconclusive_limit) {
        snprintf(reason, sizeof(reason), "analysis '%s' failed: %d inconclusive evaluations, %lld "
                 "allowed (last: %s)", c->name, c->inconclusives, inconclusive_limit, why);
    } else {
        return 0;
    }
    conclude(a, 0, reason);
    return 1;
}

/* The stage passes when its time is over and nothing is being evaluated. */
static void maybe_pass(struct kn_analysis_runner *a)
{
    struct kn_stage_run *run = a->run;
    struct kn_buf b;

    if (a->concluded || kn_stage_run_now(run) < a->deadline) {
        return;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (a->checks[i].eval || a->checks[i].next_at <= a->deadline) {
            return; /* one more evaluation is due at the deadline, or one is in flight */
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct check *c = &a->checks[i];
        if (c->passes + c->fails + c->inconclusives == 0 && !c->skipped) {
            char reason[300];
            snprintf(reason, sizeof(reason), "analysis '%s' was never evaluated before the end "
                     "of the analysis", c->name);
            conclude(a, 0, reason);
            return;
        }
    }
    kn_buf_init(&b, 4096);
    for (size_t i = 0; i < a->n; i++) {
        const struct check *c = &a->checks[i];
        kn_buf_addf(&b, "%s'%s' %d passed, %d failed, %d inconclusive", i ? "; " : "", c->name,
                    c->passes, c->fails, c->inconclusives);
    }
    kn_stage_run_log(run, "analysis passed: %s", b.data ? b.data : "no evaluation");
    kn_buf_release(&b);
    conclude(a, 1, NULL);
}

static void threshold_verdict(const struct kn_analysis_metric *m, const char *variant,
                              const double *v, size_t n, enum verdict *out, char *why,
                              size_t size, char *bound, size_t bsize)
{
    const struct kn_metric_expected *e = &m->expected;
    int has_min = (e->set & 1u) != 0, has_max = (e->set & 2u) != 0;
    double worst = NAN;

    if (has_min && has_max) {
        snprintf(bound, bsize, "min %g, max %g", e->min, e->max);
    } else if (has_max) {
        snprintf(bound, bsize, "max %g", e->max);
    } else if (has_min) {
        snprintf(bound, bsize, "min %g", e->min);
    } else {
        snprintf(bound, bsize, "none");
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) {
            continue;
        }
        if (has_max && v[i] > e->max && (isnan(worst) || v[i] > worst)) {
            worst = v[i];
        } else if (has_min && v[i] < e->min && (isnan(worst) || v[i] < worst)) {
            worst = v[i];
        }
    }
    if (!isnan(worst)) {
        *out = V_FAIL;
        if (has_max && worst > e->max) {
            snprintf(why, size, "%s %.4g > max %g", variant, worst, e->max);
        } else {
            snprintf(why, size, "%s %.4g < min %g", variant, worst, e->min);
        }
        return;
    }
    *out = V_PASS;
    snprintf(why, size, "%s within %s (min %.4g, max %.4g over %zu samples)", variant, bound,
             kn_stats_min(v, n), kn_stats_max(v, n), kn_stats_count(v, n));
}

static void compare_verdict(const struct kn_analysis_metric *m, const char *subject,
                            const char *control,
                            const double *x, size_t nx, const double *y, size_t ny,
                            enum verdict *out, char *why, size_t size, char *bound, size_t bsize)
{
    static const enum kn_stats_alternative alt[] = {
        [KN_DEVIATION_EITHER] = KN_STATS_TWO_SIDED,
        [KN_DEVIATION_HIGH] = KN_STATS_GREATER,
        [KN_DEVIATION_LOW] = KN_STATS_LESS,
    };
    static const char *const dir[] = {"differs from", "is higher than", "is lower than"};
    struct kn_stats_mwu r;
    size_t cx = kn_stats_count(x, nx), cy = kn_stats_count(y, ny);
    double rel;

    snprintf(bound, bsize, "alpha %g, minSamples %lld, minEffect %g", m->alpha, m->min_samples,
             m->min_effect);
    if ((long long)cx < m->min_samples || (long long)cy < m->min_samples) {
        *out = V_INCONCLUSIVE;
        snprintf(why, size, "too few samples: %s %zu, %s %zu (minSamples %lld)", subject, cx,
                 control, cy, m->min_samples);
        return;
    }
    kn_stats_mann_whitney(&r, x, nx, y, ny, alt[m->deviation]);
    rel = r.median_y != 0 ? fabs(r.effect / r.median_y) : (r.effect != 0 ? INFINITY : 0);
    snprintf(bound, bsize, "U %.1f, p %.4g, alpha %g, effect %.4g (%.1f%%)", r.u, r.p, m->alpha,
             r.effect, isinf(rel) ? 100.0 : rel * 100);
    if (r.p < m->alpha && rel >= m->min_effect) {
        *out = V_FAIL;
        snprintf(why, size, "%s (median %.4g) %s %s (median %.4g): p %.4g < alpha %g", subject,
                 r.median_x, dir[m->deviation], control, r.median_y, r.p, m->alpha);
        return;
    }
    *out = V_PASS;
    snprintf(why, size, "%s (median %.4g) vs %s (median %.4g): p %.4g%s", subject, r.median_x,
             control, r.median_y, r.p,
             r.p < m->alpha ? ", a difference below minEffect" : "");
}

/* burn-rate: the worst error ratio of the samples over the budget of the app's SLO m->slo
 * (1 - objective) against maxBurnRate. */
static void burn_rate_verdict(const struct kn_app *app, const struct kn_analysis_metric *m,
                              const char *variant, const double *v, size_t n, enum verdict *out,
                              char *why, size_t size, char *bound, size_t bsize)
{
    const struct kn_slo_config *slo = app ? kn_app_slo(app, m->slo) : NULL;
    double worst = NAN, budget, burn;

    if (!slo) {
        *out = V_INCONCLUSIVE;
        snprintf(why, size, "the app declares no SLO '%s'", m->slo ? m->slo : "");
        return;
    }
    budget = 1.0 - slo->objective / 100.0;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(v[i]) && (isnan(worst) || v[i] > worst)) {
            worst = v[i];
        }
    }
    burn = worst / budget;
    snprintf(bound, bsize, "maxBurnRate %g (SLO '%s', objective %g%%)", m->max_burn_rate,
             slo->name, slo->objective);
    if (burn > m->max_burn_rate) {
        *out = V_FAIL;
        snprintf(why, size, "%s burns the budget of SLO '%s' at %.4g > maxBurnRate %g (error "
                 "ratio %.4g against an objective of %g%%)",
                 variant, slo->name, burn, m->max_burn_rate, worst, slo->objective);
        return;
    }
    *out = V_PASS;
    snprintf(why, size, "%s burns the budget of SLO '%s' at %.4g, within maxBurnRate %g (error "
             "ratio %.4g against an objective of %g%%)",
             variant, slo->name, burn, m->max_burn_rate, worst, slo->objective);
}

/* ---- metric checks ------------------------------------------------------------------------ */

static void metric_done(struct eval *ev)
{
    struct kn_analysis_runner *a = ev->a;
    struct check *c;
    const struct kn_analysis_metric *m;
    double *v[2] = {NULL, NULL};
    long long *t[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    char why[700] = "", bound[256] = "", *query = NULL, *values = NULL;
    enum verdict verdict = V_INCONCLUSIVE;
    json_t *j = json_object(), *samples = json_object(), *times = json_object();

    if (!a) {
        goto out; /* the stage is gone */
    }
    c = &a->checks[ev->check];
    m = c->m;
    c->eval = NULL;
    for (int i = 0; i < ev->nq; i++) {
        json_t *sv = json_array(), *st = json_array();
        v[i] = samples_of(&ev->res[i], &n[i], &t[i]);
        samples_json(v[i], t[i], n[i], sv, st);
        if (json_array_size(st) == json_array_size(sv)) {
            json_object_set(times, ev->variant[i], st);
        }
        json_object_set_new(samples, ev->variant[i], sv);
        json_decref(st);
    }
    /* the samples, their times when every variant has them, and a threshold's fixed bound */
    json_object_set(j, "values", samples);
    if (json_object_size(times) == (size_t)ev->nq) {
        json_object_set(j, "times", times);
    }
    if (m->strategy == KN_STRATEGY_THRESHOLD && (m->expected.set & 3u)) {
        json_object_set_new(j, "threshold",
                            json_pack("{s:o, s:o}", "max",
                                      m->expected.set & 2u ? json_real(m->expected.max)
                                                           : json_null(),
                                      "min",
                                      m->expected.set & 1u ? json_real(m->expected.min)
                                                           : json_null()));
    }
    query = ev->nq == 2 ? kn_asprintf("%s\n%s", ev->query[0], ev->query[1])
                        : kn_strdup(ev->query[0]);
    values = json_dumps(j, JSON_COMPACT);
    for (int i = 0; i < ev->nq; i++) {
        if (!ev->res[i].ok) {
            snprintf(why, sizeof(why), "%.600s", ev->res[i].error);
            goto verdict;
        }
    }
    for (int i = 0; i < ev->nq; i++) {
        if (kn_stats_count(v[i], n[i]) == 0) {
            snprintf(why, sizeof(why), "no data for the %s", ev->variant[i]);
            verdict = m->no_data == KN_NODATA_FAIL   ? V_FAIL
                      : m->no_data == KN_NODATA_SKIP ? V_SKIPPED
                                                     : V_INCONCLUSIVE;
            goto verdict;
        }
    }
    if (m->strategy == KN_STRATEGY_PREVIOUS) {
        if (!c->prev) {
            verdict = V_INCONCLUSIVE;
            snprintf(why, sizeof(why), "no samples of '%s' in the last successful deployment "
                     "to compare with", c->name);
        } else {
            compare_verdict(m, ev->variant[0], c->prev_name, v[0], n[0], c->prev, c->nprev,
                            &verdict, why, sizeof(why), bound, sizeof(bound));
        }
    } else if (m->strategy == KN_STRATEGY_BURN_RATE) {
        burn_rate_verdict(kn_stage_run_app(a->run), m, ev->variant[0], v[0], n[0], &verdict, why,
                          sizeof(why), bound, sizeof(bound));
    } else if (ev->nq == 1) {
        threshold_verdict(m, ev->variant[0], v[0], n[0], &verdict, why, sizeof(why), bound,
                          sizeof(bound));
    } else {
        compare_verdict(m, ev->variant[0], ev->variant[1], v[0], n[0], v[1], n[1], &verdict, why,
                        sizeof(why), bound, sizeof(bound));
    }
verdict:
    if (!record(a, c, verdict, query, values, bound, why)) {
        maybe_pass(a);
    }
out:
    json_decref(j);
    json_decref(samples);
    json_decref(times);
    free(values);
    free(query);
    free(v[0]);
    free(v[1]);
    free(t[0]);
    free(t[1]);
    eval_free(ev);
}

static void metric_answered(const struct kn_metrics_result *r, void *data, int i)
{
    struct eval *ev = data;

    ev->res[i].ok = r->ok;
    snprintf(ev->res[i].error, sizeof(ev->res[i].error), "%s", r->error);
    ev->res[i].nseries = r->nseries;
    ev->res[i].series = kn_calloc(r->nseries + 1, sizeof(*r->series));
    for (size_t s = 0; s < r->nseries; s++) {
        const struct kn_metrics_series *from = &r->series[s];
        struct kn_metrics_series *to = &ev->res[i].series[s];
        to->labels = kn_strdup(from->labels ? from->labels : "{}");
        to->count = from->count;
        to->values = kn_calloc(from->count + 1, sizeof(double));
        to->times_ms = kn_calloc(from->count + 1, sizeof(long long));
        memcpy(to->values, from->values, from->count * sizeof(double));
        memcpy(to->times_ms, from->times_ms, from->count * sizeof(long long));
    }
    if (--ev->outstanding == 0) {
        metric_done(ev);
    }
}

static void metric_answered_0(const struct kn_metrics_result *r, void *data)
{
    metric_answered(r, data, 0);
}

static void metric_answered_1(const struct kn_metrics_result *r, void *data)
{
    metric_answered(r, data, 1);
}

/* The interval as a window ("30s"). */
static void window_of(const struct check *c, char *out, size_t size)
{
    snprintf(out, size, "%llds", (c->interval_ms + 999) / 1000);
}

static enum kn_variant variant_of(const char *name)
{
    return strcmp(name, "canary") == 0     ? KN_VARIANT_CANARY
           : strcmp(name, "baseline") == 0 ? KN_VARIANT_BASELINE
                                           : KN_VARIANT_PRIMARY;
}

/* `tmpl` filled in for variant v of the deployment's app: the placeholders of its platform
 * (kn_platform_template_vars: app, repository, variant and the type's own), the window and the
 * commit, and args. Caller frees; NULL when over 64 KiB. */
static char *fill(struct kn_stage_run *run, const char *tmpl, const struct kn_strmap *args,
                  enum kn_variant v, const char *window)
{
    const struct kn_deployment *d = kn_stage_run_deployment(run);
    const struct kn_app_id id = {.repository = d->repo, .app = d->app};
    struct kn_strmap vars = {0};
    char *filled;

    kn_platform_template_vars(kn_stage_run_platform(run), &id, v, &vars);
    kn_platform_vars_set(&vars, "window", window);
    kn_platform_vars_set(&vars, "commit", d->commit);
    filled = kn_analysis_fill(tmpl, args, &vars);
    kn_platform_vars_release(&vars);
    return filled;
}

/* The variant a query is about when it is not a comparison: the canary while one runs. */
static void metric_start(struct kn_analysis_runner *a, struct check *c, struct eval *ev)
{
    struct kn_stage_run *run = a->run;
    const struct kn_analysis_metric *m = c->m;
    struct kn_metrics *provider = kn_stage_run_metrics(run, m->provider);
    long long now = kn_stage_run_now(run);
    char window[32];
    kn_metrics_cb cbs[2] = {metric_answered_0, metric_answered_1};
    int nq, too_long;

    window_of(c, window, sizeof(window));
    ev->variant[0] = a->canary_runs ? "canary" : "primary";
    ev->nq = 1;
    if (m->strategy == KN_STRATEGY_CANARY_PRIMARY || m->strategy == KN_STRATEGY_CANARY_BASELINE) {
        ev->variant[0] = "canary";
        ev->variant[1] = m->strategy == KN_STRATEGY_CANARY_PRIMARY ? "primary" : "baseline";
        ev->nq = 2;
    }
    for (int i = 0; i < ev->nq; i++) {
        ev->query[i] = fill(run, m->query, &m->args, variant_of(ev->variant[i]), window);
    }
    too_long = !ev->query[0] || (ev->nq == 2 && !ev->query[1]);
    for (int i = 0; i < ev->nq; i++) {
        if (!ev->query[i]) {
            ev->query[i] = kn_strdup("");
        }
    }
    ev->outstanding = nq = ev->nq;
    for (int i = 0; i < nq; i++) { /* the last answer may free ev: nq is a copy */
        struct kn_metrics_query q = {
            .query = ev->query[i],
            .start_ms = now - c->interval_ms,
            .end_ms = now,
        };
        int rc = too_long   ? KN_ETOOBIG
                 : provider ? kn_metrics_query(provider, &q, cbs[i], ev)
                            : KN_ENOTFOUND;
        if (rc < 0) {
            struct kn_metrics_result r = {.ok = 0};
            if (too_long) {
                snprintf(r.error, sizeof(r.error), "the query is over 64 KiB once its "
                         "placeholders are filled in");
            } else if (provider) {
                snprintf(r.error, sizeof(r.error), "metrics provider '%s' refused the query: %s",
                         m->provider ? m->provider : "", kn_strerror(rc));
            } else {
                snprintf(r.error, sizeof(r.error), "no metrics provider '%s' in kanaria.yaml",
                         m->provider ? m->provider : "(any)");
            }
            cbs[i](&r, ev);
        }
    }
}

/* ---- HTTP checks -------------------------------------------------------------------------- */

static int status_expected(const struct kn_strlist *expected, int status)
{
    char code[8];

    snprintf(code, sizeof(code), "%d", status);
    for (size_t i = 0; i < expected->count; i++) {
        const char *e = expected->items[i];
        if (strcmp(e, code) == 0 ||
            (strlen(e) == 3 && (e[1] == 'x' || e[1] == 'X') && e[0] == code[0])) {
            return 1;
        }
    }
    return expected->count == 0 && status >= 200 && status < 300;
}

static void http_answered(const struct kn_http_response *res, void *data)
{
    struct eval *ev = data;
    struct kn_analysis_runner *a = ev->a;
    struct check *c;
    const struct kn_http_check *h;
    enum verdict verdict = V_PASS;
    char why[700], bound[256];
    char *values = NULL;

    if (!a) {
        goto out;
    }
    c = &a->checks[ev->check];
    h = c->h;
    c->eval = NULL;
    {
        struct kn_buf b;
        kn_buf_init(&b, sizeof(bound) - 1);
        kn_buf_adds(&b, "status ");
        for (size_t i = 0; i < h->expected_status.count; i++) {
            kn_buf_addf(&b, "%s%s", i ? "|" : "", h->expected_status.items[i]);
        }
        if (h->expected_status.count == 0) {
            kn_buf_adds(&b, "2xx");
        }
        if (h->max_latency_ms > 0) {
            kn_buf_addf(&b, ", latency <= %lld ms", h->max_latency_ms);
        }
        snprintf(bound, sizeof(bound), "%s", b.data ? b.data : "");
        kn_buf_release(&b);
    }
    values = kn_asprintf("{\"status\":%d,\"latency_ms\":%.1f}", res->status, res->total_ms);
    if (res->error) {
        verdict = V_FAIL;
        snprintf(why, sizeof(why), "%s: %s", ev->query[0], res->error);
    } else if (!status_expected(&h->expected_status, res->status)) {
        verdict = V_FAIL;
        snprintf(why, sizeof(why), "%s answered %d, not an expected status", ev->query[0],
                 res->status);
    } else if (h->max_latency_ms > 0 && res->total_ms > (double)h->max_latency_ms) {
        verdict = V_FAIL;
        snprintf(why, sizeof(why), "%s took %.0f ms > maxLatency %lld ms", ev->query[0],
                 res->total_ms, h->max_latency_ms);
    } else if (h->body_regex) {
        regex_t re;
        if (regcomp(&re, h->body_regex, REG_EXTENDED | REG_NOSUB) != 0) {
            verdict = V_INCONCLUSIVE;
            snprintf(why, sizeof(why), "bodyRegex does not compile");
        } else {
            if (regexec(&re, res->body ? res->body : "", 0, NULL, 0) != 0) {
                verdict = V_FAIL;
                snprintf(why, sizeof(why), "%s: the body does not match /%.200s/", ev->query[0],
                         h->body_regex);
            }
            regfree(&re);
        }
    }
    if (verdict == V_PASS) {
        snprintf(why, sizeof(why), "%s answered %d in %.0f ms", ev->query[0], res->status,
                 res->total_ms);
    }
    if (!record(a, c, verdict, ev->query[0], values, bound, why)) {
        maybe_pass(a);
    }
out:
    free(values);
    eval_free(ev);
}

static void http_start(struct kn_analysis_runner *a, struct check *c, struct eval *ev)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT"};
    const struct kn_http_check *h = c->h;
    struct kn_http_client *http = kn_stage_run_http(a->run);
    char **headers = kn_calloc(h->headers.count + 1, sizeof(*headers));
    char window[32];
    char *url;
    struct kn_http_request req = {
        .method = methods[h->method],
        .headers = (const char *const *)headers,
        .timeout_ms = (long)h->timeout_ms,
        .max_response = 1 << 20,
    };

    window_of(c, window, sizeof(window));
    /* the variant it probes: its `variant`, else the canary while one runs, as a query's */
    url = fill(a->run, h->url, NULL,
               (h->set & KN_HTTP_CHECK_VARIANT_SET) ? (enum kn_variant)h->variant
               : a->canary_runs                     ? KN_VARIANT_CANARY
                                                    : KN_VARIANT_PRIMARY,
               window);
    req.url = url;
    ev->query[0] = kn_asprintf("%s %s", methods[h->method], url ? url : h->url);
    for (size_t i = 0; i < h->headers.count; i++) {
        headers[i] = kn_asprintf("%s: %s", h->headers.keys[i], h->headers.values[i]);
    }
    if (!url) {
        struct kn_http_response res = {
            .status = 0, .error = "the URL is over 64 KiB once its placeholders are filled in"};
        http_answered(&res, ev);
    } else if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        /* {{variant_url}} is "" while no instance of the variant runs */
        struct kn_http_response res = {
            .status = 0, .error = "no instance of the variant to probe: the URL is not absolute"};
        http_answered(&res, ev);
    } else if (!http || kn_http_request(http, &req, http_answered, ev) < 0) {
        struct kn_http_response res = {.status = 0, .error = "the request could not be made"};
        http_answered(&res, ev);
    }
    for (size_t i = 0; i < h->headers.count; i++) {
        free(headers[i]);
    }
    free(headers);
    free(url);
}

/* ---- the schedule -------------------------------------------------------------------------- */

static void evaluate(struct kn_analysis_runner *a, size_t i)
{
    struct check *c = &a->checks[i];
    struct eval *ev = kn_calloc(1, sizeof(*ev));

    ev->a = a;
    ev->check = i;
    c->eval = ev;
    if (c->m) {
        metric_start(a, c, ev);
    } else {
        http_start(a, c, ev);
    }
}

static void tick(struct kn_analysis_runner *a)
{
    long long now = kn_stage_run_now(a->run), next;

    a->in_tick = 1;
    for (size_t i = 0; i < a->n && !a->concluded; i++) {
        struct check *c = &a->checks[i];
        if (c->next_at <= now && !c->eval) {
            c->next_at += c->interval_ms;
            if (c->next_at <= now) {
                c->next_at = now + c->interval_ms; /* late (a busy loop): no burst */
            }
            evaluate(a, i);
        }
    }
    maybe_pass(a);
    a->in_tick = 0;
    if (a->concluded) {
        deliver(a);
        return;
    }
    next = a->deadline;
    for (size_t i = 0; i < a->n; i++) {
        long long at = a->checks[i].next_at;
        if (a->checks[i].eval && at <= now) {
            at = now + 100; /* due while the last one is still in flight: look again soon */
        }
        if (at < next) {
            next = at;
        }
    }
    if (next <= now) {
        /* the deadline has come with evaluations in flight: they end the run; look again
         * soon in case one is due meanwhile (never a 0 ms timer, which would spin the loop) */
        next = now + 100;
    }
    timer_start(a, next - now);
}

/* ---- strategy previous --------------------------------------------------------------------- */

/* The successful deployments at the last good commit, newest first: a self-heal, a sync or a
 * rollback may have deployed it again since the one that ran the analysis. */
struct prev_find {
    const char *commit;
    long long ids[16];
    size_t n;
};

static int prev_deployment(const struct kn_deployment *d, void *data)
{
    struct prev_find *f = data;

    if (d->status == KN_DEPLOY_SUCCESS && strcmp(d->commit, f->commit) == 0) {
        f->ids[f->n++] = d->id;
    }
    return f->n == sizeof(f->ids) / sizeof(f->ids[0]);
}

struct prev_samples {
    struct check *c;
};

/* The values of the first variant of each evaluation of the check, whatever its verdict: the
 * deployment succeeded with them, and a `previous` check has no PASS until it has had samples
 * to compare with (the first analysis of a check is INCONCLUSIVE), so waiting for PASSes would
 * leave it INCONCLUSIVE for ever. */
static int prev_record(const struct kn_analysis_record *r, void *data)
{
    struct check *c = ((struct prev_samples *)data)->c;
    json_t *j, *values;
    const char *key;
    size_t i;
    json_t *v;

    if (strcmp(r->check, c->name) != 0 || !(j = kn_analysis_values_read(r->values_json))) {
        return 0;
    }
    json_object_foreach(json_object_get(j, "values"), key, values)
    {
        json_array_foreach(values, i, v)
        {
            if (json_is_number(v)) {
                c->prev = kn_reallocarray(c->prev, c->nprev + 1, sizeof(*c->prev));
                c->prev[c->nprev++] = json_number_value(v);
            }
        }
        break;
    }
    json_decref(j);
    return 0;
}

static void load_previous(struct kn_stage_run *run, struct check *c)
{
    const struct kn_deployment *d = kn_stage_run_deployment(run);
    struct prev_find f = {.commit = kn_stage_run_last_good_commit(run)};
    struct prev_samples ps = {.c = c};

    if (!f.commit) {
        return;
    }
    kn_store_deployments(kn_stage_run_store(run), d->repo, d->app, 50, prev_deployment, &f);
    for (size_t i = 0; i < f.n && c->nprev == 0; i++) {
        kn_store_analysis_list(kn_stage_run_store(run), f.ids[i], prev_record, &ps);
    }
    snprintf(c->prev_name, sizeof(c->prev_name), "previous %.7s", f.commit);
    if (c->nprev == 0) {
        free(c->prev);
        c->prev = NULL;
    }
}

/* Whether a canary runs when stage `index` starts: a CANARY_ROLLOUT started before it and no
 * CANARY_CLEAN since. */
static int canary_runs_before(struct kn_stage_run *run)
{
    const struct kn_stage_config *const *plan;
    size_t n = kn_stage_run_plan(run, &plan);
    int runs = 0;

    for (size_t i = 0; i < n && (int)i < kn_stage_run_index(run); i++) {
        if (plan[i]->kind == &kn_stage_canary_rollout && kn_stage_run_started(run, i)) {
            runs = 1;
        } else if (plan[i]->kind == &kn_stage_canary_clean && kn_stage_run_started(run, i)) {
            runs = 0;
        }
    }
    return runs;
}

int kn_analysis_runner_start(struct kn_stage_run *run, const struct kn_analysis_runner_cfg *cfg,
                             struct kn_analysis_runner **out)
{
    const struct kn_analysis_options *o = cfg->options;
    const struct kn_analysis_metric *metrics = o->metrics.items;
    const struct kn_http_check *https = o->http.items;
    struct kn_analysis_runner *a = kn_calloc(1, sizeof(*a));
    long long now = kn_stage_run_now(run);
    char key[96], buf[64];
    char *stored;
    int resumed = 0;

    a->run = run;
    a->options = o;
    a->record_index = cfg->record_index;
    snprintf(a->meta_prefix, sizeof(a->meta_prefix), "%s", cfg->meta_prefix ? cfg->meta_prefix : "");
    a->done = cfg->done;
    a->data = cfg->data;
    a->n = o->metrics.count + o->http.count;
    a->checks = kn_calloc(a->n + 1, sizeof(*a->checks));
    a->canary_runs = canary_runs_before(run);
    snprintf(key, sizeof(key), "%sdeadline", a->meta_prefix);
    if ((stored = kn_stage_run_meta_get(run, key)) != NULL) {
        a->deadline = atoll(stored);
        resumed = 1;
        free(stored);
    } else {
        a->deadline = cfg->duration_ms > 0 ? now + cfg->duration_ms : 0;
        snprintf(buf, sizeof(buf), "%lld", a->deadline);
        kn_stage_run_meta_set(run, key, buf);
    }
    if (a->deadline == 0) {
        a->deadline = LLONG_MAX; /* until stopped */
    }
    for (size_t i = 0; i < a->n; i++) {
        struct check *c = &a->checks[i];
        if (i < o->metrics.count) {
            c->m = &metrics[i];
            c->name = c->m->name;
            c->interval_ms = c->m->interval_ms;
        } else {
            c->h = &https[i - o->metrics.count];
            c->name = c->h->name;
            c->interval_ms = c->h->interval_ms;
        }
        if (c->interval_ms < 1000) {
            c->interval_ms = 1000;
        }
        /* the first window is the one after the start; after a restart, the time that is left
         * is evaluated at least once, even when it is shorter than the interval */
        c->next_at = now + c->interval_ms;
        if (resumed && c->next_at > a->deadline) {
            c->next_at = a->deadline > now ? a->deadline : now;
        }
        load_counts(a, c);
        if (c->m && c->m->strategy == KN_STRATEGY_PREVIOUS) {
            load_previous(run, c);
        }
    }
    if (a->deadline == LLONG_MAX) {
        kn_stage_run_log(run, "analysing %zu checks until stopped", a->n);
    } else {
        kn_stage_run_log(run, "analysing %zu checks until %s from now", a->n,
                         kn_duration_format(a->deadline > now ? a->deadline - now : 0, buf,
                                            sizeof(buf)));
    }
    *out = a;
    timer_start(a, 0); /* the first look from the loop: done never runs from inside start */
    return 0;
}

void kn_analysis_runner_stop(struct kn_analysis_runner *r)
{
    if (!r || r->in_done) {
        return; /* freed when done returns */
    }
    runner_free(r);
}

/* ---- the ANALYSIS stage: one runner over its duration --------------------------------------- */

static void analysis_done(struct kn_stage_run *run, int ok, const char *reason, void *data)
{
    (void)data;
    *kn_stage_run_state(run) = NULL;
    if (ok) {
        kn_stage_run_finish(run, 1, NULL);
    } else {
        kn_stage_run_finish(run, 0, "%s", reason ? reason : "");
    }
}

void kn_analysis_start(struct kn_stage_run *run)
{
    const struct kn_analysis_options *o = kn_stage_run_config(run)->with;
    const struct kn_analysis_runner_cfg cfg = {
        .options = o,
        .record_index = kn_stage_run_index(run),
        .meta_prefix = "",
        .duration_ms = o->duration_ms,
        .done = analysis_done,
    };
    struct kn_analysis_runner *r = NULL;

    kn_analysis_runner_start(run, &cfg, &r);
    *kn_stage_run_state(run) = r;
}

void kn_analysis_cancel(struct kn_stage_run *run)
{
    kn_analysis_runner_stop(*kn_stage_run_state(run));
    *kn_stage_run_state(run) = NULL;
}
