/*
 * CANARY_STEPS: move the canary's share of traffic up one step per interval (`steps`, or
 * Flagger's `stepWeight` up to `maxWeight`), running the stage's `analysis` at each step for
 * the interval, pausing after a step that asks for it, and failing (so the deployment rolls
 * back) at the first failed check. The current step is kept in the stage's metadata (`step`,
 * 1-based), each step's analysis under the prefix "step.N." (N 0-based), so a restart resumes at
 * the step it was on with the time and counts that were left.
 */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/platform.h"
#include "stages.h"

static const struct kn_field pause_fields[] = {
    {.key = "step",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_steps_pause, step),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1,
     .max = KN_STEPS_MAX,
     .help = "the step (1 for the first) after whose interval to pause, at its weight"},
    {.key = "duration",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_steps_pause, duration_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1000,
     .max = 7 * 24 * 3600 * 1000.0,
     .help = "how long to hold the step's weight before the next step"},
    {.key = "untilApproved",
     .type = KN_TYPE_BOOL,
     .offset = offsetof(struct kn_steps_pause, until_approved),
     .help = "instead of a duration: hold the step's weight until approved (kanaria approve), "
             "fail at a rejection"},
    {.key = "approvers",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_steps_pause, approvers),
     .help = "with untilApproved: who may approve (default: anyone with the approver role)"},
    {.key = "minApprovers",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_steps_pause, min_approvers),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1",
     .min = 1,
     .max = 100,
     .help = "with untilApproved: distinct people who must approve"},
};

/* The order of pause_fields: the bits of its `set` */
enum { P_STEP, P_DURATION, P_UNTIL_APPROVED, P_APPROVERS, P_MIN_APPROVERS };

static void pause_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_steps_pause *p = obj;
    int timed = (p->set & (1u << P_DURATION)) != 0;
    const struct kn_node *list = kn_node_get(node, "approvers");

    if (timed == p->until_approved) {
        kn_schema_error(ctx, timed ? kn_node_get(node, "untilApproved") : node,
                        "the pause after step %lld takes a 'duration' or 'untilApproved: true', "
                        "%s", p->step, timed ? "not both" : "one of them");
    }
    if (!p->until_approved &&
        (p->set & ((1u << P_APPROVERS) | (1u << P_MIN_APPROVERS))) != 0) {
        kn_schema_error(ctx, list ? list : kn_node_get(node, "minApprovers"),
                        "the pause after step %lld: 'approvers' and 'minApprovers' go with "
                        "'untilApproved: true'", p->step);
    }
    for (size_t i = 0; i < p->approvers.count; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->approvers.items[i], p->approvers.items[j]) == 0) {
                kn_schema_error(ctx, list && i < list->len ? list->items[i] : node,
                                "'approvers' lists '%s' twice", p->approvers.items[i]);
            }
        }
    }
    if (p->approvers.count > 0 && (size_t)p->min_approvers > p->approvers.count) {
        kn_schema_error(ctx, kn_node_get(node, "minApprovers"),
                        "'minApprovers' is %lld but only %zu approvers are listed",
                        p->min_approvers, p->approvers.count);
    }
}

static const struct kn_schema pause_schema = {
    .name = "pause",
    KN_SCHEMA_FIELDS(pause_fields),
    .size = sizeof(struct kn_steps_pause),
    .set_offset = offsetof(struct kn_steps_pause, set),
    .check = pause_check,
};

/* The order of the table: the bits of `set` */
enum { F_STEPS, F_STEP_WEIGHT, F_MAX_WEIGHT, F_INTERVAL, F_ANALYSIS, F_PAUSE };

static const struct kn_field steps_fields[] = {
    [F_STEPS] = {.key = "steps",
                 .type = KN_TYPE_STRING_LIST,
                 .offset = offsetof(struct kn_steps_options, steps),
                 .flags = KN_FIELD_NONEMPTY,
                 .help = "the canary's percent at each step, ascending ([5, 10, 20, 50])"},
    [F_STEP_WEIGHT] = {.key = "stepWeight",
                       .type = KN_TYPE_PERCENT,
                       .offset = offsetof(struct kn_steps_options, step_weight),
                       .flags = KN_FIELD_MIN | KN_FIELD_MAX,
                       .min = 0.001,
                       .max = 100,
                       .help = "instead of steps: the percent added at each step (Flagger's)"},
    [F_MAX_WEIGHT] = {.key = "maxWeight",
                      .type = KN_TYPE_PERCENT,
                      .offset = offsetof(struct kn_steps_options, max_weight),
                      .flags = KN_FIELD_MIN | KN_FIELD_MAX,
                      .def = "50",
                      .min = 0.001,
                      .max = 100,
                      .help = "with stepWeight: the last step's percent"},
    [F_INTERVAL] = {.key = "interval",
                    .type = KN_TYPE_DURATION,
                    .offset = offsetof(struct kn_steps_options, interval_ms),
                    .flags = KN_FIELD_REQUIRED | KN_FIELD_MIN | KN_FIELD_MAX,
                    .min = 1000,
                    .max = 24 * 3600 * 1000.0,
                    .help = "how long each step lasts; its analysis runs over it"},
    [F_ANALYSIS] = {.key = "analysis",
                    .type = KN_TYPE_OBJECT,
                    .offset = offsetof(struct kn_steps_options, analysis),
                    .sub = &kn_analysis_checks_schema,
                    .help = "the checks run at each step: 'metrics' and 'http' as ANALYSIS's"},
    [F_PAUSE] = {.key = "pause",
                 .type = KN_TYPE_LIST,
                 .offset = offsetof(struct kn_steps_options, pauses),
                 .sub = &pause_schema,
                 .help = "pauses after a step's interval: [{step: 2, duration: 5m}] or "
                         "[{step: 1, untilApproved: true, approvers: [alice]}]"},
};

static int given(const struct kn_steps_options *o, int field)
{
    return (o->set & (1u << field)) != 0;
}

static const struct kn_node *item_of(const struct kn_node *node, const char *key, size_t i)
{
    const struct kn_node *list = kn_node_get(node, key);

    return list && list->type == KN_NODE_SEQ && i < list->len ? list->items[i] : node;
}

/* The steps from `steps` (located errors for a value that is not an ascending percent). */
static void steps_from_list(struct kn_steps_options *o, const struct kn_node *node,
                            struct kn_schema_ctx *ctx)
{
    int ok = 1;

    if (o->steps.count > KN_STEPS_MAX) {
        kn_schema_error(ctx, kn_node_get(node, "steps"), "'steps' lists %zu steps, at most %d",
                        o->steps.count, KN_STEPS_MAX);
        return;
    }
    for (size_t i = 0; i < o->steps.count; i++) {
        const struct kn_node *at = item_of(node, "steps", i);
        double p;
        if (kn_percent_parse(o->steps.items[i], &p) < 0 || p <= 0 || p > 100) {
            kn_schema_error(ctx, at, "'steps[%zu]' must be a percent above 0 and at most 100, "
                            "got '%s'", i, o->steps.items[i]);
            ok = 0;
            continue;
        }
        if (i > 0 && ok && p <= o->weight[i - 1]) {
            kn_schema_error(ctx, at, "'steps' must go up: step %zu (%g%%) is not above step %zu "
                            "(%g%%)", i + 1, p, i, o->weight[i - 1]);
            ok = 0;
        }
        o->weight[i] = p;
    }
    o->count = o->steps.count;
    o->valid = ok;
}

/* Flagger's: stepWeight, 2 × stepWeight, ... while below maxWeight, then maxWeight. */
static void steps_from_weight(struct kn_steps_options *o, const struct kn_node *node,
                              struct kn_schema_ctx *ctx)
{
    size_t n = 0;

    if (o->step_weight > o->max_weight) {
        kn_schema_error(ctx, kn_node_get(node, "stepWeight"),
                        "'stepWeight' (%g%%) is above 'maxWeight' (%g%%)", o->step_weight,
                        o->max_weight);
        return;
    }
    for (double w = o->step_weight; n < KN_STEPS_MAX; w += o->step_weight) {
        if (w >= o->max_weight - 1e-9) {
            o->weight[n++] = o->max_weight;
            break;
        }
        o->weight[n++] = w;
    }
    if (o->weight[n - 1] != o->max_weight) {
        kn_schema_error(ctx, kn_node_get(node, "stepWeight"),
                        "'stepWeight' %g%% makes more than %d steps to 'maxWeight' %g%%",
                        o->step_weight, KN_STEPS_MAX, o->max_weight);
        return;
    }
    o->count = n;
    o->valid = 1;
}

static void steps_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_steps_options *o = obj;
    const struct kn_steps_pause *pauses = o->pauses.items;
    const struct kn_analysis_metric *metrics = o->analysis.metrics.items;
    const struct kn_http_check *https = o->analysis.http.items;
    char d1[32], d2[32];

    if (given(o, F_STEPS) && given(o, F_STEP_WEIGHT)) {
        kn_schema_error(ctx, kn_node_get(node, "stepWeight"),
                        "set 'steps' or 'stepWeight', not both");
    } else if (given(o, F_STEPS)) {
        if (given(o, F_MAX_WEIGHT)) {
            kn_schema_error(ctx, kn_node_get(node, "maxWeight"),
                            "'maxWeight' goes with 'stepWeight'; with 'steps' the last step is "
                            "the highest");
        }
        steps_from_list(o, node, ctx);
    } else if (given(o, F_STEP_WEIGHT)) {
        steps_from_weight(o, node, ctx);
    } else {
        kn_schema_error(ctx, node, "set 'steps' (the canary's percent at each step) or "
                        "'stepWeight' and 'maxWeight'");
    }
    for (size_t i = 0; i < o->pauses.count; i++) {
        const struct kn_node *at = item_of(node, "pause", i);
        if (o->valid && (size_t)pauses[i].step > o->count) {
            kn_schema_error(ctx, kn_node_get(at, "step") ? kn_node_get(at, "step") : at,
                            "'pause[%zu].step' is %lld, but there are %zu steps", i,
                            pauses[i].step, o->count);
        }
        for (size_t j = 0; j < i; j++) {
            if (pauses[j].step == pauses[i].step) {
                kn_schema_error(ctx, at, "step %lld has two pauses", pauses[i].step);
                break;
            }
        }
    }
    /* each step is an analysis of the interval's length */
    o->analysis.duration_ms = o->interval_ms;
    for (size_t i = 0; i < o->analysis.metrics.count + o->analysis.http.count; i++) {
        int metric = i < o->analysis.metrics.count;
        const char *name = metric ? metrics[i].name : https[i - o->analysis.metrics.count].name;
        long long interval = metric ? metrics[i].interval_ms
                                    : https[i - o->analysis.metrics.count].interval_ms;
        if (name && interval > o->interval_ms && !(metric && metrics[i].template_name)) {
            kn_schema_error(ctx,
                            item_of(kn_node_get(node, "analysis"), metric ? "metrics" : "http",
                                    metric ? i : i - o->analysis.metrics.count),
                            "check '%s': 'interval' (%s) is longer than the step's 'interval' "
                            "(%s), so it would never be evaluated",
                            name, kn_duration_format(interval, d1, sizeof(d1)),
                            kn_duration_format(o->interval_ms, d2, sizeof(d2)));
        }
    }
    o->as_analysis.name = (char *)(uintptr_t) "CANARY_STEPS"; /* for the checks' messages */
    o->as_analysis.kind = &kn_stage_analysis;
    o->as_analysis.with = &o->analysis;
    o->as_analysis.with_node = kn_node_get(node, "analysis");
    if (o->as_analysis.with_node) {
        o->as_analysis.loc = o->as_analysis.with_node->loc;
    } else if (node) {
        o->as_analysis.loc = node->loc;
    }
}

static const struct kn_schema steps_schema = {
    .name = "CANARY_STEPS",
    KN_SCHEMA_FIELDS(steps_fields),
    .size = sizeof(struct kn_steps_options),
    .set_offset = offsetof(struct kn_steps_options, set),
    .check = steps_check,
};

/* The pause after `step`, or NULL. */
static const struct kn_steps_pause *pause_at(const struct kn_steps_options *o, size_t step)
{
    const struct kn_steps_pause *pauses = o->pauses.items;

    for (size_t i = 0; i < o->pauses.count; i++) {
        if ((size_t)pauses[i].step == step) {
            return &pauses[i];
        }
    }
    return NULL;
}

/* The timed pause after `step`, ms; 0 for none or one until approved. */
static long long pause_of(const struct kn_steps_options *o, size_t step)
{
    const struct kn_steps_pause *p = pause_at(o, step);

    return p && !p->until_approved ? p->duration_ms : 0;
}

long long kn_steps_length_ms(const struct kn_stage_config *stage)
{
    const struct kn_steps_options *o = stage->with;
    long long total = 0;

    for (size_t i = 1; o && i <= o->count; i++) {
        total += o->interval_ms + pause_of(o, i);
    }
    return total;
}

long long kn_steps_timeout_ms(const struct kn_stage_config *stage)
{
    const struct kn_steps_options *o = stage->with;
    long long total = kn_steps_length_ms(stage) + 5 * 60 * 1000;

    for (size_t i = 1; o && i <= o->count; i++) {
        const struct kn_steps_pause *p = pause_at(o, i);
        total += p && p->until_approved ? kn_stage_wait_approval.default_timeout_ms : 0;
    }
    return total;
}

/* ---- validation against the pipeline -------------------------------------------------------- */

static int has_checks(const struct kn_steps_options *o)
{
    return o->analysis.metrics.count + o->analysis.http.count > 0;
}

static void steps_resolve(struct kn_stage_config *stage, const struct kn_node *shared,
                          struct kn_schema_ctx *ctx)
{
    struct kn_steps_options *o = stage->with;

    if (has_checks(o) && kn_stage_analysis.resolve) {
        kn_stage_analysis.resolve(&o->as_analysis, shared, ctx);
    }
}

static void steps_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                           struct kn_schema_ctx *ctx)
{
    const struct kn_steps_options *o = stage->with;
    char d1[32], d2[32];

    if (!o || !o->valid) {
        return; /* already reported */
    }
    if (!sim->running[KN_VARIANT_CANARY]) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage 'CANARY_STEPS': sends traffic to the canary, but no canary "
                           "runs at this point (add CANARY_ROLLOUT before it)");
    }
    for (size_t i = 0; sim->weight_step > 0 && i < o->count; i++) {
        double n = o->weight[i] / sim->weight_step;
        if (fabs(n - round(n)) > 1e-9) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'CANARY_STEPS': step %zu (%g%% to the canary) is not a "
                               "multiple of %g%%, the smallest traffic step of platform '%s'",
                               i + 1, o->weight[i], sim->weight_step,
                               sim->platform ? sim->platform : "?");
        }
    }
    if (stage->timeout_ms > 0 && stage->timeout_ms <= kn_steps_length_ms(stage)) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage 'CANARY_STEPS': 'timeout' (%s) must be longer than its steps' "
                           "intervals and pauses (%s)",
                           kn_duration_format(stage->timeout_ms, d1, sizeof(d1)),
                           kn_duration_format(kn_steps_length_ms(stage), d2, sizeof(d2)));
    }
    if (has_checks(o) && kn_stage_analysis.simulate) {
        /* the checks see the canary taking traffic, as they will from the first step */
        kn_stage_analysis.simulate(sim, &o->as_analysis, ctx);
    }
    sim->weight[KN_VARIANT_PRIMARY] = 100 - o->weight[o->count - 1];
    sim->weight[KN_VARIANT_CANARY] = o->weight[o->count - 1];
    sim->weight[KN_VARIANT_BASELINE] = 0;
    sim->traffic_shifted = 1;
}

static void steps_describe(const struct kn_stage_config *stage, json_t *out)
{
    const struct kn_steps_options *o = stage->with;
    json_t *steps = json_array(), *pauses = json_array();

    if (has_checks(o) && kn_stage_analysis.describe) {
        kn_stage_analysis.describe(&o->as_analysis, out); /* its "checks" */
    }
    for (size_t i = 0; i < o->count; i++) {
        json_array_append_new(steps, json_real(o->weight[i]));
    }
    for (size_t i = 1; i <= o->count; i++) {
        const struct kn_steps_pause *p = pause_at(o, i);
        json_t *who;
        if (!p) {
            continue;
        }
        if (!p->until_approved) {
            json_array_append_new(pauses, json_pack("{s:I, s:I}", "step", (json_int_t)i,
                                                    "duration_ms", (json_int_t)p->duration_ms));
            continue;
        }
        who = json_array();
        for (size_t j = 0; j < p->approvers.count; j++) {
            json_array_append_new(who, json_string(p->approvers.items[j]));
        }
        json_array_append_new(pauses, json_pack("{s:I, s:b, s:o, s:I}", "step", (json_int_t)i,
                                                "until_approved", 1, "approvers", who,
                                                "min_approvals",
                                                (json_int_t)p->min_approvers));
    }
    json_object_set_new(out, "steps", steps);
    json_object_set_new(out, "interval_ms", json_integer(o->interval_ms));
    json_object_set_new(out, "pauses", pauses);
    json_object_set_new(out, "duration_ms", json_integer(kn_steps_length_ms(stage)));
}

/* ---- at run time ---------------------------------------------------------------------------- */

struct steps {
    const struct kn_steps_options *o;
    size_t step; /* 1-based */
    void *op;
    void *timer;
    struct kn_analysis_runner *runner;
    int awaiting;        /* paused after the step until approved */
    long long paused_at; /* since when: only decisions from then count */
};

static void enter_step(struct kn_stage_run *run, size_t step);

static void steps_cancel(struct kn_stage_run *run)
{
    struct steps *s = *kn_stage_run_state(run);

    if (!s) {
        return;
    }
    kn_stage_op_cancel(&s->op);
    kn_stage_timer_cancel(&s->timer);
    kn_analysis_runner_stop(s->runner);
    free(s);
    *kn_stage_run_state(run) = NULL;
}

/* "step.N.KEY" of the current step (N 0-based). */
static void step_key(const struct steps *s, const char *key, char *out, size_t size)
{
    snprintf(out, size, "step.%zu.%s", s->step - 1, key);
}

/* The deadline kept under `key` of the current step, or now + ms stored there (the caller's
 * `now`, so that what is left is exactly ms the first time). */
static long long step_deadline(struct kn_stage_run *run, const char *key, long long ms,
                               long long now)
{
    struct steps *s = *kn_stage_run_state(run);
    char k[64], buf[32];
    char *stored;
    long long at;

    step_key(s, key, k, sizeof(k));
    if ((stored = kn_stage_run_meta_get(run, k)) != NULL) {
        at = atoll(stored);
        free(stored);
        return at;
    }
    at = now + ms;
    snprintf(buf, sizeof(buf), "%lld", at);
    kn_stage_run_meta_set(run, k, buf);
    return at;
}

static void next_step(struct kn_stage_run *run)
{
    struct steps *s = *kn_stage_run_state(run);

    if (s->step < s->o->count) {
        enter_step(run, s->step + 1);
        return;
    }
    kn_stage_run_log(run, "all %zu steps passed: the canary takes %g%%", s->o->count,
                     s->o->weight[s->o->count - 1]);
    steps_cancel(run);
    kn_stage_run_finish(run, 1, NULL);
}

/* ---- a pause until approved: decisions are records of the store (kanaria approve, reject, the
 * API), counted as WAIT_APPROVAL counts them, from the time the pause began ---- */

struct pause_tally {
    const struct kn_steps_pause *p;
    int index;
    long long since;
    char approved[100][128]; /* minApprovers is at most 100 */
    int napproved;
    char rejected_by[128];
};

static int pause_listed(const struct kn_steps_pause *p, const char *who)
{
    for (size_t i = 0; i < p->approvers.count; i++) {
        if (strcmp(p->approvers.items[i], who) == 0) {
            return 1;
        }
    }
    return p->approvers.count == 0; /* no list: anyone the API lets approve */
}

static int pause_count(const struct kn_approval_record *a, void *data)
{
    struct pause_tally *t = data;

    if (a->stage != t->index || a->at < t->since || !pause_listed(t->p, a->who)) {
        return 0;
    }
    if (strcmp(a->decision, "REJECT") == 0) {
        snprintf(t->rejected_by, sizeof(t->rejected_by), "%s", a->who);
        return 1;
    }
    for (int i = 0; i < t->napproved; i++) {
        if (strcmp(t->approved[i], a->who) == 0) {
            return 0;
        }
    }
    if (t->napproved < 100) {
        snprintf(t->approved[t->napproved++], sizeof(t->approved[0]), "%s", a->who);
    }
    return 0;
}

static void approval_poll(struct kn_stage_run *run)
{
    struct steps *s = *kn_stage_run_state(run);
    const struct kn_steps_pause *p = pause_at(s->o, s->step);
    struct pause_tally *t = kn_calloc(1, sizeof(*t));
    size_t step = s->step;
    char k[64];

    t->p = p;
    t->index = kn_stage_run_index(run);
    t->since = s->paused_at;
    kn_store_approval_list(kn_stage_run_store(run), kn_stage_run_deployment(run)->id,
                           pause_count, t);
    if (t->rejected_by[0]) {
        double weight = s->o->weight[step - 1];
        kn_stage_run_meta_set(run, KN_STEPS_AWAITING_META, "");
        steps_cancel(run); /* frees s */
        kn_stage_run_finish(run, 0, "step %zu (%g%%): rejected by %s", step, weight,
                            t->rejected_by);
    } else if (t->napproved >= p->min_approvers) {
        kn_stage_run_log(run, "step %zu of %zu: approved by %d %s", step, s->o->count,
                         t->napproved, t->napproved == 1 ? "person" : "people");
        s->awaiting = 0;
        step_key(s, "approved", k, sizeof(k));
        kn_stage_run_meta_set(run, k, "1");
        kn_stage_run_meta_set(run, KN_STEPS_AWAITING_META, "");
        next_step(run);
    } else {
        kn_stage_timer_start(run, &s->timer, 500, approval_poll); /* a poke comes sooner */
    }
    free(t);
}

static void await_approval(struct kn_stage_run *run)
{
    struct steps *s = *kn_stage_run_state(run);
    const struct kn_steps_pause *p = pause_at(s->o, s->step);
    const struct kn_deployment *d = kn_stage_run_deployment(run);
    long long now = kn_stage_run_now(run);
    char k[64], buf[32], *first;

    step_key(s, "paused_at", k, sizeof(k));
    first = kn_stage_run_meta_get(run, k);
    s->paused_at = step_deadline(run, "paused_at", 0, now);
    s->awaiting = 1;
    snprintf(buf, sizeof(buf), "%zu", s->step);
    kn_stage_run_meta_set(run, KN_STEPS_AWAITING_META, buf);
    if (!first) {
        kn_stage_run_log(run, "step %zu of %zu: paused at canary %g%% until %lld approval%s",
                         s->step, s->o->count, s->o->weight[s->step - 1], p->min_approvers,
                         p->min_approvers == 1 ? "" : "s");
        kn_store_event_add(kn_stage_run_store(run), "WAITING_APPROVAL", d->repo, d->app, d->id,
                           "kanaria", "waiting for approval", now);
    }
    free(first);
    approval_poll(run);
}

/* An approval or a rejection was just recorded: count now. */
static void steps_poke(struct kn_stage_run *run)
{
    struct steps *s = *kn_stage_run_state(run);

    if (s && s->awaiting) {
        kn_stage_timer_cancel(&s->timer);
        approval_poll(run);
    }
}

/* The step's interval passed with its checks: pause there if it asks for it, then go on. */
static void step_passed(struct kn_stage_run *run)
{
    struct steps *s = *kn_stage_run_state(run);
    const struct kn_steps_pause *p = pause_at(s->o, s->step);
    long long pause = pause_of(s->o, s->step), now = kn_stage_run_now(run), left;
    char k[64], buf[32], *approved;

    step_key(s, "passed", k, sizeof(k));
    kn_stage_run_meta_set(run, k, "1");
    step_key(s, "approved", k, sizeof(k));
    approved = kn_stage_run_meta_get(run, k);
    if (p && p->until_approved && !approved) {
        await_approval(run);
        return;
    }
    free(approved);
    if (pause <= 0) {
        next_step(run);
        return;
    }
    left = step_deadline(run, "pause", pause, now) - now;
    kn_stage_run_log(run, "step %zu of %zu: pausing at canary %g%% for %s", s->step,
                     s->o->count, s->o->weight[s->step - 1],
                     kn_duration_format(left > 0 ? left : 0, buf, sizeof(buf)));
    kn_stage_timer_start(run, &s->timer, left, next_step);
}

static void step_analysed(struct kn_stage_run *run, int ok, const char *reason, void *data)
{
    struct steps *s = *kn_stage_run_state(run);
    size_t step = s->step;
    double weight = s->o->weight[step - 1];

    (void)data;
    s->runner = NULL;
    if (ok) {
        step_passed(run);
        return;
    }
    steps_cancel(run);
    kn_stage_run_finish(run, 0, "step %zu (%g%%): %s", step, weight, reason ? reason : "");
}

static int set_weights(struct kn_stage_run *run, const struct kn_platform_req *req,
                       struct kn_platform_op **op)
{
    const struct steps *s = *kn_stage_run_state(run);
    double percent[KN_VARIANT_COUNT] = {0};

    percent[KN_VARIANT_CANARY] = s->o->weight[s->step - 1];
    percent[KN_VARIANT_PRIMARY] = 100 - percent[KN_VARIANT_CANARY];
    return kn_platform_set_weights(kn_stage_run_platform(run), req, percent, op);
}

static void weights_set(struct kn_stage_run *run, int status, const char *message)
{
    struct steps *s = *kn_stage_run_state(run);
    size_t step = s->step;
    double weight = s->o->weight[step - 1];
    char k[64], *passed;
    long long now;

    if (status != 0) {
        steps_cancel(run);
        kn_stage_run_finish(run, 0, "step %zu (%g%%): routing traffic: %s", step, weight,
                            message ? message : kn_strerror(status));
        return;
    }
    step_key(s, "passed", k, sizeof(k));
    if ((passed = kn_stage_run_meta_get(run, k)) != NULL) {
        free(passed); /* resumed after its interval: its pause, or the next step */
        step_passed(run);
        return;
    }
    if (has_checks(s->o)) {
        struct kn_analysis_runner_cfg cfg = {
            .options = &s->o->analysis,
            .record_index = kn_stage_run_index(run),
            .duration_ms = s->o->interval_ms,
            .done = step_analysed,
        };
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "step.%zu.", step - 1);
        cfg.meta_prefix = prefix;
        kn_analysis_runner_start(run, &cfg, &s->runner);
        return;
    }
    /* no checks: the interval is a wait, kept as the analysis would keep it */
    now = kn_stage_run_now(run);
    kn_stage_timer_start(run, &s->timer,
                         step_deadline(run, "deadline", s->o->interval_ms, now) - now, step_passed);
}

static void enter_step(struct kn_stage_run *run, size_t step)
{
    struct steps *s = *kn_stage_run_state(run);
    double percent = s->o->weight[step - 1];
    char buf[32], what[160];

    s->step = step;
    snprintf(buf, sizeof(buf), "%zu", step);
    kn_stage_run_meta_set(run, "step", buf);
    snprintf(what, sizeof(what), "step %zu of %zu: routing traffic: primary %g%%, canary %g%%",
             step, s->o->count, 100 - percent, percent);
    kn_stage_op_run(run, &s->op, set_weights, weights_set, what);
}

static void steps_start(struct kn_stage_run *run)
{
    const struct kn_steps_options *o = kn_stage_run_config(run)->with;
    struct steps *s = kn_calloc(1, sizeof(*s));
    char *stored = kn_stage_run_meta_get(run, "step");
    long long step = stored ? atoll(stored) : 1;

    free(stored);
    if (step < 1 || (size_t)step > o->count) {
        step = 1;
    }
    s->o = o;
    *kn_stage_run_state(run) = s;
    if (step > 1) {
        kn_stage_run_log(run, "resuming at step %lld of %zu", step, o->count);
    }
    enter_step(run, (size_t)step);
}

const struct kn_stage_kind kn_stage_canary_steps = {
    .name = "CANARY_STEPS",
    .with = &steps_schema,
    .caps = KN_PLATFORM_TRAFFIC_SPLIT,
    .default_timeout_ms = 0, /* its intervals and pauses + 5m, computed by the engine */
    .help = "move the canary's traffic up one step per interval, analysing each step; fail at "
            "the first failed check",
    .simulate = steps_simulate,
    .resolve = steps_resolve,
    .start = steps_start,
    .cancel = steps_cancel,
    .poke = steps_poke,
    .describe = steps_describe,
};
