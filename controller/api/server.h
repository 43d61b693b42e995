/*
 * Inside the API (controller/api/ only): the server's state and what the request handlers share.
 */
#ifndef KANARIA_API_SERVER_H
#define KANARIA_API_SERVER_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <jansson.h>

#include "api/api.h"

/* The routes refusals are counted by in /metrics (a label of few values: kn_api_route_names,
 * the patterns of the table in router.c). */
enum kn_api_route_id {
    KN_API_ROUTE_OTHER = 0,
    KN_API_ROUTE_HEALTHZ,
    KN_API_ROUTE_METRICS,
    KN_API_ROUTE_APPS,
    KN_API_ROUTE_APP,
    KN_API_ROUTE_HISTORY,
    KN_API_ROUTE_APPROVE,
    KN_API_ROUTE_REJECT,
    KN_API_ROUTE_CANCEL,
    KN_API_ROUTE_ROLLBACK,
    KN_API_ROUTE_SYNC,
    KN_API_ROUTE_SKIP,
    KN_API_ROUTE_PRUNE,
    KN_API_ROUTE_DEPLOYMENT,
    KN_API_ROUTE_REPOS,
    KN_API_ROUTE_REPO,
    KN_API_ROUTE_EVENTS,
    KN_API_ROUTE_WEBHOOK,
    KN_API_ROUTE_UI_INDEX,
    KN_API_ROUTE_UI_JS,
    KN_API_ROUTE_UI_CSS,
    KN_API_ROUTE_SESSION,
    KN_API_ROUTE_AUDIT,
    KN_API_ROUTE_RETRY,
    KN_API_ROUTE_PROMOTE,
    KN_API_ROUTE_POSTMORTEM,
    KN_API_NROUTES,
};

extern const char *const kn_api_route_names[KN_API_NROUTES];

/* 401s written to the log and the audit log per window; the others of the window are only
 * counted (in /metrics, and in one line when the next window starts). */
#define KN_API_REFUSED_WINDOW_MS 60000
#define KN_API_REFUSED_BURST     5

struct kn_api {
    struct kn_api_deps deps;
    const struct kn_config *config; /* borrowed */
    char *data_dir;                 /* dataDir at start: where the repositories' mirrors are */
    int loopback;                   /* listening on a loopback address only */
    int stopped;
    uv_tcp_t *listener; /* freed in its close callback; NULL once closing */
    h2o_globalconf_t h2o_config;
    h2o_context_t h2o_ctx;
    h2o_accept_ctx_t accept_ctx;
    int h2o_ready;
    uv_handle_t **h2o_handles; /* what h2o's context put on the loop (a queue, timers) */
    size_t nh2o_handles;
    struct ssl_ctx_st *ssl_ctx;
    struct kn_api_stream *streams; /* open event streams (events.c) */
    uv_timer_t *keepalive;         /* their keep-alive; NULL until the first stream */
    /* refused calls: [0] 401, [1] 403, by route */
    unsigned long long refused[2][KN_API_NROUTES];
    long long unauth_window; /* when the current window of 401s started (ms), 0 none */
    unsigned unauth_recorded; /* 401s logged and audited in it */
    unsigned long long unauth_quiet; /* 401s only counted in it */
};

/* Route and answer one request (router.c). Always answers, possibly later (approvals). */
void kn_api_handle(struct kn_api *api, h2o_req_t *req);

/* End every event stream (at stop; events.c). */
void kn_api_events_stop(struct kn_api *api);

/* GET /metrics, the caller authorized (metrics.c). */
void kn_api_metrics(struct kn_api *api, h2o_req_t *req);

/* Answer with `body` as JSON (reference taken). */
void kn_api_reply(h2o_req_t *req, int status, json_t *body);

/* Answer {"error": "..."}. */
void kn_api_reply_error(h2o_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Refuse the call with 401 or 403 and {"error": MESSAGE}: logged (method, path, address, user,
 * the message; never a token), counted in /metrics by code and route, and recorded in the audit
 * log as API_REFUSED (actor the user, or "unauthenticated"). 403s are all recorded; 401s at most
 * KN_API_REFUSED_BURST per KN_API_REFUSED_WINDOW_MS, the rest counted and summed up in one line
 * and event when the next window starts, so that a flood of unknown tokens cannot grow the
 * audit log faster than that. `user` NULL or "" when not known.
 */
void kn_api_refuse(struct kn_api *api, h2o_req_t *req, int status, const char *user,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Which route of kn_api_route_names a path (path_normalized, without the query) is, whatever
 * the method (router.c). */
enum kn_api_route_id kn_api_route_of(const char *path, size_t len);

/* The largest body the route of path takes: KN_WEBHOOK_BODY_MAX for the push webhook,
 * KN_API_BODY_MAX for every other (router.c). */
size_t kn_api_body_max(const char *path, size_t len);

/* The client's address as "ip:port" into buf. */
const char *kn_api_peer(h2o_req_t *req, char *buf, size_t size);

/* A request header's value (lower-case name), or NULL with *len 0. */
const char *kn_api_header(h2o_req_t *req, const char *name, size_t *len);

#endif /* KANARIA_API_SERVER_H */
