/*
 * Postmortem drafts from the store: what happened to one failed or rolled-back deployment, in
 * the order it happened, with the numbers kanaria recorded. Blameless: it says what the system
 * did and saw, never who is to blame; root cause and follow-ups are left for people to write.
 */
#include "postmortem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/stage.h"

/* How the rollback stage is named in the stages table (stages/rollback.c). */
#define KN_PM_ROLLBACK "ROLLBACK"

/* The texts the rollback logs as it starts each of its steps (stages/rollback.c). */
static const char *const kn_pm_rollback_steps[] = {
    "traffic back to the primary",
    "re-applying the last good commit as the primary",
    "removing the canary",
    "removing the baseline",
    "onRollback: ",
    "rollback step ",
};

/* Event types that mark the deployment's course before its end on the timeline (gates, the
 * start, approvals, what operators asked); STAGE_LOG lines and the PLANNED event (the plan is
 * its own entry) are not among them, and ROLLING_BACK, FAILURE and CANCELLED come in their own
 * places. */
static const char *const kn_pm_timeline_events[] = {
    "BLOCKED",  "FROZEN",           "GATE_PASSED",    "RUNNING",           "WAITING_APPROVAL",
    "APPROVED", "REJECTED",         "SKIP_REQUESTED", "PROMOTE_REQUESTED", "CANCEL_REQUESTED",
    "BREAK_GLASS",
};

struct kn_pm {
    struct kn_store *st;
    struct kn_deployment d;
    json_t *pipeline;  /* what the engine recorded at the start, or NULL */
    json_t *stages;    /* [{index, name, status, started_at, finished_at}] */
    json_t *events;    /* [{at, type, actor, message}] */
    json_t *fails;     /* the analysis records with verdict FAIL, oldest first */
    json_t *fail;      /* the first of them (borrowed), or NULL */
    json_t *timeline;  /* [{at, what, seq}] in the order added; sorted at the end */
    json_t *rollback;  /* the ROLLBACK stage, borrowed from stages, or NULL */
};

/* ---- helpers --------------------------------------------------------------------------------- */

/* ms since the epoch as "2026-12-07T03:12:59.123Z" (UTC) into buf. */
static const char *kn_pm_time(long long ms, char *buf, size_t size)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char day[32];

    gmtime_r(&s, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03lldZ", day, ms % 1000);
    return buf;
}

/* A span as "450ms", "12.3s", "4m05s", "2h03m". */
static const char *kn_pm_span(long long ms, char *buf, size_t size)
{
    if (ms < 0) {
        ms = 0;
    }
    if (ms < 1000) {
        snprintf(buf, size, "%lldms", ms);
    } else if (ms < 60000) {
        snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
    } else if (ms < 3600000) {
        snprintf(buf, size, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
    } else {
        snprintf(buf, size, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
    }
    return buf;
}

static long long kn_pm_int(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static const char *kn_pm_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

static void kn_pm_at(struct kn_pm *pm, long long at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One timeline entry; entries at the same time keep the order they were added in. */
static void kn_pm_at(struct kn_pm *pm, long long at, const char *fmt, ...)
{
    va_list ap;
    char *what;

    if (at <= 0) {
        return;
    }
    va_start(ap, fmt);
    what = kn_vasprintf(fmt, ap);
    va_end(ap);
    json_array_append_new(pm->timeline,
                          json_pack("{s:I, s:s, s:I}", "at", (json_int_t)at, "what", what, "seq",
                                    (json_int_t)json_array_size(pm->timeline)));
    free(what);
}

static int kn_pm_entry_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    long long ax = kn_pm_int(x, "at"), ay = kn_pm_int(y, "at");

    if (ax != ay) {
        return ax < ay ? -1 : 1;
    }
    return kn_pm_int(x, "seq") < kn_pm_int(y, "seq") ? -1 : 1;
}

/* The timeline oldest first, each entry {at, time, what}: a new array. */
static json_t *kn_pm_timeline_sorted(const json_t *in)
{
    size_t n = json_array_size(in);
    json_t **items = kn_calloc(n + 1, sizeof(*items));
    json_t *out = json_array();
    char t[40];

    for (size_t i = 0; i < n; i++) {
        items[i] = json_array_get(in, i);
    }
    qsort(items, n, sizeof(*items), kn_pm_entry_cmp);
    for (size_t i = 0; i < n; i++) {
        long long at = kn_pm_int(items[i], "at");
        json_array_append_new(out, json_pack("{s:I, s:s, s:s}", "at", (json_int_t)at, "time",
                                             kn_pm_time(at, t, sizeof(t)), "what",
                                             kn_pm_str(items[i], "what")));
    }
    free(items);
    return out;
}

/* The entry of `list` (the pipeline, or the recorded stages) whose index is `index`, or NULL. */
static const json_t *kn_pm_at_index(const json_t *list, long long index)
{
    size_t i;
    json_t *p;

    json_array_foreach(list, i, p)
    {
        if (kn_pm_int(p, "index") == index) {
            return p;
        }
    }
    return NULL;
}

/* The pipeline entry of stage `index`, or NULL. */
static const json_t *kn_pm_pipeline_stage(const struct kn_pm *pm, long long index)
{
    return kn_pm_at_index(pm->pipeline, index);
}

/* "stage 2 ANALYSIS" or "stage 1 TRAFFIC_ROUTING 'traffic'" (with its id) into buf. */
static const char *kn_pm_stage_label(const struct kn_pm *pm, long long index, const char *name,
                                     char *buf, size_t size)
{
    const json_t *p = kn_pm_pipeline_stage(pm, index);
    const char *id = kn_pm_str(p, "id");

    if (!name || !*name) {
        name = kn_pm_str(p, "kind");
    }
    if (p && json_is_true(json_object_get(p, "background"))) {
        snprintf(buf, size, "stage %lld %s (background)", index, name);
    } else if (*id) {
        snprintf(buf, size, "stage %lld %s '%s'", index, name, id);
    } else {
        snprintf(buf, size, "stage %lld %s", index, name);
    }
    return buf;
}

/* The recorded stage of `index`, or NULL. */
static const json_t *kn_pm_stage(const struct kn_pm *pm, long long index)
{
    return kn_pm_at_index(pm->stages, index);
}

/* ---- reading the store ----------------------------------------------------------------------- */

static int kn_pm_collect_stage(const struct kn_stage_state *s, void *data)
{
    struct kn_pm *pm = data;

    json_array_append_new(pm->stages,
                          json_pack("{s:i, s:s, s:s, s:I, s:I}", "index", s->index, "name",
                                    s->name, "status", s->status, "started_at",
                                    (json_int_t)s->started_at, "finished_at",
                                    (json_int_t)s->finished_at));
    return 0;
}

static int kn_pm_collect_event(const struct kn_event *e, void *data)
{
    struct kn_pm *pm = data;

    json_array_append_new(pm->events, json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)e->at,
                                                "type", e->type, "actor", e->actor, "message",
                                                e->message));
    return 0;
}

static int kn_pm_collect_analysis(const struct kn_analysis_record *r, void *data)
{
    struct kn_pm *pm = data;
    json_t *read, *values, *threshold;

    if (strcmp(r->verdict, "FAIL") != 0) {
        return 0;
    }
    read = kn_analysis_values_read(r->values_json);
    values = read ? json_incref(json_object_get(read, "values")) : json_string(r->values_json);
    threshold = json_object_get(read, "threshold");
    json_array_append_new(
        pm->fails, json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:o, s:O}", "check", r->check,
                             "stage", r->stage, "at", (json_int_t)r->at, "verdict", r->verdict,
                             "bound", r->bound, "query", r->query, "values",
                             values ? values : json_null(), "threshold",
                             json_is_object(threshold) ? threshold : json_null()));
    pm->fail = json_array_get(pm->fails, 0);
    json_decref(read);
    return 0;
}

/* Why it has no postmortem (KN_EINVAL), or 0 when it failed or was rolled back. */
static int kn_pm_eligible(const struct kn_pm *pm, struct kn_error *err)
{
    const struct kn_deployment *d = &pm->d;
    const char *status = kn_deploy_status_name(d->status);

    if (d->status == KN_DEPLOY_FAILURE || (d->status == KN_DEPLOY_CANCELLED && pm->rollback)) {
        return 0;
    }
    if (!kn_deploy_status_is_final(d->status)) {
        return kn_error_set(err, KN_EINVAL, NULL,
                            "deployment %lld is %s: a postmortem is written once it has failed "
                            "or been rolled back",
                            d->id, status);
    }
    if (d->status == KN_DEPLOY_CANCELLED) {
        return kn_error_set(err, KN_EINVAL, NULL,
                            "deployment %lld was CANCELLED without a rollback: it neither failed "
                            "nor rolled back, so it has no postmortem",
                            d->id);
    }
    return kn_error_set(err, KN_EINVAL, NULL,
                        "deployment %lld ended %s: it neither failed nor rolled back, so it has "
                        "no postmortem",
                        d->id, status);
}

/* ---- the sections ---------------------------------------------------------------------------- */

static json_t *kn_pm_summary(const struct kn_pm *pm)
{
    const struct kn_deployment *d = &pm->d;

    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:I, s:I}",
                     "repo", d->repo, "app", d->app, "commit", d->commit, "author", d->author,
                     "message", d->message, "trigger", d->trigger, "strategy", d->strategy,
                     "outcome", kn_deploy_status_name(d->status), "rolled_back",
                     pm->rollback != NULL, "reason", d->reason, "commit_time",
                     (json_int_t)d->commit_time, "planned_at", (json_int_t)d->created_at,
                     "started_at", (json_int_t)d->started_at, "finished_at",
                     (json_int_t)d->finished_at);
}

/* The STAGE_LOG line the analysis wrote with the failing verdict ("check 'x': FAIL: why (...)"):
 * its text after "FAIL: ", or "". */
static const char *kn_pm_fail_why(const struct kn_pm *pm, const char *check, long long at,
                                  char *buf, size_t size)
{
    char prefix[200];
    size_t i;
    json_t *e;

    snprintf(prefix, sizeof(prefix), "check '%s': FAIL: ", check);
    buf[0] = '\0';
    json_array_foreach(pm->events, i, e)
    {
        const char *m = kn_pm_str(e, "message");
        if (kn_pm_int(e, "at") >= at && strcmp(kn_pm_str(e, "type"), "STAGE_LOG") == 0 &&
            strncmp(m, prefix, strlen(prefix)) == 0) {
            snprintf(buf, size, "%s", m + strlen(prefix));
            break;
        }
    }
    return buf;
}

/* The deployment's events of the types in `types` (n of them), on the timeline. */
static void kn_pm_events(struct kn_pm *pm, const char *const *types, size_t n)
{
    size_t i;
    json_t *e;

    json_array_foreach(pm->events, i, e)
    {
        const char *type = kn_pm_str(e, "type");
        const char *msg = kn_pm_str(e, "message");
        const char *actor = kn_pm_str(e, "actor");
        int person = *actor && strcmp(actor, "kanaria") != 0;
        for (size_t k = 0; k < n; k++) {
            if (strcmp(type, types[k]) == 0) {
                kn_pm_at(pm, kn_pm_int(e, "at"), "%s%s%s%s%s%s", type, person ? " (by " : "",
                         person ? actor : "", person ? ")" : "", *msg ? ": " : "", msg);
                break;
            }
        }
    }
}

/* The timeline, added in the order things follow each other, so that entries of the same
 * millisecond keep it: the commit and the plan, the gates and the start, each stage with the
 * first failing evaluation inside its own, the rollback, the end. */
static void kn_pm_timeline(struct kn_pm *pm)
{
    static const char *const rolling_back[] = {"ROLLING_BACK"};
    static const char *const final[] = {"FAILURE", "CANCELLED"};
    const struct kn_deployment *d = &pm->d;
    long long fail_stage = pm->fail ? kn_pm_int(pm->fail, "stage") : -1;
    char label[256], why[1024];
    size_t i;
    json_t *s;

    kn_pm_at(pm, d->commit_time, "commit %.7s by %s: %s", d->commit, d->author, d->message);
    kn_pm_at(pm, d->created_at, "planned (%s, trigger %s): %s", d->strategy, d->trigger,
             d->summary);
    kn_pm_events(pm, kn_pm_timeline_events,
                 sizeof(kn_pm_timeline_events) / sizeof(*kn_pm_timeline_events));
    json_array_foreach(pm->stages, i, s)
    {
        long long index = kn_pm_int(s, "index");
        if (s == pm->rollback) {
            continue;
        }
        kn_pm_stage_label(pm, index, kn_pm_str(s, "name"), label, sizeof(label));
        kn_pm_at(pm, kn_pm_int(s, "started_at"), "%s started", label);
        if (index == fail_stage) {
            const char *check = kn_pm_str(pm->fail, "check");
            long long at = kn_pm_int(pm->fail, "at");
            kn_pm_fail_why(pm, check, at, why, sizeof(why));
            kn_pm_at(pm, at, "first failing evaluation: check '%s' (%s): %s", check, label,
                     *why ? why : kn_pm_str(pm->fail, "bound"));
        }
        kn_pm_at(pm, kn_pm_int(s, "finished_at"), "%s finished: %s", label,
                 kn_pm_str(s, "status"));
    }
    kn_pm_events(pm, rolling_back, 1);
    if (pm->rollback) {
        kn_pm_at(pm, kn_pm_int(pm->rollback, "started_at"), "rollback started (stage %lld %s)",
                 kn_pm_int(pm->rollback, "index"), kn_pm_str(pm->rollback, "name"));
        kn_pm_at(pm, kn_pm_int(pm->rollback, "finished_at"), "rollback finished: %s",
                 kn_pm_str(pm->rollback, "status"));
    }
    kn_pm_events(pm, final, 2);
}

/* The failing evaluation that decided: the last FAIL of the check the deployment's reason
 * names ("analysis 'NAME' failed"), the check's first FAIL time and its number of FAILs into
 * *first_at and *count; the first FAIL of all when the reason names no check that failed. */
static const json_t *kn_pm_decisive(const struct kn_pm *pm, long long *first_at, long long *count)
{
    const char *p = strstr(pm->d.reason, "analysis '");
    const json_t *found = NULL, *r;
    char check[160] = "";
    size_t i;

    if (p) {
        p += strlen("analysis '");
        snprintf(check, sizeof(check), "%.*s", (int)strcspn(p, "'"), p);
    }
    *first_at = 0;
    *count = 0;
    json_array_foreach(pm->fails, i, r)
    {
        if (strcmp(kn_pm_str(r, "check"), check) == 0) {
            *first_at = *first_at ? *first_at : kn_pm_int(r, "at");
            ++*count;
            found = r;
        }
    }
    if (!found) {
        found = pm->fail;
        *first_at = kn_pm_int(found, "at");
        json_array_foreach(pm->fails, i, r)
        {
            *count += strcmp(kn_pm_str(r, "check"), kn_pm_str(found, "check")) == 0;
        }
    }
    return found;
}

static json_t *kn_pm_detection(const struct kn_pm *pm, json_t *out)
{
    char why[1024], label[256];
    long long stage, first_at, count;
    json_t *det;

    if (!pm->fail) {
        json_object_set_new(out, "detected_by",
                            json_string(pm->d.status == KN_DEPLOY_CANCELLED
                                            ? "a cancel (no analysis evaluation failed)"
                                            : "no analysis evaluation failed; the deployment's "
                                              "reason says what did"));
        return json_null();
    }
    det = json_deep_copy(kn_pm_decisive(pm, &first_at, &count));
    json_object_set_new(det, "first_failed_at", json_integer(first_at));
    json_object_set_new(det, "failed_evaluations", json_integer(count));
    stage = kn_pm_int(det, "stage");
    kn_pm_stage_label(pm, stage, kn_pm_str(kn_pm_stage(pm, stage), "name"), label,
                      sizeof(label));
    json_object_set_new(det, "stage_name", json_string(label));
    json_object_set_new(det, "why", json_string(kn_pm_fail_why(pm, kn_pm_str(det, "check"),
                                                               kn_pm_int(det, "at"), why,
                                                               sizeof(why))));
    json_object_set_new(out, "detected_by",
                        json_sprintf("analysis check '%s' in %s", kn_pm_str(det, "check"), label));
    return det;
}

/* The rollback's steps from its log lines: each lasts until the next one starts, the last until
 * the rollback finished. */
static json_t *kn_pm_steps(const struct kn_pm *pm)
{
    json_t *steps = json_array(), *e, *prev = NULL;
    long long from = kn_pm_int(pm->rollback, "started_at");
    long long to = kn_pm_int(pm->rollback, "finished_at");
    size_t i;

    json_array_foreach(pm->events, i, e)
    {
        const char *m = kn_pm_str(e, "message");
        long long at = kn_pm_int(e, "at");
        int step = 0;
        if (strcmp(kn_pm_str(e, "type"), "STAGE_LOG") != 0 || at < from || (to && at > to)) {
            continue;
        }
        for (size_t k = 0; k < sizeof(kn_pm_rollback_steps) / sizeof(*kn_pm_rollback_steps);
             k++) {
            step |= strncmp(m, kn_pm_rollback_steps[k], strlen(kn_pm_rollback_steps[k])) == 0;
        }
        if (!step) {
            continue;
        }
        if (prev) {
            json_object_set_new(prev, "duration_ms",
                                json_integer(at - kn_pm_int(prev, "at")));
        }
        prev = json_pack("{s:s, s:I, s:n}", "what", m, "at", (json_int_t)at, "duration_ms");
        json_array_append_new(steps, prev);
    }
    if (prev && to) {
        json_object_set_new(prev, "duration_ms", json_integer(to - kn_pm_int(prev, "at")));
    }
    return steps;
}

static json_t *kn_pm_resolution(const struct kn_pm *pm)
{
    json_t *rb = json_null(), *steps = json_array();

    if (pm->rollback) {
        long long from = kn_pm_int(pm->rollback, "started_at");
        long long to = kn_pm_int(pm->rollback, "finished_at");
        rb = json_pack("{s:I, s:I, s:o, s:s}", "started_at", (json_int_t)from, "finished_at",
                       (json_int_t)to, "duration_ms",
                       to ? json_integer(to - from) : json_null(), "status",
                       kn_pm_str(pm->rollback, "status"));
        json_decref(steps);
        steps = kn_pm_steps(pm);
    }
    return json_pack("{s:o, s:o}", "rollback", rb, "steps", steps);
}

/* The canary's largest share of the traffic among the stages that started, from the weights
 * the pipeline gave them (TRAFFIC_ROUTING's, CANARY_STEPS' up to the step it reached), and
 * when it first got one; -1 when no stage gave it any. */
static double kn_pm_canary_share(const struct kn_pm *pm, long long *since)
{
    double share = -1;
    size_t i;
    json_t *p;

    *since = 0;
    json_array_foreach(pm->pipeline, i, p)
    {
        const json_t *s = kn_pm_stage(pm, kn_pm_int(p, "index"));
        const char *kind = kn_pm_str(p, "kind");
        long long started = kn_pm_int(s, "started_at");
        double w = -1;
        if (!started) {
            continue;
        }
        if (strcmp(kind, "TRAFFIC_ROUTING") == 0) {
            w = json_number_value(json_object_get(json_object_get(p, "weights"), "canary"));
        } else if (strcmp(kind, "CANARY_STEPS") == 0) {
            json_t *steps = json_object_get(p, "steps");
            char *reached = kn_store_stage_meta_get(pm->st, pm->d.id,
                                                    (int)kn_pm_int(p, "index"), "step");
            size_t upto = reached ? (size_t)atoll(reached) : 1;
            for (size_t k = 0; k < upto && k < json_array_size(steps); k++) {
                double v = json_number_value(json_array_get(steps, k));
                w = v > w ? v : w;
            }
            free(reached);
        }
        if (w > 0 && !*since) {
            *since = started;
        }
        share = w > share ? w : share;
    }
    return share;
}

static json_t *kn_pm_impact(const struct kn_pm *pm)
{
    json_t *notes = json_array(), *impact;
    long long since = 0, until = 0;
    double share = kn_pm_canary_share(pm, &since);
    char span[32], t[40];

    /* traffic went back to the primary with the rollback's first step */
    if (pm->rollback) {
        json_t *steps = kn_pm_steps(pm);
        const json_t *first = json_array_get(steps, 0);
        until = first && !json_is_null(json_object_get(first, "duration_ms"))
                    ? kn_pm_int(first, "at") + kn_pm_int(first, "duration_ms")
                    : kn_pm_int(pm->rollback, "finished_at");
        json_decref(steps);
    }
    if (strcmp(pm->d.strategy, "QUICK_SYNC") == 0) {
        json_array_append_new(notes, json_string("a quick sync: no canary, the new version took "
                                                 "all of the traffic at once"));
        share = -1;
    } else if (share <= 0) {
        json_array_append_new(notes, json_string("the canary got no share of the traffic before "
                                                 "the deployment ended"));
        since = 0;
    } else if (!until) {
        /* no rollback (autoRollback off): nothing took the traffic back */
        json_array_append_new(
            notes, json_sprintf("the canary served up to %g%% of the traffic from %s; no rollback "
                                "ran, so it kept that share after the deployment ended",
                                share, kn_pm_time(since, t, sizeof(t))));
    } else {
        json_array_append_new(
            notes, json_sprintf("the canary served up to %g%% of the traffic for %s, until the "
                                "traffic went back to the primary",
                                share, kn_pm_span(until - since, span, sizeof(span))));
    }
    json_array_append_new(notes, json_string("requests and errors the canary served: not known "
                                             "(the analysis records hold the checks' values, not "
                                             "request counts)"));
    json_array_append_new(notes, json_string("error budget spent: not known (no SLO reading was "
                                             "recorded for this deployment)"));
    impact = json_pack("{s:o, s:o, s:n, s:n, s:n, s:o}", "canary_served_ms",
                       since && until > since ? json_integer(until - since) : json_null(),
                       "canary_share_percent", share > 0 ? json_real(share) : json_null(),
                       "requests", "errors", "error_budget_spent", "notes", notes);
    return impact;
}

int kn_postmortem_build(struct kn_store *st, long long id, json_t **out, struct kn_error *err)
{
    struct kn_pm pm = {.st = st};
    json_t *pm_json = NULL, *det;
    char *pipeline = NULL;
    size_t i;
    json_t *s;
    int rc;

    *out = NULL;
    pm.stages = json_array();
    pm.events = json_array();
    pm.timeline = json_array();
    pm.fails = json_array();
    if (id <= 0 || (rc = kn_store_deployment_get(st, id, &pm.d)) == KN_ENOTFOUND) {
        rc = kn_error_set(err, KN_ENOTFOUND, NULL, "no deployment '%lld'", id);
        goto out;
    }
    if (rc < 0 || (rc = kn_store_stages(st, id, kn_pm_collect_stage, &pm)) < 0) {
        rc = kn_error_set(err, rc, NULL, "cannot read deployment %lld: %s", id, kn_strerror(rc));
        goto out;
    }
    json_array_foreach(pm.stages, i, s)
    {
        if (strcmp(kn_pm_str(s, "name"), KN_PM_ROLLBACK) == 0 && kn_pm_int(s, "started_at")) {
            pm.rollback = s;
        }
    }
    if ((rc = kn_pm_eligible(&pm, err)) < 0) {
        goto out;
    }
    if ((rc = kn_store_deployment_events(st, id, 0, kn_pm_collect_event, &pm)) < 0 ||
        (rc = kn_store_analysis_list(st, id, kn_pm_collect_analysis, &pm)) < 0) {
        rc = kn_error_set(err, rc, NULL, "cannot read deployment %lld: %s", id, kn_strerror(rc));
        goto out;
    }
    pipeline = kn_store_stage_meta_get(st, id, KN_STORE_DEPLOYMENT_META, KN_ENGINE_PIPELINE_META);
    pm.pipeline = pipeline ? json_loads(pipeline, 0, NULL) : NULL;
    if (!json_is_array(pm.pipeline)) {
        json_decref(pm.pipeline);
        pm.pipeline = json_array(); /* none recorded: stages are named by kind only */
    }
    kn_pm_timeline(&pm);
    pm_json = json_pack("{s:I, s:o, s:s, s:s}", "deployment", (json_int_t)id, "title",
                        json_sprintf("Postmortem: %s deployment %lld (%.7s) %s", pm.d.app, id,
                                     pm.d.commit,
                                     pm.rollback ? "rolled back" : "failed"),
                        "root_cause", "", "detected_by", "");
    json_object_set_new(pm_json, "summary", kn_pm_summary(&pm));
    json_object_set_new(pm_json, "timeline", kn_pm_timeline_sorted(pm.timeline));
    det = kn_pm_detection(&pm, pm_json);
    json_object_set_new(pm_json, "detection", det);
    json_object_set_new(pm_json, "impact", kn_pm_impact(&pm));
    json_object_set_new(pm_json, "resolution", kn_pm_resolution(&pm));
    json_object_set_new(pm_json, "follow_ups", json_array());
    *out = pm_json;
    rc = 0;
out:
    kn_deployment_release(&pm.d);
    free(pipeline);
    json_decref(pm.pipeline);
    json_decref(pm.stages);
    json_decref(pm.events);
    json_decref(pm.fails);
    json_decref(pm.timeline);
    return rc;
}

/* ---- Markdown -------------------------------------------------------------------------------- */

/* s with Markdown's inline specials escaped, on one line. */
static void kn_pm_md_text(struct kn_buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (strchr("\\`*[]<>|", *s)) { /* a "_" within a word is no emphasis */
            kn_buf_addch(b, '\\');
            kn_buf_addch(b, *s);
        } else if (*s == '\n' || *s == '\r') {
            kn_buf_addch(b, ' ');
        } else {
            kn_buf_addch(b, *s);
        }
    }
}

/* s in a code span, on one line (a backtick in it becomes ', which a code span cannot hold). */
static void kn_pm_md_code(struct kn_buf *b, const char *s)
{
    kn_buf_addch(b, '`');
    for (; s && *s; s++) {
        kn_buf_addch(b, *s == '`' ? '\'' : (*s == '\n' || *s == '\r') ? ' ' : *s);
    }
    kn_buf_addch(b, '`');
}

static void kn_pm_md_item(struct kn_buf *b, const char *label, const char *text)
{
    kn_buf_addf(b, "- **%s:** ", label);
    kn_pm_md_text(b, text);
    kn_buf_addch(b, '\n');
}

static void kn_pm_md_time_item(struct kn_buf *b, const char *label, long long ms)
{
    char t[40];

    kn_pm_md_item(b, label, ms > 0 ? kn_pm_time(ms, t, sizeof(t)) : "not known");
}

static void kn_pm_md_detection(struct kn_buf *b, const json_t *pm)
{
    const json_t *det = json_object_get(pm, "detection");
    char *values;
    char t[40];

    kn_buf_adds(b, "\n## Detection\n\n");
    kn_pm_md_item(b, "Detected by", kn_pm_str(pm, "detected_by"));
    if (json_is_object(det)) {
        kn_pm_md_item(b, "Check", kn_pm_str(det, "check"));
        kn_pm_md_item(b, "Stage", kn_pm_str(det, "stage_name"));
        kn_pm_md_item(b, "Its first failing evaluation",
                      kn_pm_time(kn_pm_int(det, "first_failed_at"), t, sizeof(t)));
        kn_buf_addf(b, "- **Failed evaluations:** %lld; the one that decided, at %s:\n",
                    kn_pm_int(det, "failed_evaluations"),
                    kn_pm_time(kn_pm_int(det, "at"), t, sizeof(t)));
        kn_pm_md_item(b, "Verdict", kn_pm_str(det, "verdict"));
        if (*kn_pm_str(det, "why")) {
            kn_pm_md_item(b, "Numbers", kn_pm_str(det, "why"));
        }
        kn_pm_md_item(b, "Bound", kn_pm_str(det, "bound"));
        values = json_dumps(json_object_get(det, "values"), JSON_COMPACT | JSON_REAL_PRECISION(6));
        kn_buf_adds(b, "- **Values:** ");
        kn_pm_md_code(b, values ? values : "");
        kn_buf_adds(b, "\n- **Query:** ");
        kn_pm_md_code(b, kn_pm_str(det, "query"));
        kn_buf_addch(b, '\n');
        free(values);
    }
    kn_pm_md_item(b, "Reason recorded",
                  kn_pm_str(json_object_get(pm, "summary"), "reason"));
}

static void kn_pm_md_resolution(struct kn_buf *b, const json_t *pm)
{
    const json_t *res = json_object_get(pm, "resolution");
    const json_t *rb = json_object_get(res, "rollback");
    const json_t *step;
    char t[40], span[32];
    size_t i;

    kn_buf_adds(b, "\n## Resolution\n\n");
    if (!json_is_object(rb)) {
        kn_buf_adds(b, "No rollback ran (autoRollback off, or nothing to roll back).\n");
        return;
    }
    kn_buf_addf(b, "Rollback started %s", kn_pm_time(kn_pm_int(rb, "started_at"), t, sizeof(t)));
    if (json_is_integer(json_object_get(rb, "duration_ms"))) {
        kn_buf_addf(b, ", finished %s after %s",
                    kn_pm_time(kn_pm_int(rb, "finished_at"), t, sizeof(t)),
                    kn_pm_span(kn_pm_int(rb, "duration_ms"), span, sizeof(span)));
    }
    kn_buf_addf(b, ": %s.\n\n", kn_pm_str(rb, "status"));
    kn_buf_adds(b, "| Step | Started | Took |\n|---|---|---|\n");
    json_array_foreach(json_object_get(res, "steps"), i, step)
    {
        kn_buf_adds(b, "| ");
        kn_pm_md_text(b, kn_pm_str(step, "what"));
        kn_buf_addf(b, " | %s | %s |\n", kn_pm_time(kn_pm_int(step, "at"), t, sizeof(t)),
                    json_is_integer(json_object_get(step, "duration_ms"))
                        ? kn_pm_span(kn_pm_int(step, "duration_ms"), span, sizeof(span))
                        : "not known");
    }
}

char *kn_postmortem_markdown(const json_t *pm)
{
    const json_t *sum = json_object_get(pm, "summary");
    const json_t *impact = json_object_get(pm, "impact");
    const json_t *e;
    struct kn_buf b;
    size_t i;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "# ");
    kn_pm_md_text(&b, kn_pm_str(pm, "title"));
    kn_buf_adds(&b, "\n\nA blameless draft from what kanaria recorded. Times are UTC.\n"
                    "\n## Summary\n\n");
    kn_pm_md_item(&b, "App", kn_pm_str(sum, "app"));
    kn_pm_md_item(&b, "Repository", kn_pm_str(sum, "repo"));
    kn_buf_adds(&b, "- **Commit:** ");
    kn_pm_md_code(&b, kn_pm_str(sum, "commit"));
    kn_buf_addch(&b, '\n');
    kn_pm_md_item(&b, "Author", kn_pm_str(sum, "author"));
    kn_pm_md_item(&b, "Message", kn_pm_str(sum, "message"));
    kn_pm_md_time_item(&b, "Committed", kn_pm_int(sum, "commit_time"));
    kn_pm_md_item(&b, "Trigger", kn_pm_str(sum, "trigger"));
    kn_pm_md_item(&b, "Strategy", kn_pm_str(sum, "strategy"));
    kn_pm_md_item(&b, "Outcome",
                  json_is_true(json_object_get(sum, "rolled_back"))
                      ? (strcmp(kn_pm_str(sum, "outcome"), "FAILURE") == 0
                             ? "FAILURE, rolled back"
                             : "CANCELLED, rolled back")
                      : kn_pm_str(sum, "outcome"));
    kn_pm_md_item(&b, "Reason", kn_pm_str(sum, "reason"));

    kn_buf_adds(&b, "\n## Timeline\n\n| Time | What |\n|---|---|\n");
    json_array_foreach(json_object_get(pm, "timeline"), i, e)
    {
        kn_buf_addf(&b, "| %s | ", kn_pm_str(e, "time"));
        kn_pm_md_text(&b, kn_pm_str(e, "what"));
        kn_buf_adds(&b, " |\n");
    }
    kn_pm_md_detection(&b, pm);

    kn_buf_adds(&b, "\n## Impact\n\n");
    json_array_foreach(json_object_get(impact, "notes"), i, e)
    {
        kn_buf_adds(&b, "- ");
        kn_pm_md_text(&b, json_string_value(e));
        kn_buf_addch(&b, '\n');
    }
    kn_pm_md_resolution(&b, pm);
    kn_buf_adds(&b, "\n## Root cause\n\n_To be written._\n\n## Follow-ups\n\n_None yet._\n");
    return kn_buf_detach(&b, NULL);
}
