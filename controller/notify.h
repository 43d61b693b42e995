/*
 * Notifications: every event of the audit log (from the event feed) that a configured
 * notification's `events` and `apps` filters match is POSTed to its url. A `webhook` gets the
 * event as JSON signed with HMAC-SHA256 of its secret in X-Kanaria-Signature-256; a `slack` one
 * gets {"text": "..."}. Each notification has its own queue, delivered in order one request at a
 * time; a failed delivery (transport error or a status outside 2xx) is retried after 1 s, 2 s,
 * 4 s, 8 s, 16 s and then given up with an error in the log. A full queue drops its oldest event
 * with a warning. Nothing here blocks the loop or a deployment.
 *
 * Event names: a filter names the events of kn_event_names. The store writes a deployment's
 * final status as SUCCESS and FAILURE; they are notified as SUCCEEDED and FAILED, and as
 * ROLLED_BACK for a failure whose rollback worked. STAGE_LOG (a stage's log lines) is sent only
 * to a notification that names it.
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

/* Events a notification holds before it drops the oldest. */
#define KN_NOTIFY_QUEUE_MAX 1000
/* Deliveries of one event, the first included. */
#define KN_NOTIFY_ATTEMPTS 6
/* The longest wait between two attempts. */
#define KN_NOTIFY_BACKOFF_MAX_MS 60000
/* "sha256=" and 64 hex digits, NUL-terminated. */
#define KN_NOTIFY_SIGNATURE_SIZE 72

struct kn_notify;

/* Notifications of cfg (copied) sending with http (borrowed; outlives the notifications until
 * kn_notify_close). A secretFile is read at each delivery (kanaria/secret.h): one that cannot be
 * read fails that attempt, retried like any other, and nothing goes out unsigned; it is also
 * read here, so that an error is logged at once. */
int kn_notify_new(struct kn_notify **out, uv_loop_t *loop, struct kn_http_client *http,
                  const struct kn_config *cfg);

/* Use a reloaded config: notifications are matched by name; a kept one keeps its queue. */
void kn_notify_set_config(struct kn_notify *n, const struct kn_config *cfg);

/* Queue e for each notification that wants it (a kn_feed_cb). */
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

/* The body POSTed for e to a notification of `type` (enum kn_notification_type): the event's
 * JSON, or for slack {"text": "..."}. Caller frees. */
char *kn_notify_payload(int type, const struct kn_event *e);

/* "sha256=" and the hex HMAC-SHA256 of body with secret into out. */
void kn_notify_sign(const char *secret, size_t secret_len, const char *body, size_t body_len,
                    char out[KN_NOTIFY_SIGNATURE_SIZE]);

/* The wait before attempt `attempt` (2 for the first retry): 1 s, 2 s, 4 s ... capped at
 * KN_NOTIFY_BACKOFF_MAX_MS. */
long long kn_notify_backoff_ms(int attempt);

#endif /* KANARIA_NOTIFY_H */
