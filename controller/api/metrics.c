/*
 * GET /metrics: counts and durations from the state store, the canary weight of each app from
 * its platform, and the four DORA metrics per app, computed on each scrape (the store's queries
 * are grouped counts, and the DORA metrics read the final deployments once); then kanaria's own
 * metrics, kept in memory since start (kanaria/selfmetrics.h), and the process's from /proc.
 */
#include "api/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/server.h"
#include "kanaria/log.h"
#include "kanaria/selfmetrics.h"

#define KN_DAY_MS (24LL * 3600 * 1000)

/* ---- the text format ------------------------------------------------------------------------- */

static void kn_metrics_head(struct kn_buf *out, const char *name, const char *type,
                            const char *help)
{
    kn_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",...} value; labels is a NULL-terminated list of key, value pairs. */
static void kn_metrics_sample(struct kn_buf *out, const char *name, const char *const *labels,
                              double value)
{
    kn_buf_adds(out, name);
    for (size_t i = 0; labels && labels[i]; i += 2) {
        kn_buf_addf(out, "%s%s=\"", i ? "," : "{", labels[i]);
        kn_selfmetrics_label_value(out, labels[i + 1]);
        kn_buf_addch(out, '"');
    }
    if (labels && labels[0]) {
        kn_buf_addch(out, '}');
    }
    kn_buf_addf(out, " %.15g\n", value);
}

/* ---- DORA ------------------------------------------------------------------------------------ */

static int kn_metrics_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorted in place), or -1 when n is 0. */
static double kn_metrics_median(double *v, size_t n)
{
    if (n == 0) {
        return -1;
    }
    qsort(v, n, sizeof(*v), kn_metrics_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int kn_api_dora_counts(const struct kn_deployment *d)
{
    return d->trigger[0] == '\0' || strcmp(d->trigger, "commit") == 0;
}

void kn_api_dora_compute(const struct kn_deployment *d, const struct kn_store_failure_times *f,
                         size_t n, long long now_ms, struct kn_api_dora *out)
{
    double *lead = kn_calloc(n + 1, sizeof(*lead));
    double *restore = kn_calloc(n + 1, sizeof(*restore));
    double *detect = kn_calloc(n + 1, sizeof(*detect));
    double *rollback = kn_calloc(n + 1, sizeof(*rollback));
    size_t nlead = 0, nrestore = 0, ndetect = 0, nrollback = 0;
    size_t recent = 0, failures = 0, successes = 0;
    long long failing_since = 0;

    for (size_t i = 0; i < n; i++) {
        int ok = d[i].status == KN_DEPLOY_SUCCESS;
        if (!kn_api_dora_counts(&d[i])) {
            continue;
        }
        if (d[i].finished_at >= now_ms - KN_DORA_FREQUENCY_DAYS * KN_DAY_MS && ok) {
            recent++;
        }
        if (d[i].finished_at >= now_ms - KN_DORA_FAILURE_DAYS * KN_DAY_MS) {
            successes += ok;
            failures += !ok;
        }
        if (!ok) {
            if (!failing_since) {
                failing_since = d[i].finished_at;
            }
            continue;
        }
        if (failing_since) {
            restore[nrestore++] = (double)(d[i].finished_at - failing_since) / 1000.0;
            failing_since = 0;
        }
    }
    /* the last ones, newest first */
    for (size_t i = n; i-- > 0;) {
        const struct kn_store_failure_times *t = f ? &f[i] : NULL;
        long long detected;
        if (!kn_api_dora_counts(&d[i])) {
            continue;
        }
        if (d[i].status == KN_DEPLOY_SUCCESS && nlead < KN_DORA_LEAD_TIME_LAST) {
            long long from = d[i].commit_time > 0 ? d[i].commit_time : d[i].created_at;
            lead[nlead++] = (double)(d[i].finished_at - from) / 1000.0;
        }
        if (d[i].status != KN_DEPLOY_FAILURE || !t) {
            continue;
        }
        if (t->first_fail_at > 0 && d[i].started_at > 0 && ndetect < KN_DORA_FAILURES_LAST) {
            detect[ndetect++] = (double)(t->first_fail_at - d[i].started_at) / 1000.0;
        }
        detected = t->first_fail_at > 0 ? t->first_fail_at : t->rollback_started_at;
        if (detected > 0 && t->rollback_finished_at >= detected &&
            nrollback < KN_DORA_FAILURES_LAST) {
            rollback[nrollback++] = (double)(t->rollback_finished_at - detected) / 1000.0;
        }
    }
    out->frequency_per_day = (double)recent / KN_DORA_FREQUENCY_DAYS;
    out->lead_time_seconds = kn_metrics_median(lead, nlead);
    out->change_failure_rate =
        successes + failures ? (double)failures / (double)(successes + failures) : -1;
    out->time_to_restore_seconds = kn_metrics_median(restore, nrestore);
    out->time_to_detect_seconds = kn_metrics_median(detect, ndetect);
    out->rollback_restore_seconds = kn_metrics_median(rollback, nrollback);
    free(lead);
    free(restore);
    free(detect);
    free(rollback);
}

/* ---- from the store -------------------------------------------------------------------------- */

struct kn_metrics_tallies {
    struct kn_store_tally *items;
    size_t n;
};

static int kn_metrics_collect_tally(const struct kn_store_tally *t, void *data)
{
    struct kn_metrics_tallies *l = data;

    l->items = kn_reallocarray(l->items, l->n + 1, sizeof(*l->items));
    l->items[l->n++] = *t;
    return 0;
}

struct kn_metrics_outcomes {
    struct kn_deployment *items;
    size_t n;
};

static int kn_metrics_collect_outcome(const struct kn_deployment *d, void *data)
{
    struct kn_metrics_outcomes *l = data;

    l->items = kn_reallocarray(l->items, l->n + 1, sizeof(*l->items));
    l->items[l->n] = *d;
    /* the texts are borrowed for the call: not kept, not used */
    l->items[l->n].message = NULL;
    l->items[l->n++].reason = NULL;
    return 0;
}

struct kn_metrics_failures {
    struct kn_store_failure_times *items; /* by deployment id */
    size_t n;
};

static int kn_metrics_collect_failure(const struct kn_store_failure_times *t, void *data)
{
    struct kn_metrics_failures *l = data;

    l->items = kn_reallocarray(l->items, l->n + 1, sizeof(*l->items));
    l->items[l->n++] = *t;
    return 0;
}

static int kn_metrics_failure_cmp(const void *key, const void *item)
{
    long long id = *(const long long *)key;
    long long other = ((const struct kn_store_failure_times *)item)->deployment;

    return (id > other) - (id < other);
}

struct kn_metrics_apps {
    char (*names)[128];
    int *orphaned; /* an app of that name runs orphaned (its folder is gone, not pruned) */
    size_t n;
};

/* App names, each once (an app may be in several repositories). */
static int kn_metrics_collect_app(const struct kn_app_state *a, void *data)
{
    struct kn_metrics_apps *l = data;
    int orphaned = a->orphaned_at != 0 && a->pruned_at == 0;

    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->names[i], a->name) == 0) {
            l->orphaned[i] |= orphaned;
            return 0;
        }
    }
    l->names = kn_reallocarray(l->names, l->n + 1, sizeof(*l->names));
    l->orphaned = kn_reallocarray(l->orphaned, l->n + 1, sizeof(*l->orphaned));
    l->orphaned[l->n] = orphaned;
    snprintf(l->names[l->n++], sizeof(*l->names), "%s", a->name);
    return 0;
}

static void kn_metrics_dora(struct kn_buf *out, const struct kn_metrics_outcomes *o,
                            const struct kn_metrics_failures *fl, long long now_ms)
{
    enum { KN_METRICS_DORA_SERIES = 6 };
    static const char *const names[KN_METRICS_DORA_SERIES] = {
        "kanaria_dora_deployment_frequency",
        "kanaria_dora_lead_time_seconds",
        "kanaria_dora_change_failure_rate",
        "kanaria_dora_time_to_restore_seconds",
        "kanaria_dora_time_to_detect_seconds",
        "kanaria_dora_rollback_restore_seconds",
    };
    static const char *const helps[KN_METRICS_DORA_SERIES] = {
        "Successful deployments of new commits per day over the last 7 days (self-heals, syncs, "
        "rollbacks and retries do not count, here nor below).",
        "Median time from the commit (its committer time; the deployment's creation when kanaria did "
        "not record it) to SUCCESS over the last 20 successful deployments of new commits.",
        "Share of final deployments of new commits in the last 30 days that ended in FAILURE "
        "(FAILURE / (SUCCESS + FAILURE)).",
        "Median time from the first FAILURE of a run of failed deployments to the SUCCESS that "
        "ended it.",
        "Median time from a failed deployment's start to its first failing analysis evaluation, "
        "over the last 20 failures that had one.",
        "Median time from a failure's detection (its first failing analysis evaluation, else the "
        "rollback's start) to the end of its rollback, over the last 20 failures that rolled "
        "back.",
    };
    struct kn_api_dora *dora = kn_calloc(o->n + 1, sizeof(*dora));
    struct kn_store_failure_times *times = kn_calloc(o->n + 1, sizeof(*times));
    size_t *first = kn_calloc(o->n + 1, sizeof(*first));
    size_t napps = 0;

    /* each failure's times beside it */
    for (size_t i = 0; i < o->n; i++) {
        const struct kn_store_failure_times *t =
            fl->n ? bsearch(&o->items[i].id, fl->items, fl->n, sizeof(*fl->items),
                            kn_metrics_failure_cmp)
                  : NULL;
        if (t) {
            times[i] = *t;
        }
    }
    /* outcomes are ordered by app: one group per app */
    for (size_t i = 0; i < o->n;) {
        size_t j = i;
        while (j < o->n && strcmp(o->items[j].app, o->items[i].app) == 0) {
            j++;
        }
        kn_api_dora_compute(&o->items[i], &times[i], j - i, now_ms, &dora[napps]);
        first[napps++] = i;
        i = j;
    }
    for (size_t m = 0; m < KN_METRICS_DORA_SERIES; m++) {
        kn_metrics_head(out, names[m], "gauge", helps[m]);
        for (size_t k = 0; k < napps; k++) {
            const double v[KN_METRICS_DORA_SERIES] = {
                dora[k].frequency_per_day,       dora[k].lead_time_seconds,
                dora[k].change_failure_rate,     dora[k].time_to_restore_seconds,
                dora[k].time_to_detect_seconds,  dora[k].rollback_restore_seconds};
            const char *labels[] = {"app", o->items[first[k]].app, NULL};
            if (v[m] >= 0) {
                kn_metrics_sample(out, names[m], labels, v[m]);
            }
        }
    }
    free(dora);
    free(times);
    free(first);
}

int kn_api_metrics_render(struct kn_buf *out, struct kn_store *st, long long now_ms,
                          kn_api_live_cb live, void *data)
{
    struct kn_metrics_tallies deploys = {0}, stages = {0}, analysis = {0};
    struct kn_metrics_outcomes outcomes = {0};
    struct kn_metrics_failures failures = {0};
    struct kn_metrics_apps apps = {0};
    int rc;

    if ((rc = kn_store_tally_deployments(st, kn_metrics_collect_tally, &deploys)) < 0 ||
        (rc = kn_store_tally_stages(st, kn_metrics_collect_tally, &stages)) < 0 ||
        (rc = kn_store_tally_analysis(st, kn_metrics_collect_tally, &analysis)) < 0 ||
        (rc = kn_store_outcomes(st, kn_metrics_collect_outcome, &outcomes)) < 0 ||
        (rc = kn_store_failure_times(st, kn_metrics_collect_failure, &failures)) < 0 ||
        (rc = kn_store_apps(st, NULL, kn_metrics_collect_app, &apps)) < 0) {
        goto out;
    }
    kn_metrics_head(out, "kanaria_build_info", "gauge", "The running kanaria's version.");
    kn_metrics_sample(out, "kanaria_build_info",
                      (const char *const[]){"version", KANARIA_VERSION, NULL}, 1);

    {
        long long errors = 0;
        const char *why = kn_store_storage_error(st, &errors);
        kn_metrics_head(out, "kanaria_storage_error", "gauge",
                        "1 while the state store cannot be written (a full disk under dataDir); 0 "
                        "once a write works again.");
        kn_metrics_sample(out, "kanaria_storage_error", NULL, why[0] ? 1 : 0);
        kn_metrics_head(out, "kanaria_store_write_errors_total", "counter",
                        "Writes to the state store that failed for want of space or an I/O "
                        "error, since kanaria started.");
        kn_metrics_sample(out, "kanaria_store_write_errors_total", NULL, (double)errors);
    }

    kn_metrics_head(out, "kanaria_deployments_total", "counter",
                    "Deployments recorded, by app and status (result); a deployment that is not "
                    "final yet counts under its current status.");
    for (size_t i = 0; i < deploys.n; i++) {
        const struct kn_store_tally *t = &deploys.items[i];
        kn_metrics_sample(out, "kanaria_deployments_total",
                          (const char *const[]){"app", t->app, "result", t->name, NULL},
                          (double)t->count);
    }

    kn_metrics_head(out, "kanaria_stage_duration_seconds", "summary",
                    "Time the finished pipeline stages took, by app and stage kind.");
    for (size_t i = 0; i < stages.n; i++) {
        const struct kn_store_tally *t = &stages.items[i];
        const char *const labels[] = {"app", t->app, "stage", t->name, NULL};
        kn_metrics_sample(out, "kanaria_stage_duration_seconds_sum", labels, t->sum_seconds);
        kn_metrics_sample(out, "kanaria_stage_duration_seconds_count", labels, (double)t->count);
    }

    kn_metrics_head(out, "kanaria_analysis_evaluations_total", "counter",
                    "Analysis checks evaluated, by app, check and verdict.");
    for (size_t i = 0; i < analysis.n; i++) {
        const struct kn_store_tally *t = &analysis.items[i];
        kn_metrics_sample(
            out, "kanaria_analysis_evaluations_total",
            (const char *const[]){"app", t->app, "check", t->name, "verdict", t->verdict, NULL},
            (double)t->count);
    }

    kn_metrics_head(out, "kanaria_canary_weight_percent", "gauge",
                    "Percent of the app's traffic on its canary, as its platform reports it now.");
    for (size_t i = 0; live && i < apps.n; i++) {
        struct kn_live_state ls;
        memset(&ls, 0, sizeof(ls));
        if (live(data, apps.names[i], &ls) == 0 && !ls.error) {
            kn_metrics_sample(out, "kanaria_canary_weight_percent",
                              (const char *const[]){"app", apps.names[i], NULL},
                              ls.variant[KN_VARIANT_CANARY].weight);
        }
        kn_live_state_release(&ls);
    }

    kn_metrics_head(out, "kanaria_app_orphaned", "gauge",
                    "1 while the app runs orphaned: its folder left the repository and it was not "
                    "pruned.");
    for (size_t i = 0; i < apps.n; i++) {
        kn_metrics_sample(out, "kanaria_app_orphaned",
                          (const char *const[]){"app", apps.names[i], NULL},
                          (double)apps.orphaned[i]);
    }

    kn_metrics_dora(out, &outcomes, &failures, now_ms);
out:
    free(deploys.items);
    free(stages.items);
    free(analysis.items);
    free(outcomes.items);
    free(failures.items);
    free(apps.names);
    free(apps.orphaned);
    return rc;
}

/* ---- SLOs ------------------------------------------------------------------------------------ */

void kn_api_metrics_slo(struct kn_buf *out, const struct kn_slo_reading *r, size_t n)
{
    static const char *const windows[KN_SLO_BURN_WINDOWS] = {"1h", "6h", "3d"};

    kn_metrics_head(out, "kanaria_slo_sli", "gauge",
                    "The SLO's SLI over its window (good/total events), as last read.");
    for (size_t i = 0; i < n; i++) {
        if (r[i].known && !r[i].error[0]) {
            kn_metrics_sample(out, "kanaria_slo_sli",
                              (const char *const[]){"repo", r[i].repo, "app", r[i].app, "slo",
                                                    r[i].slo, NULL},
                              r[i].sli);
        }
    }
    kn_metrics_head(out, "kanaria_slo_error_budget_remaining", "gauge",
                    "The share of the SLO's error budget left over its window (1: untouched, "
                    "below 0: overspent).");
    for (size_t i = 0; i < n; i++) {
        if (r[i].known && !r[i].error[0]) {
            kn_metrics_sample(out, "kanaria_slo_error_budget_remaining",
                              (const char *const[]){"repo", r[i].repo, "app", r[i].app, "slo",
                                                    r[i].slo, NULL},
                              r[i].remaining);
        }
    }
    kn_metrics_head(out, "kanaria_slo_burn_rate", "gauge",
                    "How fast the SLO's error budget burns over a window (1: exactly spent at "
                    "the end of the SLO's window).");
    for (size_t i = 0; i < n; i++) {
        for (int w = 0; w < KN_SLO_BURN_WINDOWS && r[i].known && !r[i].error[0]; w++) {
            if (r[i].burn[w] == r[i].burn[w]) { /* not NaN: the window had data */
                kn_metrics_sample(out, "kanaria_slo_burn_rate",
                                  (const char *const[]){"repo", r[i].repo, "app", r[i].app,
                                                        "slo", r[i].slo, "window", windows[w],
                                                        NULL},
                                  r[i].burn[w]);
            }
        }
    }
}

struct kn_metrics_slos {
    struct kn_slo_reading *items;
    size_t n;
};

static void kn_metrics_collect_slo(const struct kn_slo_reading *r, void *data)
{
    struct kn_metrics_slos *s = data;

    s->items = kn_reallocarray(s->items, s->n + 1, sizeof(*s->items));
    s->items[s->n++] = *r;
}

/* ---- the route ------------------------------------------------------------------------------- */

/* The API's own counters: calls refused since start, by code and route (non-zero ones). */
static void kn_metrics_refused(struct kn_buf *out, const struct kn_api *api)
{
    static const char *const codes[2] = {"401", "403"};

    kn_metrics_head(out, "kanaria_api_refused_total", "counter",
                    "API calls refused since kanaria started, by status code and route.");
    for (size_t c = 0; c < 2; c++) {
        for (size_t r = 0; r < KN_API_NROUTES; r++) {
            if (api->refused[c][r]) {
                kn_metrics_sample(
                    out, "kanaria_api_refused_total",
                    (const char *const[]){"code", codes[c], "route", kn_api_route_names[r], NULL},
                    (double)api->refused[c][r]);
            }
        }
    }
}

void kn_api_metrics(struct kn_api *api, h2o_req_t *req)
{
    struct kn_buf out;
    struct timespec ts;
    long long now;
    char *text;
    size_t len;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    if (kn_api_metrics_render(&out, api->deps.store, now, api->deps.live, api->deps.data) < 0) {
        kn_buf_release(&out);
        kn_api_reply_error(req, 503, "cannot read the state store");
        return;
    }
    if (api->deps.slos) {
        struct kn_metrics_slos slos = {0};
        api->deps.slos(api->deps.data, NULL, NULL, kn_metrics_collect_slo, &slos);
        kn_api_metrics_slo(&out, slos.items, slos.n);
        free(slos.items);
    }
    kn_metrics_refused(&out, api);
    kn_selfmetrics_render(NULL, &out);
    kn_selfmetrics_render_process(&out, "/proc/self", "/proc/stat");
    text = kn_buf_detach(&out, &len);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_send_inline(req, text, len); /* copies into the request's pool */
    free(text);
}
