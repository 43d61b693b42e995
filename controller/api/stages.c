/*
 * The routes that act on the stage a deployment runs: approve and reject a WAIT_APPROVAL, skip a
 * stage (the checks and the work are in controller/actions.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "api/router.h"
#include "kanaria/alloc.h"

/* An approval is answered once its approvers are read: the request waits for it. */
struct kn_api_decision {
    struct kn_api *api;
    h2o_req_t *req;                  /* NULL once the request is gone (the client went away) */
    struct kn_api_decision_ref *ref; /* in req's pool; NULL with req */
    struct kn_api_caller caller;
    int reject;
};

struct kn_api_decision_ref {
    struct kn_api_decision *d;
};

static void kn_api_decision_req_gone(void *p)
{
    struct kn_api_decision_ref *ref = p;

    if (ref->d) {
        ref->d->req = NULL;
        ref->d->ref = NULL;
    }
}

static void kn_api_decided(int rc, const struct kn_action_result *res, const struct kn_error *err,
                           void *data)
{
    struct kn_api_decision *d = data;
    struct kn_api_call call;
    json_t *body;

    if (!d->req) {
        goto out;
    }
    memset(&call, 0, sizeof(call));
    call.caller = d->caller;
    if (rc < 0) {
        kn_api_reply_refusal(d->api, d->req, &call, rc, err);
        goto out;
    }
    body = json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:s}", "deployment",
                     (json_int_t)res->deployment, "repo", res->repo, "app", res->app, "stage",
                     res->stage, "stage_name", res->stage_name, "decision",
                     d->reject ? "REJECT" : "APPROVE", "by", d->caller.name);
    kn_api_reply(d->req, 200, body);
    json_decref(body);
out:
    if (d->ref) {
        /* the request's pool outlives this answer: its dispose must not reach `d` */
        d->ref->d = NULL;
    }
    free(d);
}

static void kn_api_decide(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                          int reject)
{
    struct kn_api_decision *d = NULL;
    struct kn_app_state app = {0};
    struct kn_actor who;
    struct kn_error err;
    json_t *body = NULL, *reason;
    char peer[96];
    int rc;

    if (!(body = kn_api_body_json(req)) || kn_api_find_app(api, req, call, &app) < 0) {
        goto out;
    }
    reason = json_object_get(body, "reason");
    if (reason && !json_is_string(reason) && !json_is_null(reason)) {
        kn_api_reply_error(req, 400, "'reason' must be a string");
        goto out;
    }
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "approvals are not available");
        goto out;
    }
    d = kn_calloc(1, sizeof(*d));
    d->api = api;
    d->req = req;
    d->caller = call->caller;
    d->reject = reject;
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = kn_actions_decide(api->deps.actions, app.repo, app.name, reject,
                                json_is_string(reason) ? json_string_value(reason) : "", &who,
                                kn_api_decided, d, &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    d->ref = h2o_mem_alloc_shared(&req->pool, sizeof(*d->ref), kn_api_decision_req_gone);
    d->ref->d = d;
    d = NULL; /* answered in kn_api_decided */
out:
    kn_app_state_release(&app);
    free(d);
    json_decref(body);
}

void kn_api_approve(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    kn_api_decide(api, req, call, 0);
}

void kn_api_reject(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    kn_api_decide(api, req, call, 1);
}

void kn_api_skip(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    struct kn_app_state app = {0};
    struct kn_action_result res;
    struct kn_actor who;
    struct kn_error err;
    json_t *body = NULL, *reply = NULL, *stage, *bg, *why;
    const char *glass = NULL;
    char peer[96];
    int rc;

    if (!(body = kn_api_body_json(req)) || kn_api_find_app(api, req, call, &app) < 0) {
        goto out;
    }
    stage = json_object_get(body, "stage");
    if (!json_is_integer(stage) || json_integer_value(stage) < 0 ||
        json_integer_value(stage) > 1000) {
        kn_api_reply_error(req, 400,
                           "'stage' must be the index of a stage of the pipeline (0, "
                           "1, ...)");
        goto out;
    }
    bg = json_object_get(body, "breakGlass");
    why = json_object_get(body, "reason");
    if (bg && !json_is_boolean(bg)) {
        kn_api_reply_error(req, 400, "'breakGlass' must be true or false");
        goto out;
    }
    if (why && !json_is_string(why) && !json_is_null(why)) {
        kn_api_reply_error(req, 400, "'reason' must be a string");
        goto out;
    }
    if (json_is_true(bg)) {
        /* an empty reason is refused by the action, after the role */
        glass = json_is_string(why) ? json_string_value(why) : "";
    }
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "skipping is not available");
        goto out;
    }
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = kn_actions_skip(api->deps.actions, app.repo, app.name,
                              (int)json_integer_value(stage), glass, &who, &res, &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    reply = json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:b}", "deployment",
                      (json_int_t)res.deployment, "repo", res.repo, "app", res.app, "stage",
                      res.stage, "stage_name", res.stage_name, "by", who.name, "break_glass",
                      glass != NULL);
    if (glass) {
        json_object_set_new(reply, "reason", json_string(glass));
    }
    kn_api_reply(req, 200, reply);
out:
    kn_app_state_release(&app);
    json_decref(reply);
    json_decref(body);
}
