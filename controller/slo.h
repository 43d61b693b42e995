/*
 * SLOs: the monitor that reads each app's SLIs, error budgets and burn rates from its metrics
 * provider, and the error-budget gate that holds a PIPELINE deployment BLOCKED while a budget is
 * spent (spec.errorBudgetPolicy).
 *
 * The monitor learns an app's SLOs (spec.slos, shared ones filled in) from the gate's calls,
 * which come with the app loaded at the deployment's commit, and from kn_slo_monitor_learn.
 * Every interval it reads each SLO: the good and the total events over the SLO's window and over
 * 1h, 6h and 3d, as instant queries of its metrics provider (each with a timeout). From them:
 *
 *   SLI(w)            = good(w) / total(w)             (1 when there were no events)
 *   budget remaining  = 1 - (1 - SLI(window)) / (1 - objective)   (negative once overspent)
 *   burn rate(w)      = (1 - SLI(w)) / (1 - objective)
 *
 * It keeps the latest reading of each SLO in memory (none after a restart: the gate waits for a
 * fresh one), with its time and, when the provider failed, the error (never a silent pass), and
 * kicks the engine after each reading so that a held deployment is decided again.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_SLO_H
#define KANARIA_SLO_H

#include <uv.h>

#include "kanaria/app.h"
#include "kanaria/gate.h"
#include "kanaria/metrics.h"
#include "kanaria/store.h"

/* The burn-rate windows, besides the SLO's own: 1h, 6h, 3d. */
#define KN_SLO_BURN_WINDOWS 3
extern const long long kn_slo_burn_windows_ms[KN_SLO_BURN_WINDOWS];

/* How long one query may take. */
#define KN_SLO_QUERY_TIMEOUT_MS 10000

/* The deployment meta key (KN_STORE_DEPLOYMENT_META) of an approval under `action: approve`:
 * who approved. */
#define KN_SLO_APPROVED_META "slo_approved_by"

/* The latest reading of one SLO of one app. */
struct kn_slo_reading {
    char repo[128];
    char app[128];
    char slo[128];
    char provider[128];     /* the provider asked ("" for the first one) */
    double objective;       /* percent */
    long long window_ms;
    int known;              /* a reading was taken (at_ms), with or without an error */
    long long at_ms;
    char error[512];        /* "": the numbers hold; else why the SLO could not be read */
    double sli;             /* over the window, 0..1 */
    double remaining;       /* budget remaining, a ratio (1: untouched, < 0: overspent) */
    double burn[KN_SLO_BURN_WINDOWS]; /* NaN: that window gave no data */
};

/* ---- the numbers (pure) ------------------------------------------------------------------- */

/* good/total clamped to [0, 1]; 1 when total is 0 (no events: nothing failed). */
double kn_slo_sli(double good, double total);
/* 1 - (1 - sli) / (1 - objective/100). */
double kn_slo_budget_remaining(double sli, double objective_pct);
/* (1 - sli) / (1 - objective/100). */
double kn_slo_burn_rate(double sli, double objective_pct);
/* A Prometheus-style duration for {{window}}: "30d", "6h", "90m", "45s". */
const char *kn_slo_window_format(long long ms, char *buf, size_t size);
/* `query` with {{window}}, {{app}} and {{repository}} filled in (caller frees). */
char *kn_slo_query_fill(const char *query, const char *window, const char *app,
                        const char *repo);

/*
 * The gate's verdict for an app with `policy` from the readings of its SLOs (n of them, in the
 * app's order; a reading with !known: none yet), at now_ms. approved_by: who approved the
 * deployment under `action: approve`, NULL: nobody. Spent budget: BLOCKED with the SLO, SLI,
 * objective, window and budget in numbers; no reading yet: PLANNED; a failed reading: BLOCKED
 * naming the error (onError block) or RUNNING recorded with it (allow); else RUNNING ("").
 */
void kn_slo_decide(const struct kn_error_budget_policy *policy,
                   const struct kn_slo_reading *readings, size_t n, const char *approved_by,
                   long long now_ms, struct kn_gate_verdict *out);

/* ---- the monitor -------------------------------------------------------------------------- */

struct kn_slo_monitor_deps {
    uv_loop_t *loop;
    struct kn_store *store;  /* approvals (deployment meta); may be NULL */
    long long interval_ms;   /* > 0 */
    /* The metrics provider `name` (NULL: the first), or NULL when there is none. */
    struct kn_metrics *(*metrics)(void *data, const char *name);
    /* A new reading was taken (the engine should ask its held deployments again). */
    void (*kick)(void *data);
    long long (*now_ms)(void *data); /* NULL: the system clock */
    void *data;
};

struct kn_slo_monitor;

int kn_slo_monitor_new(struct kn_slo_monitor **out, const struct kn_slo_monitor_deps *deps);

/* The SLOs of app (as loaded) of repository `repo`: new ones are read soon, changed ones
 * (queries, objective, window, provider) lose their reading and are read again. */
void kn_slo_monitor_learn(struct kn_slo_monitor *m, const char *repo, const struct kn_app *app);

/* Read every SLO now (also done every interval). */
void kn_slo_monitor_refresh(struct kn_slo_monitor *m);

/* Call cb with each reading of repo's app `app` (NULL: of every app of repo; repo NULL: of
 * every repository). The reading is borrowed for the call. */
typedef void (*kn_slo_reading_cb)(const struct kn_slo_reading *r, void *data);
void kn_slo_monitor_each(const struct kn_slo_monitor *m, const char *repo, const char *app,
                         kn_slo_reading_cb cb, void *data);

/* Stop the timer; queries in flight still call back (and are ignored). Free after uv_run
 * returns; NULL is a no-op for both. */
void kn_slo_monitor_stop(struct kn_slo_monitor *m);
void kn_slo_monitor_free(struct kn_slo_monitor *m);

/* The error-budget gate: BLOCKED with the SLO, its SLI and budget in numbers, PLANNED while no
 * reading is there yet, or RUNNING. m may be NULL (no readings: the policy's onError says). */
void kn_slo_gate(struct kn_slo_monitor *m, const struct kn_deployment *d,
                 const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out);

#endif /* KANARIA_SLO_H */
