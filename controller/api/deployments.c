/*
 * GET /api/v1/deployments/{id} (a deployment with its stages, approvals, analysis records and
 * events), GET /api/v1/deployments/{id}/postmortem (controller/postmortem.c), and the operator's actions on an app's deployments: cancel, rollback, sync (the
 * checks and the work are in controller/actions.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "api/router.h"
#include "kanaria/engine.h"
#include "postmortem.h"

/* How many events a deployment's answer lists. */
#define KN_API_EVENTS 500

struct kn_api_detail {
    struct kn_api *api;
    long long id;
    json_t *stages; /* array, by index */
    json_t *events;
};

/* A stage that has not started (or that the store has no row for). */
static json_t *kn_api_stage_not_started(int index, const char *name)
{
    return json_pack("{s:i, s:s, s:s, s:I, s:I, s:[], s:[]}", "index", index, "name", name,
                     "status", "NOT_STARTED", "started_at", (json_int_t)0, "finished_at",
                     (json_int_t)0, "approvals", "analysis");
}

/* The stage object of index i, created when the store has approvals or analysis records of a
 * stage it has no row for. */
static json_t *kn_api_stage_slot(struct kn_api_detail *x, int index)
{
    size_t i;
    json_t *s;

    json_array_foreach(x->stages, i, s)
    {
        if (json_integer_value(json_object_get(s, "index")) == index) {
            return s;
        }
    }
    s = kn_api_stage_not_started(index, "");
    json_array_append_new(x->stages, s);
    return s;
}

static json_t *kn_api_stage_list(json_t *stage, const char *key)
{
    json_t *l = json_object_get(stage, key);

    if (!l) {
        l = json_array();
        json_object_set_new(stage, key, l);
    }
    return l;
}

static int kn_api_collect_stage(const struct kn_stage_state *s, void *data)
{
    struct kn_api_detail *x = data;
    json_t *j = kn_api_stage_json(s);
    char *reason = NULL, *step;

    /* why it was skipped, for a break-glass skip */
    if (strcmp(s->status, "SKIPPED") == 0 &&
        (reason = kn_store_stage_meta_get(x->api->deps.store, x->id, s->index,
                                          KN_ENGINE_SKIP_REASON_META))) {
        json_object_set_new(j, "reason", json_string(reason));
        free(reason);
    }
    /* the step a CANARY_STEPS is on (1-based), kept by the stage */
    if (strcmp(s->name, "CANARY_STEPS") == 0 &&
        (step = kn_store_stage_meta_get(x->api->deps.store, x->id, s->index, "step"))) {
        json_object_set_new(j, "step", json_integer(atoll(step)));
        free(step);
        /* holding after that step until approved */
        if ((step = kn_store_stage_meta_get(x->api->deps.store, x->id, s->index,
                                            KN_STEPS_AWAITING_META)) != NULL) {
            if (atoll(step) > 0) {
                json_object_set_new(j, "awaiting_approval", json_true());
            }
            free(step);
        }
    }
    json_object_set_new(j, "approvals", json_array());
    json_object_set_new(j, "analysis", json_array());
    json_array_append_new(x->stages, j);
    return 0;
}

static int kn_api_collect_approval(const struct kn_approval_record *a, void *data)
{
    json_t *l = kn_api_stage_list(kn_api_stage_slot(data, a->stage), "approvals");

    json_array_append_new(l, json_pack("{s:s, s:s, s:I}", "who", a->who, "decision", a->decision,
                                       "at", (json_int_t)a->at));
    return 0;
}

static int kn_api_collect_analysis(const struct kn_analysis_record *r, void *data)
{
    json_t *l = kn_api_stage_list(kn_api_stage_slot(data, r->stage), "analysis");
    json_t *read = kn_analysis_values_read(r->values_json);
    /* a text that is no JSON object is shown as it is */
    json_t *values = read ? json_incref(json_object_get(read, "values"))
                          : json_string(r->values_json);
    json_t *times = json_object_get(read, "times");
    json_t *threshold = json_object_get(read, "threshold");
    json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:o, s:s, s:s}", "id", (json_int_t)r->id, "at",
                          (json_int_t)r->at, "check", r->check, "query", r->query, "values",
                          values, "bound", r->bound, "verdict", r->verdict);

    if (json_is_object(times)) {
        json_object_set(j, "times", times);
    }
    if (json_is_object(threshold)) {
        json_object_set(j, "threshold", threshold);
    }
    json_array_append_new(l, j);
    json_decref(read);
    return 0;
}

static int kn_api_collect_event(const struct kn_event *e, void *data)
{
    struct kn_api_detail *x = data;

    json_array_append_new(x->events, json_pack("{s:I, s:I, s:s, s:s, s:s}", "id", (json_int_t)e->id,
                                               "at", (json_int_t)e->at, "type", e->type, "actor",
                                               e->actor, "message", e->message));
    return 0;
}

/* The stage of `index` in stages (by index), or NULL. */
static json_t *kn_api_stage_at(json_t *stages, json_int_t index)
{
    size_t i;
    json_t *s;

    json_array_foreach(stages, i, s)
    {
        if (json_integer_value(json_object_get(s, "index")) == index) {
            return s;
        }
    }
    return NULL;
}

static int kn_api_stage_cmp(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "index"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "index"));

    return (x > y) - (x < y);
}

/* The stages of `in` in the order of their indexes, a new array. */
static json_t *kn_api_stages_sorted(const json_t *in)
{
    size_t n = json_array_size(in);
    json_t **items = kn_calloc(n + 1, sizeof(*items));
    json_t *out = json_array();

    for (size_t i = 0; i < n; i++) {
        items[i] = json_array_get(in, i);
    }
    qsort(items, n, sizeof(*items), kn_api_stage_cmp);
    for (size_t i = 0; i < n; i++) {
        json_array_append(out, items[i]);
    }
    free(items);
    return out;
}

json_t *kn_api_stages_merge(const json_t *pipeline, json_t *stages)
{
    json_t *out = json_array(), *sorted;
    size_t i, n = json_array_size(pipeline);
    json_int_t has_background = 0;
    json_t *p, *s;

    json_array_foreach(pipeline, i, p)
    {
        json_int_t index = json_integer_value(json_object_get(p, "index"));
        const char *kind = json_string_value(json_object_get(p, "kind"));
        const char *id = json_string_value(json_object_get(p, "id"));
        if ((s = kn_api_stage_at(stages, index)) != NULL) {
            if (!json_string_length(json_object_get(s, "name"))) {
                json_object_set_new(s, "name", json_string(kind ? kind : ""));
            }
            json_array_append(out, s);
        } else {
            s = kn_api_stage_not_started((int)index, kind ? kind : "");
            json_array_append_new(out, s);
        }
        /* the stage's id labels it ("" when it has none), as in the pipeline */
        json_object_set_new(s, "id", json_string(id ? id : ""));
        if (json_is_true(json_object_get(p, "background"))) {
            json_object_set_new(s, "background", json_true()); /* spec.analysis */
            has_background = 1;
        }
    }
    /* the rollback (index n; a background analysis after it is in the pipeline), and anything
     * else recorded beyond the pipeline */
    json_array_foreach(stages, i, s)
    {
        json_int_t index = json_integer_value(json_object_get(s, "index"));
        if (index >= (json_int_t)n - has_background && !kn_api_stage_at(out, index)) {
            json_array_append(out, s);
        }
    }
    sorted = kn_api_stages_sorted(out);
    json_decref(out);
    return sorted;
}

void kn_api_deployment_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    const char *arg = kn_api_param(call, "id");
    struct kn_deployment d = {0};
    char *end = NULL;
    long long id = strtoll(arg, &end, 10);
    struct kn_api_detail x = {.api = api, .id = id, .stages = json_array(), .events = json_array()};
    char *plan = NULL, *pipeline_text = NULL;
    json_t *body = NULL, *pipeline = NULL;

    if (!end || *end || id <= 0 || kn_store_deployment_get(api->deps.store, id, &d) < 0) {
        kn_api_reply_error(req, 404, "no deployment '%s'", arg);
        goto out;
    }
    body = kn_api_deployment_json(&d);
    plan = kn_store_deployment_plan(api->deps.store, id);
    json_object_set_new(body, "plan", plan ? json_loads(plan, 0, NULL) : json_null());
    if (!json_object_get(body, "plan")) {
        json_object_set_new(body, "plan", json_null());
    }
    kn_store_stages(api->deps.store, id, kn_api_collect_stage, &x);
    kn_store_approval_list(api->deps.store, id, kn_api_collect_approval, &x);
    kn_store_analysis_list(api->deps.store, id, kn_api_collect_analysis, &x);
    kn_store_deployment_events(api->deps.store, id, KN_API_EVENTS, kn_api_collect_event, &x);
    /* recorded when the deployment started; none before that, nor for older deployments */
    pipeline_text = kn_store_stage_meta_get(api->deps.store, id, KN_STORE_DEPLOYMENT_META,
                                            KN_ENGINE_PIPELINE_META);
    pipeline = pipeline_text ? json_loads(pipeline_text, 0, NULL) : NULL;
    if (json_is_array(pipeline)) {
        json_t *all = kn_api_stages_merge(pipeline, x.stages);
        json_decref(x.stages);
        x.stages = all;
        json_object_set(body, "pipeline", pipeline);
    } else {
        json_object_set_new(body, "pipeline", json_null());
    }
    json_object_set(body, "stages", x.stages);
    json_object_set(body, "events", x.events);
    kn_api_reply(req, 200, body);
out:
    kn_deployment_release(&d);
    free(plan);
    free(pipeline_text);
    json_decref(pipeline);
    json_decref(body);
    json_decref(x.stages);
    json_decref(x.events);
}

/* ---- postmortem ------------------------------------------------------------------------------ */

/* Markdown when ?format=markdown, or without ?format when Accept names text/markdown; JSON
 * otherwise. 0, or -1 after answering 400 for another format. */
static int kn_api_postmortem_format(h2o_req_t *req, int *markdown)
{
    int bad = 0;
    const char *f = kn_api_query_param(req, "format", &bad);
    const char *accept;
    char head[256];
    size_t len;

    *markdown = 0;
    if (bad || (f && strcmp(f, "markdown") != 0 && strcmp(f, "json") != 0)) {
        kn_api_reply_error(req, 400, "'format' must be markdown or json, got '%.64s'",
                           f ? f : "(malformed)");
        return -1;
    }
    if (f) {
        *markdown = strcmp(f, "markdown") == 0;
    } else if ((accept = kn_api_header(req, "accept", &len)) != NULL) {
        snprintf(head, sizeof(head), "%.*s", (int)(len < sizeof(head) ? len : sizeof(head) - 1),
                 accept);
        *markdown = strstr(head, "text/markdown") != NULL;
    }
    return 0;
}

void kn_api_postmortem_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    const char *arg = kn_api_param(call, "id");
    char *end = NULL, *text = NULL;
    long long id = strtoll(arg, &end, 10);
    json_t *pm = NULL;
    struct kn_error err;
    int markdown, rc;

    if (kn_api_postmortem_format(req, &markdown) < 0) {
        goto out;
    }
    if (!end || *end || id <= 0) {
        kn_api_reply_error(req, 404, "no deployment '%s'", arg);
        goto out;
    }
    kn_error_clear(&err);
    if ((rc = kn_postmortem_build(api->deps.store, id, &pm, &err)) < 0) {
        kn_api_reply_error(req, rc == KN_ENOTFOUND ? 404 : rc == KN_EINVAL ? 409 : 503, "%s",
                           err.msg);
        goto out;
    }
    if (!markdown) {
        kn_api_reply(req, 200, pm);
        goto out;
    }
    text = kn_postmortem_markdown(pm);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = strlen(text);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/markdown; charset=utf-8"));
    h2o_send_inline(req, text, strlen(text)); /* copies into the request's pool */
out:
    free(text);
    json_decref(pm);
}

/* ---- cancel, rollback, sync ------------------------------------------------------------------ */

void kn_api_cancel(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    struct kn_app_state app = {0};
    struct kn_action_result res;
    struct kn_actor who;
    struct kn_error err;
    json_t *body = NULL, *reply = NULL, *rb, *reason;
    char peer[96];
    int rollback, rc;

    if (!(body = kn_api_body_json(req)) || kn_api_find_app(api, req, call, &app) < 0) {
        goto out;
    }
    rb = json_object_get(body, "rollback");
    reason = json_object_get(body, "reason");
    if (rb && !json_is_boolean(rb)) {
        kn_api_reply_error(req, 400, "'rollback' must be true or false");
        goto out;
    }
    if (reason && !json_is_string(reason) && !json_is_null(reason)) {
        kn_api_reply_error(req, 400, "'reason' must be a string");
        goto out;
    }
    rollback = rb ? json_is_true(rb) : 1;
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "cancelling is not available");
        goto out;
    }
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = kn_actions_cancel(api->deps.actions, app.repo, app.name, rollback,
                                json_is_string(reason) ? json_string_value(reason) : "", &who, &res,
                                &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    reply = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s}", "deployment", (json_int_t)res.deployment,
                      "repo", res.repo, "app", res.app, "rollback", rollback, "status",
                      kn_deploy_status_name(res.status), "by", who.name);
    kn_api_reply(req, 200, reply);
out:
    kn_app_state_release(&app);
    json_decref(reply);
    json_decref(body);
}

void kn_api_rollback(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    struct kn_app_state app = {0};
    struct kn_action_result res;
    struct kn_actor who;
    struct kn_error err;
    json_t *body = NULL, *reply = NULL, *to;
    char peer[96];
    int rc;

    if (!(body = kn_api_body_json(req)) || kn_api_find_app(api, req, call, &app) < 0) {
        goto out;
    }
    to = json_object_get(body, "to");
    if (to && !json_is_string(to) && !json_is_null(to)) {
        kn_api_reply_error(req, 400, "'to' must be a commit (a string)");
        goto out;
    }
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "rolling back is not available");
        goto out;
    }
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = kn_actions_rollback(api->deps.actions, app.repo, app.name,
                                  json_is_string(to) ? json_string_value(to) : NULL, &who, &res,
                                  &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    reply = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "deployment", (json_int_t)res.deployment,
                      "repo", res.repo, "app", res.app, "commit", res.commit, "strategy",
                      "QUICK_SYNC", "by", who.name);
    kn_api_reply(req, 202, reply);
out:
    kn_app_state_release(&app);
    json_decref(reply);
    json_decref(body);
}

/* An action that plans the app's deployment again (sync, retry): 202 with the new deployment
 * and, when not NULL, its strategy. */
typedef int (*kn_api_replan_fn)(struct kn_actions *a, const char *repo, const char *app,
                                const struct kn_actor *who, struct kn_action_result *out,
                                struct kn_error *err);

static void kn_api_replan(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                          kn_api_replan_fn fn, const char *unavailable, const char *strategy)
{
    struct kn_app_state app = {0};
    struct kn_action_result res;
    struct kn_actor who;
    struct kn_error err;
    json_t *reply = NULL;
    char peer[96];
    int rc;

    if (kn_api_find_app(api, req, call, &app) < 0) {
        goto out;
    }
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "%s", unavailable);
        goto out;
    }
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = fn(api->deps.actions, app.repo, app.name, &who, &res, &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    reply = json_pack("{s:I, s:s, s:s, s:s, s:s}", "deployment", (json_int_t)res.deployment,
                      "repo", res.repo, "app", res.app, "commit", res.commit, "by", who.name);
    if (strategy) {
        json_object_set_new(reply, "strategy", json_string(strategy));
    }
    kn_api_reply(req, 202, reply);
out:
    kn_app_state_release(&app);
    json_decref(reply);
}

void kn_api_sync(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    kn_api_replan(api, req, call, kn_actions_sync, "syncing is not available", "QUICK_SYNC");
}

/* ---- retry and promote ----------------------------------------------------------------------- */

void kn_api_retry(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    kn_api_replan(api, req, call, kn_actions_retry, "retrying is not available", NULL);
}

void kn_api_promote(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    const char *arg = kn_api_param(call, "id");
    struct kn_action_result res;
    struct kn_actor who;
    struct kn_error err;
    json_t *body = NULL, *reply = NULL, *full;
    char *end = NULL, peer[96];
    long long id = strtoll(arg, &end, 10);
    int rc;

    if (!(body = kn_api_body_json(req))) {
        goto out;
    }
    if (!end || *end || id <= 0) {
        kn_api_reply_error(req, 404, "no deployment '%s'", arg);
        goto out;
    }
    full = json_object_get(body, "full");
    if (!json_is_true(full)) {
        kn_api_reply_error(req, 400,
                           "'full' must be true: a promotion skips every stage up to the "
                           "PRIMARY_ROLLOUT (skip passes one stage)");
        goto out;
    }
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "promoting is not available");
        goto out;
    }
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = kn_actions_promote(api->deps.actions, id, &who, &res, &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    reply = json_pack("{s:I, s:s, s:s, s:s, s:b, s:s}", "deployment", (json_int_t)res.deployment,
                      "repo", res.repo, "app", res.app, "commit", res.commit, "full", 1, "by",
                      who.name);
    kn_api_reply(req, 200, reply);
out:
    json_decref(reply);
    json_decref(body);
}
