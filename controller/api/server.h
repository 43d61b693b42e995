/*
 * Inside the API (controller/api/ only): the server's state and what the request handlers share.
 */
#ifndef KANARIA_API_SERVER_H
#define KANARIA_API_SERVER_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <jansson.h>

#include "api/api.h"

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
    size_t pending; /* approvals being checked on the thread pool */
    struct kn_api_stream *streams; /* open event streams (events.c) */
    uv_timer_t *keepalive;         /* their keep-alive; NULL until the first stream */
};

/* Route and answer one request (handlers.c). Always answers, possibly later (approvals). */
void kn_api_handle(struct kn_api *api, h2o_req_t *req);

/* The webhook endpoint (webhook.c); the method is already checked. */
void kn_api_webhook(struct kn_api *api, h2o_req_t *req);

/* GET /api/v1/events, the caller authorized (events.c): a server-sent event stream. */
void kn_api_events_open(struct kn_api *api, h2o_req_t *req);

/* End every event stream (at stop). */
void kn_api_events_stop(struct kn_api *api);

/* GET /metrics, the caller authorized (metrics.c). */
void kn_api_metrics(struct kn_api *api, h2o_req_t *req);

/* Answer with `body` as JSON (reference taken). */
void kn_api_reply(h2o_req_t *req, int status, json_t *body);

/* Answer {"error": "..."}. */
void kn_api_reply_error(h2o_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The client's address as "ip:port" into buf. */
const char *kn_api_peer(h2o_req_t *req, char *buf, size_t size);

/* A request header's value (lower-case name), or NULL with *len 0. */
const char *kn_api_header(h2o_req_t *req, const char *name, size_t *len);

#endif /* KANARIA_API_SERVER_H */
