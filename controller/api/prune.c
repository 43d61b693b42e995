/*
 * POST /api/v1/apps/{app}/prune: remove an app whose folder left the repository from its
 * platforms; the outcome is an event (APP_PRUNED or PRUNE_FAILED) and shows in the app's status
 * (the checks and the work are in controller/actions.c).
 */
#include "actions.h"
#include "api/router.h"

void kn_api_prune(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    struct kn_app_state app = {0};
    struct kn_actor who;
    struct kn_error err;
    json_t *reply = NULL;
    char peer[96];
    int rc;

    if (kn_api_find_app(api, req, call, &app) < 0) {
        goto out;
    }
    if (!api->deps.actions) {
        kn_api_reply_error(req, 503, "pruning is not available");
        goto out;
    }
    kn_error_clear(&err);
    kn_api_actor(req, call, &who, peer, sizeof(peer));
    if ((rc = kn_actions_prune(api->deps.actions, app.repo, app.name, &who, &err)) < 0) {
        kn_api_reply_refusal(api, req, call, rc, &err);
        goto out;
    }
    reply = json_pack("{s:s, s:s, s:s, s:s}", "repo", app.repo, "app", app.name, "status",
                      "PRUNING", "by", who.name);
    kn_api_reply(req, 202, reply);
out:
    kn_app_state_release(&app);
    json_decref(reply);
}
