/*
 * WAIT_APPROVAL: wait until enough distinct approvers have approved; time out into failure.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kanaria/engine.h"
#include "kanaria/store.h"
#include "stages.h"

#define APPROVAL_POLL_MS 500

static const struct kn_field approval_fields[] = {
    {.key = "approvers",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_approval_options, approvers),
     .help = "user names allowed to approve (default: anyone with the approver role)"},
    {.key = "minApprovers",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_approval_options, min_approvers),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1",
     .min = 1,
     .max = 100,
     .help = "distinct people who must approve"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_approval_options, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1000,
     .max = 7 * 24 * 3600 * 1000.0,
     .help = "fail (and roll back) when not approved in time; same as the stage's timeout"},
};

static void approval_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_approval_options *a = obj;

    for (size_t i = 0; i < a->approvers.count; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a->approvers.items[i], a->approvers.items[j]) == 0) {
                const struct kn_node *list = kn_node_get(node, "approvers");
                kn_schema_error(ctx, list && i < list->len ? list->items[i] : node,
                                "'approvers' lists '%s' twice", a->approvers.items[i]);
            }
        }
    }
    if (a->approvers.count > 0 && (size_t)a->min_approvers > a->approvers.count) {
        kn_schema_error(ctx, kn_node_get(node, "minApprovers"),
                        "'minApprovers' is %lld but only %zu approvers are listed",
                        a->min_approvers, a->approvers.count);
    }
}

static const struct kn_schema approval_schema = {
    .name = "WAIT_APPROVAL",
    KN_SCHEMA_FIELDS(approval_fields),
    .size = sizeof(struct kn_approval_options),
    .set_offset = offsetof(struct kn_approval_options, set),
    .check = approval_check,
};

struct tally {
    const struct kn_approval_options *opt;
    char approved[100][128]; /* distinct people who approved; minApprovers is at most 100 */
    int napproved;
    char rejected_by[128];
};

static int listed(const struct kn_approval_options *a, const char *who)
{
    if (a->approvers.count == 0) {
        return 1; /* anyone the API lets approve */
    }
    for (size_t i = 0; i < a->approvers.count; i++) {
        if (strcmp(a->approvers.items[i], who) == 0) {
            return 1;
        }
    }
    return 0;
}

static int count_one(const char *who, const char *decision, void *data)
{
    struct tally *t = data;

    if (!listed(t->opt, who)) {
        return 0; /* not an approver of this stage: does not count */
    }
    if (strcmp(decision, "REJECT") == 0) {
        snprintf(t->rejected_by, sizeof(t->rejected_by), "%s", who);
        return 1;
    }
    for (int i = 0; i < t->napproved; i++) {
        if (strcmp(t->approved[i], who) == 0) {
            return 0;
        }
    }
    if (t->napproved < 100) {
        snprintf(t->approved[t->napproved++], sizeof(t->approved[0]), "%s", who);
    }
    return 0;
}

/* Approvals arrive as records in the store (from the API or the CLI): count the distinct people
 * of the `approvers` list; one rejection from one of them fails the stage at once. */
static void approval_poll(struct kn_stage_run *run)
{
    const struct kn_approval_options *a = kn_stage_run_config(run)->with;
    struct tally t;

    memset(&t, 0, sizeof(t));
    t.opt = a;
    kn_store_approvals(kn_stage_run_store(run), kn_stage_run_deployment(run)->id,
                       kn_stage_run_index(run), count_one, &t);
    if (t.rejected_by[0]) {
        kn_stage_run_finish(run, 0, "rejected by %s", t.rejected_by);
        return;
    }
    if (t.napproved >= a->min_approvers) {
        kn_stage_run_log(run, "approved by %d %s", t.napproved,
                         t.napproved == 1 ? "person" : "people");
        kn_stage_run_finish(run, 1, NULL);
        return;
    }
    kn_stage_timer_start(run, kn_stage_run_state(run), APPROVAL_POLL_MS, approval_poll);
}

static void approval_start(struct kn_stage_run *run)
{
    const struct kn_approval_options *a = kn_stage_run_config(run)->with;
    const struct kn_deployment *d = kn_stage_run_deployment(run);

    kn_stage_run_log(run, "waiting for %lld approval%s", a->min_approvers,
                     a->min_approvers == 1 ? "" : "s");
    kn_store_event_add(kn_stage_run_store(run), "WAITING_APPROVAL", d->repo, d->app, d->id,
                       "kanaria", "waiting for approval", kn_stage_run_now(run));
    approval_poll(run);
}

static void approval_cancel(struct kn_stage_run *run)
{
    kn_stage_timer_cancel(kn_stage_run_state(run));
}

/* An approval or a rejection was just recorded: count now (the poll stays as the fallback). */
static void approval_poke(struct kn_stage_run *run)
{
    kn_stage_timer_cancel(kn_stage_run_state(run));
    approval_poll(run);
}

static void approval_describe(const struct kn_stage_config *stage, json_t *out)
{
    const struct kn_approval_options *a = stage->with;
    json_t *who = json_array();

    for (size_t i = 0; i < a->approvers.count; i++) {
        json_array_append_new(who, json_string(a->approvers.items[i]));
    }
    json_object_set_new(out, "approvers", who);
    json_object_set_new(out, "min_approvals", json_integer(a->min_approvers));
}

const struct kn_stage_kind kn_stage_wait_approval = {
    .name = "WAIT_APPROVAL",
    .with = &approval_schema,
    .default_timeout_ms = 6LL * 3600 * 1000,
    .help = "wait for approvals from distinct people; time out into failure",
    .start = approval_start,
    .cancel = approval_cancel,
    .poke = approval_poke,
    .describe = approval_describe,
};
