/*
 * Notifications: every event of the audit log that a configured notification's `events` and
 * `apps` filters match is POSTed to its url. A `webhook` gets the event as JSON (or its template)
 * signed with HMAC-SHA256 of its secret in X-Kanaria-Signature-256; a `slack` one a Block Kit
 * message (with a bot token: chat.postMessage, then chat.update of the same message for the
 * deployment's later events); a `teams` one an Adaptive Card; a `pagerduty` one an Events v2
 * trigger for a failure and a resolve for the app's next success.
 *
 * Delivery is at least once: each notification reads the events from the store after its own
 * cursor (kept in the store under its name, key "cursor"), delivers them in order one request at
 * a time, and moves the cursor past an event once it is delivered or given up. A restart goes on
 * after the cursor; X-Kanaria-Delivery is the event id, the same at each attempt, so a receiver
 * can drop a repeat. Notifications are independent: each has its own queue, requests and timer,
 * so a slow or dead endpoint delays only its own. A failed delivery (transport error, a status
 * outside 2xx, a Slack answer without "ok") is retried after 1 s, 2 s, 4 s, 8 s, 16 s and then
 * given up with an error in the log. Nothing here blocks the loop or a deployment.
 *
 * Event names: a filter names the events of kn_event_names. The store writes a deployment's
 * final status as SUCCESS and FAILURE; they are notified as SUCCEEDED and FAILED, and as
 * ROLLED_BACK for a failure whose rollback worked. STAGE_LOG (a stage's log lines) is sent only
 * to a notification that names it.
 *
 * Secrets (secretFile, tokenFile) are read at each delivery and never logged.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_NOTIFY_H
#define KANARIA_NOTIFY_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "kanaria/config.h"
#include "kanaria/store.h"
#include "kanaria/http.h"

/* Events a notification reads ahead from the store (without a store: holds before it drops the
 * oldest). */
#define KN_NOTIFY_QUEUE_MAX 100
/* How long an event is retried unless `retryFor` says (a config made without the schema's
 * defaults, as in tests). */
#define KN_NOTIFY_RETRY_FOR_DEFAULT_MS (60LL * 60 * 1000)
/* The longest wait between two attempts. */
#define KN_NOTIFY_BACKOFF_MAX_MS 60000
/* "sha256=" and 64 hex digits, NUL-terminated. */
#define KN_NOTIFY_SIGNATURE_SIZE 72

struct kn_notify;

/* PagerDuty actions (kn_notify_pagerduty_action). */
#define KN_NOTIFY_PD_NONE    0
#define KN_NOTIFY_PD_TRIGGER 1
#define KN_NOTIFY_PD_RESOLVE 2

/* Notifications of cfg (copied) sending with http (borrowed; outlives the notifications until
 * kn_notify_close), reading events and keeping cursors in store (borrowed, the same; NULL: no
 * cursor, events are taken as handed to kn_notify_event, for tests). A secretFile is read at each delivery (kanaria/secret.h): one that cannot be
 * read fails that attempt, retried like any other, and nothing goes out unsigned; it is also
 * read here, so that an error is logged at once. */
int kn_notify_new(struct kn_notify **out, uv_loop_t *loop, struct kn_http_client *http,
                  struct kn_store *store, const struct kn_config *cfg);

/* Use a reloaded config: notifications are matched by name; a kept one keeps its queue. */
void kn_notify_set_config(struct kn_notify *n, const struct kn_config *cfg);

/* There are new events (a kn_feed_cb): each notification reads them from the store. Without a
 * store, e (may be NULL) is queued for each notification that wants it. */
void kn_notify_event(const struct kn_event *e, void *data);

/* Stop sending: queues are dropped, requests in flight end as their client closes them, and
 * everything is freed once the loop has run the closes. NULL is a no-op. */
void kn_notify_close(struct kn_notify *n);

/* ---- pure parts, for tests ------------------------------------------------------------------ */

/* The notification name of e (one of kn_event_names, or the stored type when it has none). */
const char *kn_notify_event_name(const struct kn_event *e);

/* Whether the notification's filters match e: `events` (empty: everything but STAGE_LOG) and
 * `apps` (empty: all; an event of no app, such as TRIGGERED, matches only an empty list). */
int kn_notify_matches(const struct kn_notification_config *c, const struct kn_event *e);

/* The event as a JSON object: {"id", "type" (the notification name), "at" (ms since the epoch),
 * "repo", "app", "deployment", "actor", "message"}. A new reference. */
json_t *kn_notify_event_json(const struct kn_event *e);

/* The one-line text of e: "kanaria: hello SUCCEEDED (deployment 3, repository deploy, by
 * kanaria): ...", every payload's fallback. Caller frees. */
char *kn_notify_text(const struct kn_event *e);

/* The web page of `commit` when repo_url is on a known forge (GitHub, GitLab, Bitbucket,
 * Gitea/Codeberg; https, ssh:// or scp-like user@host:path URLs; user info and ports dropped),
 * else NULL. Caller frees. */
char *kn_notify_commit_url(const char *repo_url, const char *commit);

/* What templates and payloads are built from: the event's JSON (kn_notify_event_json) and
 * "text" (kn_notify_text), "reason" (the deployment's, else the event's message), with d
 * (may be NULL) "commit", "shortCommit", "commitMessage", "author", "status", "trigger" and
 * "commitUrl" (when on a known forge), with external_url (may be NULL) "deploymentUrl"
 * (EXTERNAL_URL/#/deployments/ID) and "appUrl" (EXTERNAL_URL/#/apps/REPO/APP). A new
 * reference. */
json_t *kn_notify_view(const struct kn_event *e, const struct kn_deployment *d,
                       const char *repo_url, const char *external_url);

/* Slack: {"text": text, "blocks": [header, section with fields App, Repository, Commit
 * (linked), Deployment (linked), context, actions with a button to deploymentUrl]}; the caller
 * adds "channel" (and "ts") for the Web API. A new reference. */
json_t *kn_notify_slack_message(const json_t *view, const char *text);

/* Teams: {"type": "message", "attachments": [{"contentType":
 * "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": an AdaptiveCard
 * 1.4 with fallbackText text}]}. A new reference. */
json_t *kn_notify_teams_message(const json_t *view, const char *text);

/* KN_NOTIFY_PD_TRIGGER for FAILED and ROLLED_BACK, KN_NOTIFY_PD_RESOLVE for SUCCEEDED, else
 * KN_NOTIFY_PD_NONE. */
int kn_notify_pagerduty_action(const struct kn_event *e);

/* "kanaria/REPO/APP": one incident per app. Caller frees. */
char *kn_notify_pagerduty_dedup_key(const char *repo, const char *app);

/* A PagerDuty Events v2 body: routing_key, event_action, dedup_key, and for a trigger payload
 * {summary (text), source, severity "error", timestamp, component, group, class,
 * custom_details}, client, client_url and links. A new reference; it holds the key. */
json_t *kn_notify_pagerduty_message(const json_t *view, const char *text, const char *routing_key,
                                    int action);

/* The body for a notification of `type` without a token: webhook: the event's JSON, or tmpl
 * rendered with JSON escaping (it must give JSON); slack, teams: the message with tmpl (NULL:
 * view's "text") as its text. 0 and *out (caller frees), or KN_EINVAL / KN_ETOOBIG with why. */
int kn_notify_body(char **out, int type, const json_t *view, const char *tmpl, char *why,
                   size_t why_size);

/* kn_notify_body of e alone (no deployment, no template). Caller frees. */
char *kn_notify_payload(int type, const struct kn_event *e);

/* "sha256=" and the hex HMAC-SHA256 of body with secret into out. */
void kn_notify_sign(const char *secret, size_t secret_len, const char *body, size_t body_len,
                    char out[KN_NOTIFY_SIGNATURE_SIZE]);

/* The wait before attempt `attempt` (2 for the first retry): 1 s, 2 s, 4 s ... capped at
 * KN_NOTIFY_BACKOFF_MAX_MS. */
long long kn_notify_backoff_ms(int attempt);

#endif /* KANARIA_NOTIFY_H */
