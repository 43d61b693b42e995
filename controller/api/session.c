/*
 * GET /api/v1/session: who the caller is (the user of the token, or anonymous on a loopback API
 * without users), its role, the id of the newest event (where an event stream opened next
 * starts: its Last-Event-ID) and kanaria's version.
 */
#include <string.h>

#include "api/auth.h"
#include "api/router.h"

static json_t *kn_api_session_json(const struct kn_api_caller *caller, int anonymous,
                                   long long last_event_id)
{
    return json_pack("{s:o, s:s, s:b, s:I, s:s}", "user",
                     anonymous ? json_null() : json_string(caller->name), "role",
                     kn_auth_role_name(caller->role), "anonymous", anonymous, "last_event_id",
                     (json_int_t)last_event_id, "version", KANARIA_VERSION);
}

void kn_api_session_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    long long last = 0;
    json_t *body;

    if (kn_store_event_last_id(api->deps.store, &last) < 0) {
        kn_api_reply_error(req, 500, "cannot read the newest event of the state store");
        return;
    }
    /* with no users, the router lets only reads through, anonymously (kn_api_auth_check) */
    body = kn_api_session_json(&call->caller, api->config->users.count == 0, last);
    kn_api_reply(req, 200, body);
    json_decref(body);
}
