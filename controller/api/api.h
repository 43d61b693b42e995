/*
 * The control API: JSON over HTTP/1.1 (libh2o on the controller's libuv loop), optionally over
 * TLS, on `listen` of kanaria.yaml.
 *
 *   GET  /healthz                          no token
 *   GET  /, /app.js, /app.css              no token: the web UI, embedded at build time (ui.h)
 *   GET  /api/v1/session                   viewer   who calls: user, role, the newest event id
 *   GET  /api/v1/apps                      viewer
 *   GET  /api/v1/apps/{app}                viewer   (?repo=NAME when names collide)
 *   GET  /api/v1/apps/{app}/history        viewer
 *   GET  /api/v1/deployments/{id}          viewer
 *   POST /api/v1/apps/{app}/approve        approver {"reason": "..."} optional
 *   POST /api/v1/apps/{app}/reject         approver {"reason": "..."} optional
 *   POST /api/v1/apps/{app}/cancel         operator {"rollback": true|false} (default true)
 *   POST /api/v1/apps/{app}/rollback       operator {"to": "REV"} optional (default last good)
 *   POST /api/v1/apps/{app}/sync           operator deploy the repository's head now
 *   POST /api/v1/apps/{app}/skip           operator {"stage": N}; a WAIT_APPROVAL only by an
 *                                          admin: {"stage": N, "breakGlass": true, "reason": ".."}
 *   POST /api/v1/apps/{app}/prune          operator remove an orphaned app from its platforms
 *   GET  /api/v1/repositories              viewer   each repository's fetch status
 *   GET  /api/v1/repositories/{repo}       viewer
 *   POST /api/v1/webhooks/git              the repository's webhook secret (see webhook.h)
 *   GET  /api/v1/events                    viewer   server-sent events (see kn_api_publish)
 *   GET  /metrics                          viewer   Prometheus text format 0.0.4
 *
 * Errors are {"error": "..."} with 400 (malformed JSON), 401 (no or unknown token), 403 (role
 * too low, not an approver of the stage, a WAIT_APPROVAL skipped without break-glass), 404, 405,
 * 409 (ambiguous app, nothing waiting or in progress, another deployment running, a stage that
 * has finished), 413 (body over 64 KiB, a webhook's over 25 MiB). 401s and 403s are logged,
 * counted in /metrics and audited (kn_api_refuse in server.h). With no users in kanaria.yaml,
 * reads are anonymous when `listen` is a loopback address, and every action is refused.
 *
 * The table of these routes is in router.c; the handlers are in one file per resource, and the
 * operator's actions are in controller/actions.h. All functions run on the loop thread.
 */
#ifndef KANARIA_API_H
#define KANARIA_API_H

#include <uv.h>

#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/platform.h"
#include "kanaria/store.h"
#include "slo.h"

struct kn_actions;

/* The largest request body of a route, and of the push webhook (GitHub caps its payloads at
 * 25 MB). */
#define KN_API_BODY_MAX     (64 * 1024)
#define KN_WEBHOOK_BODY_MAX (25 * 1024 * 1024)

struct kn_api_deps {
    uv_loop_t *loop;                /* borrowed; outlives the API */
    const struct kn_config *config; /* borrowed until kn_api_set_config or kn_api_free */
    struct kn_store *store;         /* borrowed; outlives the API */
    /* What the operator's actions call (approve, cancel, sync, ..., and a webhook's fetch);
     * borrowed, outlives the API. NULL: every action is answered 503. */
    struct kn_actions *actions;
    /* What runs now of an app, for /metrics, from drift's cache (a copy the caller releases with
     * kn_live_state_release); may be NULL. <0 when nothing was read of it. */
    int (*live)(void *data, const char *app, struct kn_live_state *out);
    /* The latest SLO readings (controller/slo.h) of repo's app (NULL: every app of repo; repo
     * NULL: every one), each to cb; may be NULL (no SLOs shown). */
    void (*slos)(void *data, const char *repo, const char *app, kn_slo_reading_cb cb,
                 void *cb_data);
    void *data;
};

struct kn_api;

/* Listen on config->listen (TLS when config->tls has both files). KN_EINVAL for a bad address,
 * KN_EIO when it cannot listen or load the certificate; err says which. */
int kn_api_new(struct kn_api **out, const struct kn_api_deps *deps, struct kn_error *err);

/* Use a reloaded config (users, secrets; `listen` and `tls` stay as they were at start). */
void kn_api_set_config(struct kn_api *api, const struct kn_config *config);

/* Close the listener and ask connections to close: once requests in flight are answered and idle
 * connections time out (at most 5s), the API holds nothing on the loop. */
void kn_api_stop(struct kn_api *api);

/* After uv_run returned. NULL is a no-op. */
void kn_api_free(struct kn_api *api);

/*
 * Send e to every open GET /api/v1/events stream as `id: ID` and `data: JSON` (the object of
 * kn_notify_event_json), once each: a stream that already sent e (from Last-Event-ID's backlog)
 * skips it. Streams get a keep-alive comment every 15 s; a client that reads too slowly to keep
 * up (1 MiB waiting) is disconnected. Fits kn_feed_cb.
 */
void kn_api_publish(const struct kn_event *e, void *data);

#endif /* KANARIA_API_H */
