/*
 * Inside the API: the table of routes and the one router that matches a request to a route,
 * answers 404 (no route has the path) or 405 with Allow (a route has the path, none the method),
 * checks the caller's role (401, 403), and only then calls the route's handler.
 */
#ifndef KANARIA_API_ROUTER_H
#define KANARIA_API_ROUTER_H

#include <stddef.h>

#include "api/server.h"

/* A route that takes no token (the webhook checks its own signature). */
#define KN_API_PUBLIC (-1)

/* The most {params} of a pattern and segments of a path. */
#define KN_API_MAX_PARAMS   4
#define KN_API_MAX_SEGMENTS 8

/* Who calls: the user of the token (or "anonymous"), and the user's role. */
struct kn_api_caller {
    char name[128];
    int role;
};

struct kn_api_route;

/* One matched request, in the request's pool: the {params} of the pattern, decoded. */
struct kn_api_call {
    const struct kn_api_route *route;
    const char *name[KN_API_MAX_PARAMS];  /* "app", "id", "repo": borrowed from the table */
    const char *value[KN_API_MAX_PARAMS]; /* in the request's pool */
    int nparams;
    const char *repo; /* ?repo=NAME, or NULL */
    struct kn_api_caller caller;
};

/* A route's handler: the method matched, the caller holds the route's role. It always answers,
 * possibly later. */
typedef void (*kn_api_handler_fn)(struct kn_api *api, h2o_req_t *req,
                                  const struct kn_api_call *call);

struct kn_api_route {
    enum kn_api_route_id id; /* the route's label in /metrics */
    const char *method;
    const char *pattern; /* "/api/v1/apps/{app}/history": a {name} is one segment */
    int role;            /* the least KN_ROLE_* that may call it, or KN_API_PUBLIC */
    const char *action;  /* what a refusal says the caller may not do ("read", "approve") */
    size_t body_max;     /* the largest body it takes */
    kn_api_handler_fn handler;
};

/* Every route, in one place; kn_api_nroutes of them. */
extern const struct kn_api_route kn_api_routes[];
extern const size_t kn_api_nroutes;

/* The value of {name} of the matched pattern, or NULL. */
const char *kn_api_param(const struct kn_api_call *call, const char *name);

/*
 * The route of `method` and `path` (normalized, without the query): 0 with *out (and call's
 * params in pool), 404 when no route has the path, 405 when routes have it with other methods
 * (their methods into allow, ", " between them). pool NULL: the params are not kept.
 */
int kn_api_route_match(const char *method, size_t mlen, const char *path, size_t plen,
                       h2o_mem_pool_t *pool, struct kn_api_call *call, char *allow,
                       size_t allow_size);

/*
 * Whether the caller may call a route that needs `role`: 0 with the caller in *c; 401 (no token,
 * not a bearer token, unknown token, or no users and a read on an API not on loopback) or 403
 * (role too low, or no users and anything but a read), with why in msg. `authorization` is the
 * header's value (NULL when absent).
 */
int kn_api_auth_check(const struct kn_config *cfg, int loopback, const char *authorization,
                      size_t len, int role, const char *action, struct kn_api_caller *c,
                      char *msg, size_t size);

/* The body as a JSON object (a new reference; an empty body is {}), or NULL after answering
 * 400. */
json_t *kn_api_body_json(h2o_req_t *req);

/* Route handlers, one file per resource. */
void kn_api_healthz(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_metrics_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_session_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_apps_list(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_app_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_app_history(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_deployment_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_postmortem_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_cancel(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_rollback(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_sync(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_approve(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_reject(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_skip(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_prune(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_retry(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_promote(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_repositories_list(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_repository_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_events_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_audit_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
void kn_api_webhook_post(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);
/* GET or HEAD of a web UI file: the asset of kn_ui_assets whose path is the route's pattern
 * (ui.c) */
void kn_api_ui_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call);

/* JSON of what the store holds (apps.c). */
json_t *kn_api_deployment_json(const struct kn_deployment *d);
json_t *kn_api_stage_json(const struct kn_stage_state *s);
/* The app's status, one word, the first that applies: DEPLOYING (a deployment is not final),
 * INVALID (error), ORPHANED, OUT_OF_SYNC (drift), ROLLED_BACK, SYNCED (a last good commit), NEW.
 * A static string. */
const char *kn_api_app_status(const struct kn_app_state *a);
/* The stages of a deployment's answer: one per entry of `pipeline` (what the engine recorded
 * at the start, kn_stage_describe's objects), in order, the recorded one of its index from
 * `stages` or one NOT_STARTED named by its kind, then those of `stages` beyond the pipeline (the
 * rollback), all in the order of their indexes; the background analysis's (its pipeline entry
 * has "background": true, index after the rollback's) gets "background": true. A new array;
 * stages is not changed but for the names, ids and that flag it lacked (deployments.c). */
json_t *kn_api_stages_merge(const json_t *pipeline, json_t *stages);
/* Appends each deployment to the JSON array data: a kn_store_deployment_cb. */
int kn_api_collect_deployment(const struct kn_deployment *d, void *data);

/* The value of the query parameter `name` (the first one, percent-decoded, in the request's
 * pool), or NULL when absent or malformed (*bad set). */
const char *kn_api_query_param(h2o_req_t *req, const char *name, int *bad);

/* The app named by {app} (and ?repo=) of the call into *out (released by the caller with
 * kn_app_state_release); otherwise answered 404 or 409 (apps.c). */
int kn_api_find_app(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                    struct kn_app_state *out);

/* Answer an action's refusal (see actions.h) with its status; a KN_EUNSUPPORTED one is a 403
 * through kn_api_refuse. */
void kn_api_reply_refusal(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                          int rc, const struct kn_error *err);

/* The actor of an action: the caller, from the request's address (peer is its buffer). */
struct kn_actor;
void kn_api_actor(h2o_req_t *req, const struct kn_api_call *call, struct kn_actor *who,
                  char *peer, size_t size);

#endif /* KANARIA_API_ROUTER_H */
